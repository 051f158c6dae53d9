"""Renderer: byte determinism, exact fills and antialiased edges, shape areas, texture duty."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from gotr1_jax.data.shapes_world import render
from gotr1_jax.data.shapes_world.world import Scene, SceneObject, WorldConfig

WORLD = WorldConfig()
BG = np.array(WORLD.background, dtype=np.float64)


def _scene(*objs):
  return Scene(tuple(SceneObject(*o) for o in objs))


def test_render_is_byte_identical_and_pinned():
  scene = _scene(("star", "red", "striped", (100, 120, 400, 420)),
                 ("circle", "blue", "dotted", (520, 480, 900, 880)),
                 ("triangle", "yellow", "solid", (600, 60, 900, 330)))
  a, b = render.render_scene(scene), render.render_scene(scene)
  assert a.dtype == np.uint8 and a.shape == (64, 64, 3)
  assert a.tobytes() == b.tobytes()
  # Pinned so that any change of the drawing shows up (the shipped models were trained on it).
  assert hashlib.sha256(a.tobytes()).hexdigest()[:16] == _PINNED


def test_pixel_aligned_square_is_exact():
  # 1000 / 64 = 15.625 units per pixel: (250, 250, 500, 500) is pixels [16, 32).
  img = render.render_scene(_scene(("square", "green", "solid", (250, 250, 500, 500))))
  expected = np.broadcast_to(BG, (64, 64, 3)).copy()
  expected[16:32, 16:32] = WORLD.color("green").rgb
  np.testing.assert_array_equal(img, expected.astype(np.uint8))


def test_antialiased_edge_is_the_coverage_weighted_blend():
  # x1 = 258 units = 16.512 px: with 4 x 4 samples, column 16 has 2 of 4 sample columns inside.
  img = render.render_scene(_scene(("square", "red", "solid", (258, 250, 500, 500))))
  red = np.array(WORLD.color("red").rgb, dtype=np.float64)
  np.testing.assert_array_equal(img[20, 16], np.rint(0.5 * red + 0.5 * BG).astype(np.uint8))
  np.testing.assert_array_equal(img[20, 17], red.astype(np.uint8))
  np.testing.assert_array_equal(img[20, 15], BG.astype(np.uint8))


def _star_fill_ratio(inner: float) -> float:
  # Ten triangles with sides 1 and `inner` at 36 degrees, over the star's bounding box.
  area = 5 * inner * math.sin(math.radians(36))
  return area / (2 * math.sin(math.radians(72)) * (1 + math.cos(math.radians(36))))


@pytest.mark.parametrize("shape,fill", [
    ("circle", math.pi / 4), ("square", 1.0), ("triangle", 0.5), ("diamond", 0.5),
    ("cross", 5 / 9), ("star", _star_fill_ratio(0.382))])
def test_shape_fills_its_box_with_the_analytic_area(shape, fill):
  cov = render.shape_coverage(shape, (0.0, 0.0, 96.0, 96.0), 96, 96, 8)
  assert abs(cov.mean() - fill) < 0.006
  # Every shape touches all four sides of its box.
  assert cov[0].max() > 0 and cov[-1].max() > 0 and cov[:, 0].max() > 0 and cov[:, -1].max() > 0


def test_triangle_points_up():
  cov = render.shape_coverage("triangle", (0.0, 0.0, 32.0, 32.0), 32, 32, 4)
  assert cov[1].sum() < 3 and cov[-1].sum() == pytest.approx(32.0, abs=1.0)


@pytest.mark.parametrize("texture,duty", [
    ("striped", WORLD.stripe_duty), ("dotted", math.pi * WORLD.dot_radius**2), ("solid", 0.0)])
def test_texture_pattern_fraction(texture, duty):
  img = render.render_scene(_scene(("square", "blue", texture, (0, 0, 999, 999))))
  spec = WORLD.color("blue")
  fill, along = np.array(spec.rgb, float), np.array(spec.pattern_rgb, float) - spec.rgb
  # Each pixel is fill + f * (pattern - fill); the mean of f is the pattern's area fraction, up
  # to the 16 x 16 samples per pattern period (a dot is a disc of radius 4.8 samples).
  f = ((img[:60, :60].astype(float) - fill) @ along) / (along @ along)
  assert abs(f.mean() - duty) < 0.015


def test_later_objects_are_drawn_on_top():
  img = render.render_scene(_scene(("square", "red", "solid", (0, 0, 500, 500)),
                                   ("square", "cyan", "solid", (250, 250, 750, 750))))
  np.testing.assert_array_equal(img[20, 20], WORLD.color("cyan").rgb)
  np.testing.assert_array_equal(img[10, 10], WORLD.color("red").rgb)


def test_other_image_sizes_scale_the_scene():
  world = WorldConfig(image_size=128)
  img = render.render_scene(_scene(("square", "green", "solid", (250, 250, 500, 500))), world)
  assert img.shape == (128, 128, 3)
  np.testing.assert_array_equal(img[32:64, 32:64], np.broadcast_to(
      np.array(WORLD.color("green").rgb, np.uint8), (32, 32, 3)))
  assert (img[:32] == 255).all()


def test_bad_objects_raise():
  with pytest.raises(ValueError, match="Unknown shape 'hexagon'"):
    render.render_scene(_scene(("hexagon", "red", "solid", (0, 0, 500, 500))))
  with pytest.raises(ValueError, match="empty box"):
    render.render_scene(_scene(("square", "red", "solid", (500, 0, 500, 500))))
  with pytest.raises(KeyError, match="Unknown colour 'teal'"):
    render.render_scene(_scene(("square", "teal", "solid", (0, 0, 500, 500))))


_PINNED = "186b5a5a1f68679c"
