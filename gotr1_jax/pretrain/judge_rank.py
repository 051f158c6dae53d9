"""Teaching the judge to rank one GRPO group's images by R_PI, not only to answer each one.

GRPO uses a reward only through its order within a group of samples of one prompt. A judge taught
R_PI one sample at a time learns how high R_PI is on the policy's images but not which of a group's
images is better (docs/shapes_findings.md: a round on pooled samples took the shipped judge's R_PI
within-group rho from 0.11 to -0.04). A ranking step (`judge.pi_rank_fraction` of the steps) draws
whole groups from a grouped pool (tools/make_judge_pool.py --group G) and adds to the answer NLL a
pairwise logistic loss on the judge's expected first score digit: for two images of one group
whose oracle R_PI answers differ, log(1 + exp(-(E_better - E_worse))), E = sum_d d * P(d) over the
digits 0-9 renormalised (`config.reward.score_readout = "expected"` reads scores the same way).
Pairs where either answer is 10 are left out: its first digit is the 1 of "10".

Owns the ranking step's examples, its batch fields and its loss; judge_train.py calls them.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.pretrain.judge_data import JudgeExample, PolicyPool
from gotr1_jax.rewards.score_readout import ANSWER_PREFIX, DIGITS
from gotr1_jax.sampling.qwen_vl import single_token_ids

Array = jax.Array


def check_rank_pool(pool: PolicyPool, group: int, batch_size: int) -> None:
  """Raises unless the pool holds whole groups of `group` and a batch holds whole groups."""
  if group < 2 or len(pool) % group or batch_size % group or len(pool) < batch_size:
    raise ValueError(f"config.judge.pi_rank_group={group} must be >= 2 and divide both the pool's {len(pool)} "
                     f"samples and judge.batch_size={batch_size}, and the pool must hold a batch: write the pool "
                     f"with `tools/make_judge_pool.py --group {group}`.")


def rank_examples(pool: PolicyPool, rng: np.random.Generator, group: int, batch_size: int,
                  image_size: tuple[int, int], reward: ConfigDict, world: WorldConfig = WorldConfig(),
                  ) -> list[JudgeExample]:
  """batch_size // group whole groups of the pool (consecutive samples of one prompt), each sample's
  R_PI question with the oracle's answer, tagged with its group."""
  out = []
  for g in rng.choice(len(pool) // group, size=batch_size // group, replace=False):
    for i in range(int(g) * group, (int(g) + 1) * group):
      out.append(dataclasses.replace(pool.pi_example(i, image_size, reward, world), group=int(g)))
  return out


def digit_ids(tokenizer: Any) -> np.ndarray:
  """The token ids of "0".."9"; each must be one token, as after the answer prefix."""
  return np.array(single_token_ids(tokenizer, DIGITS), np.int32)


def rank_fields(tokenizer: Any, examples: Sequence[JudgeExample], seqs: Sequence[Sequence[int]],
                starts: Sequence[int]) -> dict[str, np.ndarray]:
  """rank_pos [B] (the index of the logits that predict the answer's first score digit, into
  logits[:, :-1]), rank_group [B] (-1: not ranked) and rank_target [B] (the answer's score)."""
  prefix = list(tokenizer(ANSWER_PREFIX, add_special_tokens=False)["input_ids"])
  pos = np.zeros(len(examples), np.int32)
  group = np.full(len(examples), -1, np.int32)
  target = np.zeros(len(examples), np.float32)
  for i, (e, seq, start) in enumerate(zip(examples, seqs, starts)):
    if e.group < 0:
      continue
    if list(seq[start:start + len(prefix)]) != prefix:
      raise ValueError(f"A ranked answer {e.answer!r} does not start with the tokens of {ANSWER_PREFIX!r}.")
    pos[i], group[i], target[i] = start + len(prefix) - 1, e.group, float(json.loads(e.answer)["score"])
  return dict(rank_pos=pos, rank_group=group, rank_target=target)


def rank_loss(logits: Array, batch: dict[str, Array], digits: Array) -> tuple[Array, dict[str, Array]]:
  """Mean pairwise logistic loss over the batch's ordered pairs (same group, different targets,
  neither 10) of the expected first digit; and the share of those pairs the judge orders right."""
  at = jnp.take_along_axis(logits, batch["rank_pos"][:, None, None], axis=1)[:, 0]  # [B, V]
  p = jax.nn.softmax(jnp.take(at, digits, axis=-1), axis=-1)  # [B, 10] over the digits alone
  expected = p @ jnp.arange(10, dtype=p.dtype)
  g, t = batch["rank_group"], batch["rank_target"]
  pairs = ((g[:, None] == g[None, :]) & (g[:, None] >= 0) & (t[:, None] > t[None, :])
           & (t[:, None] < 10) & (t[None, :] < 10)).astype(p.dtype)
  diff = expected[:, None] - expected[None, :]
  n = jnp.maximum(jnp.sum(pairs), 1.0)
  loss = jnp.sum(pairs * jax.nn.softplus(-diff)) / n
  return loss, {"loss/rank": loss, "train/rank_pair_acc": jnp.sum(pairs * (diff > 0)) / n,
                "train/rank_pairs": jnp.sum(pairs)}
