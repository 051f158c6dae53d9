"""One decoder-only LM for the LLaMA family (Janus-Pro's LM) and Qwen2 (qkv bias, M-RoPE).

Owns the transformer itself: RMSNorm, rotary embeddings (1-axis RoPE and Qwen2.5-VL's 3-axis
M-RoPE), grouped-query attention over an explicit KV cache, SwiGLU, tied or untied heads. It does
not own sampling (gotr1_jax/sampling), meshes (gotr1_jax/parallel.py) or weights (gotr1_jax/convert).

Layers are one `nn.scan` so compile time does not grow with depth; every parameter and activation
carries logical axis names only. The KV cache is a plain pytree passed in and returned, so the
sampler can carry it through `lax.while_loop`. It rides through the layer scan as part of the
carry, and each layer writes its new slots into the stacked buffer in place: scanning the cache as
a per-layer input and output instead copied the whole cache twice per decoded token, which made
decoding memory-bound (tools/bench_lm.py, docs/benchmarks.md).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
KVCache = dict[str, Array]  # {'k': [layers, batch, kv_heads, max_len, head_dim], 'v': same}

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def resolve_dtype(name: str) -> Any:
  if name not in _DTYPES:
    raise ValueError(f"dtype {name!r} is not one of {sorted(_DTYPES)}; set the config's dtype field.")
  return _DTYPES[name]


@dataclasses.dataclass(frozen=True)
class LMConfig:
  """Architecture of the decoder LM. Field names follow transformers' Llama/Qwen2 configs."""

  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: Optional[int] = None  # default hidden_size // num_heads
  rope_theta: float = 10000.0
  rms_norm_eps: float = 1e-6
  qkv_bias: bool = False  # Qwen2: True
  tie_embeddings: bool = False
  # Qwen2.5-VL's M-RoPE: head_dim/2 frequencies split into (temporal, height, width) sections.
  mrope_section: Optional[tuple[int, ...]] = None
  dtype: str = "float32"  # compute dtype; params stay in param_dtype
  param_dtype: str = "float32"
  remat: bool = False  # rematerialise each layer in the backward pass

  @property
  def resolved_head_dim(self) -> int:
    return self.head_dim or self.hidden_size // self.num_heads

  def __post_init__(self):
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}.")
    if self.mrope_section is not None and 2 * sum(self.mrope_section) != self.resolved_head_dim:
      raise ValueError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {self.resolved_head_dim // 2}.")
    resolve_dtype(self.dtype)
    resolve_dtype(self.param_dtype)


def init_cache(config: LMConfig, batch: int, max_len: int, dtype: Any = None) -> KVCache:
  """A zeroed, preallocated KV cache for `max_len` slots."""
  shape = (config.num_layers, batch, config.num_kv_heads, max_len, config.resolved_head_dim)
  dtype = dtype or resolve_dtype(config.dtype)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}


def positions_from_mask(mask: Array) -> Array:
  """Position ids for a left-padded batch: 0 at each row's first real token. mask: [B, T]."""
  return jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=-1) - 1, 0)


def rope_angles(positions: Array, head_dim: int, theta: float,
                mrope_section: Optional[tuple[int, ...]] = None) -> tuple[Array, Array]:
  """cos/sin tables [B, T, head_dim] (fp32) for rotate-half RoPE.

  positions: [B, T] for 1-axis RoPE, or [3, B, T] (temporal, height, width) for M-RoPE, where
  frequency j takes its position from the axis whose section contains j (transformers'
  `recomposition_frequencies`).
  """
  inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  if mrope_section is None:
    if positions.ndim != 2:
      raise ValueError(f"RoPE positions must be [batch, length], got shape {positions.shape}.")
    freqs = positions.astype(jnp.float32)[..., None] * inv_freq  # [B, T, D/2]
  else:
    if positions.ndim == 2:  # text-only batch: the three axes coincide
      positions = jnp.broadcast_to(positions, (3,) + positions.shape)
    axis_of_freq = jnp.concatenate(
        [jnp.full((s,), i % 3, jnp.int32) for i, s in enumerate(mrope_section)])
    per_axis = positions.astype(jnp.float32)[..., None] * inv_freq  # [3, B, T, D/2]
    freqs = jnp.where(axis_of_freq == 0, per_axis[0],
                      jnp.where(axis_of_freq == 1, per_axis[1], per_axis[2]))  # [B, T, D/2]
  emb = jnp.concatenate([freqs, freqs], axis=-1)
  return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: Array, cos: Array, sin: Array) -> Array:
  """x: [B, T, heads, head_dim]; cos/sin: [B, T, head_dim]."""
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
  out = x.astype(jnp.float32) * cos[:, :, None, :] + rotated.astype(jnp.float32) * sin[:, :, None, :]
  return out.astype(x.dtype)


def attention(q: Array, k: Array, v: Array, mask: Array) -> Array:
  """The one attention entry point. q: [B,T,N,H]; k,v: [B,K,S,H] (kv heads before slots, the KV
  cache's layout); mask: [B,T,S] bool.

  Grouped-query attention with the N query heads read as K groups of N/K, so keys and values are
  never repeated per query head, and with (batch, kv head) leading in every operand, so neither
  einsum transposes the keys or values: in decoding they are the whole cache, and
  jax.nn.dot_product_attention's repeat and transposes copied it per token and layer. Logits and
  softmax in fp32; masked keys get the lowest float32 logit."""
  B, T, N, H = q.shape
  K = k.shape[1]
  qg = q.reshape(B, T, K, N // K, H)
  logits = jnp.einsum("btkgh,bksh->bkgts", qg, k, preferred_element_type=jnp.float32) * (H ** -0.5)
  logits = jnp.where(mask[:, None, None, :, :], logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bkgts,bksh->btkgh", probs, v).reshape(B, T, N, H)


class RMSNorm(nn.Module):
  eps: float
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                       (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (normed * scale.astype(jnp.float32)).astype(self.dtype)


def dense(features: int, axes: tuple[str, str], name: str, cfg: LMConfig, bias: bool = False) -> nn.Dense:
  """A 2-D [in, out] linear with logical names (LoRA targets these kernels by path)."""
  return nn.Dense(
      features, use_bias=bias, name=name, dtype=resolve_dtype(cfg.dtype),
      param_dtype=resolve_dtype(cfg.param_dtype),
      kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[1],)))


class Attention(nn.Module):
  config: LMConfig

  @nn.compact
  def __call__(self, x: Array, cos: Array, sin: Array, mask: Array,
               cache: Optional[KVCache], layer: Array, write_index: Array):
    cfg = self.config
    B, T, _ = x.shape
    N, K, H = cfg.num_heads, cfg.num_kv_heads, cfg.resolved_head_dim
    q = dense(N * H, ("embed", "heads"), "q_proj", cfg, cfg.qkv_bias)(x).reshape(B, T, N, H)
    k = dense(K * H, ("embed", "kv_heads"), "k_proj", cfg, cfg.qkv_bias)(x).reshape(B, T, K, H)
    v = dense(K * H, ("embed", "kv_heads"), "v_proj", cfg, cfg.qkv_bias)(x).reshape(B, T, K, H)
    q = nn.with_logical_constraint(apply_rope(q, cos, sin), ("batch", "length", "heads", "head_dim"))
    k = nn.with_logical_constraint(apply_rope(k, cos, sin), ("batch", "length", "kv_heads", "head_dim"))
    v = nn.with_logical_constraint(v, ("batch", "length", "kv_heads", "head_dim"))
    k, v = k.transpose(0, 2, 1, 3), v.transpose(0, 2, 1, 3)  # [B, K, T, H], the cache's layout
    if cache is not None:
      # Write this chunk at slots [write_index, write_index + T) of this layer in the stacked
      # cache, in place, and attend over the layer's whole cache.
      start = (layer, 0, 0, write_index, 0)
      cache = {"k": jax.lax.dynamic_update_slice(cache["k"], k[None].astype(cache["k"].dtype), start),
               "v": jax.lax.dynamic_update_slice(cache["v"], v[None].astype(cache["v"].dtype), start)}
      k, v = cache["k"][layer], cache["v"][layer]
    out = attention(q, k.astype(q.dtype), v.astype(q.dtype), mask).reshape(B, T, N * H)
    out = dense(cfg.hidden_size, ("heads", "embed"), "o_proj", cfg)(out)
    return out, cache


class MLP(nn.Module):
  config: LMConfig

  @nn.compact
  def __call__(self, x: Array) -> Array:
    cfg = self.config
    gate = dense(cfg.intermediate_size, ("embed", "mlp"), "gate_proj", cfg)(x)
    up = dense(cfg.intermediate_size, ("embed", "mlp"), "up_proj", cfg)(x)
    h = nn.with_logical_constraint(nn.silu(gate) * up, ("batch", "length", "mlp"))
    return dense(cfg.hidden_size, ("mlp", "embed"), "down_proj", cfg)(h)


class DecoderLayer(nn.Module):
  """Pre-norm block; the signature is scan-shaped: ((x, stacked cache), layer index) -> (carry, None)."""

  config: LMConfig

  @nn.compact
  def __call__(self, carry: tuple[Array, Optional[KVCache]], layer: Array, cos: Array, sin: Array,
               mask: Array, write_index: Array):
    cfg = self.config
    x, cache = carry
    dtype = resolve_dtype(cfg.dtype)
    h = RMSNorm(cfg.rms_norm_eps, dtype, name="input_norm")(x)
    h, cache = Attention(cfg, name="attn")(h, cos, sin, mask, cache, layer, write_index)
    x = x + h
    h = RMSNorm(cfg.rms_norm_eps, dtype, name="post_attn_norm")(x)
    x = x + MLP(cfg, name="mlp")(h)
    return (nn.with_logical_constraint(x, ("batch", "length", "embed")), cache), None


class DecoderLM(nn.Module):
  """Token embedding, scanned decoder layers, final norm and LM head.

  `__call__` runs the trunk on embeddings and returns final-normed hidden states; `embed` and
  `logits` are the two ends, separate so that a policy (Janus) can feed its own embeddings
  (image tokens) and apply its own head (`gen_head`).
  """

  config: LMConfig

  def setup(self):
    cfg = self.config
    self.embed_tokens = nn.Embed(
        cfg.vocab_size, cfg.hidden_size, dtype=resolve_dtype(cfg.dtype),
        param_dtype=resolve_dtype(cfg.param_dtype),
        embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), ("vocab", "embed")))
    layer = DecoderLayer
    if cfg.remat:
      layer = nn.remat(layer, prevent_cse=False)
    self.layers = nn.scan(
        layer, variable_axes={"params": 0}, split_rngs={"params": True},
        in_axes=(0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast),
        length=cfg.num_layers, metadata_params={nn.PARTITION_NAME: "layers"})(cfg, name="layers")
    self.final_norm = RMSNorm(cfg.rms_norm_eps, resolve_dtype(cfg.dtype))
    if not cfg.tie_embeddings:
      self.lm_head = dense(cfg.vocab_size, ("embed", "vocab"), "lm_head", cfg)

  def embed(self, tokens: Array) -> Array:
    return nn.with_logical_constraint(self.embed_tokens(tokens), ("batch", "length", "embed"))

  def logits(self, hidden: Array) -> Array:
    if self.config.tie_embeddings:
      out = self.embed_tokens.attend(hidden)
    else:
      out = self.lm_head(hidden)
    return nn.with_logical_constraint(out.astype(jnp.float32), ("batch", "length", "vocab"))

  def __call__(self, embeds: Array, positions: Array, key_mask: Array,
               cache: Optional[KVCache] = None, write_index: Array | int = 0):
    """Runs the trunk.

    embeds: [B, T, E]. positions: [B, T] (or [3, B, T] for M-RoPE). key_mask: [B, S] validity of
    every key slot (S = T without a cache, S = cache length with one; it must already mark this
    chunk's slots). With a cache, the chunk is written at slots [write_index, write_index + T) and
    query t sits at slot write_index + t; attention is causal over slots. Returns
    (hidden [B, T, E] after the final norm, updated cache or None).
    """
    cfg = self.config
    B, T, _ = embeds.shape
    S = key_mask.shape[1]
    cos, sin = rope_angles(positions, cfg.resolved_head_dim, cfg.rope_theta, cfg.mrope_section)
    q_slot = write_index + jnp.arange(T)
    causal = q_slot[:, None] >= jnp.arange(S)[None, :]  # [T, S]
    mask = causal[None] & key_mask.astype(bool)[:, None, :]  # [B, T, S]
    write_index = jnp.asarray(write_index, jnp.int32)
    x = nn.with_logical_constraint(embeds.astype(resolve_dtype(cfg.dtype)), ("batch", "length", "embed"))
    (x, cache), _ = self.layers((x, cache), jnp.arange(cfg.num_layers), cos, sin, mask, write_index)
    return self.final_norm(x), cache

  def forward(self, tokens: Array, key_mask: Array, positions: Optional[Array] = None) -> Array:
    """Full-sequence logits [B, T, V] without a cache (training, scoring)."""
    if positions is None:
      positions = positions_from_mask(key_mask)
    hidden, _ = self(self.embed(tokens), positions, key_mask)
    return self.logits(hidden)
