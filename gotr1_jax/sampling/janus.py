"""Janus decoding: the `DecodeFns` of the two GoT-R1 phases (reasoning text, then image tokens).

Owns only the glue between `JanusPolicy` and the generic sampler (sampling/autoregressive.py).
Phase "text" reads prompts and feeds samples back through the text embedding and reads `lm_head`;
phase "image" reads its prompt (prompt + chain + `<begin_of_image>`, all text) through the text
embedding, feeds sampled codes back through gen_embed -> gen_aligner and reads `gen_head`.
It does not build prompts, pad the unconditional CFG rows or decode codes to pixels.
"""
from __future__ import annotations

import functools

from gotr1_jax.models import llm
from gotr1_jax.models.janus import JanusPolicy
from gotr1_jax.sampling.autoregressive import DecodeFns

PHASES = ("text", "image")


def janus_decode_fns(policy: JanusPolicy, phase: str) -> DecodeFns:
  """DecodeFns for `phase` ("text" or "image"); params are the policy's variables dict."""
  if phase not in PHASES:
    raise ValueError(f"Janus decode phase {phase!r} is not one of {PHASES}.")

  def method(fn):
    return lambda params, *args: policy.apply(params, *args, method=fn)

  def embed(params, tokens, extra=None):
    """Prompt embeddings; `extra` = None or {'pixels': [R, H, W, C], 'image_slots': [R, T] bool}
    (images for understanding, placed at their placeholder positions)."""
    extra = extra or {}
    return policy.apply(params, tokens, None, extra.get("pixels"), extra.get("image_slots"),
                        method=JanusPolicy.embed_inputs)

  image = phase == "image"
  return DecodeFns(
      embed=embed,
      step_embed=method(JanusPolicy.embed_image_tokens if image else JanusPolicy.embed_text),
      trunk=method(JanusPolicy.trunk),
      head=method(JanusPolicy.image_logits if image else JanusPolicy.text_logits),
      init_cache=functools.partial(llm.init_cache, policy.config.lm))
