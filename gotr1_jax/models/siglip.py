"""SigLIP ViT (Janus' understanding encoder, SigLIP-L/16 at 384 px) in Flax linen.

Owns the tower's config and modules: conv patch embedding, learned positions, pre-LayerNorm blocks
(biased multi-head attention, exact-GELU MLP) scanned over depth, and the final LayerNorm. It does
not own pixel preprocessing, the aligner into the LM (models/janus.py) or weights (convert/janus.py).

Which features Janus uses: DeepSeek builds the tower with `select_layer=-1`, i.e. every block runs
and the output is the last block's after the final norm (`forward_features`; the attention-pool
head is built but never run), exactly transformers' `JanusVisionModel.last_hidden_state`. A
DeepSeek `select_layer=s <= 0` means a tower of `layers + s + 1` blocks, still followed by the final
norm: `SigLIPConfig.num_layers` is that built depth (`depth_for_select_layer`).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax

from gotr1_jax.models.llm import resolve_dtype

Array = jax.Array

gelu = functools.partial(nn.gelu, approximate=False)  # torch nn.GELU() / ACT2FN["gelu"]


@dataclasses.dataclass(frozen=True)
class SigLIPConfig:
  """Architecture of the tower. Defaults are SigLIP-L/16 at 384 px (Janus-Pro 1B and 7B)."""

  hidden_size: int = 1024
  num_layers: int = 24  # blocks actually run (see depth_for_select_layer)
  num_heads: int = 16
  mlp_dim: int = 4096  # hidden_size * mlp_ratio
  image_size: int = 384
  patch_size: int = 16
  num_channels: int = 3
  layer_norm_eps: float = 1e-6
  dtype: str = "float32"
  param_dtype: str = "float32"
  remat: bool = False

  def __post_init__(self):
    if self.hidden_size % self.num_heads:
      raise ValueError(f"hidden_size={self.hidden_size} must be a multiple of num_heads={self.num_heads}.")
    if self.image_size % self.patch_size:
      raise ValueError(f"image_size={self.image_size} must be a multiple of patch_size={self.patch_size}.")
    resolve_dtype(self.dtype)
    resolve_dtype(self.param_dtype)

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_heads

  @property
  def grid(self) -> int:
    return self.image_size // self.patch_size

  @property
  def num_patches(self) -> int:
    return self.grid ** 2

  @classmethod
  def large_patch16_384(cls, **overrides: Any) -> "SigLIPConfig":
    return cls(**overrides)

  @classmethod
  def tiny(cls, **overrides: Any) -> "SigLIPConfig":
    kw = dict(hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, image_size=32, patch_size=8)
    kw.update(overrides)
    return cls(**kw)


def depth_for_select_layer(layers: int, select_layer: int) -> int:
  """Blocks DeepSeek's `create_siglip_vit` builds for a `select_layer` (-1 = all of `layers`)."""
  depth = min(layers, layers + select_layer + 1) if select_layer <= 0 else min(layers, select_layer)
  if depth < 1:
    raise ValueError(f"select_layer={select_layer} leaves no block of a {layers}-layer tower; use -1.")
  return depth


def _dense(features: int, axes: tuple[str, str], name: str, cfg: SigLIPConfig) -> nn.Dense:
  return nn.Dense(
      features, name=name, dtype=resolve_dtype(cfg.dtype), param_dtype=resolve_dtype(cfg.param_dtype),
      kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[1],)))


def _layer_norm(name: str, cfg: SigLIPConfig) -> nn.LayerNorm:
  return nn.LayerNorm(
      epsilon=cfg.layer_norm_eps, name=name, dtype=resolve_dtype(cfg.dtype),
      param_dtype=resolve_dtype(cfg.param_dtype), use_fast_variance=False,
      scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)))


class SigLIPAttention(nn.Module):
  """Bidirectional multi-head attention with biased projections. They are named query/key/value/out
  (not *_proj) so that LoRA target patterns written for the LM's attention do not reach the tower."""

  config: SigLIPConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    b, n, _ = x.shape
    shape = (b, n, cfg.num_heads, cfg.head_dim)
    axes = ("batch", "length", "heads", "head_dim")
    q, k, v = (nn.with_logical_constraint(
        _dense(cfg.hidden_size, ("embed", "heads"), name, cfg)(x).reshape(shape), axes)
               for name in ("query", "key", "value"))
    out = jax.nn.dot_product_attention(q, k, v).reshape(b, n, cfg.hidden_size)
    return _dense(cfg.hidden_size, ("heads", "embed"), "out", cfg)(out)


class SigLIPMLP(nn.Module):
  config: SigLIPConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    h = gelu(_dense(cfg.mlp_dim, ("embed", "mlp"), "fc1", cfg)(x))
    h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
    return _dense(cfg.hidden_size, ("mlp", "embed"), "fc2", cfg)(h)


class SigLIPBlock(nn.Module):
  """Pre-LayerNorm block; scan-shaped: (x, None) -> (x, None)."""

  config: SigLIPConfig

  @nn.compact
  def __call__(self, x: Array, _: None = None) -> tuple[Array, None]:
    cfg = self.config
    x = x + SigLIPAttention(cfg, name="attn")(_layer_norm("norm1", cfg)(x))
    x = x + SigLIPMLP(cfg, name="mlp")(_layer_norm("norm2", cfg)(x))
    return nn.with_logical_constraint(x, ("batch", "length", "embed")), None


class SigLIPVisionTower(nn.Module):
  """pixels [B, H, W, C] (NHWC, already normalised) -> patch features [B, grid*grid, hidden]."""

  config: SigLIPConfig

  @nn.compact
  def __call__(self, pixels: Array) -> Array:
    cfg = self.config
    expected = (cfg.image_size, cfg.image_size, cfg.num_channels)
    if tuple(pixels.shape[1:]) != expected:
      raise ValueError(f"pixels have shape {tuple(pixels.shape)} but the vision config expects "
                       f"[batch, {cfg.image_size}, {cfg.image_size}, {cfg.num_channels}] (NHWC): resize "
                       "the image to vision.image_size (a channels-first array needs a transpose).")
    dtype = resolve_dtype(cfg.dtype)
    p = cfg.patch_size
    x = nn.Conv(
        cfg.hidden_size, (p, p), strides=(p, p), padding="VALID", name="patch_embed", dtype=dtype,
        param_dtype=resolve_dtype(cfg.param_dtype),
        kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, None, None, "embed")),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))(pixels.astype(dtype))
    x = x.reshape(x.shape[0], cfg.num_patches, cfg.hidden_size)  # row-major over the patch grid
    pos = self.param("pos_embed", nn.with_logical_partitioning(nn.initializers.normal(0.02), (None, "embed")),
                     (cfg.num_patches, cfg.hidden_size), resolve_dtype(cfg.param_dtype))
    x = nn.with_logical_constraint(x + pos.astype(dtype)[None], ("batch", "length", "embed"))
    block = nn.remat(SigLIPBlock, prevent_cse=False) if cfg.remat else SigLIPBlock
    blocks = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True},
                     length=cfg.num_layers, metadata_params={nn.PARTITION_NAME: "layers"})(cfg, name="layers")
    x, _ = blocks(x, None)
    return _layer_norm("post_norm", cfg)(x)
