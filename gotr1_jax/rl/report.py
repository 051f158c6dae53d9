"""What a finished run shows a person: the before/after evaluation, the reward curve, sample grids.

Owns `<workdir>/report.md` and the files it shows under `<workdir>/report/`: `eval_<tag>.json`
(an evaluation's summary, so a resumed run still has the "before" numbers), `eval_<tag>.png` (its
sample grid: one row per prompt, K samples per row, the same prompts and seeds every time) and
`reward_curve.png` (from metrics.csv). It evaluates nothing itself (the task's `evaluate` does).
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from gotr1_jax.eval import paired
from gotr1_jax.eval.shapes_eval import OBJECTS_CAPTION, format_object_table, format_table
from gotr1_jax.metrics import image_grid, line_plot, read_metrics

GRID_PROMPTS = 12  # prompts shown in each before/after grid (spread over the categories)


def report_dir(workdir: str) -> str:
  return os.path.join(workdir, "report")


def grid_rows(num_prompts: int, samples: int, rows: int = GRID_PROMPTS) -> list[int]:
  """Sample indices of `rows` prompts spread evenly over the prompt list, K samples each."""
  picks = np.unique(np.linspace(0, num_prompts - 1, min(rows, num_prompts)).round().astype(int))
  return [int(p) * samples + k for p in picks for k in range(samples)]


def _write_summary(workdir: str, tag: str, summary: Mapping[str, Any]) -> None:
  with open(os.path.join(report_dir(workdir), f"eval_{tag}.json"), "w") as f:
    json.dump(summary, f, indent=2)


def save_eval(workdir: str, tag: str, step: int, result: Any, samples: int) -> dict[str, Any]:
  """Writes eval_<tag>.json and eval_<tag>.png; returns the summary (with the step)."""
  os.makedirs(report_dir(workdir), exist_ok=True)
  summary = dict(result.summary(), step=int(step))
  _write_summary(workdir, tag, summary)
  images = np.asarray(result.images)
  idx = grid_rows(images.shape[0] // samples, samples)
  Image.fromarray(image_grid([images[i] for i in idx], ncols=samples)).save(
      os.path.join(report_dir(workdir), f"eval_{tag}.png"))
  return summary


def copy_eval(source: str, source_tag: str, target: str, target_tag: str, step: int) -> None:
  """Another run's evaluation (its eval_<source_tag>.json and .png) as this run's eval_<target_tag>,
  at `step`: the grid first, the summary last, whose presence says the evaluation is there."""
  os.makedirs(report_dir(target), exist_ok=True)
  shutil.copyfile(os.path.join(report_dir(source), f"eval_{source_tag}.png"),
                  os.path.join(report_dir(target), f"eval_{target_tag}.png"))
  _write_summary(target, target_tag, dict(load_eval(source, source_tag), step=int(step)))


def load_eval(workdir: str, tag: str) -> Optional[dict[str, Any]]:
  path = os.path.join(report_dir(workdir), f"eval_{tag}.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def reward_curve(workdir: str, keys: Sequence[str] = ("reward/mean",), smooth: int = 5) -> Optional[str]:
  """reward_curve.png from metrics.csv (the columns in `keys` that exist); None without data."""
  path = os.path.join(workdir, "metrics.csv")
  if not os.path.exists(path):
    return None
  rows = read_metrics(path)
  series = {k: [(float(r["step"]), float(r[k])) for r in rows if r.get(k, "") != ""] for k in keys}
  series = {k: v for k, v in series.items() if v}
  if not series:
    return None
  out = os.path.join(report_dir(workdir), "reward_curve.png")
  os.makedirs(report_dir(workdir), exist_ok=True)
  Image.fromarray(line_plot(series, title="reward per GRPO step (bold: moving average)", smooth=smooth)).save(out)
  return out


def before_after_table(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
  """The two evaluations side by side, each change with its paired-bootstrap interval when both
  kept their per-sample scores (eval/paired.py)."""
  return format_table([(f"before (step {before['step']})", before), (f"after (step {after['step']})", after)],
                      intervals=paired.change_intervals(before, after))


def _table_lines(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
  return [f"Oracle scores on {after.get('num_samples', '?')} samples of fixed val prompts (same prompts "
          "and seeds before and after).", "", before_after_table(before, after), "",
          "The interval is a 95% paired bootstrap over the val prompts (eval/paired.py): a change whose "
          "interval holds 0 is within evaluation noise. It does not cover the spread between training "
          "runs with other seeds.", ""] + _object_lines(before, after)


def _object_lines(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
  """What became of the objects the prompts ask for, before → after (evaluations that kept it)."""
  if "objects" not in before or "objects" not in after:
    return []
  return [f"{OBJECTS_CAPTION}, before → after:", "", format_object_table(after["objects"], before=before["objects"]),
          ""]


def _grid_lines(before_png: str, after_png: str) -> list[str]:
  return ["## Samples (one row per prompt, the same prompts and seeds)", "",
          "| before | after |", "|---|---|", f"| ![before]({before_png}) | ![after]({after_png}) |", ""]


def _write(workdir: str, lines: Sequence[str]) -> str:
  path = os.path.join(workdir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path


def write_report(workdir: str, name: str, before: Mapping[str, Any], after: Mapping[str, Any],
                 curve_keys: Sequence[str] = ("reward/mean",), notes: Sequence[str] = ()) -> str:
  """report.md: the before/after table, the reward curve and the two grids; returns its path."""
  curve = reward_curve(workdir, curve_keys)
  lines = [f"# {name}: what GRPO changed", ""] + _table_lines(before, after)
  lines += list(notes) + ([""] if notes else [])
  if curve:
    lines += ["## Reward during training", "", "![reward curve](report/reward_curve.png)", ""]
  return _write(workdir, lines + _grid_lines("report/eval_before.png", "report/eval_after.png"))


def write_staged_report(workdir: str, name: str, before: Mapping[str, Any], after: Mapping[str, Any],
                        stages: Sequence[tuple[str, str, Mapping[str, Any], Mapping[str, Any]]]) -> str:
  """report.md of a run in stages (rl/stages.py): the first stage's "before" against the last one's
  "after", each stage's overall change, its reward curve and report, and the two grids. `stages`:
  (name, directory relative to `workdir`, its before, its after) in order; returns the path."""
  lines = [f"# {name}: what GRPO changed over {len(stages)} stages", ""] + _table_lines(before, after)
  lines += ["## Stages", "", "| stage | steps | overall before | overall after | change | report |",
            "|---|---|---|---|---|---|"]
  for stage, rel, b, a in stages:
    lines.append(f"| {stage} | {a['step']} | {b['overall']:.3f} | {a['overall']:.3f} | "
                 f"{a['overall'] - b['overall']:+.3f} | [{rel}/report.md]({rel}/report.md) |")
  lines.append("")
  for stage, rel, _, _ in stages:
    if os.path.exists(os.path.join(workdir, rel, "report", "reward_curve.png")):
      lines += [f"Reward during stage {stage}:", "", f"![{stage} reward curve]({rel}/report/reward_curve.png)", ""]
  return _write(workdir, lines + _grid_lines(f"{stages[0][1]}/report/eval_before.png",
                                             f"{stages[-1][1]}/report/eval_after.png"))
