"""ShapesWorld object reader: an image -> its objects (shape, colour, texture, box).

Owns reading pixels back: palette segmentation, connected components, boxes from antialiased
coverage, shape by matching coverage templates, texture from the pattern pixels. Exact on
rendered scenes (objects kept apart by WorldConfig.min_gap); tolerant of noisy generated images
through the colour tolerance and the minimum component area. Scoring lives in oracle.py.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from gotr1_jax.data.shapes_world.render import shape_coverage, unit_moments
from gotr1_jax.data.shapes_world.world import SOLID, SceneObject, WorldConfig, pixels_to_box

BACKGROUND, UNASSIGNED = -1, -2
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclasses.dataclass(frozen=True)
class DetectConfig:
  """Tolerances of the reader; the defaults are exact on rendered scenes."""

  color_tolerance: float = 40.0   # RGB distance to a colour's fill-pattern segment to count
  min_area: float = 0.1           # component area, fraction of the smallest object's box
  grow: float = 1 / 32            # antialiased rim gathered around a component, image fraction
  solid_max_pattern: float = 0.1  # pattern-pixel fraction below which an object is solid
  stripe_min_anisotropy: float = 0.5  # along-minus-across stripe agreement for "striped"


@dataclasses.dataclass(frozen=True)
class PixelLabels:
  """Per-pixel palette assignment of an image."""

  labels: np.ndarray    # [H, W] int: colour index, BACKGROUND or UNASSIGNED
  pattern: np.ndarray   # [H, W] bool: nearer the colour's pattern RGB than its fill RGB


def label_pixels(image: np.ndarray, world: WorldConfig = WorldConfig(),
                 config: DetectConfig = DetectConfig()) -> PixelLabels:
  """Assigns each pixel to the nearest fill-pattern colour segment or the background."""
  img = np.asarray(image, dtype=np.float32)
  fill = np.array([c.rgb for c in world.palette], dtype=np.float32)               # [C, 3]
  along = np.array([c.pattern_rgb for c in world.palette], np.float32) - fill     # [C, 3]
  diff = img[None] - fill[:, None, None]                                          # [C, H, W, 3]
  t = np.clip(np.einsum("chwk,ck->chw", diff, along) / (along**2).sum(-1)[:, None, None], 0, 1)
  residual = diff - t[..., None] * along[:, None, None]
  dist2 = np.einsum("chwk,chwk->chw", residual, residual)                          # [C, H, W]
  bg_diff = img - np.array(world.background, np.float32)
  bg_dist2 = np.einsum("hwk,hwk->hw", bg_diff, bg_diff)
  all_dist2 = np.concatenate([bg_dist2[None], dist2])
  nearest = all_dist2.argmin(axis=0)
  near_enough = np.take_along_axis(all_dist2, nearest[None], 0)[0] < config.color_tolerance**2
  labels = np.where(near_enough, nearest - 1, UNASSIGNED)
  t_own = np.take_along_axis(t, np.maximum(nearest - 1, 0)[None], axis=0)[0]
  return PixelLabels(labels=labels.astype(np.int32), pattern=(labels >= 0) & (t_own > 0.5))


def _shift_agreement(pattern: np.ndarray, inside: np.ndarray, dy: int, dx: int) -> float:
  """P(pattern at p + (dy, dx) | pattern at p), over pixel pairs both inside the object."""
  h, w = pattern.shape
  ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
  ys2, xs2 = slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx))
  both = inside[ys, xs] & inside[ys2, xs2] & pattern[ys, xs]
  return float((both & pattern[ys2, xs2]).sum() / max(1, both.sum()))


def _texture(pattern: np.ndarray, inside: np.ndarray, world: WorldConfig, size: int,
             config: DetectConfig) -> str:
  if pattern[inside].mean() < config.solid_max_pattern:
    return SOLID
  # Stripes run along (1, -1): a quarter period along them keeps the pattern, across flips it.
  h = max(1, round(world.pattern_period * size / 4))
  anisotropy = (_shift_agreement(pattern, inside, -h, h) - _shift_agreement(pattern, inside, h, h))
  return "striped" if anisotropy > config.stripe_min_anisotropy else "dotted"


def _fit_shape(coverage: np.ndarray, world: WorldConfig,
               ) -> tuple[str, tuple[float, float, float, float]]:
  """The shape, and its box in the window's pixel frame, that best explain a coverage window.

  For each shape, the box follows from the coverage's centroid and spread and the shape's own
  unit-box moments; the shape whose template at that box best matches (soft IoU) wins.
  """
  h, w = coverage.shape
  mass = coverage.sum()
  ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
  px, py = coverage.sum(axis=0) / mass, coverage.sum(axis=1) / mass
  cx, cy = px @ xs, py @ ys
  # A box-filtered pixel adds the variance of a unit interval (1/12) to each axis.
  sx = math.sqrt(max(px @ (xs - cx) ** 2 - 1 / 12, 1e-6))
  sy = math.sqrt(max(py @ (ys - cy) ** 2 - 1 / 12, 1e-6))
  best, best_box, best_score = world.shapes[0], (0.0, 0.0, float(w), float(h)), -1.0
  for shape in world.shapes:
    mu_u, mu_v, sd_u, sd_v = unit_moments(shape)
    bw, bh = sx / sd_u, sy / sd_v
    box = (cx - mu_u * bw, cy - mu_v * bh, cx + (1 - mu_u) * bw, cy + (1 - mu_v) * bh)
    template = shape_coverage(shape, box, h, w, world.supersample)
    score = np.minimum(template, coverage).sum() / max(1e-6, np.maximum(template, coverage).sum())
    if score > best_score:
      best, best_box, best_score = shape, box, score
  return best, best_box


def detect_objects(image: np.ndarray, world: WorldConfig = WorldConfig(),
                   config: DetectConfig = DetectConfig()) -> list[SceneObject]:
  """Reads the objects of a square RGB image (uint8 [H, W, 3], any size), sorted by box.

  Boxes are in the chain's [0, 1000) frame.
  """
  img = np.asarray(image)
  if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] != img.shape[1]:
    raise ValueError(f"detect_objects reads square RGB images [H, H, 3]; got {img.shape}.")
  size = img.shape[0]
  px = label_pixels(img, world, config)
  bg = np.array(world.background, np.float32)
  min_area = config.min_area * (world.min_object_size * size) ** 2
  grow = max(1, math.ceil(config.grow * size))
  objects = []
  for k in np.unique(px.labels[px.labels >= 0]):
    family = px.labels == k
    comps, n = ndimage.label(family, structure=_EIGHT)
    if n == 0:
      continue
    areas = ndimage.sum_labels(family, comps, np.arange(1, n + 1))
    axis = np.array(world.palette[k].rgb, np.float32) - bg
    for i, sl in enumerate(ndimage.find_objects(comps), start=1):
      if areas[i - 1] < min_area:
        continue
      win = tuple(slice(max(0, s.start - grow), min(size, s.stop + grow)) for s in sl)
      comp = comps[win] == i
      # The antialiased rim: grown component, minus other colours and other same-colour objects.
      allowed = (px.labels[win] < 0) | comp
      region = ndimage.binary_dilation(comp, _EIGHT, iterations=grow) & allowed
      coverage = np.clip((img[win].astype(np.float32) - bg) @ axis / (axis @ axis), 0, 1)
      coverage = np.where(region, coverage, 0.0)
      if coverage.sum() <= 0:
        continue
      shape, (x1, y1, x2, y2) = _fit_shape(coverage, world)
      texture = _texture(px.pattern[win], comp, world, size, config)
      oy, ox = win[0].start, win[1].start
      box = pixels_to_box((ox + x1, oy + y1, ox + x2, oy + y2), size)
      objects.append(SceneObject(shape=shape, color=world.palette[k].name, texture=texture,
                                 box=box))
  return sorted(objects, key=lambda o: (o.box[1], o.box[0], o.name))
