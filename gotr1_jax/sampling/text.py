"""Text decoding with a `DecoderLM`: the `DecodeFns` that read its embeddings and LM head.

Owns only the glue between `gotr1_jax.models.llm.DecoderLM` and the generic sampler; policies
with other heads (Janus image tokens) build their own `DecodeFns` the same way.
"""
from __future__ import annotations

import functools

from gotr1_jax.models import llm
from gotr1_jax.sampling.autoregressive import DecodeFns


def lm_decode_fns(model: llm.DecoderLM) -> DecodeFns:
  """DecodeFns for plain text generation with `model` (params are its variables dict)."""

  def embed(params, tokens, extra=None):
    del extra  # a text-only LM embeds tokens alone
    return model.apply(params, tokens, method=llm.DecoderLM.embed)

  def trunk(params, embeds, positions, key_mask, cache, write_index):
    return model.apply(params, embeds, positions, key_mask, cache, write_index)

  def head(params, hidden):
    return model.apply(params, hidden, method=llm.DecoderLM.logits)

  return DecodeFns(embed=embed, step_embed=embed, trunk=trunk, head=head,
                   init_cache=functools.partial(llm.init_cache, model.config))
