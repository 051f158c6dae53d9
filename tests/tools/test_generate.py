"""tools/generate.py end to end: a converted tiny Janus directory in, PNGs + chains.jsonl + grid out."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.sampling.test_janus_generate import write_tiny_policy

ROOT = Path(__file__).resolve().parents[2]


def test_generate_writes_images_and_chains(tmp_path):
  ckpt = tmp_path / "ckpt"
  cfg = write_tiny_policy(ckpt)
  out = tmp_path / "out"
  run = subprocess.run(
      [sys.executable, str(ROOT / "tools" / "generate.py"),
       "--config", str(ROOT / "configs" / "generate_janus.py") + ":max_chain_tokens=6,cfg_weight=3",
       "--checkpoint", str(ckpt), "--prompt", "a red circle left of a blue square", "--prompt", "two green stars",
       "--num-samples", "2", "--out", str(out), "--seed", "3"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  records = [json.loads(line) for line in (out / "chains.jsonl").read_text().splitlines()]
  assert [(r["prompt"], r["sample"]) for r in records] == [
      ("a red circle left of a blue square", 0), ("a red circle left of a blue square", 1),
      ("two green stars", 0), ("two green stars", 1)]
  size = cfg.vq.num_patches * cfg.vq.downsample_factor
  for r in records:
    assert 1 <= r["chain_tokens"] <= 7  # at most the cap, plus an appended <begin_of_image>
    image = np.asarray(Image.open(out / r["image"]))
    assert image.shape == (size, size, 3) and image.std() > 0
  grid = np.asarray(Image.open(out / "grid.png"))
  assert grid.shape[0] >= 2 * size and grid.shape[1] >= 2 * size
  assert "Wrote 4 images" in run.stdout
