"""Trains ShapesWorld's tiny checkpoints from scratch (VQ, then SFT policy, then judge).

  python tools/pretrain_shapes.py --config configs/shapes_pretrain.py [--only vq|policy|judge]
      [--workdir runs/shapes_pretrain] [--out_dir gotr1_jax/assets/checkpoints]

Metrics go to <workdir>/<stage>/metrics.csv (+ TensorBoard, PNG grids); checkpoints to
<out_dir>/<stage>/ (safetensors + config.json).
"""
import logging
import os
import sys

from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from gotr1_jax import config_lib  # noqa: E402
from gotr1_jax.pretrain import pipeline  # noqa: E402

_CONFIG = config_lib.define_config_file("config", None, "Path to a config file (file.py[:args]).")
_ONLY = flags.DEFINE_enum("only", None, list(pipeline.STAGES), "Run one stage only.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Metrics directory (default config.workdir).")
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Checkpoint directory (default config.out_dir).")


def main(argv):
  del argv
  logging.getLogger("absl").setLevel(logging.WARNING)
  stages = (_ONLY.value,) if _ONLY.value else pipeline.STAGES
  results = pipeline.run_stages(_CONFIG.value, stages, _WORKDIR.value or "", _OUT_DIR.value or "")
  for stage, metrics in results.items():
    print(f"{stage}: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  config_lib.run_tool(main)
