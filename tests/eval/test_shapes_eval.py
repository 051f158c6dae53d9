"""eval/shapes_eval.py: a policy that draws the ground truth scores 1 everywhere, one that draws
nothing scores 0, chunks keep one shape, and the table reads right."""
from __future__ import annotations

import types

import jax
import numpy as np
import pytest

from gotr1_jax.data.shapes_world.chains import scene_chain
from gotr1_jax.data.shapes_world.layout import sample_scene
from gotr1_jax.data.shapes_world.prompts import CATEGORIES, parse_prompt
from gotr1_jax.data.shapes_world.render import render_scene
from gotr1_jax.eval import shapes_eval


class OracleDrawer:
  """Stands in for a JanusGenerator: draws a true scene for each prompt (or a blank image)."""

  def __init__(self, blank: bool = False):
    self.blank, self.calls = blank, []

  def generate_batch(self, params, vq_params, prompts, rng, num_samples=1):
    self.calls.append(len(prompts))
    chains, images = [], []
    for i, text in enumerate(p for p in prompts for _ in range(num_samples)):
      scene = sample_scene(parse_prompt(text, "complex"), np.random.default_rng(i))
      chains.append("" if self.blank else scene_chain(scene))
      image = render_scene(scene)
      images.append(np.full_like(image, 255) if self.blank else image)
    return types.SimpleNamespace(chains=chains, images=np.stack(images))


@pytest.fixture(scope="module")
def specs():
  return shapes_eval.eval_prompts("val", per_category=3)


def test_ground_truth_scores_one(specs):
  gen = OracleDrawer()
  result = shapes_eval.evaluate(gen, None, None, specs, num_samples=2, rng=jax.random.key(0), batch_prompts=4)
  assert gen.calls == [4, 4, 4, 4, 4]  # 18 prompts in chunks of 4, the last padded: one shape
  assert list(result.per_category) == list(CATEGORIES)
  assert result.overall == pytest.approx(1.0)
  assert all(v == pytest.approx(1.0) for v in result.per_category.values())
  assert result.chain["valid_chain_frac"] == 1.0
  assert result.chain["r_sem"] == pytest.approx(1.0) and result.chain["r_ri"] > 0.9
  assert result.images.shape == (36, 64, 64, 3) and len(result.records) == 36
  samples = result.summary()["samples"]  # kept for paired before/after intervals (eval/paired.py)
  assert samples["prompt_index"][:5] == [0, 0, 1, 1, 2] and samples["t2i_score"] == [1.0] * 36
  assert [r["prompt"] for r in result.records[:4]] == [specs[0].text] * 2 + [specs[1].text] * 2


def test_blank_images_and_empty_chains_score_zero(specs):
  result = shapes_eval.evaluate(OracleDrawer(blank=True), None, None, specs[:3], 1, jax.random.key(0), 3)
  assert result.overall == 0.0 and result.chain["valid_chain_frac"] == 0.0 and result.chain["r_sem"] == 0.0
  objects = result.summary()["objects"]
  assert list(objects) == ["color"] and objects["color"]["asked"] == sum(g.count for s in specs[:3] for g in s.groups)
  assert objects["color"]["planned"] == 0.0 and objects["color"]["missing"] == 1.0


def test_object_breakdown_of_true_scenes_reads_every_object(specs):
  result = shapes_eval.evaluate(OracleDrawer(), None, None, specs, 2, jax.random.key(0), 6)
  objects = result.summary()["objects"]
  assert list(objects) == list(CATEGORIES)
  for category, spec_rows in zip(CATEGORIES, np.array_split(np.arange(len(specs)), len(CATEGORIES))):
    row = objects[category]
    assert row["asked"] == 2 * sum(g.count for i in spec_rows for g in specs[i].groups)
    assert row["planned"] == row["read"] == 1.0
    assert row["shape_misread"] == row["attribute_misread"] == row["missing"] == 0.0
  assert result.records[0]["objects"]["asked"] == sum(g.count for g in specs[0].groups)


def test_object_table_with_and_without_the_vq_ceiling():
  breakdown = {"color": dict(asked=8, planned=1.0, read=0.25, shape_misread=0.5, attribute_misread=0.0, missing=0.25)}
  table = shapes_eval.format_object_table(breakdown).splitlines()
  assert table[0].startswith("| category | objects asked | planned in the chain | read with every attribute |")
  assert table[2] == "| color | 8 | 1.000 | 0.250 | 0.500 | 0.000 | 0.250 |"
  with_ceiling = shapes_eval.format_object_table(breakdown, {"color": 0.625}).splitlines()
  assert with_ceiling[2].endswith("| 0.250 | 0.625 |") and "VQ round trip" in with_ceiling[0]
  earlier = {"color": dict(breakdown["color"], read=0.125, shape_misread=0.625)}
  change = shapes_eval.format_object_table(breakdown, before=earlier).splitlines()
  assert change[2] == ("| color | 8 | 1.000 → 1.000 | 0.125 → 0.250 | 0.625 → 0.500 | 0.000 → 0.000 "
                       "| 0.250 → 0.250 |")


def test_table_shows_both_runs_and_the_change():
  a = dict(per_category={"color": 0.25, "spatial": 0.5}, overall=0.375, chain={"valid_chain_frac": 1.0}, step=0)
  b = dict(per_category={"color": 0.5, "spatial": 0.75}, overall=0.625, chain={"valid_chain_frac": 1.0}, step=9)
  table = shapes_eval.format_table([("before", a), ("after", b)]).splitlines()
  assert table[0] == "| oracle score | before | after | change |"
  assert "| color | 0.250 | 0.500 | +0.250 |" in table
  assert "| **overall** | 0.375 | 0.625 | +0.250 |" in table
  with pytest.raises(ValueError, match="per_category"):
    shapes_eval.eval_prompts("val", per_category=0)
