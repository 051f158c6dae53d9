"""pretrain/judge_rank.py: the pairwise loss's value on known digit distributions, which pairs it
counts, the batch fields pointing at the score digit, and a toy judge's ranking steps."""
from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from gotr1_jax.data.shapes_world.prompts import load_prompts
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.models.qwen_image_processing import QwenImageConfig
from gotr1_jax.models.qwen_vl import QwenVL
from gotr1_jax.pretrain import judge_data, judge_rank
from gotr1_jax.pretrain import judge_train as jt
from gotr1_jax.sampling.qwen_vl import QwenVLGenerator
from tests.pretrain.test_judge_train import toy_judge_config


def test_rank_loss_on_known_expectations():
  # 4 rows, one position, a 12-token vocabulary whose tokens 2..11 are the digits 0..9.
  digits = jnp.arange(2, 12)
  expected = np.array([2.0, 5.0, 7.0, 9.0])
  logits = np.full((4, 1, 12), -1e9, np.float32)
  for i, e in enumerate(expected):  # all mass on two neighbouring digits, mean e
    lo = int(np.floor(e))
    logits[i, 0, 2 + lo] = 0.0
    if e > lo:
      logits[i, 0, 2 + lo + 1] = 0.0
  batch = dict(rank_pos=jnp.zeros(4, jnp.int32), rank_group=jnp.array([0, 0, 1, 1]),
               rank_target=jnp.array([3.0, 6.0, 10.0, 8.0]))
  loss, m = judge_rank.rank_loss(jnp.asarray(logits), batch, digits)
  # Pairs: group 0 (6 > 3): row 1 over row 0, ordered right (5 > 2); group 1 holds a 10: none.
  assert float(m["train/rank_pairs"]) == 1
  assert float(loss) == pytest.approx(np.log1p(np.exp(-(5.0 - 2.0))), rel=1e-5)
  assert float(m["train/rank_pair_acc"]) == 1.0
  batch["rank_target"] = jnp.array([6.0, 3.0, 4.0, 8.0])  # both groups ranked, group 0 wrong way round
  loss, m = judge_rank.rank_loss(jnp.asarray(logits), batch, digits)
  want = (np.log1p(np.exp(-(2.0 - 5.0))) + np.log1p(np.exp(-(9.0 - 7.0)))) / 2
  assert float(loss) == pytest.approx(want, rel=1e-5) and float(m["train/rank_pair_acc"]) == 0.5
  soft = jax.random.normal(jax.random.key(0), logits.shape)  # the loss moves unsaturated digit logits only
  grad = jax.grad(lambda x: judge_rank.rank_loss(x, batch, digits)[0])(soft)
  assert np.abs(np.asarray(grad[..., 2:])).sum() > 0 and not np.asarray(grad[..., :2]).any()


def _grouped_pool(group: int, groups: int) -> judge_data.PolicyPool:
  specs = load_prompts("color", "train")[:groups]
  rng = np.random.default_rng(0)
  prompts, chains, images = [], [], []
  for s in specs:
    for _ in range(group):
      chain, image = judge_data.sample_pair(s, rng)
      prompts.append(s.text)
      chains.append(chain)
      images.append(image)
  return judge_data.PolicyPool(prompts, ["color"] * len(prompts), chains, np.stack(images))


def test_ranking_steps_ask_whole_groups_and_the_batch_points_at_the_digit(tmp_path):
  c = toy_judge_config(steps=2)
  pool = _grouped_pool(group=2, groups=3)
  c.update(pi_rank_fraction=1.0, pi_rank_group=2, pi_rank_weight=1.0, fidelity_samples=0)
  world, reward = WorldConfig(), jt.reward_config(c)
  specs = load_prompts("spatial", "train")[:4]
  examples = jt.example_stream(specs, 0, c, reward, world, pool=pool)(0)
  assert [e.kind for e in examples] == ["r_pi"] * 4
  groups = [e.group for e in examples]
  assert groups[0] == groups[1] != groups[2] == groups[3]
  assert all(f"this prompt: {pool.prompts[2 * e.group]}\n" in e.text for e in examples)
  full = [x for x in pool.examples(2 * groups[0], (56, 56), reward, world) if x.kind == "r_pi"]
  assert (full[0].text, full[0].answer) == (examples[0].text, examples[0].answer)  # as examples_for asks it
  assert np.array_equal(full[0].image, examples[0].image)
  tok = jt.build_judge_tokenizer(specs, c, reward, world)
  gen = QwenVLGenerator(QwenVL(jt.judge_model_config(c, len(tok))), None, tok, jt.generation_config(c),
                        QwenImageConfig(min_pixels=56 * 56, max_pixels=56 * 56))
  batch = jt.judge_batch(gen, examples, c.length_buckets, c.patch_bucket)
  digits = judge_rank.digit_ids(tok)
  for i, e in enumerate(examples):
    score = json.loads(e.answer)["score"]
    assert batch["rank_target"][i] == score and batch["rank_group"][i] == e.group
    assert batch["tokens"][i, batch["rank_pos"][i] + 1] == digits[int(str(score)[0])]  # the first digit follows
  with pytest.raises(ValueError, match="--group 4"):
    jt.example_stream(specs, 0, ConfigDict(dict(c.to_dict(), pi_rank_group=4)), reward, world, pool=pool)
  assert all(e.group < 0 for e in jt.example_stream(specs, 0, c, reward, world)(0))  # no pool: no ranking
  with pytest.raises(ValueError, match="policy_pool"):
    jt.train_judge(ConfigDict(dict(seed=0, judge=c)), str(tmp_path / "none"))
  pool.save(str(tmp_path / "pool.npz"))
  c.policy_pool = str(tmp_path / "pool.npz")
  *_, final = jt.train_judge(ConfigDict(dict(seed=0, judge=c)), str(tmp_path / "run"))
  assert np.isfinite(final["loss/loss"]) and final["loss/loss"] >= final["loss/nll"]
