"""Runs a GRPO job from a config file.

  python tools/train.py --config configs/toy_demo.py [--workdir runs/NAME]

Re-running the same command resumes from the newest checkpoint in the workdir; Ctrl-C saves and
exits cleanly. A config with `stages` (configs/shapes_demo_staged.py) runs them one after another,
each in <workdir>/<stage> from the policy the one before ended with (gotr1_jax/rl/stages.py).
On a CPU host the batch is spread over one XLA device per core, up to 8 (gotr1_jax/host_devices.py;
`XLA_FLAGS=--xla_force_host_platform_device_count=1` keeps one).
"""
import logging
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import host_devices  # noqa: E402

host_devices.split_cpu()  # before jax is imported: one XLA CPU device per core for the data axis
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.rl import stages, trainer  # noqa: E402

_CONFIG = config_lib.define_config_file("config", None, "Path to a config file (file.py[:args]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default runs/<config.name>).")


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  config = _CONFIG.value
  workdir = config_lib.run_dir(config, _WORKDIR.value)
  if stages.is_staged(config):
    last, files = stages.train_stages(config, workdir), "report.md; each stage's run in a directory of its own"
  else:
    last, files = trainer.train(config, workdir), "metrics.csv, tensorboard/, checkpoints/"
  print(f"Done: {workdir} ({files}). Last step: "
        + ", ".join(f"{k}={v:.4g}" for k, v in sorted(last.items()) if k.startswith("reward/")))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  config_lib.run_tool(main)
