"""Samples a policy's own (prompt, chain, image) pool for training the ShapesWorld judge on them.

  python tools/make_judge_pool.py --out runs/judge_pool.npz                     # the shipped SFT policy
  python tools/make_judge_pool.py --config configs/shapes_demo.py --workdir runs/shapes_demo \\
      --num 512 --out runs/judge_pool_grpo.npz                                     # where a GRPO run got to
  python tools/make_judge_pool.py --num 384 --group 8 --out runs/groups.npz      # 48 prompts x 8, as GRPO groups
  python tools/make_judge_pool.py --layout_pairs --num 160 --out runs/pairs.npz  # true vs swapped layouts

A judge trained only on rendered scenes is fooled by what GRPO makes (malformed boxes, colour
patches: docs/shapes_findings.md); a reward model has to see the policy's distribution.
The pool is sampled exactly as GRPO samples (the config's generation settings, temperature 1, CFG)
from train-split prompts, from the newest checkpoint of --workdir (LoRA merged) or, without one,
the config's starting policy. Several pools can be joined with --merge. The answers are not stored:
`judge.policy_pool` / `judge.policy_fraction` (configs/shapes_pretrain.py) ask the oracle when
training. Prints the pool's mean exact rewards.
--layout_pairs writes no policy samples but judge_data.layout_pairs of the first --num val spatial
prompts: a true layout's chain and the same with two boxes swapped, for tools/judge_fidelity.py
--pool to show whether a judge's R_spa ranks the two (its "rho within groups").
"""
import logging
import os
import sys

import jax
import numpy as np
from absl import flags
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.data.shapes_world.oracle import oracle_rewards  # noqa: E402
from gotr1_jax.data.shapes_world.prompts import load_prompts, parse_prompt  # noqa: E402
from gotr1_jax.pretrain.judge_data import PolicyPool, layout_pairs  # noqa: E402
from gotr1_jax.rl import trainer  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_lib.define_config_file("config", os.path.join(_ROOT, "configs", "shapes_demo.py"),
                                        "A shapes_world GRPO config (file.py[:args]).")
_WORKDIR = flags.DEFINE_string("workdir", "", "A GRPO run directory; its newest checkpoint is sampled "
                               "('' or no checkpoint: the config's starting policy).")
_NUM = flags.DEFINE_integer("num", 512, "Samples in the pool.")
_BATCH = flags.DEFINE_integer("batch", 32, "Samples per sampler call.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed (prompts come from the config's seeded train stream).")
_GROUP = flags.DEFINE_integer("group", 1, "Samples per prompt, consecutive (8: GRPO's groups).")
_MERGE = flags.DEFINE_list("merge", [], "Pools to join into --out instead of sampling.")
_OUT = flags.DEFINE_string("out", None, "The .npz to write.")
_PAIRS = flags.DEFINE_boolean("layout_pairs", False, "Write layout pairs of --num val spatial prompts instead "
                              "(judge_data.layout_pairs; no policy is sampled).")


def sample_pool(config, workdir: str, num: int, batch: int, seed: int, group: int = 1) -> PolicyPool:
  """`num` samples, `group` consecutive ones per prompt (a GRPO group: judge_fidelity then reports
  the judge's agreement within groups); num and batch must be multiples of group."""
  if group < 1 or num % group or batch % group:
    raise ValueError(f"--group={group} must be >= 1 and divide --num={num} and --batch={batch}.")
  task, params, step = trainer.trained_policy(config, workdir)
  logging.info("Sampling %d from %s (step %d)", num, workdir or "the starting policy", step)
  prompts, categories, chains, images = [], [], [], []
  for i in tqdm(range(0, num, batch), desc="pool", unit="batch"):
    rows = [r for r in task.prompts.next(min(batch, num - i) // group) for _ in range(group)]
    rollout = task.rollout(params, rows, jax.random.fold_in(jax.random.key(seed), i))
    prompts += [r["prompt"] for r in rows]
    categories += [r["category"] for r in rows]
    chains += list(rollout.extras["chains"])
    images.append(np.asarray(rollout.extras["images"], np.uint8))
  return PolicyPool(prompts, categories, chains, np.concatenate(images))


def merge_pools(paths) -> PolicyPool:
  pools = [PolicyPool.load(p) for p in paths]
  return PolicyPool(sum((p.prompts for p in pools), []), sum((p.categories for p in pools), []),
                    sum((p.chains for p in pools), []), np.concatenate([p.images for p in pools]))


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  if _MERGE.value:
    pool = merge_pools(_MERGE.value)
  elif _PAIRS.value:
    pool = layout_pairs(load_prompts("spatial", "val")[:_NUM.value], np.random.default_rng(_SEED.value))
  else:
    pool = sample_pool(_CONFIG.value, _WORKDIR.value, _NUM.value, _BATCH.value, _SEED.value, _GROUP.value)
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  pool.save(_OUT.value)
  scores = [oracle_rewards(parse_prompt(p, c), ch, im) for p, c, ch, im in
            zip(pool.prompts, pool.categories, pool.chains, pool.images)]
  means = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
  print(f"Wrote {len(pool)} samples to {_OUT.value}; oracle means: "
        + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))


if __name__ == "__main__":
  flags.mark_flags_as_required(["out"])
  config_lib.run_tool(main)
