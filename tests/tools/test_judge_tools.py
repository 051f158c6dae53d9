"""tools/score.py and tools/judge_fidelity.py end to end with a tiny random judge: every answer may
be unreadable, which must score 0, be counted and never crash."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.pretrain.test_judge_train import write_tiny_judge

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, JAX_PLATFORMS="cpu")
SMALL = "--config.judge_generation.row_buckets=(8,)"


def _run(args):
  run = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  return run.stdout


def test_score_t2i_compbench_style_images(tmp_path):
  write_tiny_judge(tmp_path / "judge")
  prompts = ["a red circle", "", "two blue squares"]
  (tmp_path / "color_val.txt").write_text("\n".join(prompts) + "\n")
  images = tmp_path / "images"
  images.mkdir()
  rng = np.random.default_rng(0)
  for p in ("a red circle", "two blue squares"):
    for k in range(2):
      Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(images / f"{p}_{k:06d}.png")
  out = _run([str(ROOT / "tools" / "score.py"), "--judge", str(tmp_path / "judge"), "--prompts",
              str(tmp_path / "color_val.txt"), "--images", str(images), "--out", str(tmp_path / "out"), SMALL])
  assert "Skipped 1 empty line(s)" in out and "| color | 4 |" in out and "Unreadable answers" in out
  rows = list(csv.DictReader(open(tmp_path / "out" / "scores_color.csv")))
  assert len(rows) == 4 and all(0.0 <= float(r["r_pi"]) <= 1.0 for r in rows)


def test_judge_fidelity_prints_the_correlations(tmp_path):
  write_tiny_judge(tmp_path / "judge")
  out = _run([str(ROOT / "tools" / "judge_fidelity.py"), "--judge", str(tmp_path / "judge"), "--novq",
              "--num", "12", "--batch", "12", "--out", str(tmp_path / "fid"), SMALL])
  assert "| reward | Spearman rho | Kendall tau |" in out and "| r_pi |" in out
  result = json.loads((tmp_path / "fid" / "fidelity.json").read_text())
  assert result["n"] == 12 and set(result["per_reward"]) == {"r_sem", "r_spa", "r_ri", "r_pi", "reward"}
  # --pool: the same table on a policy's own samples (here 6 rendered pairs stand in for them).
  from gotr1_jax.eval.judge_fidelity import fidelity_sample
  from gotr1_jax.pretrain.judge_data import PolicyPool
  s = fidelity_sample(6, seed=0)
  pool = PolicyPool([x.text for x in s.specs], [x.category for x in s.specs], s.chains, s.images)
  pool.save(str(tmp_path / "pool.npz"))
  out = _run([str(ROOT / "tools" / "judge_fidelity.py"), "--judge", str(tmp_path / "judge"), "--pool",
              str(tmp_path / "pool.npz"), "--batch", "6", SMALL])
  assert f"on 6 samples of {tmp_path / 'pool.npz'}" in out and "| r_ri |" in out
