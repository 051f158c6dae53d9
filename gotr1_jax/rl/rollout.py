"""Rollouts of a text policy: sample completions and lay them out as a GRPO batch.

Owns the `Rollout` container and the layout [prompt | completion] with its masks and the
target-aligned log-prob function for a `DecoderLM`. Image policies (Janus) build the same batch
layout with their own sampler phases.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gotr1_jax.models import llm
from gotr1_jax.rl.grpo import token_logps
from gotr1_jax.sampling.autoregressive import SampleOutput


@dataclasses.dataclass
class Rollout:
  """What a policy produced for a batch of (prompt, sample) rows.

  batch: arrays for the loss (tokens, attention_mask, loss_mask, sample_logps; see train_step.py).
  completions: per row, the generated token ids up to and including the stop token.
  extras: anything rewards or logging need (decoded text, chains, images ...), host-side.
  """

  batch: dict[str, Any]
  completions: list[list[int]]
  extras: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def num_generated_tokens(self) -> int:
    return int(sum(len(c) for c in self.completions))


@jax.jit
def layout_batch(prompt_tokens: jax.Array, prompt_mask: jax.Array, out: SampleOutput) -> dict:
  """[prompt | completion] arrays; loss and log-probs are target-aligned (length T - 1)."""
  n = out.tokens.shape[1]
  generated = (jnp.arange(n)[None, :] < out.lengths[:, None]).astype(jnp.int32)
  prompt_len = prompt_tokens.shape[1]
  zeros = jnp.zeros((prompt_tokens.shape[0], prompt_len - 1), jnp.int32)
  return {
      "tokens": jnp.concatenate([prompt_tokens, out.tokens], axis=1),
      "attention_mask": jnp.concatenate([prompt_mask.astype(jnp.int32), generated], axis=1),
      "loss_mask": jnp.concatenate([zeros, generated], axis=1),
      "sample_logps": jnp.concatenate([zeros.astype(jnp.float32), out.logps * generated], axis=1),
  }


def completions_of(out: SampleOutput) -> list[list[int]]:
  tokens, lengths = np.asarray(out.tokens), np.asarray(out.lengths)
  return [tokens[i, :lengths[i]].tolist() for i in range(tokens.shape[0])]


def lm_logps_fn(model: llm.DecoderLM):
  """(params, batch) -> [B, T-1] log p(tokens[t+1] | tokens[:t+1]) under a DecoderLM."""

  def logps_fn(params, batch):
    logits = model.apply(params, batch["tokens"], batch["attention_mask"], method=llm.DecoderLM.forward)
    return token_logps(logits[:, :-1], batch["tokens"][:, 1:])

  return logps_fn
