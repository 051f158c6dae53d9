"""Janus-Pro's VQ-16 image tokenizer (a LlamaGen-style VQGAN) in Flax linen, channels-last.

Owns the encoder, the nearest-codebook quantizer and the decoder: images [B, H, W, 3] in [-1, 1]
<-> image token ids [B, h*w]. It does not own weights (gotr1_jax/convert/janus_vq.py) nor the LM
that samples the tokens (gotr1_jax/models/janus.py).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gotr1_jax.models.llm import resolve_dtype

Array = jax.Array
CONV_AXES = ("conv_h", "conv_w", "conv_in", "conv_out")  # logical names of HWIO conv kernels
CODEBOOK_AXES = ("vq_codes", "vq_dim")
IMAGE_AXES = ("batch", None, None, None)  # [B, H, W, C]: only the batch is worth sharding
_L2_EPS = 1e-12  # torch.nn.functional.normalize's guard against zero vectors


@dataclasses.dataclass(frozen=True)
class VQConfig:
  """Architecture of the VQ tokenizer. Names follow transformers' JanusVQVAEConfig; DeepSeek's
  `ModelArgs` names are in the comments. The reference hard-codes GroupNorm(32, eps=1e-6)."""

  embed_dim: int = 8  # codebook_embed_dim: the code vector size
  num_embeddings: int = 16384  # codebook_size
  latent_channels: int = 256  # z_channels
  in_channels: int = 3
  out_channels: int = 3
  base_channels: int = 128  # ch
  channel_multiplier: tuple[int, ...] = (1, 1, 2, 2, 4)  # ch_mult; one level per entry
  num_res_blocks: int = 2  # per encoder level; the decoder uses num_res_blocks + 1
  # Levels (indices into channel_multiplier) with an attention block after each res block;
  # None = the lowest resolution only, as in the reference.
  attn_levels: Optional[tuple[int, ...]] = None
  dropout: float = 0.0  # dropout_p
  norm_groups: int = 32
  norm_eps: float = 1e-6
  # Decoding looks codes up l2-normalised (DeepSeek's codebook_l2_norm; transformers does too).
  codebook_l2_norm: bool = True
  # Encoding picks the nearest code by cosine (l2-normalised z and codes): DeepSeek's original,
  # the way the checkpoint was trained. transformers 5.x's JanusVQVAE.encode uses the raw
  # euclidean distance instead; set False to reproduce it.
  encode_l2_norm: bool = True
  num_patches: int = 24  # default token grid side for decode_tokens (384 px / 16)
  dtype: str = "float32"  # compute dtype; the quantizer always works in float32
  param_dtype: str = "float32"

  def __post_init__(self):
    # Lists (e.g. from a JSON config) become tuples so the config stays hashable for Flax.
    object.__setattr__(self, "channel_multiplier", tuple(self.channel_multiplier))
    if self.attn_levels is not None:
      object.__setattr__(self, "attn_levels", tuple(self.attn_levels))
    bad = [self.base_channels * m for m in self.channel_multiplier
           if (self.base_channels * m) % self.norm_groups]
    if bad:
      raise ValueError(f"channel counts {bad} are not divisible by norm_groups={self.norm_groups}; "
                       "change base_channels or channel_multiplier.")
    levels = self.resolved_attn_levels
    if any(not 0 <= lv < len(self.channel_multiplier) for lv in levels):
      raise ValueError(f"attn_levels {levels} must index channel_multiplier "
                       f"(0..{len(self.channel_multiplier) - 1}).")
    resolve_dtype(self.dtype)
    resolve_dtype(self.param_dtype)

  @property
  def resolved_attn_levels(self) -> tuple[int, ...]:
    if self.attn_levels is None:
      return (len(self.channel_multiplier) - 1,)
    return tuple(self.attn_levels)

  @property
  def downsample_factor(self) -> int:
    """Pixels per token side (16 for VQ-16)."""
    return 2 ** (len(self.channel_multiplier) - 1)

  def channels(self, level: int) -> int:
    return self.base_channels * self.channel_multiplier[level]

  @classmethod
  def janus(cls, **overrides) -> VQConfig:
    """Janus-Pro's VQ-16: codebook 16384 x 8, ch_mult (1,1,2,2,4), 384 px <-> 24 x 24 tokens."""
    return cls(**overrides)

  @classmethod
  def tiny(cls, **overrides) -> VQConfig:
    """Three levels (4x down), 64 codes of size 4, 32-64 channels: for tests on CPU."""
    fields = dict(embed_dim=4, num_embeddings=64, latent_channels=32, base_channels=32,
                  channel_multiplier=(1, 1, 2), num_res_blocks=1, num_patches=4)
    return cls(**{**fields, **overrides})


def _conv(cfg: VQConfig, features: int, kernel: int, name: Optional[str], strides: int = 1,
          padding=None) -> nn.Conv:
  pad = kernel // 2
  return nn.Conv(features, (kernel, kernel), strides=strides,
                 padding=padding if padding is not None else ((pad, pad), (pad, pad)),
                 dtype=resolve_dtype(cfg.dtype), param_dtype=resolve_dtype(cfg.param_dtype),
                 kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), CONV_AXES),
                 bias_init=nn.with_logical_partitioning(nn.initializers.zeros, CONV_AXES[-1:]),
                 name=name)


def _norm(cfg: VQConfig, name: str) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=cfg.norm_groups, epsilon=cfg.norm_eps, use_fast_variance=False,
                      dtype=resolve_dtype(cfg.dtype), param_dtype=resolve_dtype(cfg.param_dtype),
                      scale_init=nn.with_logical_partitioning(nn.initializers.ones, CONV_AXES[-1:]),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, CONV_AXES[-1:]),
                      name=name)


class ResnetBlock(nn.Module):
  """norm-swish-conv twice, plus a 1x1 `nin_shortcut` when the channel count changes."""

  config: VQConfig
  out_channels: int

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    h = _conv(cfg, self.out_channels, 3, "conv1")(nn.swish(_norm(cfg, "norm1")(x)))
    h = nn.swish(_norm(cfg, "norm2")(h))
    h = nn.Dropout(cfg.dropout)(h, deterministic=deterministic)
    h = _conv(cfg, self.out_channels, 3, "conv2")(h)
    if x.shape[-1] != self.out_channels:
      x = _conv(cfg, self.out_channels, 1, "nin_shortcut")(x)
    return x + h


class AttnBlock(nn.Module):
  """Single-head self-attention over all h*w positions, 1x1-conv projections, residual."""

  config: VQConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    b, height, width, c = x.shape
    h = _norm(cfg, "norm")(x)
    q, k, v = (_conv(cfg, c, 1, n)(h).reshape(b, height * width, 1, c) for n in ("q", "k", "v"))
    out = jax.nn.dot_product_attention(q, k, v)  # [B, h*w, 1 head, C], scale 1/sqrt(C)
    return x + _conv(cfg, c, 1, "proj_out")(out.reshape(b, height, width, c))


class Downsample(nn.Module):
  """Stride-2 3x3 conv with the reference's asymmetric (0, 1) zero padding."""

  config: VQConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    return _conv(self.config, x.shape[-1], 3, "conv", strides=2, padding=((0, 1), (0, 1)))(x)


class Upsample(nn.Module):
  """Nearest-neighbour 2x upsampling, then a 3x3 conv."""

  config: VQConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
    return _conv(self.config, x.shape[-1], 3, "conv")(x)


class Level(nn.Module):
  """One resolution level: `num_blocks` res blocks (each followed by attention on attn levels),
  then an optional down- or upsampling. Serves both the encoder and the decoder."""

  config: VQConfig
  level: int  # index into channel_multiplier
  num_blocks: int
  resample: Optional[str] = None  # 'down', 'up' or None

  @nn.compact
  def __call__(self, h: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    for j in range(self.num_blocks):
      h = ResnetBlock(cfg, cfg.channels(self.level), name=f"block_{j}")(h, deterministic)
      if self.level in cfg.resolved_attn_levels:
        h = AttnBlock(cfg, name=f"attn_{j}")(h)
    if self.resample == "down":
      h = Downsample(cfg, name="downsample")(h)
    elif self.resample == "up":
      h = Upsample(cfg, name="upsample")(h)
    return h


class MidBlock(nn.Module):
  config: VQConfig

  @nn.compact
  def __call__(self, h: Array, deterministic: bool = True) -> Array:
    c = h.shape[-1]
    h = ResnetBlock(self.config, c, name="block_1")(h, deterministic)
    h = AttnBlock(self.config, name="attn_1")(h)
    return ResnetBlock(self.config, c, name="block_2")(h, deterministic)


class Encoder(nn.Module):
  """images [B, H, W, in] -> latents [B, H/f, W/f, latent_channels], f = downsample_factor."""

  config: VQConfig

  @nn.compact
  def __call__(self, x: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    n = len(cfg.channel_multiplier)
    h = _conv(cfg, cfg.base_channels, 3, "conv_in")(x)
    for level in range(n):
      h = Level(cfg, level, cfg.num_res_blocks, "down" if level < n - 1 else None,
                name=f"down_{level}")(h, deterministic)
    h = MidBlock(cfg, name="mid")(h, deterministic)
    h = nn.swish(_norm(cfg, "norm_out")(h))
    return _conv(cfg, cfg.latent_channels, 3, "conv_out")(h)


class Decoder(nn.Module):
  """latents [B, h, w, latent_channels] -> images [B, h*f, w*f, out_channels]."""

  config: VQConfig

  @nn.compact
  def __call__(self, z: Array, deterministic: bool = True) -> Array:
    cfg = self.config
    n = len(cfg.channel_multiplier)
    h = _conv(cfg, cfg.channels(n - 1), 3, "conv_in")(z)
    h = MidBlock(cfg, name="mid")(h, deterministic)
    for i, level in enumerate(reversed(range(n))):  # up_0 is the lowest resolution
      h = Level(cfg, level, cfg.num_res_blocks + 1, "up" if level > 0 else None,
                name=f"up_{i}")(h, deterministic)
    h = nn.swish(_norm(cfg, "norm_out")(h))
    return _conv(cfg, cfg.out_channels, 3, "conv_out")(h)


def _l2_normalize(x: Array) -> Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _L2_EPS)


class Quantizer(nn.Module):
  """The codebook [num_embeddings, embed_dim]: nearest-code search and code lookup, in float32
  at full matmul precision so token ids do not depend on the backend's default precision."""

  config: VQConfig

  def setup(self):
    cfg = self.config
    init = nn.with_logical_partitioning(nn.initializers.normal(1.0), CODEBOOK_AXES)
    self.embedding = self.param("embedding", init, (cfg.num_embeddings, cfg.embed_dim),
                                resolve_dtype(cfg.param_dtype))

  def codes(self, normalize: bool) -> Array:
    codes = self.embedding.astype(jnp.float32)
    return _l2_normalize(codes) if normalize else codes

  def nearest(self, z: Array) -> Array:
    """z [..., embed_dim] -> ids [...] (int32) of the nearest code; ties go to the lowest id."""
    normalize = self.config.encode_l2_norm
    flat = z.reshape(-1, z.shape[-1]).astype(jnp.float32)
    flat = _l2_normalize(flat) if normalize else flat
    codes = self.codes(normalize)
    # |z - e|^2 = |z|^2 + |e|^2 - 2 z.e, the reference's expansion.  [N, num_embeddings]
    dist = (jnp.sum(flat ** 2, axis=1, keepdims=True) + jnp.sum(codes ** 2, axis=1)
            - 2 * jnp.matmul(flat, codes.T, precision=jax.lax.Precision.HIGHEST))
    return jnp.argmin(dist, axis=1).astype(jnp.int32).reshape(z.shape[:-1])

  def lookup(self, ids: Array) -> Array:
    """ids [...] -> code vectors [..., embed_dim] (float32)."""
    return jnp.take(self.codes(self.config.codebook_l2_norm), ids, axis=0)


class VQModel(nn.Module):
  """The tokenizer. Call `apply(..., method=VQModel.encode / decode_tokens / ...)`; `__call__`
  is the round trip decode_tokens(encode(images)) and creates every param on init."""

  config: VQConfig

  def setup(self):
    cfg = self.config
    self.encoder = Encoder(cfg)
    self.quant_conv = _conv(cfg, cfg.embed_dim, 1, None)  # named by the attribute
    self.quantize = Quantizer(cfg)
    self.post_quant_conv = _conv(cfg, cfg.latent_channels, 1, None)
    self.decoder = Decoder(cfg)

  def __call__(self, images: Array, deterministic: bool = True) -> Array:
    f = self.config.downsample_factor
    grid = (images.shape[1] // f, images.shape[2] // f)
    return self.decode_tokens(self.encode(images, deterministic), grid, deterministic)

  def encode_latents(self, images: Array, deterministic: bool = True) -> Array:
    """images [B, H, W, in_channels] in [-1, 1] -> pre-quantisation codes [B, h, w, embed_dim]."""
    cfg = self.config
    f = cfg.downsample_factor
    shape = images.shape
    if len(shape) != 4 or shape[-1] != cfg.in_channels or shape[1] % f or shape[2] % f:
      raise ValueError(f"images must be [batch, H, W, {cfg.in_channels}] with H and W multiples of "
                       f"{f} (channels-last, values in [-1, 1]); got shape {images.shape}.")
    x = nn.with_logical_constraint(images.astype(resolve_dtype(cfg.dtype)), IMAGE_AXES)
    return self.quant_conv(self.encoder(x, deterministic))

  def encode(self, images: Array, deterministic: bool = True) -> Array:
    """images [B, H, W, in_channels] in [-1, 1] -> token ids [B, h*w] (row-major grid)."""
    ids = self.quantize.nearest(self.encode_latents(images, deterministic))
    return nn.with_logical_constraint(ids.reshape(ids.shape[0], -1), ("batch", None))

  def decode_latents(self, codes: Array, deterministic: bool = True) -> Array:
    """codes [B, h, w, embed_dim] -> images [B, h*f, w*f, out_channels] (float32, about [-1, 1])."""
    z = self.post_quant_conv(codes.astype(resolve_dtype(self.config.dtype)))
    images = self.decoder(z, deterministic).astype(jnp.float32)
    return nn.with_logical_constraint(images, IMAGE_AXES)

  def decode_tokens(self, ids: Array, grid: Optional[tuple[int, int]] = None,
                    deterministic: bool = True) -> Array:
    """token ids [B, h*w] -> images [B, h*f, w*f, out_channels]; grid (h, w) defaults to
    (num_patches, num_patches)."""
    h, w = grid or (self.config.num_patches,) * 2
    if ids.ndim != 2 or ids.shape[1] != h * w:
      raise ValueError(f"image token ids must be [batch, {h * w}] for a {h}x{w} grid; got shape "
                       f"{ids.shape}. Pass grid=(h, w) matching the tokens.")
    codes = self.quantize.lookup(ids).reshape(ids.shape[0], h, w, -1)
    return self.decode_latents(codes, deterministic)


def to_uint8(images: Array) -> Array:
  """[-1, 1] floats -> uint8 pixels, clipped and truncated like Janus' generation script."""
  return jnp.clip((images.astype(jnp.float32) + 1) / 2 * 255, 0, 255).astype(jnp.uint8)


def from_uint8(pixels: Array) -> Array:
  """uint8 pixels -> [-1, 1] floats (Janus' image processor: rescale 1/255, mean 0.5, std 0.5)."""
  return pixels.astype(jnp.float32) / 127.5 - 1.0
