"""eval/paired.py: the bootstrap interval of a before/after change is zero-width for no change and
a uniform shift, as wide as the textbook standard error says for noise, pairs by prompt, and
declines summaries that cannot be paired; an earlier summary.json is read for --compare only when it
was made on the same prompts, samples, split and seed."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gotr1_jax.eval import paired, shapes_eval


def summary(scores: np.ndarray, categories: list[str], samples: int, **chain) -> dict:
  """An EvalResult.summary()-like dict: `scores` per sample, prompt-major, K = samples per prompt."""
  n = len(scores)
  prompt = np.arange(n) // samples
  cats = [categories[p * len(categories) // (n // samples)] for p in prompt]
  fields = {k: np.asarray(chain.get(k, np.zeros(n)), float).tolist() for k in paired.SAMPLE_FIELDS[1:]}
  per_category = {c: float(np.mean([s for s, x in zip(scores, cats) if x == c])) for c in dict.fromkeys(cats)}
  return dict(per_category=per_category, overall=float(np.mean(list(per_category.values()))),
              chain={"valid_chain_frac": float(np.mean(fields["valid_chain"]))}, num_samples=n, step=0,
              samples=dict(prompt_index=prompt.tolist(), category=cats, t2i_score=np.asarray(scores, float).tolist(),
                           **fields))


def test_no_change_and_a_uniform_shift_have_exact_intervals():
  rng = np.random.default_rng(0)
  base = rng.uniform(0, 0.5, size=64)
  before = summary(base, ["color", "spatial"], samples=4)
  same = paired.change_intervals(before, summary(base, ["color", "spatial"], 4))
  assert same["color"] == (0.0, 0.0) and same["overall"] == (0.0, 0.0) and same["r_ri"] == (0.0, 0.0)
  shifted = paired.change_intervals(before, summary(base + 0.25, ["color", "spatial"], 4))
  for row in ("color", "spatial", "overall"):
    assert shifted[row] == pytest.approx((0.25, 0.25))


def test_noise_gives_the_standard_error_width_and_pairs_by_prompt():
  # 400 prompts x 2 samples; each prompt's change is +1 or -1 for both its samples: mean 0, and the
  # per-prompt sd is 1, so a 95% interval is about +-1.96 / sqrt(400) = +-0.098.
  rng = np.random.default_rng(1)
  change = np.repeat(rng.choice([-1.0, 1.0], size=400), 2)
  base = np.full(800, 0.5)
  out = paired.change_intervals(summary(base, ["color"], 2), summary(base + change, ["color"], 2),
                                num_resamples=4000)
  low, high = out["color"]
  mean = change.mean()
  assert low < mean < high
  assert (high - low) / 2 == pytest.approx(1.96 * np.std(change[::2]) / np.sqrt(400), rel=0.1)
  # Treating the 800 samples as independent would wrongly shrink it by sqrt(2); pairing by prompt does not.
  assert (high - low) / 2 > 1.3 * 1.96 / np.sqrt(800)


def test_overall_is_the_mean_of_the_categories_and_chain_rows_use_their_fields():
  base = np.zeros(8)
  after_scores = np.array([1, 1, 1, 1, 0, 0, 0, 0], float)  # color +1, spatial 0
  ri = np.full(8, 0.5)
  out = paired.change_intervals(summary(base, ["color", "spatial"], 2),
                                summary(after_scores, ["color", "spatial"], 2, r_ri=ri))
  assert out["color"] == (1.0, 1.0) and out["spatial"] == (0.0, 0.0)
  assert out["overall"] == pytest.approx((0.5, 0.5))
  assert out["r_ri"] == pytest.approx((0.5, 0.5)) and out["chain_image_iou"] == pytest.approx((0.5, 0.5))


def test_summaries_that_cannot_be_paired_give_none():
  a = summary(np.zeros(8), ["color"], 2)
  other = summary(np.zeros(8), ["spatial"], 2)
  old = {k: v for k, v in a.items() if k != "samples"}
  assert paired.change_intervals(a, old) is None
  assert paired.change_intervals(a, other) is None
  with pytest.raises(ValueError, match="level"):
    paired.change_intervals(a, a, level=95)


def test_a_comparison_is_read_only_when_made_on_the_same_prompts_and_seeds(tmp_path):
  """tools/evaluate.py --compare: 2 colour and 2 spatial prompts, 2 samples each, val, seed 0."""
  path = tmp_path / "summary.json"
  path.write_text(json.dumps(dict(summary(np.zeros(8), ["color", "spatial"], 2), split="val", seed=0)))
  categories = ["color", "color", "spatial", "spatial"]
  assert paired.load_comparison(str(path), "val", 0, categories, 2)["num_samples"] == 8
  refused = {  # each with the one message that names the fix
      "other split": ("test", 0, categories, 2), "other seed": ("val", 1, categories, 2),
      "more prompts": ("val", 0, categories * 2, 2),
      "as many samples, other prompts": ("val", 0, categories * 2, 1),
      "other categories": ("val", 0, ["color", "spatial", "color", "spatial"], 2)}
  for args in refused.values():
    with pytest.raises(ValueError, match="same --config eval block and --split"):
      paired.load_comparison(str(path), *args)
  no_samples = {k: v for k, v in json.loads(path.read_text()).items() if k != "samples"}
  path.write_text(json.dumps(no_samples))
  with pytest.raises(ValueError, match="without per-sample scores"):
    paired.load_comparison(str(path), "val", 0, categories, 2)


def test_table_prints_the_interval_column():
  a = summary(np.zeros(8), ["color", "spatial"], 2)
  b = summary(np.array([1, 1, 1, 1, 0, 0, 0, 0], float), ["color", "spatial"], 2)
  table = shapes_eval.format_table([("before", a), ("after", b)], intervals=paired.change_intervals(a, b))
  lines = table.splitlines()
  assert lines[0] == "| oracle score | before | after | change | 95% interval of the change |"
  assert "| color | 0.000 | 1.000 | +1.000 | [+1.000, +1.000] |" in lines
  assert "| **overall** | 0.000 | 0.500 | +0.500 | [+0.500, +0.500] |" in lines
  assert paired.format_interval(None) == "—"
