"""LoRA as a functional transform on parameter pytrees: pick linear kernels by path regex, create
low-rank adapters, and merge them into the weights. Model-agnostic; owns no module, optimizer or
sharding rule (the logical rank axis ``lora_rank`` must be mapped, usually to None, by the config).

Usage: the frozen base params are the reference policy (no copy is made); the trainable state is
``lora = init_lora(base, rng, cfg)``; the policy is ``apply(merge_lora(base, lora, cfg), ...)`` and
gradients are taken with respect to ``lora`` only. At init B is zero, so the merged weights equal
the base exactly, and merging with an empty adapter tree returns the base kernels unchanged.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.core import meta

LORA_RANK_AXIS = "lora_rank"  # logical name of the rank dimension of A and B
_MAX_LISTED_PATHS = 12  # how many candidate kernel paths an error message lists

PyTree = Any
Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """Which kernels get adapters and how large they are.

  rank, alpha: W' = W + (alpha / rank) * A @ B with A: [..., in, rank], B: [..., rank, out].
  targets: regexes searched (re.search) in the '/'-joined path of each kernel, e.g.
    'params/decoder/layers/attn/q_proj/kernel'. GoT's setting: q/k/v/o and gate/up/down.
  kernel_name: last path component of a linear weight; only such leaves with ndim >= 2 are
    candidates. Kernels are [*leading, in, out]; leading dims (e.g. nn.scan's layers) are batched.
  param_dtype: dtype of A and B (kept fp32 for the optimizer even when the base is bf16).
  """
  rank: int = 32
  alpha: float = 32.0
  targets: tuple[str, ...] = (r"attn/(q|k|v|o)_proj", r"mlp/(gate|up|down)_proj")
  kernel_name: str = "kernel"
  param_dtype: str = "float32"

  def __post_init__(self):
    if self.rank < 1:
      raise ValueError(f"LoraConfig.rank must be >= 1, got {self.rank}.")
    if isinstance(self.targets, str) or not self.targets:
      raise ValueError("LoraConfig.targets must be a non-empty tuple of regexes, e.g. "
                       "(r'attn/(q|k|v|o)_proj',); a bare string is not accepted.")

  @property
  def scale(self) -> float:
    return self.alpha / self.rank


def _is_box(x: Any) -> bool:
  return isinstance(x, meta.AxisMetadata)


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _leaves_with_paths(tree: PyTree) -> list[tuple[Path, Any]]:
  """(path, leaf) pairs where boxed params (nn.Partitioned) count as one leaf."""
  flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_box)
  return [(tuple(_key_name(k) for k in path), leaf) for path, leaf in flat]


def _unboxed(x: Any) -> jax.Array:
  return x.unbox() if _is_box(x) else x


def _candidate_kernels(params: PyTree, cfg: LoraConfig) -> list[tuple[Path, Any]]:
  return [(path, leaf) for path, leaf in _leaves_with_paths(params)
          if path and path[-1] == cfg.kernel_name and np.ndim(_unboxed(leaf)) >= 2]


def target_paths(params: PyTree, cfg: LoraConfig) -> list[str]:
  """'/'-joined paths of the kernels that `cfg.targets` selects (sorted, deterministic)."""
  patterns = [re.compile(t) for t in cfg.targets]
  found = ["/".join(path) for path, _ in _candidate_kernels(params, cfg)
           if any(p.search("/".join(path)) for p in patterns)]
  if not found:
    available = ["/".join(path) for path, _ in _candidate_kernels(params, cfg)]
    listed = ", ".join(available[:_MAX_LISTED_PATHS]) or "(none)"
    extra = len(available) - _MAX_LISTED_PATHS
    more = f" (+{extra} more)" if extra > 0 else ""
    raise ValueError(f"No '{cfg.kernel_name}' parameter matches LoraConfig.targets={cfg.targets}. "
                     f"Fix the regexes; available kernel paths: {listed}{more}.")
  return sorted(found)


def _box_like(base: Any, value: jax.Array, names: tuple[Any, ...]) -> Any:
  """Box `value` with `names` the same way `base` is boxed (keeps mesh/rules); plain if not."""
  if not _is_box(base):
    return value
  if not hasattr(base, "names"):
    raise TypeError(f"LoRA supports nn.Partitioned-style boxes with logical names, "
                    f"got {type(base).__name__}.")
  return base.replace(value=value, names=names)


def _nest(flat: dict[Path, Any]) -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def init_lora(params: PyTree, rng: jax.Array, cfg: LoraConfig) -> dict[str, Any]:
  """Adapters for every targeted kernel, as a nested dict mirroring the kernel paths.

  Leaf at the kernel's path: {'a': [*lead, in, rank], 'b': [*lead, rank, out]}. PEFT convention:
  A ~ U(-1/sqrt(in), 1/sqrt(in)) (torch's kaiming_uniform(a=sqrt(5)) on an nn.Linear of fan-in
  `in`), B = 0, so the merged model equals the base at init. If the base kernel is boxed with
  logical names (*lead, in_name, out_name), A gets (*lead, in_name, 'lora_rank') and B gets
  (*lead, 'lora_rank', out_name).
  """
  paths = target_paths(params, cfg)
  kernels = {"/".join(path): (path, leaf) for path, leaf in _candidate_kernels(params, cfg)}
  dtype = jnp.dtype(cfg.param_dtype)
  keys = jax.random.split(rng, len(paths))
  flat: dict[Path, Any] = {}
  for key, name in zip(keys, paths):
    path, base = kernels[name]
    shape = np.shape(_unboxed(base))
    *lead, d_in, d_out = shape
    bound = 1.0 / np.sqrt(d_in)
    a = jax.random.uniform(key, (*lead, d_in, cfg.rank), dtype, -bound, bound)
    b = jnp.zeros((*lead, cfg.rank, d_out), dtype)
    names = tuple(getattr(base, "names", (None,) * len(shape)))
    flat[path] = {
        "a": _box_like(base, a, (*names[:-1], LORA_RANK_AXIS)),
        "b": _box_like(base, b, (*names[:-2], LORA_RANK_AXIS, names[-1])),
    }
  return _nest(flat)


def _adapters_by_path(lora_params: PyTree) -> dict[str, tuple[Any, Any]]:
  """{'/'-joined kernel path: (a, b)} from a tree made by init_lora (boxes kept)."""
  leaves = _leaves_with_paths(lora_params)
  a_leaves = {"/".join(p[:-1]): v for p, v in leaves if p[-1] == "a"}
  b_leaves = {"/".join(p[:-1]): v for p, v in leaves if p[-1] == "b"}
  stray = [("/".join(p)) for p, _ in leaves if p[-1] not in ("a", "b")]
  if stray or a_leaves.keys() != b_leaves.keys():
    raise ValueError(f"lora_params is not an init_lora tree (each kernel needs 'a' and 'b'); "
                     f"unexpected entries: {stray or sorted(a_leaves.keys() ^ b_leaves.keys())}.")
  return {path: (a_leaves[path], b_leaves[path]) for path in a_leaves}


def lora_delta(a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
  """scale * A @ B over the last two dims, batched over leading (stacked-layer) dims, in fp32."""
  return scale * jnp.einsum("...ir,...ro->...io", a.astype(jnp.float32), b.astype(jnp.float32))


def merge_lora(params: PyTree, lora_params: PyTree, cfg: LoraConfig) -> PyTree:
  """Params with W + (alpha/rank) * A @ B at every adapted kernel; same structure and boxing.

  Pure and differentiable (w.r.t. both trees); jit-able with `cfg` static. The sum is formed in
  fp32 and cast back to the kernel's dtype. Kernels without an adapter are returned as is, so an
  empty `lora_params` ({}) gives back the base. An adapter with no matching kernel is an error.
  """
  adapters = _adapters_by_path(lora_params)
  used: set[str] = set()

  def merge_leaf(path: Any, leaf: Any) -> Any:
    name = "/".join(_key_name(k) for k in path)
    if name not in adapters:
      return leaf
    used.add(name)
    a, b = (_unboxed(x) for x in adapters[name])
    w = _unboxed(leaf)
    if a.shape[:-1] != w.shape[:-1] or b.shape[:-2] + b.shape[-1:] != w.shape[:-2] + w.shape[-1:]:
      raise ValueError(f"LoRA shapes a{a.shape} b{b.shape} do not fit kernel {name} {w.shape}; "
                       f"re-run init_lora on these params.")
    merged = (w.astype(jnp.float32) + lora_delta(a, b, cfg.scale)).astype(w.dtype)
    return leaf.replace_boxed(merged) if _is_box(leaf) else merged

  out = jax.tree_util.tree_map_with_path(merge_leaf, params, is_leaf=_is_box)
  missing = sorted(set(adapters) - used)
  if missing:
    raise ValueError(f"LoRA adapters for {missing} match no kernel in params; the model and the "
                     f"adapter tree disagree (re-run init_lora or fix LoraConfig.targets).")
  return out


def lora_param_count(lora_params: PyTree) -> int:
  """Number of trainable scalars in an adapter tree (boxed or plain)."""
  return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(meta.unbox(lora_params))))


def paths_of(tree: PyTree) -> list[str]:
  """'/'-joined leaf paths of a param tree (boxes as leaves); handy for picking target regexes."""
  return ["/".join(path) for path, _ in _leaves_with_paths(tree)]
