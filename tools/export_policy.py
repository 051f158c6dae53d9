"""Writes a ShapesWorld GRPO run's newest policy (LoRA merged) as a Janus checkpoint directory.

  python tools/export_policy.py --config configs/shapes_spatial.py --workdir runs/shapes_spatial \
      --out runs/shapes_spatial/policy
  python tools/train.py --config configs/shapes_demo.py --config.task.policy_checkpoint=runs/shapes_spatial/policy

--config is the config the run was trained with (file.py[:args], overrides included), --workdir the
directory it wrote (default runs/<config.name>); of a run in stages (configs/shapes_demo_staged.py)
it writes the last stage's policy. The directory written (DeepSeek's Janus layout, the
VQ and the tokenizer, like gotr1_jax/assets/checkpoints/policy) is what tools/generate.py
--checkpoint, tools/evaluate.py --checkpoint and a later run's task.policy_checkpoint read, so one
run can start where another ended (gotr1_jax/rl/export.py).
"""
import logging
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.rl.export import export_policy  # noqa: E402
from gotr1_jax.rl.stages import final_stage  # noqa: E402

_CONFIG = config_lib.define_config_file("config", None, "The config the run was trained with (file.py[:args]).")
_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory (default runs/<config.name>).")
_OUT = flags.DEFINE_string("out", None, "The Janus checkpoint directory to write.")


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  config = _CONFIG.value
  config, workdir = final_stage(config, config_lib.run_dir(config, _WORKDIR.value))  # a staged run: its last stage
  step = export_policy(config, workdir, _OUT.value)
  print(f"Wrote the policy of {workdir} at step {step} to {_OUT.value}.")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "out"])
  config_lib.run_tool(main)
