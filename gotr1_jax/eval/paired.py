"""Is a before/after change real? A paired bootstrap over the prompts of two evaluations.

Owns the interval printed beside each change in a run's before/after table. Both evaluations
sample the same val prompts with the same seeds (shapes_eval.py), so each prompt's change is paired
and the unit of resampling is the prompt (its K samples share the prompt, so they are not
independent). Each resample draws, within every category, as many prompts as it has, with
replacement; a category's change is the mean over its drawn prompts of (after - before), the
overall change is the mean over categories (as the overall score is), and the chain rows
(valid_chain_frac, chain_image_iou, r_*) average over all drawn prompts. The interval is the
percentile interval of those resampled changes.

What it covers: evaluation noise, i.e. which prompts and samples the val set happens to hold. What
it does not: the spread between training runs with other seeds, which needs more runs.

`load_comparison` reads an earlier evaluation's summary.json for `tools/evaluate.py --compare` and
refuses, before any sampling, one made on other prompts, samples, split or seed.
"""
from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

import numpy as np

# Summary chain rows and the per-sample record field each is the mean of.
CHAIN_FIELDS = {"valid_chain_frac": "valid_chain", "chain_image_iou": "r_ri", "r_sem": "r_sem", "r_spa": "r_spa",
                "r_ri": "r_ri", "r_pi": "r_pi"}
SAMPLE_FIELDS = ("t2i_score",) + tuple(dict.fromkeys(CHAIN_FIELDS.values()))


def sample_table(records: list[Mapping[str, Any]]) -> dict[str, list]:
  """The per-sample numbers an evaluation's summary keeps for paired comparisons (JSON-able)."""
  out: dict[str, list] = {"prompt_index": [int(r["prompt_index"]) for r in records],
                          "category": [str(r["category"]) for r in records]}
  out.update({k: [float(r[k]) for r in records] for k in SAMPLE_FIELDS})
  return out


def load_comparison(path: str, split: str, seed: int, categories: Sequence[str], num_samples: int) -> dict:
  """The earlier summary.json at `path`, checked to pair with this evaluation: the same split and
  seed, and per-sample scores of the same prompts in order (`categories`: each prompt's category),
  `num_samples` each. Otherwise a ValueError naming the fix."""
  with open(path) as f:
    earlier = json.load(f)
  made = (earlier.get("split"), earlier.get("seed"), earlier.get("num_samples"))
  wanted = {"prompt_index": [i for i in range(len(categories)) for _ in range(num_samples)],
            "category": [c for c in categories for _ in range(num_samples)]}
  kept = earlier.get("samples") or {}
  this = (split, seed, len(categories) * num_samples)
  if made != this or any(kept.get(k) != v for k, v in wanted.items()):
    raise ValueError(f"--compare {path} was made with split/seed/samples {made} (or on other prompts, or without "
                     f"per-sample scores); this evaluation uses {this}. Evaluate both with the same --config "
                     "eval block and --split (tools/evaluate.py writes what is needed since eval/paired.py).")
  return earlier


def _paired(before: Mapping[str, Any], after: Mapping[str, Any]) -> Optional[tuple[dict, dict]]:
  a, b = before.get("samples"), after.get("samples")
  if not a or not b or a["prompt_index"] != b["prompt_index"] or a["category"] != b["category"]:
    return None  # older summaries without samples, or different prompts: nothing to pair
  return a, b


def change_intervals(before: Mapping[str, Any], after: Mapping[str, Any], *, level: float = 0.95,
                     num_resamples: int = 2000, seed: int = 0) -> Optional[dict[str, tuple[float, float]]]:
  """{row: (low, high)} of the change after - before for every category, "overall" and each chain row;
  None when the two summaries hold no paired samples (made before they were kept, or on other prompts)."""
  if not 0 < level < 1:
    raise ValueError(f"level={level} must be in (0, 1), e.g. 0.95.")
  pair = _paired(before, after)
  if pair is None:
    return None
  a, b = pair
  prompt = np.asarray(a["prompt_index"])
  ids, inverse = np.unique(prompt, return_inverse=True)
  counts = np.bincount(inverse)

  def per_prompt(field: str) -> np.ndarray:  # mean change of each prompt's K samples
    diff = np.asarray(b[field], np.float64) - np.asarray(a[field], np.float64)
    return np.bincount(inverse, weights=diff) / counts

  category = {int(p): c for p, c in zip(prompt, a["category"])}
  categories = list(dict.fromkeys(a["category"]))
  rng = np.random.default_rng(seed)
  # Drawn prompts (positions into `ids`) per category, [num_resamples, prompts of that category].
  draws = {}
  for c in categories:
    members = np.flatnonzero([category[int(p)] == c for p in ids])
    draws[c] = members[rng.integers(0, len(members), size=(num_resamples, len(members)))]
  everything = np.concatenate([draws[c] for c in categories], axis=1)

  q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
  interval = lambda x: tuple(float(v) for v in np.percentile(x, q))
  score = per_prompt("t2i_score")
  by_category = {c: score[draws[c]].mean(axis=1) for c in categories}
  out = {c: interval(v) for c, v in by_category.items()}
  out["overall"] = interval(np.mean(np.stack(list(by_category.values())), axis=0))
  for row, field in CHAIN_FIELDS.items():
    out[row] = interval(per_prompt(field)[everything].mean(axis=1))
  return out


def format_interval(interval: Optional[tuple[float, float]]) -> str:
  return "—" if interval is None else f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"
