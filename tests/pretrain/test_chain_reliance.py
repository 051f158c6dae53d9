"""pretrain/chain_reliance.py: the edits keep the text a consistent scene description that no longer
matches the image, and the NLLs it reports are the scorer's on exactly those edited batches."""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data.shapes_world.chains import parse_chain_objects
from gotr1_jax.data.shapes_world.prompts import parse_prompt
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.pretrain.chain_reliance import (
    EDITS, TextBatch, chain_reliance, derangement, edited, permute_words)
from gotr1_jax.pretrain.scenes import SceneStream

WORLD = WorldConfig()


def _batch(n: int = 8) -> tuple[TextBatch, list]:
  b = SceneStream("val", 0).batch(0, n)
  return TextBatch(b.prompts, b.chains, b.images), b.specs


def test_derangement_moves_every_word():
  rng = np.random.default_rng(0)
  for _ in range(20):
    m = derangement(WORLD.shapes, rng)
    assert sorted(m) == sorted(m.values()) == sorted(WORLD.shapes)
    assert all(k != v for k, v in m.items())
  with pytest.raises(ValueError, match="two words"):
    derangement(["circle"], rng)


def test_permute_words_fixes_articles_and_plurals():
  m = {"orange": "red", "red": "orange"}
  assert permute_words("an orange star and a red cross", m) == "a red star and an orange cross"
  m = {"cross": "star", "star": "cross"}
  assert permute_words("two crosses and a star; starry", m, plurals=True) == "two stars and a cross; starry"


@pytest.mark.parametrize("edit,field", [("shapes_permuted", "shape"), ("colors_permuted", "color")])
def test_permuted_text_is_consistent_and_changes_every_object(edit, field):
  batch, specs = _batch()
  rng = np.random.default_rng(1)
  out = edited(batch, edit, rng, WORLD)
  np.testing.assert_array_equal(out.images, batch.images)
  for spec, p, c, p0, c0 in zip(specs, out.prompts, out.chains, batch.prompts, batch.chains):
    new_spec = parse_prompt(p, spec.category, WORLD)  # still a well-formed ShapesWorld prompt
    before = parse_chain_objects(c0, WORLD).objects
    after = parse_chain_objects(c, WORLD).objects
    assert len(after) == len(before) > 0
    for a, b in zip(after, before):
      assert getattr(a, field) != getattr(b, field) and a.box == b.box
    for g_new, g_old in zip(new_spec.groups, spec.groups):
      assert getattr(g_new, field) != getattr(g_old, field) and g_new.count == g_old.count


def test_reliance_reports_the_scorer_on_each_edit():
  batch, _ = _batch(4)
  seen = []

  def scorer(tb: TextBatch) -> float:
    seen.append(tb)
    return float(len(" ".join(tb.chains)))  # any deterministic function of the edited text

  out = chain_reliance(scorer, [batch, batch], seed=3, world=WORLD)
  assert sorted(out) == sorted(f"reliance/{e}" for e in EDITS)
  assert len(seen) == 2 * len(EDITS)
  assert out["reliance/true"] == float(len(" ".join(batch.chains)))
  rolled = seen[EDITS.index("chains_rolled")]
  assert rolled.chains == batch.chains[1:] + batch.chains[:1] and rolled.prompts[0] == batch.prompts[1]
  with pytest.raises(ValueError, match="Unknown edit"):
    edited(batch, "shuffle", np.random.default_rng(0), WORLD)
