"""Family-independent weight conversion: a pure table of rules between torch keys and Flax paths.

Owns the Rule/Transform types, applying a table in both directions (stacking per-layer tensors
into scan-stacked arrays and back), structure checks, and safetensors I/O (never pickle). It holds
no family's rules: those live in one file per family (e.g. convert/janus_vq.py).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

Array = np.ndarray
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")
INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9  # transformers' save_pretrained default ("5GB")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
PICKLE_FIX = ("convert it to safetensors once, in an environment you trust, e.g.\n  python -c \"import "
              "torch, safetensors.torch as st; st.save_file(torch.load('IN.bin', weights_only=True), "
              "'OUT.safetensors', metadata={'format': 'pt'})\"\n(one file per shard, then point this "
              "loader at the .safetensors files). This project never unpickles checkpoints.")


# ----------------------------------------------------------------------------- transforms
@dataclasses.dataclass(frozen=True)
class Transform:
  """A pair of exact inverses applied to one (per-layer) tensor: torch layout <-> Flax layout."""

  name: str
  to_flax: Callable[[Array], Array]
  to_torch: Callable[[Array], Array]

  def then(self, other: Transform) -> Transform:
    """`self` first, then `other` (towards Flax); the inverse runs in the reverse order."""
    return Transform(f"{self.name}+{other.name}", lambda x: other.to_flax(self.to_flax(x)),
                     lambda x: self.to_torch(other.to_torch(x)))


def transpose(axes: Sequence[int]) -> Transform:
  """Permute axes towards Flax with `axes`; the inverse permutation towards torch."""
  axes = tuple(axes)
  inverse = tuple(int(i) for i in np.argsort(axes))
  return Transform(f"transpose{axes}", lambda x: np.ascontiguousarray(np.transpose(x, axes)),
                   lambda x: np.ascontiguousarray(np.transpose(x, inverse)))


def reshape(torch_shape: Sequence[int], flax_shape: Sequence[int]) -> Transform:
  """Reshape between two explicit shapes (e.g. [E, H*D] <-> [E, H, D])."""
  ts, fs = tuple(torch_shape), tuple(flax_shape)
  if int(np.prod(ts)) != int(np.prod(fs)):
    raise ValueError(f"reshape({ts}, {fs}): the shapes hold different numbers of elements.")

  def check(x: Array, shape: tuple[int, ...]) -> Array:
    if x.shape != shape:
      raise ValueError(f"reshape rule expects a tensor of shape {shape}, got {x.shape}; the table was "
                       "built for another model size.")
    return x

  return Transform(f"reshape{ts}->{fs}", lambda x: check(np.asarray(x), ts).reshape(fs),
                   lambda x: check(np.asarray(x), fs).reshape(ts))


IDENTITY = Transform("identity", np.asarray, np.asarray)
LINEAR = transpose((1, 0))  # torch Linear [out, in] -> Flax Dense kernel [in, out]
CONV2D = transpose((2, 3, 1, 0))  # torch Conv2d OIHW -> Flax Conv HWIO


# ----------------------------------------------------------------------------- rules
def _template_regex(template: str) -> re.Pattern:
  """`a.{layer}.b` -> anchored regex with one `\\d+` group per placeholder (named after it)."""
  parts, last = [], 0
  for m in _PLACEHOLDER.finditer(template):
    parts += [re.escape(template[last:m.start()]), rf"(?P<{m[1]}>\d+)"]
    last = m.end()
  parts.append(re.escape(template[last:]))
  return re.compile("".join(parts))


@dataclasses.dataclass(frozen=True)
class Rule:
  """One table row. `torch` is a key template, `flax` a '/'-joined param path template; both
  compile to anchored regexes where `{name}` matches an integer. Placeholders in both templates
  index separate params (`down.{i}` -> `down_{i}`); placeholders only in `torch` are *stacked*:
  their tensors become leading axes of one array, in the order they appear (`layers.{layer}.x`
  -> `layers/x` of shape [L, ...], the nn.scan layout). `flax=None` drops the key on import and,
  if `fill` is given, writes `fill()` under it on export (a training-only buffer); dropped keys
  are optional. `optional=True` marks a param only some configs have (it may match nothing)."""

  torch: str
  flax: str | None
  transform: Transform = IDENTITY
  fill: Callable[[], Array] | None = None
  optional: bool = False

  def __post_init__(self):
    torch_names = _PLACEHOLDER.findall(self.torch)
    flax_names = _PLACEHOLDER.findall(self.flax or "")
    if len(set(torch_names)) != len(torch_names) or len(set(flax_names)) != len(flax_names):
      raise ValueError(f"rule {self.torch!r} -> {self.flax!r}: a placeholder appears twice.")
    if not set(flax_names) <= set(torch_names):
      raise ValueError(f"rule {self.torch!r} -> {self.flax!r}: Flax placeholders "
                       f"{sorted(set(flax_names) - set(torch_names))} are not in the torch template.")
    if self.fill is not None and (self.flax is not None or torch_names):
      raise ValueError(f"rule {self.torch!r}: `fill` is only for dropped keys without placeholders.")

  @property
  def stacked(self) -> tuple[str, ...]:
    """Placeholders stacked into leading array axes, outermost first."""
    flax_names = set(_PLACEHOLDER.findall(self.flax or ""))
    return tuple(n for n in _PLACEHOLDER.findall(self.torch) if n not in flax_names)

  @property
  def torch_regex(self) -> re.Pattern:
    return _template_regex(self.torch)

  @property
  def flax_regex(self) -> re.Pattern:
    return _template_regex(self.flax or "")


def nest(rules: Sequence[Rule], flax_prefix: str) -> tuple[Rule, ...]:
  """The same rules with Flax paths under `flax_prefix` (e.g. 'vq'), to combine one model's
  table into a bigger model's (the Janus policy holds the VQ under its own key)."""
  return tuple(r if r.flax is None else dataclasses.replace(r, flax=f"{flax_prefix}/{r.flax}")
               for r in rules)


def _match_all(keys: Iterable[str], rules: Sequence[Rule], side: str,
               problems: list[str]) -> dict[str, tuple[Rule, dict[str, str]]]:
  """key -> (its one matching rule, placeholder values); unmatched/ambiguous go to `problems`."""
  literal: dict[str, list[Rule]] = {}
  patterned: list[tuple[Rule, re.Pattern]] = []
  for rule in rules:
    template = rule.torch if side == "torch" else rule.flax
    if template is None:
      continue
    if _PLACEHOLDER.search(template):
      patterned.append((rule, rule.torch_regex if side == "torch" else rule.flax_regex))
    else:
      literal.setdefault(template, []).append(rule)
  out, unmatched = {}, []
  for key in keys:
    hits = [(r, {}) for r in literal.get(key, [])]
    hits += [(r, m.groupdict()) for r, rx in patterned if (m := rx.fullmatch(key))]
    if not hits:
      unmatched.append(key)
    elif len(hits) > 1:
      problems.append(f"{side} key {key!r} matches several rules: " +
                      ", ".join(repr(r.torch) for r, _ in hits))
    else:
      out[key] = hits[0]
  if unmatched:
    problems.append(f"{len(unmatched)} {side} keys match no rule:\n    " + "\n    ".join(unmatched))
  return out


def _raise_if(problems: list[str], direction: str, hint: str) -> None:
  if problems:
    raise ValueError(f"{direction} conversion failed:\n  - " + "\n  - ".join(problems) + f"\n{hint}")


def flatten(tree: Mapping[str, Any], sep: str = "/") -> dict[str, Any]:
  """Nested mapping -> {'a/b/c': leaf}; boxed leaves (nn.Partitioned) are unboxed."""
  out: dict[str, Any] = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update({f"{k}{sep}{kk}": vv for kk, vv in flatten(v, sep).items()})
    else:
      out[str(k)] = v.unbox() if hasattr(v, "unbox") else v
  return out


def unflatten(flat: Mapping[str, Any], sep: str = "/") -> dict[str, Any]:
  tree: dict[str, Any] = {}
  for path, value in flat.items():
    node = tree
    *parents, leaf = path.split(sep)
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


_HINT = ("Check that the checkpoint layout matches the rule table (e.g. transformers vs DeepSeek "
         "names, or the prefix), or pass `ignore=` patterns for keys that belong to another part.")


def torch_to_flax(state: Mapping[str, Any], rules: Sequence[Rule], *,
                  sizes: Mapping[str, int] | None = None, ignore: Sequence[str] = ()) -> dict:
  """A torch state dict (numpy-convertible values) -> nested Flax params (the 'params' collection).

  Every key must match exactly one rule, every non-dropped rule must match a key, and stacked
  indices must fill 0..n-1 (n from `sizes[name]`, else the largest index + 1); all violations are
  raised together in one ValueError. Keys fully matching a regex in `ignore` are skipped.
  """
  problems: list[str] = []
  ignored = [re.compile(p) for p in ignore]
  keys = [k for k in state if not any(rx.fullmatch(k) for rx in ignored)]
  matched = _match_all(keys, rules, "torch", problems)
  flat: dict[str, Array] = {}
  source: dict[str, str] = {}
  stacks: dict[str, tuple[Rule, dict[tuple[int, ...], Array]]] = {}
  used: set[int] = set()
  for key, (rule, groups) in matched.items():
    used.add(id(rule))
    if rule.flax is None:
      continue
    path = rule.flax.format(**groups)
    try:
      array = rule.transform.to_flax(np.asarray(state[key]))
    except ValueError as e:  # a shape the rule does not fit: report it with everything else
      problems.append(f"{key}: {e}")
      continue
    if rule.stacked:
      index = tuple(int(groups[n]) for n in rule.stacked)
      stacks.setdefault(path, (rule, {}))[1][index] = array
    elif path in flat:
      problems.append(f"keys {source[path]!r} and {key!r} both map to Flax path {path!r}")
    else:
      flat[path], source[path] = array, key
  for path, (rule, per_index) in stacks.items():
    counts = [max(i[a] for i in per_index) + 1 for a in range(len(rule.stacked))]
    counts = [int((sizes or {}).get(n, c)) for n, c in zip(rule.stacked, counts)]
    grid = list(itertools.product(*[range(c) for c in counts]))
    absent = [i for i in grid if i not in per_index]
    extra = sorted(set(per_index) - set(grid))
    example = next(iter(per_index.values()))
    if absent or extra:
      fmt = lambda i: _format_stacked(rule, path, i)
      problems += [f"missing expected key {fmt(i)!r}" for i in absent]
      problems += [f"key {fmt(i)!r} is beyond sizes {dict(zip(rule.stacked, counts))}" for i in extra]
    elif any(a.shape != example.shape for a in per_index.values()):
      problems.append(f"{path}: per-layer tensors differ in shape and cannot be stacked")
    else:
      flat[path] = np.stack([per_index[i] for i in grid]).reshape(*counts, *example.shape)
  problems += [f"missing expected key {r.torch!r} (-> {r.flax})" for r in rules
               if r.flax is not None and not r.optional and id(r) not in used]
  _raise_if(problems, "torch -> flax", _HINT)
  return unflatten(flat)


def _format_stacked(rule: Rule, flax_path: str, index: tuple[int, ...]) -> str:
  groups = rule.flax_regex.fullmatch(flax_path).groupdict()
  return rule.torch.format(**groups, **dict(zip(rule.stacked, map(str, index))))


def flax_to_torch(params: Mapping[str, Any], rules: Sequence[Rule]) -> dict[str, Array]:
  """Nested Flax params -> torch state dict (numpy values); the exact inverse of torch_to_flax.

  Stacked arrays are split along their leading axes back into per-layer keys. Dropped rules with
  a `fill` are written with that value. Unmatched params and rules matching no param are raised
  together in one ValueError.
  """
  problems: list[str] = []
  flat = flatten(params)
  matched = _match_all(flat, rules, "flax", problems)
  out: dict[str, Array] = {}
  used: set[int] = set()
  for path, (rule, groups) in matched.items():
    used.add(id(rule))
    array = np.asarray(flat[path])
    n = len(rule.stacked)
    if array.ndim < n:
      problems.append(f"{path}: rank {array.ndim} < {n} stacked axes {rule.stacked}")
      continue
    for index in np.ndindex(*array.shape[:n]):
      key = rule.torch.format(**groups, **dict(zip(rule.stacked, map(str, index))))
      if key in out:
        problems.append(f"torch key {key!r} is produced twice")
      try:
        out[key] = rule.transform.to_torch(array[index])
      except ValueError as e:
        problems.append(f"{path}{list(index) if index else ''}: {e}")
  for rule in rules:
    if rule.flax is None and rule.fill is not None:
      out[rule.torch] = np.asarray(rule.fill())
    elif rule.flax is not None and not rule.optional and id(rule) not in used:
      problems.append(f"missing expected Flax param {rule.flax!r} (-> {rule.torch})")
  _raise_if(problems, "flax -> torch", "Were the params built by the model this table describes?")
  return out


def check_structure(params: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
  """Raises one ValueError listing missing, unexpected and wrongly shaped params.

  `expected` is e.g. `jax.eval_shape(model.init, ...)['params']` (boxed leaves are fine).
  """
  got, want = flatten(params), flatten(expected)
  problems = [f"missing param {p!r} {tuple(want[p].shape)}" for p in want if p not in got]
  problems += [f"unexpected param {p!r}" for p in got if p not in want]
  problems += [f"param {p!r} has shape {tuple(np.shape(got[p]))}, the model wants "
               f"{tuple(want[p].shape)}" for p in got if p in want and
               tuple(np.shape(got[p])) != tuple(want[p].shape)]
  _raise_if(problems, "structure check", "The checkpoint was made for another model config.")


# ----------------------------------------------------------------------------- safetensors I/O
def _refuse_pickle(path: Path) -> None:
  if path.suffix in PICKLE_SUFFIXES:
    raise ValueError(f"{path} is a pickle checkpoint; {PICKLE_FIX}")


def _safetensors_files(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
  if not isinstance(source, (str, os.PathLike)):
    files = [Path(s) for s in source]
  elif Path(source).is_dir():
    d = Path(source)
    if (d / INDEX_NAME).exists():
      weight_map = json.loads((d / INDEX_NAME).read_text())["weight_map"]
      files = [d / f for f in dict.fromkeys(weight_map.values())]
    elif (d / SINGLE_NAME).exists():
      files = [d / SINGLE_NAME]
    else:
      files = sorted(d.glob("*.safetensors"))
      if not files:
        pickles = sorted(p.name for p in d.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
          raise ValueError(f"{d} holds only pickle checkpoints {pickles}; {PICKLE_FIX}")
        raise FileNotFoundError(f"no .safetensors files in {d}; point to a checkpoint directory.")
  else:
    files = [Path(source)]
  for f in files:
    _refuse_pickle(f)
    if f.suffix != ".safetensors":
      raise ValueError(f"{f} is not a .safetensors file; pass safetensors files or their directory.")
    if not f.exists():
      raise FileNotFoundError(f"checkpoint file {f} does not exist.")
  return files


def load_safetensors(source: str | os.PathLike | Sequence[str | os.PathLike]) -> dict[str, Array]:
  """Reads a checkpoint into {key: numpy array}: a directory (sharded via model.safetensors.index.json,
  or model.safetensors, or every *.safetensors), one file, or a list of files. bf16 stays bf16
  (ml_dtypes). Pickle formats (.bin/.pt/...) are refused with the command to convert them."""
  state: dict[str, Array] = {}
  for f in _safetensors_files(source):
    with safe_open(str(f), framework="np") as reader:
      for key in reader.keys():
        if key in state:
          raise ValueError(f"key {key!r} appears in more than one file (again in {f}); the "
                           "directory mixes checkpoints.")
        state[key] = reader.get_tensor(key)
  return state


def save_safetensors(state: Mapping[str, Any], directory: str | os.PathLike,
                     max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
  """Writes `state` like transformers' save_pretrained: one model.safetensors, or shards
  model-0000i-of-0000n.safetensors (each <= max_shard_bytes unless one tensor is larger) plus
  model.safetensors.index.json. Returns the files written."""
  if max_shard_bytes <= 0:
    raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}.")
  d = Path(directory)
  d.mkdir(parents=True, exist_ok=True)
  arrays = {k: np.ascontiguousarray(np.asarray(v)) for k, v in state.items()}
  shards: list[dict[str, Array]] = [{}]
  size = 0
  for key, array in arrays.items():
    if shards[-1] and size + array.nbytes > max_shard_bytes:
      shards.append({})
      size = 0
    shards[-1][key] = array
    size += array.nbytes
  metadata = {"format": "pt"}  # lets transformers' from_pretrained read the files
  if len(shards) == 1:
    save_file(shards[0], str(d / SINGLE_NAME), metadata=metadata)
    return [d / SINGLE_NAME]
  names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
  for name, shard in zip(names, shards):
    save_file(shard, str(d / name), metadata=metadata)
  index = {"metadata": {"total_size": int(sum(a.nbytes for a in arrays.values()))},
           "weight_map": {k: name for name, shard in zip(names, shards) for k in shard}}
  (d / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
  return [d / n for n in names] + [d / INDEX_NAME]
