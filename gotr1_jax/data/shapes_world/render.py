"""ShapesWorld renderer: a scene -> an antialiased RGB image, deterministic to the byte.

Owns the geometry of each shape (an inside test on the unit box the shape fills exactly), the
texture patterns, and the drawing. Shapes are sampled at `supersample`^2 points per pixel and
box-filtered, in NumPy only, so the bytes never depend on a drawing library's version. Reading
images back is detect.py's job.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from gotr1_jax.data.shapes_world.world import SOLID, Scene, SceneObject, WorldConfig, box_to_pixels

_CROSS_HALF_ARM = 1 / 6  # the cross' arms are a third of its box wide
_STAR_INNER_RADIUS = 0.382  # inner / outer radius of a regular five-pointed star


def _star_polygon() -> np.ndarray:
  """The star's 10 vertices, scaled so that the star fills the unit box exactly. [10, 2]"""
  angles = -math.pi / 2 + np.arange(10) * math.pi / 5
  radii = np.where(np.arange(10) % 2 == 0, 1.0, _STAR_INNER_RADIUS)
  pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=-1)
  lo, hi = pts.min(axis=0), pts.max(axis=0)
  return (pts - lo) / (hi - lo)


_STAR = _star_polygon()


def _inside_polygon(poly: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Even-odd point-in-polygon test, vectorised over the points."""
  inside = np.zeros(np.broadcast(u, v).shape, dtype=bool)
  xs, ys = poly[:, 0], poly[:, 1]
  for i in range(len(poly)):
    xi, yi, xj, yj = xs[i], ys[i], xs[i - 1], ys[i - 1]
    crosses = (yi > v) != (yj > v)
    x_at = (xj - xi) * (v - yi) / (yj - yi + 1e-12) + xi
    inside ^= crosses & (u < x_at)
  return inside


def shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Whether unit-box points (u right, v down, both in [0, 1]) lie inside `shape`."""
  in_box = (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1)
  du, dv = np.abs(u - 0.5), np.abs(v - 0.5)
  if shape == "circle":
    inside = du**2 + dv**2 <= 0.25
  elif shape == "square":
    inside = np.ones_like(in_box)
  elif shape == "triangle":  # apex at the top centre, base along the bottom
    inside = du <= v / 2
  elif shape == "diamond":
    inside = du + dv <= 0.5
  elif shape == "cross":
    inside = (du <= _CROSS_HALF_ARM) | (dv <= _CROSS_HALF_ARM)
  elif shape == "star":
    inside = _inside_polygon(_STAR, u, v)
  else:
    raise ValueError(f"Unknown shape {shape!r}; ShapesWorld draws circle, square, triangle, "
                     "diamond, star and cross.")
  return in_box & inside


def shape_coverage(shape: str, box: tuple[float, float, float, float], height: int, width: int,
                   supersample: int) -> np.ndarray:
  """Fraction of each pixel of a height x width window covered by `shape` filling `box`
  (continuous pixel edges x1, y1, x2, y2 in the window's frame). [height, width]"""
  n = supersample
  x1, y1, x2, y2 = box
  xs = (np.arange(width * n) + 0.5) / n
  ys = (np.arange(height * n) + 0.5) / n
  inside = shape_inside(shape, (xs[None, :] - x1) / (x2 - x1), (ys[:, None] - y1) / (y2 - y1))
  return inside.reshape(height, n, width, n).mean(axis=(1, 3), dtype=np.float32)


@functools.lru_cache(maxsize=None)
def unit_moments(shape: str, samples: int = 512) -> tuple[float, float, float, float]:
  """Centroid (u, v) and standard deviations (u, v) of `shape` filling the unit box."""
  grid = (np.arange(samples) + 0.5) / samples
  inside = shape_inside(shape, grid[None, :], grid[:, None])
  u, v = np.broadcast_to(grid[None, :], inside.shape)[inside], np.broadcast_to(
      grid[:, None], inside.shape)[inside]
  return float(u.mean()), float(v.mean()), float(u.std()), float(v.std())


def texture_pattern(texture: str, x: np.ndarray, y: np.ndarray, world: WorldConfig) -> np.ndarray:
  """Whether points (x, y in output pixels) are drawn in the pattern colour for `texture`."""
  period = world.pattern_period * world.image_size
  if texture == SOLID:
    return np.zeros(np.broadcast(x, y).shape, dtype=bool)
  if texture == "striped":  # diagonal stripes, anchored to the image
    return np.mod(x + y, period) < world.stripe_duty * period
  if texture == "dotted":  # a square grid of round dots, anchored to the image
    dx, dy = np.mod(x, period) - period / 2, np.mod(y, period) - period / 2
    return dx**2 + dy**2 < (world.dot_radius * period) ** 2
  raise ValueError(f"Unknown texture {texture!r}; use one of {world.textures}.")


def _draw_object(canvas: np.ndarray, obj: SceneObject, world: WorldConfig) -> None:
  """Paints one object into the supersampled canvas [H*n, W*n, 3] in place."""
  n, size = world.supersample, world.image_size
  x1, y1, x2, y2 = (v * n for v in box_to_pixels(obj.box, size))
  if x2 <= x1 or y2 <= y1:
    raise ValueError(f"Object {obj} has an empty box; boxes need x2 > x1 and y2 > y1.")
  c0, c1 = max(0, math.floor(x1)), min(size * n, math.ceil(x2))
  r0, r1 = max(0, math.floor(y1)), min(size * n, math.ceil(y2))
  xs = np.arange(c0, c1) + 0.5  # supersampled pixel centres
  ys = np.arange(r0, r1) + 0.5
  inside = shape_inside(obj.shape, (xs[None, :] - x1) / (x2 - x1), (ys[:, None] - y1) / (y2 - y1))
  pattern = texture_pattern(obj.texture, xs[None, :] / n, ys[:, None] / n, world)
  spec = world.color(obj.color)
  region = canvas[r0:r1, c0:c1]
  region[inside & ~pattern] = spec.rgb
  region[inside & pattern] = spec.pattern_rgb


def render_scene(scene: Scene, world: WorldConfig = WorldConfig()) -> np.ndarray:
  """Draws a scene (later objects on top) on the background. Returns uint8 [size, size, 3]."""
  n, size = world.supersample, world.image_size
  canvas = np.empty((size * n, size * n, 3), dtype=np.float32)
  canvas[...] = world.background
  for obj in scene.objects:
    _draw_object(canvas, obj, world)
  # Box filter: the n x n samples of a pixel summed (rows, then columns) and scaled by 1 / n^2.
  # Every sample is an integer colour value, so each sum is exact in float32 whatever its order and
  # the bytes are those of a mean over (1, 3), which numpy computes 4x slower on this layout.
  rows = canvas.reshape(size, n, size * n * 3).sum(axis=1)
  pixels = rows.reshape(size, size, n, 3).sum(axis=2) * np.float32(1.0 / (n * n))
  return np.rint(pixels).astype(np.uint8)


def to_pil(image: np.ndarray) -> Image.Image:
  """A uint8 [H, W, 3] array as a PIL image (for saving PNGs and grids)."""
  return Image.fromarray(np.asarray(image, dtype=np.uint8))
