"""Layouts: scenes hold exactly the prompt's objects, apart, inside, relations by a margin."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from gotr1_jax.data.shapes_world import layout, oracle, prompts
from gotr1_jax.data.shapes_world.world import WorldConfig, relation_margin

WORLD = WorldConfig()


def test_sampled_scenes_satisfy_their_prompts():
  rng = np.random.default_rng(0)
  gap, border = WORLD.min_gap * 1000, WORLD.border * 1000
  for i in range(300):
    spec = prompts.sample_prompt(prompts.CATEGORIES[i % 6], rng)
    scene = layout.sample_scene(spec, rng)
    assert len(scene.objects) == spec.num_objects
    assert oracle.check_objects(spec, scene.objects).perfect
    for o in scene.objects:
      x1, y1, x2, y2 = o.box
      assert border - 1 <= x1 < x2 <= 1000 - border and border - 1 <= y1 < y2 <= 1000 - border
      side = min(x2 - x1, y2 - y1)
      assert side >= WORLD.min_object_size * 1000 / WORLD.max_aspect**0.5 - 2
    for a, b in itertools.combinations(scene.objects, 2):
      assert (a.box[2] + gap <= b.box[0] or b.box[2] + gap <= a.box[0]
              or a.box[3] + gap <= b.box[1] or b.box[3] + gap <= a.box[1])
    for r in spec.relations:
      subj = next(o for o in scene.objects if spec.groups[r.subject].matches(o))
      obj = next(o for o in scene.objects if spec.groups[r.object].matches(o))
      assert relation_margin(r.relation, subj.box, obj.box) >= WORLD.relation_margin * 1000


def test_same_rng_same_scene():
  spec = prompts.parse_prompt("a red circle above a blue star and two green squares")
  a = layout.sample_scene(spec, np.random.default_rng(7))
  b = layout.sample_scene(spec, np.random.default_rng(7))
  c = layout.sample_scene(spec, np.random.default_rng(8))
  assert a == b and a != c


def test_open_attributes_are_drawn_and_texture_defaults_to_solid():
  spec = prompts.parse_prompt("a circle and a striped square")
  scene = layout.sample_scene(spec, np.random.default_rng(0))
  assert [o.shape for o in scene.objects] == ["circle", "square"]
  assert [o.texture for o in scene.objects] == ["solid", "striped"]
  assert all(o.color in WORLD.color_names for o in scene.objects)


def test_too_many_objects_raise():
  with pytest.raises(ValueError, match="max_objects"):
    layout.sample_scene(prompts.parse_prompt("five red circles"), np.random.default_rng(0))
