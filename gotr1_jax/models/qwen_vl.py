"""Qwen2.5-VL in Flax: the vision tower feeding the Qwen2 LM. GoT-R1's judge and GoT's policy.

Owns `QwenVLConfig` (LM, vision tower and the placeholder token ids; built from a config dict) and
`QwenVL`: text embeddings with each image's merged vision tokens placed at its `<|image_pad|>`
slots (transformers' `masked_scatter`), the M-RoPE decoder trunk and the LM head. The parts are
models/llm.py's `DecoderLM` (param tree `language_model`) and models/qwen_vision.py's tower
(`visual`). It does not own pixel preprocessing (qwen_image_processing.py), the 3-axis position
ids, which the host computes with qwen_positions.get_rope_index and passes in, sampling
(sampling/qwen_vl.py) or weights (convert/qwen_vl.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from gotr1_jax.models.janus import _build as build_dataclass  # one dict -> dataclass rule for all families
from gotr1_jax.models.janus import scatter_rows
from gotr1_jax.models.llm import DecoderLM, KVCache, LMConfig
from gotr1_jax.models.qwen_positions import MRopeConfig
from gotr1_jax.models.qwen_vision import QwenVisionConfig, QwenVisionTower

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class QwenVLConfig:
  """Architecture of Qwen2.5-VL. Token ids default to Qwen's tokenizer (transformers' names)."""

  lm: LMConfig
  vision: QwenVisionConfig
  image_token_id: int = 151655  # <|image_pad|>
  video_token_id: int = 151656  # <|video_pad|>
  vision_start_token_id: int = 151652  # <|vision_start|>
  vision_end_token_id: int = 151653  # <|vision_end|>
  tokens_per_second: float = 2  # temporal M-RoPE ids per second of video (vision_config.tokens_per_second)

  def __post_init__(self):
    if self.lm.mrope_section is None:
      raise ValueError("QwenVLConfig.lm.mrope_section is None: Qwen2.5-VL's LM uses 3-axis M-RoPE; set it "
                       "(e.g. (16, 24, 24) for head_dim 128).")
    if self.vision.out_hidden_size != self.lm.hidden_size:
      raise ValueError(f"vision.out_hidden_size={self.vision.out_hidden_size} must equal lm.hidden_size="
                       f"{self.lm.hidden_size}: the merger writes LM embeddings.")
    ids = (self.image_token_id, self.video_token_id, self.vision_start_token_id, self.vision_end_token_id)
    if len(set(ids)) != 4 or not all(0 <= i < self.lm.vocab_size for i in ids):
      raise ValueError(f"image/video/vision_start/vision_end token ids {ids} must be distinct ids below "
                       f"lm.vocab_size={self.lm.vocab_size}.")

  @property
  def mrope(self) -> MRopeConfig:
    """What the host needs to compute position ids (qwen_positions.get_rope_index)."""
    return MRopeConfig(image_token_id=self.image_token_id, video_token_id=self.video_token_id,
                       spatial_merge_size=self.vision.spatial_merge_size,
                       tokens_per_second=self.tokens_per_second)


def qwen_vl_config_from_dict(cd: Mapping[str, Any]) -> QwenVLConfig:
  """QwenVLConfig from a model config dict / ConfigDict: {lm: {...}, vision: {...}, the token ids,
  and an optional `family` tag} (see configs/models/qwen2_5_vl_*.py)."""
  cd = dict(cd.to_dict() if hasattr(cd, "to_dict") else cd)
  missing = [k for k in ("lm", "vision") if not cd.get(k)]
  if missing:
    raise ValueError(f"model config lacks {missing}; see configs/models/qwen2_5_vl_tiny.py for the layout.")
  cd.pop("family", None)
  lm = build_dataclass(LMConfig, cd.pop("lm"), "model.lm")
  vision = build_dataclass(QwenVisionConfig, cd.pop("vision"), "model.vision")
  return build_dataclass(QwenVLConfig, dict(cd, lm=lm, vision=vision), "model")


class QwenVL(nn.Module):
  """Qwen2.5-VL. Param tree: `language_model` (DecoderLM, tied or untied head) and `visual`.

  Images arrive as a `VisionBatch`-shaped mapping or tuple of arrays, one row per example
  (qwen_image_processing.pack_vision_batch: patches [B, N, patch_dim], positions [B, N, 2],
  image_ids / window_ids [B, N]); the row's merged tokens fill its `<|image_pad|>` slots in order,
  so each row must hold exactly as many pads as it has real merged tokens.
  """

  config: QwenVLConfig

  def setup(self):
    self.language_model = DecoderLM(self.config.lm)
    self.visual = QwenVisionTower(self.config.vision)

  def embed_images(self, vision: Any) -> Array:
    """[B, N / merge_unit, hidden] merged vision tokens of each row (padding groups are zero)."""
    if isinstance(vision, Mapping):
      vision = (vision["patches"], vision["positions"], vision["image_ids"], vision["window_ids"])
    return self.visual(*vision)

  def embed_inputs(self, tokens: Array, vision: Any = None) -> Array:
    """[B, T] ids (+ the rows' images) -> [B, T, hidden] input embeddings."""
    embeds = self.language_model.embed(tokens)
    if vision is not None:
      slots = tokens == self.config.image_token_id
      embeds = scatter_rows(embeds, slots, self.embed_images(vision))
    return nn.with_logical_constraint(embeds, ("batch", "length", "embed"))

  def trunk(self, embeds: Array, positions: Array, key_mask: Array, cache: Optional[KVCache] = None,
            write_index: Array | int = 0) -> tuple[Array, Optional[KVCache]]:
    """The LM trunk; positions [3, B, T] (M-RoPE) or [B, T] (text only). See DecoderLM.__call__."""
    return self.language_model(embeds, positions, key_mask, cache, write_index)

  def logits(self, hidden: Array) -> Array:
    """[B, T, hidden] -> [B, T, vocab] fp32."""
    return self.language_model.logits(hidden)

  def __call__(self, tokens: Array, key_mask: Array, positions: Array, vision: Any = None) -> Array:
    """Full-sequence logits [B, T, vocab] (fp32) without a cache. positions: [3, B, T] from
    qwen_positions.get_rope_index on the same (left-padded) tokens and mask."""
    hidden, _ = self.trunk(self.embed_inputs(tokens, vision), positions, key_mask)
    return self.logits(hidden)


def init_qwen_vl(config: QwenVLConfig, rng: Array) -> dict:
  """Boxed (logically annotated) variables of every parameter; `nn.unbox` them for plain arrays.
  Runs one tiny forward: one image of a single merged token, then one text token."""
  v = config.vision
  n = v.merge_unit
  tokens = jnp.array([[config.image_token_id, 0]], jnp.int32)
  mask = jnp.ones((1, 2), jnp.int32)
  positions = jnp.zeros((3, 1, 2), jnp.int32)
  vision = (jnp.zeros((1, n, v.patch_dim), jnp.float32), jnp.zeros((1, n, 2), jnp.int32),
            jnp.zeros((1, n), jnp.int32), jnp.zeros((1, n), jnp.int32))
  return jax.jit(QwenVL(config).init)(rng, tokens, mask, positions, vision)  # one compile, not op by op
