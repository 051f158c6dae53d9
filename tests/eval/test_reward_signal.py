"""eval/reward_signal.py: a reward made of one component follows it exactly within groups, the
product's numbers are Spearman rho recomputed by hand, and a pool without groups is refused."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gotr1_jax.data.shapes_world.oracle import oracle_rewards
from gotr1_jax.eval.judge_fidelity import FidelitySample
from gotr1_jax.eval.reward_signal import reward_signal, signal_table
from gotr1_jax.eval.shapes_eval import eval_prompts
from gotr1_jax.pretrain.judge_data import sample_pair
from gotr1_jax.rewards.config import reward_defaults


@pytest.fixture(scope="module")
def groups():
  """Three spatial and three color prompts, 6 (chain, image) samples each, corrupted at random."""
  specs = eval_prompts("val", 3, ("spatial",)) + eval_prompts("val", 3, ("color",))
  rng = np.random.default_rng(0)
  rows = [(s, *sample_pair(s, rng, corrupt_p=0.7)) for s in specs for _ in range(6)]
  return FidelitySample([r[0] for r in rows], [r[1] for r in rows], np.stack([r[2] for r in rows]))


def test_a_single_component_reward_follows_it_exactly(groups):
  config = reward_defaults()
  config.combine = "weighted_sum"
  config.weights = dict(r_sem=0.0, r_spa=1.0, r_ri=0.0, r_pi=0.0)
  result = reward_signal(groups, config)
  assert result["r_spa"]["group_spearman"] == pytest.approx(1.0)
  assert result["reward"]["mean"] == pytest.approx(result["r_spa"]["mean"])


def test_product_numbers_are_the_mean_within_group_spearman(groups):
  config = reward_defaults()  # GoT-R1's product
  result = reward_signal(groups, config)
  exact = [oracle_rewards(s, c, im) for s, c, im in zip(groups.specs, groups.chains, groups.images)]
  comp = {k: np.array([e[k] for e in exact]).reshape(6, 6) for k in ("r_sem", "r_spa", "r_ri", "r_pi")}
  reward = comp["r_pi"] * (comp["r_sem"] + comp["r_spa"]) * comp["r_ri"]
  for k in ("r_ri", "r_pi"):
    rhos = [stats.spearmanr(r, c).statistic for r, c in zip(reward, comp[k]) if np.ptp(r) and np.ptp(c)]
    assert rhos and result[k]["group_spearman"] == pytest.approx(np.mean(rhos))
    assert result[k]["varies"] == pytest.approx(np.mean([np.ptp(c) > 0 for c in comp[k]]))
    assert result[k]["within_std"] == pytest.approx(np.mean(comp[k].std(1)))
  assert f"| r_pi | {result['r_pi']['group_spearman']:.3f} |" in signal_table(result)


def test_r_spa_on_the_rubric_scale_enters_row_and_reward(groups):
  config = reward_defaults()
  fraction = reward_signal(groups, config)
  rubric = reward_signal(groups, config, spa_scale="rubric")
  exact = [oracle_rewards(s, c, im, spa_scale="rubric") for s, c, im in zip(groups.specs, groups.chains, groups.images)]
  spa = np.array([e["r_spa"] for e in exact])
  assert rubric["r_spa"]["mean"] == pytest.approx(spa.mean()) and rubric["r_spa"]["mean"] < fraction["r_spa"]["mean"]
  reward = np.array([e["r_pi"] * (e["r_sem"] + e["r_spa"]) * e["r_ri"] for e in exact])
  assert rubric["reward"]["mean"] == pytest.approx(reward.mean())


def test_a_pool_without_groups_is_refused(groups):
  one_each = FidelitySample(groups.specs[::6], groups.chains[::6], groups.images[::6])
  with pytest.raises(ValueError, match="--group 8"):
    reward_signal(one_each, reward_defaults())
