"""A run in stages: GRPO runs one after another, each starting from the policy the one before ended with.

Owns the staged config (`config.stages`, one full run config per stage, run in `config.stage_order`)
and running it (`train_stages`): stage k trains in `<workdir>/<name>/` as a run of its own (resumable,
Ctrl-C safe, its own report), from stage k-1's newest policy written as a Janus directory
(`<workdir>/<name of k-1>/policy`, rl/export.py) with a fresh LoRA, optimizer and KL reference. Stage
k's "before" evaluation is stage k-1's "after" one (the same policy, prompts and seeds) when the two
evaluate alike, so it is not run twice. The staged run ends with `<workdir>/report.md`: the first
stage's "before" against the last stage's "after", and each stage's own change. Stages are
ShapesWorld runs (task `shapes_world`): their policy is a Janus directory, their end an evaluation.

  python tools/train.py --config configs/shapes_demo_staged.py                  # runs/shapes_demo_staged
  python tools/train.py --config configs/shapes_demo_staged.py --config.stages.demo.rl.steps=120

Re-running the command resumes the unfinished stage; finished stages are skipped.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax import config_lib
from gotr1_jax.rl import report, trainer
from gotr1_jax.rl.export import export_policy

log = logging.getLogger(__name__)

# What a ShapesWorld evaluation depends on besides the policy: equal in two stages, stage k-1's
# "after" evaluation is stage k's "before" one.
_EVAL_FIELDS = ("seed", "model", "generation", "task.tokenizer", "task.data_dir", "task.data_config",
                "task.eval_split", "task.eval_prompts_per_category", "task.eval_samples",
                "task.eval_batch_prompts")
_EXPORTED = "exported_step.txt"  # written last into a stage's policy/: the export is complete


def is_staged(config: ConfigDict) -> bool:
  return "stages" in config


def stage_runs(config: ConfigDict, workdir: str) -> list[tuple[str, ConfigDict, str]]:
  """(name, run config, run directory) of each stage in order; the run configs as `config` holds
  them (a stage after the first is given its start in `train_stages`)."""
  order = tuple(config.get("stage_order") or ())
  names = tuple(config.stages.keys())
  if sorted(order) != sorted(names) or not order:
    raise ValueError(f"config.stage_order={order!r} must name each of config.stages ({sorted(names)}) once.")
  for name in order:
    if config.stages[name].task.name != "shapes_world":
      raise ValueError(f"config.stages.{name}.task.name={config.stages[name].task.name!r}: runs in stages need "
                       "the 'shapes_world' task (a stage's policy is passed on as a Janus directory and its end "
                       "found by its evaluation); train other tasks as single runs.")
  return [(name, config.stages[name], os.path.join(workdir, name)) for name in order]


def final_stage(config: ConfigDict, workdir: str) -> tuple[ConfigDict, str]:
  """(run config, run directory) of the stage whose policy a staged run ends with, its start set;
  `config` and `workdir` themselves for a single run. What tools/evaluate.py and
  tools/export_policy.py read a staged run's policy from."""
  if not is_staged(config):
    return config, workdir
  runs = stage_runs(config, workdir)
  _, stage, directory = runs[-1]
  return _started(stage, runs[-2][2] if len(runs) > 1 else None), directory


def train_stages(config: ConfigDict, workdir: str) -> dict[str, Any]:
  """Runs (or resumes) each stage in order; returns the last stage's last metrics ({} when the last
  stage was already done, or when a stage stopped early: Ctrl-C, re-run to resume)."""
  runs = stage_runs(config, workdir)
  last: dict[str, Any] = {}
  previous = None
  for i, (name, stage, directory) in enumerate(runs):
    stage = _started(stage, previous)
    steps = int(stage.rl.steps)
    done = report.load_eval(directory, "after")
    if done is not None and done["step"] == steps and os.path.isdir(os.path.join(directory, "checkpoints")):
      log.info("Stage %s is done (%d steps in %s); skipping it.", name, steps, directory)
    else:
      tqdm.write(f"Stage {i + 1}/{len(runs)}: {name} ({steps} steps) in {directory}")
      if previous is not None:
        _share_evaluation(runs[i - 1][1], stage, previous, directory)
      last = trainer.train(stage, directory)
      done = report.load_eval(directory, "after")
      if done is None or done["step"] != steps:
        log.warning("Stage %s stopped before its %d steps; re-run the same command to resume.", name, steps)
        return {}
    if i + 1 < len(runs):
      _export(stage, directory, runs[i + 1][2])
    previous = directory
  _write_report(config, workdir, runs)
  return last


def _started(stage: ConfigDict, previous_dir: str | None) -> ConfigDict:
  """The stage's run config, starting from the policy the previous stage exported (if any)."""
  if previous_dir is None:
    return stage
  stage = ConfigDict(stage.to_dict())
  stage.task.policy_checkpoint = os.path.join(previous_dir, "policy")
  return stage


def _export(stage: ConfigDict, directory: str, next_directory: str) -> None:
  """Writes the stage's newest policy to <directory>/policy once (the marker says it is complete);
  refuses to replace one the next stage has already started from."""
  out = os.path.join(directory, "policy")
  marker = os.path.join(out, _EXPORTED)
  if os.path.exists(marker):
    with open(marker) as f:
      exported = int(f.read().strip())
    if exported == int(stage.rl.steps):
      return
    if os.path.isdir(os.path.join(next_directory, "checkpoints")):
      raise ValueError(f"{next_directory} has already trained from {directory}'s policy of step {exported}, "
                       f"and this stage now ends at step {int(stage.rl.steps)}; pass a new --workdir (or "
                       "delete the later stages' directories) to train the later stages from the new policy.")
  step = export_policy(stage, directory, out)
  with open(marker, "w") as f:
    f.write(f"{step}\n")


def _eval_settings(config: ConfigDict) -> list[Any]:
  fields = [config_lib.get_field(config, dotted, None) for dotted in _EVAL_FIELDS]
  return [f.to_dict() if isinstance(f, ConfigDict) else f for f in fields]


def _share_evaluation(previous: ConfigDict, stage: ConfigDict, previous_dir: str, directory: str) -> None:
  """Copies the previous stage's "after" evaluation as this stage's "before" one (its step 0) when
  both evaluate alike (then it is the same evaluation of the same policy); otherwise the stage runs
  its own."""
  if _eval_settings(previous) == _eval_settings(stage) and report.load_eval(directory, "before") is None:
    report.copy_eval(previous_dir, "after", directory, "before", step=0)


def _write_report(config: ConfigDict, workdir: str, runs) -> None:
  stages = [(name, os.path.relpath(directory, workdir), report.load_eval(directory, "before"),
             report.load_eval(directory, "after")) for name, _, directory in runs]
  before, after = stages[0][2], stages[-1][3]
  if before is None or after is None:
    log.warning("A stage of %s lacks its before/after evaluation file (report/eval_*.json); no report.", workdir)
    return
  after = dict(after, step=sum(a["step"] for _, _, _, a in stages))  # steps of all stages
  path = report.write_staged_report(workdir, config.get("name", "run"), before, after, stages)
  tqdm.write(f"\nBefore / after all {len(runs)} stages ({path}):\n" + report.before_after_table(before, after))
