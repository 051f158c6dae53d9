"""The Janus-Pro policy: one LLaMA trunk with a text path and an image-token path (+ SigLIP input).

Owns `JanusConfig` (LM, SigLIP, VQ and generation-path sizes; built from a config dict) and
`JanusPolicy`: the LM (`language_model`), the image-token path `gen_embed` -> `gen_aligner` into the
trunk and `gen_head` out of it, and the optional understanding path `vision_model` -> `aligner`. It
does not own pixel decoding (the VQ decoder in models/vq.py runs after sampling), sampling
(sampling/janus.py), or weights (convert/janus.py).

Sequences mix two vocabularies: `tokens[b, t]` is a text id where `is_image[b, t]` is False and a
VQ code id in [0, image_vocab_size) where it is True. A position is embedded by its own path, and
the distribution over `tokens[b, t + 1]` comes from the head of `is_image[b, t + 1]`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gotr1_jax.models.llm import DecoderLM, KVCache, LMConfig, positions_from_mask, resolve_dtype
from gotr1_jax.models.siglip import SigLIPConfig, SigLIPVisionTower, gelu
from gotr1_jax.models.vq import VQConfig

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class JanusConfig:
  """Architecture of the policy. `vision=None` leaves out the understanding path (text-to-image
  needs none of it); `vq` is carried for the decoder that turns sampled codes into pixels."""

  lm: LMConfig
  vq: VQConfig
  vision: Optional[SigLIPConfig] = None
  gen_aligner_depth: int = 2  # Linear(vq.embed_dim, hidden), then (GELU, Linear(hidden, hidden)) x (depth-1)
  gen_head_dim: Optional[int] = None  # gen_head's inner width; None = lm.hidden_size
  aligner_depth: int = 2  # SigLIP -> LM aligner, the same shape rule from vision.hidden_size

  def __post_init__(self):
    for name in ("gen_aligner_depth", "aligner_depth"):
      if getattr(self, name) < 1:
        raise ValueError(f"JanusConfig.{name} must be >= 1, got {getattr(self, name)}.")

  # The image-token vocabulary *is* the VQ codebook, so its sizes are read from the VQ config.
  @property
  def image_vocab_size(self) -> int:
    """gen_embed rows = gen_head outputs = codebook size (16384)."""
    return self.vq.num_embeddings

  @property
  def image_embed_dim(self) -> int:
    """gen_embed width = code dim (8)."""
    return self.vq.embed_dim

  @property
  def image_grid(self) -> int:
    """Image tokens per side (24 = 384 px / 16)."""
    return self.vq.num_patches

  @property
  def num_image_tokens(self) -> int:
    """Tokens of one generated image (576)."""
    return self.image_grid ** 2

  @property
  def resolved_gen_head_dim(self) -> int:
    return self.gen_head_dim or self.lm.hidden_size


def _build(cls: type, fields: Mapping[str, Any], where: str) -> Any:
  """Builds a config dataclass from a dict, naming unknown fields; lists become tuples."""
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"{where} has unknown fields {unknown}; {cls.__name__} takes {sorted(known)}.")
  return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def janus_config_from_dict(cd: Mapping[str, Any]) -> JanusConfig:
  """JanusConfig from a model config dict / ConfigDict: {lm: {...}, vq: {...}, vision: {...} or
  None, plus JanusConfig's own fields (gen_aligner_depth, gen_head_dim, aligner_depth) and an
  optional `family` tag} (see configs/models/janus_*.py)."""
  cd = dict(cd.to_dict() if hasattr(cd, "to_dict") else cd)
  missing = [k for k in ("lm", "vq") if not cd.get(k)]
  if missing:
    raise ValueError(f"model config lacks {missing}; see configs/models/janus_tiny.py for the layout.")
  cd.pop("family", None)
  lm = _build(LMConfig, cd.pop("lm"), "model.lm")
  vq = _build(VQConfig, cd.pop("vq"), "model.vq")
  vision = cd.pop("vision", None)
  vision = _build(SigLIPConfig, vision, "model.vision") if vision else None
  return _build(JanusConfig, dict(cd, lm=lm, vq=vq, vision=vision), "model")


def _dense(features: int, axes: tuple[Optional[str], Optional[str]], name: str, dtype: Any,
           param_dtype: Any) -> nn.Dense:
  return nn.Dense(
      features, name=name, dtype=dtype, param_dtype=param_dtype,
      kernel_init=nn.with_logical_partitioning(nn.initializers.normal(0.02), axes),
      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, (axes[1],)))


class MlpAligner(nn.Module):
  """DeepSeek's `MlpProjector` (mlp_gelu): Linear(in, out), then (GELU, Linear(out, out)) x (depth-1)."""

  features: int
  depth: int
  dtype: Any
  param_dtype: Any

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = _dense(self.features, (None, "mlp"), "fc_0", self.dtype, self.param_dtype)(x)
    for i in range(1, self.depth):
      x = nn.with_logical_constraint(gelu(x), ("batch", "length", "mlp"))
      x = _dense(self.features, ("mlp", "embed"), f"fc_{i}", self.dtype, self.param_dtype)(x)
    return nn.with_logical_constraint(x, ("batch", "length", "embed"))


class GenHead(nn.Module):
  """Image-token logits: Linear(hidden, gen_head_dim) -> GELU -> Linear(-> image_vocab_size)."""

  config: JanusConfig

  @nn.compact
  def __call__(self, hidden: Array) -> Array:
    cfg = self.config
    dtype, param_dtype = resolve_dtype(cfg.lm.dtype), resolve_dtype(cfg.lm.param_dtype)
    h = gelu(_dense(cfg.resolved_gen_head_dim, ("embed", "mlp"), "proj_out", dtype, param_dtype)(hidden))
    h = nn.with_logical_constraint(h, ("batch", "length", "mlp"))
    out = _dense(cfg.image_vocab_size, ("mlp", "vocab"), "vision_head", dtype, param_dtype)(h)
    return nn.with_logical_constraint(out.astype(jnp.float32), ("batch", "length", "vocab"))


def scatter_rows(base: Array, slots: Array, features: Array) -> Array:
  """Row b's k-th True slot takes features[b, k] (transformers' masked_scatter, per row).

  base: [B, T, E]; slots: [B, T] bool with at most K True per row; features: [B, K, E].
  """
  index = jnp.clip(jnp.cumsum(slots.astype(jnp.int32), axis=1) - 1, 0, features.shape[1] - 1)
  gathered = jnp.take_along_axis(features, index[..., None], axis=1)
  return jnp.where(slots[..., None], gathered.astype(base.dtype), base)


def next_token_logps(text_logits: Array, image_logits: Array, tokens: Array, is_image: Array) -> Array:
  """[B, T-1] log p(tokens[t+1] | ...) under the head of the target's modality."""
  targets, target_is_image = tokens[:, 1:], is_image[:, 1:].astype(bool)

  def logp(logits: Array, ids: Array) -> Array:
    ids = jnp.clip(ids, 0, logits.shape[-1] - 1)  # the other modality's ids are masked below
    picked = jnp.take_along_axis(logits[:, :-1], ids[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits[:, :-1], axis=-1)

  return jnp.where(target_is_image, logp(image_logits, targets), logp(text_logits, targets))


class JanusPolicy(nn.Module):
  """Janus-Pro's LM with its text and image-token paths. Param tree: language_model (DecoderLM),
  gen_embed, gen_aligner, gen_head, and with a vision config vision_model + aligner."""

  config: JanusConfig

  def setup(self):
    cfg = self.config
    dtype, param_dtype = resolve_dtype(cfg.lm.dtype), resolve_dtype(cfg.lm.param_dtype)
    self.language_model = DecoderLM(cfg.lm)
    self.gen_embed = nn.Embed(  # 16384 x 8: small enough to replicate
        cfg.image_vocab_size, cfg.image_embed_dim, dtype=dtype, param_dtype=param_dtype,
        embedding_init=nn.with_logical_partitioning(nn.initializers.normal(1.0), (None, None)))
    self.gen_aligner = MlpAligner(cfg.lm.hidden_size, cfg.gen_aligner_depth, dtype, param_dtype)
    self.gen_head = GenHead(cfg)
    if cfg.vision is not None:
      self.vision_model = SigLIPVisionTower(cfg.vision)
      self.aligner = MlpAligner(cfg.lm.hidden_size, cfg.aligner_depth, dtype, param_dtype)

  # ---- the two ends of the trunk ------------------------------------------------------------
  def embed_text(self, tokens: Array) -> Array:
    """[B, T] text ids -> [B, T, hidden]."""
    return self.language_model.embed(tokens)

  def embed_image_tokens(self, image_ids: Array) -> Array:
    """[B, T] VQ code ids -> [B, T, hidden] (gen_embed -> gen_aligner)."""
    return self.gen_aligner(self.gen_embed(image_ids))

  def embed_understanding_image(self, pixels: Array) -> Array:
    """[B, H, W, C] normalised pixels -> [B, vision.num_patches, hidden] (SigLIP -> aligner)."""
    if self.config.vision is None:
      raise ValueError("This JanusConfig has vision=None: set model.vision to embed images for understanding.")
    return self.aligner(self.vision_model(pixels))

  def text_logits(self, hidden: Array) -> Array:
    """[B, T, hidden] -> [B, T, lm.vocab_size] fp32 (lm_head)."""
    return self.language_model.logits(hidden)

  def image_logits(self, hidden: Array) -> Array:
    """[B, T, hidden] -> [B, T, image_vocab_size] fp32 (gen_head)."""
    return self.gen_head(hidden)

  def trunk(self, embeds: Array, positions: Array, key_mask: Array, cache: Optional[KVCache] = None,
            write_index: Array | int = 0) -> tuple[Array, Optional[KVCache]]:
    """The LM trunk on embeddings; see DecoderLM.__call__ for shapes and the cache contract."""
    return self.language_model(embeds, positions, key_mask, cache, write_index)

  # ---- whole sequences ----------------------------------------------------------------------
  def embed_inputs(self, tokens: Array, is_image: Optional[Array] = None, pixels: Optional[Array] = None,
                   image_slots: Optional[Array] = None) -> Array:
    """Embeddings of a mixed sequence [B, T] -> [B, T, hidden].

    is_image [B, T] bool marks VQ code ids (generation path). pixels [B, H, W, C] with image_slots
    [B, T] bool (vision.num_patches True per row, e.g. the `<image_placeholder>` positions): the
    row's SigLIP features replace those positions in order (understanding path).
    """
    vocab = self.config.lm.vocab_size
    embeds = self.embed_text(jnp.clip(tokens, 0, vocab - 1))
    if is_image is not None:
      image = self.embed_image_tokens(jnp.clip(tokens, 0, self.config.image_vocab_size - 1))
      embeds = jnp.where(is_image.astype(bool)[..., None], image.astype(embeds.dtype), embeds)
    if pixels is not None:
      if image_slots is None:
        raise ValueError("pixels need image_slots: a [batch, length] mask of the positions they fill.")
      embeds = scatter_rows(embeds, image_slots.astype(bool), self.embed_understanding_image(pixels))
    return nn.with_logical_constraint(embeds, ("batch", "length", "embed"))

  def forward_mixed(self, tokens: Array, is_image: Array, key_mask: Array, positions: Optional[Array] = None,
                    pixels: Optional[Array] = None, image_slots: Optional[Array] = None) -> tuple[Array, Array]:
    """Training forward over [prompt | chain | image tokens]: (text_logits [B, T, V] from lm_head,
    image_logits [B, T, image_vocab_size] from gen_head), both at every position, fp32.
    Position t's row of the head matching is_image[t + 1] predicts tokens[t + 1]."""
    if positions is None:
      positions = positions_from_mask(key_mask)
    hidden, _ = self.trunk(self.embed_inputs(tokens, is_image, pixels, image_slots), positions, key_mask)
    return self.text_logits(hidden), self.image_logits(hidden)

  def mixed_logps(self, tokens: Array, is_image: Array, key_mask: Array,
                  positions: Optional[Array] = None, targets: Optional[Array] = None) -> Array:
    """[B, T-1]: entry t is log p(tokens[t+1] | tokens[:t+1]) under the head of its modality
    (the per-token log-probs GRPO needs for reasoning text and image tokens alike). With `targets`
    [B, T] the model reads `tokens` and scores targets[t+1] instead (SFT on corrupted inputs)."""
    text, image = self.forward_mixed(tokens, is_image, key_mask, positions)
    return next_token_logps(text, image, tokens if targets is None else targets, is_image)

  def __call__(self, tokens: Array, is_image: Array, key_mask: Array, pixels: Optional[Array] = None,
               image_slots: Optional[Array] = None) -> tuple[Array, Array]:
    return self.forward_mixed(tokens, is_image, key_mask, pixels=pixels, image_slots=image_slots)


def init_janus(config: JanusConfig, rng: Array) -> dict:
  """Boxed (logically annotated) variables of every parameter of a JanusPolicy; `nn.unbox` them
  for plain arrays. Runs one tiny forward through every path, the understanding one included."""
  tokens = jnp.zeros((1, 2), jnp.int32)
  is_image = jnp.array([[False, True]])
  mask = jnp.ones((1, 2), jnp.int32)
  pixels = slots = None
  if config.vision is not None:
    v = config.vision
    tokens = jnp.zeros((1, v.num_patches), jnp.int32)
    is_image = jnp.zeros((1, v.num_patches), bool).at[0, -1].set(True)
    mask = jnp.ones((1, v.num_patches), jnp.int32)
    pixels = jnp.zeros((1, v.image_size, v.image_size, v.num_channels), resolve_dtype(v.dtype))
    slots = jnp.ones((1, v.num_patches), bool)
  return jax.jit(JanusPolicy(config).init)(rng, tokens, is_image, mask, pixels, slots)  # one compile, not op by op
