"""A run in stages (rl/stages.py) at a tiny config: stage 2 starts from stage 1's exported policy, its
"before" evaluation is stage 1's "after" one (checked against a fresh evaluation of that policy), the
report spans both, re-running skips finished stages, and a stage that would change under a later
one that already trained from it is refused."""
from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import ConfigDict

from configs import shapes_demo, shapes_demo_staged, shapes_spatial
from gotr1_jax import config_lib
from gotr1_jax.metrics import read_metrics
from gotr1_jax.rl import stages, trainer
from tests.rl.test_shapes_world import policy_dir, tiny_config  # noqa: F401  (policy_dir is a fixture)


def staged(policy_dir, data_dir, first_steps: int = 1) -> ConfigDict:
  layout = tiny_config(policy_dir, data_dir, first_steps)  # like configs/shapes_spatial.py: chains only
  layout.task.train_categories = ("spatial",)
  layout.task.loss_tokens = "chain"
  layout.task.sample_images = False
  layout.reward.combine = "weighted_sum"
  layout.reward.weights.update(dict(r_sem=0.0, r_spa=1.0, r_ri=0.0, r_pi=0.0))
  return ConfigDict(dict(name="tiny_staged", stage_order=("layout", "demo"),
                         stages=dict(layout=layout, demo=tiny_config(policy_dir, data_dir, 2))))


def test_two_stages_then_resume(policy_dir, tmp_path):
  workdir = tmp_path / "run"
  config = staged(policy_dir, tmp_path / "data")
  last = stages.train_stages(config, str(workdir))
  assert np.isfinite(last["reward/mean"])
  first, second = workdir / "layout", workdir / "demo"
  layout_rows = read_metrics(str(first / "metrics.csv"))
  assert [int(r["step"]) for r in layout_rows if r["reward/mean"]] == [1]
  assert "reward/r_spa" in layout_rows[0] and "reward/r_ri" not in layout_rows[0]  # no image was drawn
  assert [int(r["step"]) for r in read_metrics(str(second / "metrics.csv")) if r["reward/mean"]] == [1, 2]
  assert (first / "policy" / "exported_step.txt").read_text().strip() == "1"

  # Stage 2 starts from stage 1's policy (LoRA merged), which is what the last stage's config names.
  final, directory = stages.final_stage(config, str(workdir))
  assert directory == str(second) and final.task.policy_checkpoint == str(first / "policy")
  _, trained, step = trainer.trained_policy(config.stages.layout, str(first))
  task, start, zero = trainer.trained_policy(final, str(tmp_path / "none"))
  assert (step, zero) == (1, 0)
  for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  # Stage 2's "before" is stage 1's "after": the same numbers a fresh evaluation of its start gives.
  load = lambda d, tag: json.loads((d / "report" / f"eval_{tag}.json").read_text())
  assert load(second, "before") == dict(load(first, "after"), step=0)  # stage 2's step 0
  fresh = dict(task.evaluate(start, jax.random.key(int(final.seed) + 1)).summary(), step=0)
  assert json.loads(json.dumps(fresh)) == load(second, "before")
  assert (second / "report" / "eval_before.png").stat().st_size > 0

  # The staged report: the first stage's start against the last one's end, and each stage's change.
  report = (workdir / "report.md").read_text()
  assert "over 2 stages" in report and "| oracle score | before (step 0) | after (step 3) |" in report
  b, a = load(first, "before"), load(second, "after")
  assert f"| demo | 2 | {load(first, 'after')['overall']:.3f} | {a['overall']:.3f} |" in report
  assert f"| layout | 1 | {b['overall']:.3f} |" in report
  assert "layout/report/eval_before.png" in report and "demo/report/eval_after.png" in report

  # Re-running skips both finished stages: nothing is trained or exported again.
  marker = (first / "policy" / "exported_step.txt").stat().st_mtime_ns
  written = [(d / "metrics.csv").read_text() for d in (first, second)]
  assert stages.train_stages(config, str(workdir)) == {}
  assert [(d / "metrics.csv").read_text() for d in (first, second)] == written
  assert (first / "policy" / "exported_step.txt").stat().st_mtime_ns == marker

  # Lengthening stage 1 under a stage 2 that already trained from it is refused, naming the fix.
  with pytest.raises(ValueError, match="pass a new --workdir"):
    stages.train_stages(staged(policy_dir, tmp_path / "data", first_steps=2), str(workdir))


def test_stage_order_must_name_each_stage_and_stages_are_shapes_world_runs():
  config = shapes_demo_staged.get_config()
  config.stage_order = ("layout",)
  with pytest.raises(ValueError, match="must name each of config.stages"):
    stages.stage_runs(config, "runs/x")
  assert stages.final_stage(shapes_demo.get_config(), "runs/x")[1] == "runs/x"  # a single run is itself
  config = shapes_demo_staged.get_config()
  config.stages.demo.task.name = "toy"
  with pytest.raises(ValueError, match="need the 'shapes_world' task"):
    stages.stage_runs(config, "runs/x")


def test_staged_demo_is_the_measured_pair():
  # The pair measured in session 26: 60 steps of configs/shapes_spatial.py, then 100 of shapes_demo.
  config = shapes_demo_staged.get_config("seed=2")
  assert config.stages.layout.to_dict() == shapes_spatial.get_config("steps=60,seed=2").to_dict()
  assert config.stages.demo.to_dict() == shapes_demo.get_config("steps=100,seed=2").to_dict()
  assert [name for name, _, _ in stages.stage_runs(config, "runs/s")] == ["layout", "demo"]
  final, directory = stages.final_stage(config, "runs/s")
  assert (final.task.policy_checkpoint, directory) == ("runs/s/layout/policy", "runs/s/demo")


def test_a_stage_field_is_overridden_on_the_command_line(monkeypatch):
  # What README shows: --config.stages.<stage>.<field>=... reaches that stage's run config only.
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs",
                      "shapes_demo_staged.py")
  argv = ["train.py", f"--config={path}:layout_steps=40", "--config.stages.demo.rl.beta=0.05"]
  monkeypatch.setattr(sys, "argv", argv)
  values = flags.FlagValues()
  config = config_lib.define_config_file("config", None, "help", flag_values=values)
  values(argv)
  assert config.value.stages.demo.rl.beta == 0.05 and config.value.stages.layout.rl.beta == 0.03
  assert config.value.stages.layout.rl.steps == 40 and config.value.stages.demo.rl.steps == 100
