"""Reader: exact round trip renderer -> detect_objects on 1000 scenes, tolerance to noise."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from gotr1_jax.data.shapes_world import detect, layout, prompts, render
from gotr1_jax.data.shapes_world.world import Scene, SceneObject, WorldConfig, box_to_pixels


def _scenes(n, seed, world=WorldConfig()):
  rng = np.random.default_rng(seed)
  return [layout.sample_scene(prompts.sample_prompt(prompts.CATEGORIES[i % 6], rng, world), rng,
                              world) for i in range(n)]


def _pair(truth, found, size):
  """Pairs true and found objects by box distance; returns (pairs, max box error in pixels)."""
  t = np.array([box_to_pixels(o.box, size) for o in truth])
  f = np.array([box_to_pixels(o.box, size) for o in found]).reshape(-1, 4)
  cost = np.abs(t[:, None] - f[None]).max(-1)
  rows, cols = linear_sum_assignment(cost)
  return [(truth[r], found[c]) for r, c in zip(rows, cols)], float(cost[rows, cols].max())


def test_round_trip_is_exact_on_1000_scenes():
  worst = 0.0
  for scene in _scenes(1000, seed=0):
    found = detect.detect_objects(render.render_scene(scene))
    assert len(found) == len(scene.objects), scene
    pairs, err = _pair(scene.objects, found, 64)
    worst = max(worst, err)
    for t, f in pairs:
      assert (f.shape, f.color, f.texture) == (t.shape, t.color, t.texture), (t, f)
  assert worst <= 1.0  # measured 0.51 px


def test_round_trip_at_another_image_size():
  world = WorldConfig(image_size=96)
  for scene in _scenes(60, seed=1, world=world):
    found = detect.detect_objects(render.render_scene(scene, world), world)
    pairs, err = _pair(scene.objects, found, 96)
    assert len(found) == len(scene.objects) and err <= 1.0
    assert all((f.shape, f.color, f.texture) == (t.shape, t.color, t.texture) for t, f in pairs)


def test_noisy_images_are_read_robustly():
  rng = np.random.default_rng(0)
  total = correct = 0
  for scene in _scenes(100, seed=2):
    img = render.render_scene(scene).astype(np.float64) + rng.normal(0, 8, (64, 64, 3))
    found = detect.detect_objects(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    assert len(found) == len(scene.objects)
    pairs, err = _pair(scene.objects, found, 64)
    assert err <= 1.5
    total += len(pairs)
    correct += sum((f.shape, f.color, f.texture) == (t.shape, t.color, t.texture) for t, f in pairs)
  assert correct / total >= 0.97  # measured 1.0 at sigma 8 on these scenes


def test_blank_image_and_specks_give_no_objects():
  blank = render.render_scene(Scene(()))
  assert detect.detect_objects(blank) == []
  speck = blank.copy()
  speck[10:12, 10:12] = WorldConfig().color("red").rgb  # 4 px, below the minimum area
  assert detect.detect_objects(speck) == []


def test_objects_come_back_sorted_with_frame_boxes():
  scene = Scene((SceneObject("diamond", "pink", "solid", (600, 600, 900, 900)),
                 SceneObject("cross", "green", "striped", (100, 100, 400, 400))))
  found = detect.detect_objects(render.render_scene(scene))
  assert [o.name for o in found] == ["striped green cross", "pink diamond"]
  assert np.abs(np.array(found[0].box) - (100, 100, 400, 400)).max() <= 16  # 1 px = 15.6 units


def test_non_square_images_raise():
  with pytest.raises(ValueError, match="square RGB"):
    detect.detect_objects(np.zeros((64, 32, 3), np.uint8))
