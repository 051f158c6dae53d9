"""Qwen2.5-VL vision tower in Flax linen: patch embed, windowed-attention ViT, 2x2 patch merger.

Owns the tower's config and modules. It does not own pixel preprocessing or the per-patch metadata
(rotary positions, image/window segment ids, bucket padding: qwen_image_processing.py), M-RoPE ids
for the LM (qwen_positions.py), the LM itself (llm.py) or weights (convert/qwen_vision_rules.py).

How windows are done here. transformers reorders patches so that each attention window is
contiguous (`window_index`), attends over `cu_window_seqlens` / `cu_seqlens` segments, runs the
merger and undoes the order (`argsort(window_index)`). Attention limited by a segment mask is
permutation-equivariant, every other op is per patch or per 2x2 merge group (the reorder moves
whole groups), so we keep the processor's patch order and give each patch two segment ids instead:
`image_ids` (one per image frame: the full-attention layers, transformers' `cu_seqlens`) and
`window_ids` (one per window: the other layers, `cu_window_seqlens`). The mask of a layer is
`segment[q] == segment[k]`: block-diagonal over images and windows with static shapes and no loop
over images. Outputs equal transformers' up to float summation order. Padding patches carry id -1
in both, so they attend only to each other, real patches never see them, and their merged outputs
are zeroed: a padded bucket gives the same real outputs as the unpadded batch.

Depth is one `nn.scan` (params get a leading `layers` axis). Full-attention and window layers
differ only in the mask, so the scan takes the static per-layer pattern (`fullatt_block_indexes`)
as a scanned boolean input and each layer selects `image_ids` or `window_ids` from it.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gotr1_jax.models.llm import RMSNorm, apply_rope, attention, resolve_dtype

Array = jax.Array

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "silu": nn.silu,
    "gelu": functools.partial(nn.gelu, approximate=False),
    "gelu_pytorch_tanh": functools.partial(nn.gelu, approximate=True),
    "quick_gelu": lambda x: x * nn.sigmoid(1.702 * x),
}


@dataclasses.dataclass(frozen=True)
class QwenVisionConfig:
  """Architecture of the vision tower. Names follow transformers' `Qwen2_5_VLVisionConfig`.

  Defaults are Qwen2.5-VL-3B's tower (the GoT policy); the 7B judge differs in out_hidden_size.
  """

  depth: int = 32
  hidden_size: int = 1280
  intermediate_size: int = 3420
  num_heads: int = 16
  in_channels: int = 3
  patch_size: int = 14
  temporal_patch_size: int = 2
  spatial_merge_size: int = 2
  window_size: int = 112  # window side in pixels (8 merged tokens = 16 patches by default)
  fullatt_block_indexes: tuple[int, ...] = (7, 15, 23, 31)
  out_hidden_size: int = 2048  # the LM's hidden size (3B: 2048, 7B: 3584)
  hidden_act: str = "silu"
  rms_norm_eps: float = 1e-6  # transformers hard-codes 1e-6 for every norm of the tower
  rope_theta: float = 10000.0
  dtype: str = "float32"  # compute dtype; params stay in param_dtype
  param_dtype: str = "float32"
  remat: bool = False  # rematerialise each block in the backward pass
  # Not in Qwen2.5-VL (0 = none, its architecture): learned row and column embeddings, tables of this
  # many entries, added to the patch embeddings. Rotary angles put a patch's place into attention
  # scores only, never into the values a later token reads, so a tower trained from scratch must
  # build place features itself before a question can read "where"; these hand them to it (measured
  # on ShapesWorld's judge: docs/shapes_findings.md, "What the caption judge sees"). Rows or columns beyond the table
  # share its last entry.
  abs_position_grid: int = 0

  def __post_init__(self):
    object.__setattr__(self, "fullatt_block_indexes", tuple(int(i) for i in self.fullatt_block_indexes))
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} must be a multiple of num_heads={self.num_heads}.")
    if self.head_dim % 4:
      raise ValueError(f"head_dim={self.head_dim} must be a multiple of 4 (2-D rotary over h and w).")
    if any(not 0 <= i < self.depth for i in self.fullatt_block_indexes):
      raise ValueError(f"fullatt_block_indexes {self.fullatt_block_indexes} must lie in [0, depth={self.depth}).")
    if self.window_merged < 1:
      raise ValueError(f"window_size={self.window_size} must be at least patch_size * spatial_merge_size "
                       f"= {self.patch_size * self.spatial_merge_size} pixels.")
    if self.abs_position_grid < 0:
      raise ValueError(f"abs_position_grid={self.abs_position_grid} must be 0 (none, as Qwen2.5-VL) or the "
                       "number of patch rows/columns to embed.")
    if self.hidden_act not in _ACTIVATIONS:
      raise ValueError(f"hidden_act {self.hidden_act!r} is not one of {sorted(_ACTIVATIONS)}.")
    resolve_dtype(self.dtype)
    resolve_dtype(self.param_dtype)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def merge_unit(self) -> int:
    """Patches per merged (LM) token."""
    return self.spatial_merge_size ** 2

  @property
  def patch_dim(self) -> int:
    """Length of one flattened patch as the image processor emits it: C * T * P * P."""
    return self.in_channels * self.temporal_patch_size * self.patch_size * self.patch_size

  @property
  def window_merged(self) -> int:
    """Window side in merged tokens (transformers' `vit_merger_window_size`)."""
    return self.window_size // self.spatial_merge_size // self.patch_size

  @property
  def full_attention_pattern(self) -> tuple[bool, ...]:
    """Per layer: True for full (per-image) attention, False for window attention."""
    return tuple(i in self.fullatt_block_indexes for i in range(self.depth))

  @classmethod
  def from_hf(cls, hf: Any, **overrides: Any) -> "QwenVisionConfig":
    """From a transformers `Qwen2_5_VLVisionConfig` (or any object with the same attributes)."""
    def as_int(name: str) -> int:
      value = getattr(hf, name)
      if isinstance(value, (list, tuple)):
        if len(set(value)) != 1:
          raise ValueError(f"{name}={value}: only square patches are supported.")
        value = value[0]
      return int(value)

    rope = getattr(hf, "rope_parameters", None) or {}
    fields = dict(
        depth=hf.depth, hidden_size=hf.hidden_size, intermediate_size=hf.intermediate_size,
        num_heads=hf.num_heads, in_channels=hf.in_channels, patch_size=as_int("patch_size"),
        temporal_patch_size=as_int("temporal_patch_size"), spatial_merge_size=hf.spatial_merge_size,
        window_size=hf.window_size, fullatt_block_indexes=tuple(hf.fullatt_block_indexes),
        out_hidden_size=hf.out_hidden_size, hidden_act=hf.hidden_act,
        rope_theta=float(rope.get("rope_theta", cls.rope_theta)))
    fields.update(overrides)
    return cls(**fields)

  @classmethod
  def tiny(cls, **overrides: Any) -> "QwenVisionConfig":
    """A few-thousand-parameter tower for tests: 4 layers (1 and 3 full), windows of 2x2 tokens."""
    fields = dict(depth=4, hidden_size=32, intermediate_size=48, num_heads=2, patch_size=4,
                  window_size=16, fullatt_block_indexes=(1, 3), out_hidden_size=24)
    fields.update(overrides)
    return cls(**fields)


def vision_rope_angles(positions: Array, head_dim: int, theta: float) -> tuple[Array, Array]:
  """2-D rotary tables. positions: [B, N, 2] (row, column) -> cos, sin [B, N, head_dim] (fp32).

  Half of the rotated pairs take the row, half the column, with head_dim/4 shared frequencies
  (transformers' `Qwen2_5_VLVisionRotaryEmbedding`): emb = [f_h, f_w, f_h, f_w].
  """
  spatial = head_dim // 2
  inv_freq = 1.0 / (theta ** (jnp.arange(0, spatial, 2, dtype=jnp.float32) / spatial))
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, N, 2, head_dim/4]
  freqs = freqs.reshape(freqs.shape[:-2] + (-1,))  # [B, N, head_dim/2]
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


class _Linear(nn.Module):
  """x contracted over its trailing `num_in` axes with a kernel [in..., out...] named in_axes + out_axes.

  nn.DenseGeneral would store the same kernel, but it initialises a flat 2-D kernel and reshapes
  it through the logical names of the full shape, which fails inside a mesh context (a frozen judge
  run by the trainer); this keeps the kernel in its full shape from the start."""

  features: tuple[int, ...]
  in_axes: tuple
  out_axes: tuple
  num_in: int
  use_bias: bool
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    in_shape = x.shape[x.ndim - self.num_in:]
    init = nn.with_logical_partitioning(nn.initializers.normal(0.02), self.in_axes + self.out_axes)
    kernel = self.param("kernel", init, in_shape + self.features, self.param_dtype)
    dims = tuple(range(x.ndim - self.num_in, x.ndim))
    y = jax.lax.dot_general(x.astype(self.dtype), kernel.astype(self.dtype),
                            ((dims, tuple(range(self.num_in))), ((), ())))
    if self.use_bias:
      bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, self.out_axes), self.features,
                        self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


def _linear(features: Any, in_axes: tuple, out_axes: tuple, name: str, cfg: QwenVisionConfig,
            axis: Any = -1, bias: bool = True) -> _Linear:
  """A linear layer whose kernel [in..., out...] carries logical names in_axes + out_axes; `axis`
  names the trailing input axes it contracts (-1 or (-2, -1))."""
  num_in = len(axis) if isinstance(axis, (tuple, list)) else 1
  return _Linear(tuple(features) if isinstance(features, (tuple, list)) else (features,), tuple(in_axes),
                 tuple(out_axes), num_in, bias, resolve_dtype(cfg.dtype), resolve_dtype(cfg.param_dtype), name=name)


def _norm(cfg: QwenVisionConfig, name: str) -> RMSNorm:
  return RMSNorm(cfg.rms_norm_eps, resolve_dtype(cfg.dtype), resolve_dtype(cfg.param_dtype), name=name)


class VisionAttention(nn.Module):
  """Fused-qkv multi-head attention with 2-D rotary, restricted by a boolean [B, N, N] mask."""

  config: QwenVisionConfig

  @nn.compact
  def __call__(self, x: Array, cos: Array, sin: Array, mask: Array) -> Array:
    cfg = self.config
    qkv = _linear((3, cfg.num_heads, cfg.head_dim), ("embed",), (None, "heads", "head_dim"), "qkv",
                  cfg)(x)  # [B, N, 3, heads, head_dim]
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    act_axes = ("batch", "length", "heads", "head_dim")
    q = nn.with_logical_constraint(apply_rope(q, cos, sin), act_axes)
    k = nn.with_logical_constraint(apply_rope(k, cos, sin), act_axes)
    v = nn.with_logical_constraint(v, act_axes)
    out = attention(q, k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3), mask)  # [B, N, heads, head_dim]
    return _linear(cfg.hidden_size, ("heads", "head_dim"), ("embed",), "proj", cfg, axis=(-2, -1))(out)


class VisionMLP(nn.Module):
  """Gated MLP with biases: down(act(gate(x)) * up(x))."""

  config: QwenVisionConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    gate = _linear(cfg.intermediate_size, ("embed",), ("mlp",), "gate_proj", cfg)(x)
    up = _linear(cfg.intermediate_size, ("embed",), ("mlp",), "up_proj", cfg)(x)
    h = nn.with_logical_constraint(_ACTIVATIONS[cfg.hidden_act](gate) * up, ("batch", "length", "mlp"))
    return _linear(cfg.hidden_size, ("mlp",), ("embed",), "down_proj", cfg)(h)


class VisionBlock(nn.Module):
  """Pre-norm ViT block; scan-shaped: (x, is_full) -> (x, None)."""

  config: QwenVisionConfig

  @nn.compact
  def __call__(self, x: Array, is_full: Array, cos: Array, sin: Array, image_ids: Array,
               window_ids: Array) -> tuple[Array, None]:
    cfg = self.config
    segment = jnp.where(is_full, image_ids, window_ids)  # [B, N]
    mask = segment[:, :, None] == segment[:, None, :]  # [B, N, N]
    x = x + VisionAttention(cfg, name="attn")(_norm(cfg, "norm1")(x), cos, sin, mask)
    x = x + VisionMLP(cfg, name="mlp")(_norm(cfg, "norm2")(x))
    return nn.with_logical_constraint(x, ("batch", "length", "embed")), None


class PatchMerger(nn.Module):
  """RMSNorm, then each group of merge_unit consecutive patches -> one LM token via a GELU MLP."""

  config: QwenVisionConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    b, n, e = x.shape
    x = _norm(cfg, "ln_q")(x).reshape(b, n // cfg.merge_unit, cfg.merge_unit * e)
    x = _linear(cfg.merge_unit * e, ("embed",), ("mlp",), "mlp_0", cfg)(x)
    x = nn.with_logical_constraint(nn.gelu(x, approximate=False), ("batch", "length", "mlp"))
    x = _linear(cfg.out_hidden_size, ("mlp",), ("embed",), "mlp_2", cfg)(x)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class QwenVisionTower(nn.Module):
  """Patches -> merged image tokens for the LM (transformers' `Qwen2_5_VisionTransformerPretrainedModel`
  `pooler_output`, in processor order).

  Inputs come from `qwen_image_processing.pack_vision_batch` (rows = examples, each row padded to
  the same bucket of N patches, N a multiple of merge_unit):
    patches    [B, N, patch_dim] float
    positions  [B, N, 2] int, (row, column) of each patch in its image
    image_ids  [B, N] int, segment of the full-attention layers; -1 marks padding
    window_ids [B, N] int, segment of the window-attention layers; -1 marks padding
  Returns [B, N / merge_unit, out_hidden_size]; rows of padding groups are zero.
  """

  config: QwenVisionConfig

  @nn.compact
  def __call__(self, patches: Array, positions: Array, image_ids: Array, window_ids: Array) -> Array:
    cfg = self.config
    b, n, d = patches.shape
    if d != cfg.patch_dim:
      raise ValueError(f"patches have {d} values each but the config expects patch_dim={cfg.patch_dim} "
                       "(in_channels * temporal_patch_size * patch_size**2): match the image processor "
                       "to the vision config.")
    if n % cfg.merge_unit:
      raise ValueError(f"{n} patches per row is not a multiple of merge_unit={cfg.merge_unit}: pick "
                       "patch buckets that are multiples of spatial_merge_size**2.")
    dtype = resolve_dtype(cfg.dtype)
    # Conv3d with kernel == stride over a flattened (C, T, P, P) patch is one matmul.
    x = _linear(cfg.hidden_size, (None,), ("embed",), "patch_embed", cfg, bias=False)(patches.astype(dtype))
    if cfg.abs_position_grid:
      table = self.param("abs_position_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                                              (None, None, "embed")),
                         (2, cfg.abs_position_grid, cfg.hidden_size), resolve_dtype(cfg.param_dtype))
      place = jnp.clip(positions, 0, cfg.abs_position_grid - 1)
      x = x + (table[0][place[..., 0]] + table[1][place[..., 1]]).astype(dtype)
    x = nn.with_logical_constraint(x, ("batch", "length", "embed"))
    cos, sin = vision_rope_angles(positions, cfg.head_dim, cfg.rope_theta)
    block = nn.remat(VisionBlock, prevent_cse=False) if cfg.remat else VisionBlock
    blocks = nn.scan(
        block, variable_axes={"params": 0}, split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
        length=cfg.depth, metadata_params={nn.PARTITION_NAME: "layers"})(cfg, name="blocks")
    is_full = jnp.asarray(cfg.full_attention_pattern)  # [depth] bool, static
    x, _ = blocks(x, is_full, cos, sin, image_ids, window_ids)
    merged = PatchMerger(cfg, name="merger")(x)
    valid = image_ids.reshape(b, n // cfg.merge_unit, cfg.merge_unit)[..., 0] >= 0
    return jnp.where(valid[..., None], merged, 0).astype(dtype)
