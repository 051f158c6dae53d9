"""Which exact reward component a run's combined reward follows inside its GRPO groups.

  python tools/make_judge_pool.py --config configs/shapes_spatial.py --num 320 --group 8 --out runs/spa_groups.npz
  python tools/reward_signal.py --pool runs/spa_groups.npz                      # configs/shapes_demo.py's product
  python tools/reward_signal.py --pool runs/spa_groups.npz --config configs/shapes_spatial.py   # R_spa alone
  python tools/reward_signal.py --pool runs/spa_groups.npz --config.task.exact_spa=rubric  # R_spa's bands

Scores every sample of the pool with the oracle's exact components, combines them as the config's
`reward.combine` says, and prints per component the mean within-group Spearman rho with the
combined reward (gotr1_jax/eval/reward_signal.py). No judge and no policy are run.
"""
import logging
import os
import sys
import time

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.eval.judge_fidelity import pool_sample  # noqa: E402
from gotr1_jax.eval.reward_signal import reward_signal, signal_table  # noqa: E402
from gotr1_jax.pretrain.judge_data import PolicyPool  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = config_lib.define_config_file("config", os.path.join(_ROOT, "configs", "shapes_demo.py"),
                                        "The run config whose reward.combine is examined (file.py[:args]).")
_POOL = flags.DEFINE_string("pool", None, "A pool of GRPO groups (tools/make_judge_pool.py --group N).", required=True)


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  t0 = time.perf_counter()
  sample = pool_sample(PolicyPool.load(_POOL.value))
  config = _CONFIG.value
  spa_scale = config.get("task", {}).get("exact_spa", "fraction")
  result = reward_signal(sample, config.reward, spa_scale=spa_scale)
  print(f"reward.combine={config.reward.combine!r}, R_spa read as {spa_scale!r} (task.exact_spa), on "
        f"{len(sample.specs)} samples of {_POOL.value} ({time.perf_counter() - t0:.0f} s):")
  print(signal_table(result))


if __name__ == "__main__":
  config_lib.run_tool(main)
