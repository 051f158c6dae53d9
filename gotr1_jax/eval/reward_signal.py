"""Which exact reward component a combined reward follows inside GRPO groups.

Owns `reward_signal`: on a policy's own groups of samples (tools/make_judge_pool.py --group), the
oracle's four GoT-R1 components and the category's evaluation score (`t2i_score`), the combined
reward they make under `config.reward.combine`, and for each component how far that reward ranks
a group's samples as the component does. GRPO's advantages use only differences inside a group,
so a component the combined reward hardly follows there is hardly trained, however large its mean
is. It asks no judge (eval/judge_fidelity.py compares a judge with the oracle).
"""
from __future__ import annotations

import numpy as np

from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.eval.judge_fidelity import FidelitySample, exact_rewards, prompt_groups, within_groups

SCORE = "t2i_score"  # the oracle's evaluation score of the prompt's category (shapes_eval)


def reward_signal(sample: FidelitySample, reward_config, world: WorldConfig = WorldConfig(),
                  spa_scale: str = "fraction") -> dict[str, dict[str, float]]:
  """{component: {group_spearman, varies, within_std, mean}} for the four components and SCORE.

  group_spearman: mean Spearman rho, over the groups where both vary, between the combined reward
    and the component (1 = the reward orders the group as the component does);
  varies: fraction of groups (runs of one prompt) where the component is not constant;
  within_std: mean standard deviation of the component inside a group; mean: over all samples.
  The combined reward itself is the row "reward". R_spa is read on `spa_scale` (oracle.r_spa), in
  the row and in the reward.
  """
  exact = exact_rewards(sample, reward_config, world, (SCORE,), spa_scale)
  values = {k: v.astype(np.float64) for k, v in exact.items()}
  groups = [g for g in prompt_groups(sample.specs) if g.stop - g.start > 1]
  if not groups:
    raise ValueError("reward_signal needs groups of 2+ samples of one prompt, in runs; make the pool with "
                     "tools/make_judge_pool.py --group 8.")
  out = {}
  for k, v in values.items():
    w = within_groups(v, values["reward"], groups)
    out[k] = {"group_spearman": w["group_spearman"], "varies": 1.0 - w["judge_constant"],
              "within_std": float(np.mean([v[g].std() for g in groups])), "mean": float(v.mean())}
  return out


def signal_table(result: dict[str, dict[str, float]]) -> str:
  lines = ["| component | rho with the reward within groups | varies in groups | within-group std | mean |",
           "|---|---|---|---|---|"]
  for k, r in result.items():
    lines.append(f"| {k} | {r['group_spearman']:.3f} | {r['varies']:.0%} | {r['within_std']:.3f} | {r['mean']:.3f} |")
  return "\n".join(lines)
