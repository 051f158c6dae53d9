"""tools/evaluate.py end to end on a tiny random policy: the table, summary.json, samples and grid."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.sampling.test_janus_generate import write_tiny_policy

ROOT = Path(__file__).resolve().parents[2]
CONFIG = '''
from ml_collections import ConfigDict

def get_config():
  return ConfigDict(dict(eval=dict(
      prompts_per_category=1, num_samples=2, batch_prompts=3, seed=0, grid_prompts=4,
      generation=dict(max_chain_tokens=6, cfg_weight=3.0, prompt_buckets=(48,), image_prompt_buckets=(64,),
                      decode_batch_size=6))))
'''


def test_evaluate_prints_the_table_and_writes_files(tmp_path):
  write_tiny_policy(tmp_path / "policy")
  (tmp_path / "eval_config.py").write_text(CONFIG)
  run = subprocess.run(
      [sys.executable, str(ROOT / "tools" / "evaluate.py"), "--config", str(tmp_path / "eval_config.py"),
       "--checkpoint", str(tmp_path / "policy"), "--split", "val", "--out", str(tmp_path / "out"),
       "--reliance_batches", "1"],
      capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, JAX_PLATFORMS="cpu"), timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "| oracle score | val |" in run.stdout and "| **overall** |" in run.stdout
  summary = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert summary["num_samples"] == 12 and summary["split"] == "val"
  assert set(summary["per_category"]) == {"color", "shape", "texture", "spatial", "numeracy", "complex"}
  assert all(0.0 <= v <= 1.0 for v in summary["per_category"].values())
  assert len((tmp_path / "out" / "samples.jsonl").read_text().splitlines()) == 12
  assert (tmp_path / "out" / "grid.png").stat().st_size > 0
  # Where the scores are lost: per category, the objects asked for and what the oracle read of them,
  # beside the VQ's round trip of true scenes (--vq_scenes, 2 per prompt by default).
  assert "| category | objects asked | planned in the chain | read with every attribute |" in run.stdout
  assert set(summary["objects"]) == set(summary["per_category"]) == set(summary["vq_roundtrip"])
  for row in summary["objects"].values():
    outcomes = row["read"] + row["shape_misread"] + row["attribute_misread"] + row["missing"]
    assert row["asked"] >= 2 and abs(outcomes - 1.0) < 1e-9
  assert all(0.0 <= v <= 1.0 for v in summary["vq_roundtrip"].values())
  # A config without a `policy` block measures the chain reliance with the shipped SFT settings.
  assert "shapes_permuted" in run.stdout
  assert set(summary["reliance"]) == {"reliance/true", "reliance/shapes_permuted", "reliance/colors_permuted",
                                      "reliance/chains_rolled"}
  assert all(v > 0 for v in summary["reliance"].values())


RUN_CONFIG = '''
from tests.rl.test_shapes_world import tiny_config

def get_config():
  return tiny_config({policy!r}, {data!r}, 2)
'''


def test_a_run_directory_compared_with_its_starting_policy(tmp_path):
  """--workdir evaluates a GRPO run's policy (here a run with no checkpoint yet: its starting policy),
  and --compare pairs it with the --checkpoint evaluation of that same policy: every change and
  every interval is exactly 0. A comparison made on other prompts is refused up front."""
  write_tiny_policy(tmp_path / "policy")
  (tmp_path / "eval_config.py").write_text(CONFIG)
  run_config = RUN_CONFIG.format(policy=str(tmp_path / "policy"), data=str(tmp_path / "data"))
  (tmp_path / "run_config.py").write_text(run_config)
  evaluate = [sys.executable, str(ROOT / "tools" / "evaluate.py"), "--config", str(tmp_path / "eval_config.py"),
              "--split", "val", "--reliance_batches", "0"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  first = subprocess.run(evaluate + ["--checkpoint", str(tmp_path / "policy"), "--out", str(tmp_path / "a")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert first.returncode == 0, first.stderr[-3000:]
  run = subprocess.run(evaluate + ["--run_config", str(tmp_path / "run_config.py"), "--workdir", str(tmp_path / "run"),
                                   "--out", str(tmp_path / "b"), "--compare", str(tmp_path / "a" / "summary.json")],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "| oracle score | earlier | this | change | 95% interval of the change |" in run.stdout
  summary = json.loads((tmp_path / "b" / "summary.json").read_text())
  assert summary["checkpoint"].endswith("(step 0)") and summary["seed"] == 0
  table = run.stdout.split("Against")[1]
  assert "| **overall** |" in table and table.count("+0.000 | [+0.000, +0.000] |") >= 7
  # As many samples (6 prompts x 2 = 12 prompts x 1) but other prompts: refused before sampling, with the fix
  # named, not paired silently (tests/eval/test_paired.py checks the other ways a comparison is refused).
  (tmp_path / "other.py").write_text(CONFIG.replace("prompts_per_category=1, num_samples=2",
                                                    "prompts_per_category=2, num_samples=1"))
  bad = subprocess.run([sys.executable, str(ROOT / "tools" / "evaluate.py"), "--config", str(tmp_path / "other.py"),
                        "--checkpoint", str(tmp_path / "policy"), "--out", str(tmp_path / "other"),
                        "--compare", str(tmp_path / "a" / "summary.json")],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
  assert bad.returncode != 0 and not (tmp_path / "other").exists()
  assert "other prompts" in bad.stderr and "same --config eval block" in bad.stderr
