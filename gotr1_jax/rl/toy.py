"""The toy GRPO task of the foundation: a tiny random LM learns to emit tokens from a target set.

Used by the foundation's `make demo` and by trainer tests. The reward is the fraction of the
generated tokens (up to `max_new_tokens`) that lie in [target_lo, target_hi); a random policy
scores about (hi - lo) / vocab, so a rise is easy to see and to check.
"""
from __future__ import annotations

import jax
import numpy as np
from ml_collections import ConfigDict

from gotr1_jax.models import llm
from gotr1_jax.rl.rollout import Rollout, completions_of, layout_batch, lm_logps_fn
from gotr1_jax.rl.task import Task, register
from gotr1_jax.sampling.autoregressive import Sampler, SamplingConfig
from gotr1_jax.sampling.buckets import pad_to_bucket
from gotr1_jax.sampling.text import lm_decode_fns


class ToyPrompts:
  """Deterministic random token prompts; prompt i depends only on (seed, i), so resuming works."""

  def __init__(self, seed: int, vocab: int, min_len: int, max_len: int, first_token: int):
    self.seed, self.vocab, self.min_len, self.max_len = seed, vocab, min_len, max_len
    self.first_token = first_token
    self.position = 0

  def prompt(self, i: int) -> list[int]:
    rng = np.random.default_rng([self.seed, i])
    n = int(rng.integers(self.min_len, self.max_len + 1))
    return rng.integers(self.first_token, self.vocab, n).tolist()

  def next(self, n: int) -> list[list[int]]:
    out = [self.prompt(self.position + i) for i in range(n)]
    self.position += n
    return out

  def get_state(self) -> dict:
    return {"position": self.position}

  def set_state(self, state: dict) -> None:
    self.position = int(state["position"])


def toy_reward(completions: list[list[int]], lo: int, hi: int, max_new: int) -> np.ndarray:
  return np.asarray([sum(lo <= t < hi for t in c) / max_new for c in completions], np.float32)


@register("toy")
def build(config: ConfigDict) -> Task:
  t = config.task
  lm_config = llm.LMConfig(**config.model.lm.to_dict())
  model = llm.DecoderLM(lm_config)
  sampling = SamplingConfig(max_new_tokens=t.max_new_tokens, temperature=config.rl.temperature,
                            stop_tokens=(t.eos_id,), pad_id=t.pad_id)
  sampler = Sampler(lm_decode_fns(model), sampling)
  prompts = ToyPrompts(config.seed, lm_config.vocab_size, t.min_prompt_len, t.max_prompt_len, t.first_token)

  def init_params(rng):
    tokens = jax.numpy.zeros((1, t.max_prompt_len), jax.numpy.int32)
    return model.init(rng, tokens, jax.numpy.ones_like(tokens), method=llm.DecoderLM.forward)

  def rollout(params, batch_prompts, rng) -> Rollout:
    tokens, mask = pad_to_bucket(batch_prompts, t.prompt_buckets, t.pad_id)
    out = sampler(params, tokens, mask, rng)
    return Rollout(batch=layout_batch(tokens, mask, out), completions=completions_of(out))

  def reward_fn(batch_prompts, r: Rollout):
    reward = toy_reward(r.completions, t.target_lo, t.target_hi, t.max_new_tokens)
    return {"reward": reward, "r_target_frac": reward}

  return Task(name="toy", init_params=init_params, rollout=rollout, logps_fn=lm_logps_fn(model),
              prompts=prompts, reward_fn=reward_fn)
