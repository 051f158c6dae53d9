"""ShapesWorld vocabulary and scene types: colours (exact RGB), shapes, textures, relations.

Owns what a scene *is* (objects with shape, colour, texture and a box in the chain's [0, 1000)
frame), the world's size settings, and the geometry of the 2D relations. It does not sample
(prompts.py, layout.py), draw (render.py) or read images (detect.py).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

from gotr1_jax.data.chain import COORD_MAX

# Shipped files (prompt splits, tokenizer); written by `python -m
# gotr1_jax.data.shapes_world.make_assets`.
ASSETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "assets", "shapes_world")

Rgb = tuple[int, int, int]
Box = tuple[int, int, int, int]  # (x1, y1, x2, y2) in the [0, COORD_MAX) frame, origin top-left


@dataclasses.dataclass(frozen=True)
class ColorSpec:
  """A colour word, its fill RGB and the RGB of its texture pattern (stripes / dots)."""

  name: str
  rgb: Rgb
  pattern_rgb: Rgb


# Chosen so that every antialiased blend inside one object (background, fill, pattern) stays at
# least ~50 RGB units from every other colour's fill-pattern segment: the oracle is then exact.
DEFAULT_PALETTE: tuple[ColorSpec, ...] = (
    ColorSpec("red", (220, 30, 30), (120, 0, 0)),
    ColorSpec("orange", (255, 140, 0), (150, 70, 0)),
    ColorSpec("yellow", (240, 220, 0), (140, 130, 0)),
    ColorSpec("green", (30, 170, 50), (0, 90, 20)),
    ColorSpec("blue", (30, 80, 230), (0, 30, 130)),
    ColorSpec("purple", (150, 50, 210), (80, 0, 120)),
    ColorSpec("pink", (250, 130, 200), (190, 40, 130)),
    ColorSpec("cyan", (0, 200, 220), (0, 110, 120)),
)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
TEXTURES: tuple[str, ...] = ("solid", "striped", "dotted")
SOLID = "solid"
# Canonical relation phrases, as written in prompts. Each is read on box centres: the relation's
# axis difference must have the right sign and dominate the other axis' difference.
RELATIONS: tuple[str, ...] = ("to the left of", "to the right of", "above", "below")
# Phrases T2I-CompBench also uses, accepted when parsing prompts.
RELATION_SYNONYMS: dict[str, str] = {
    "on the left of": "to the left of",
    "on the right of": "to the right of",
    "on the top of": "above",
    "on top of": "above",
    "on the bottom of": "below",
    "under": "below",
}
# Swapping subject and object turns each relation into its inverse (used for canonical forms).
INVERSE_RELATION: dict[str, str] = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}
COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven",
                                "eight", "nine", "ten")


@dataclasses.dataclass(frozen=True)
class WorldConfig:
  """Sizes and palette of ShapesWorld. Fractions are of the image side."""

  image_size: int = 64
  min_object_size: float = 0.16   # object box side, fraction of the image side
  max_object_size: float = 0.34
  max_aspect: float = 1.2         # box width/height stays in [1/max_aspect, max_aspect]
  max_objects: int = 4
  min_gap: float = 0.04           # empty space kept between object boxes
  border: float = 0.02            # empty space kept at the image border
  relation_margin: float = 0.05   # sampled layouts satisfy relations by at least this much
  background: Rgb = (255, 255, 255)
  background_name: str = "white"
  palette: tuple[ColorSpec, ...] = DEFAULT_PALETTE
  shapes: tuple[str, ...] = SHAPES
  textures: tuple[str, ...] = TEXTURES
  supersample: int = 4            # the renderer draws at supersample x size, then box-filters
  pattern_period: float = 1 / 16  # stripe / dot period, fraction of the image side
  stripe_duty: float = 0.5        # fraction of a stripe period drawn in the pattern colour
  dot_radius: float = 0.3         # dot radius, fraction of the period

  def __post_init__(self):
    if self.image_size < 16:
      raise ValueError(f"WorldConfig.image_size={self.image_size} is too small; use >= 16.")
    if not 0 < self.min_object_size <= self.max_object_size < 1:
      raise ValueError("WorldConfig needs 0 < min_object_size <= max_object_size < 1, got "
                       f"{self.min_object_size}, {self.max_object_size}.")
    if self.min_object_size * self.image_size < 8:
      raise ValueError(
          f"Objects of {self.min_object_size * self.image_size:.1f} px are too small to read "
          "back; raise WorldConfig.min_object_size or image_size (>= 8 px per object).")
    if SOLID not in self.textures:
      raise ValueError(f"WorldConfig.textures must contain {SOLID!r}; got {self.textures}.")

  @property
  def color_names(self) -> tuple[str, ...]:
    return tuple(c.name for c in self.palette)

  def color(self, name: str) -> ColorSpec:
    for c in self.palette:
      if c.name == name:
        return c
    raise KeyError(f"Unknown colour {name!r}; the palette has {self.color_names}.")


def article(word: str) -> str:
  return "an" if word[0] in "aeiou" else "a"


def plural(shape: str) -> str:
  return shape + ("es" if shape.endswith(("s", "x", "ch", "sh")) else "s")


def count_word(n: int) -> str:
  if not 0 <= n < len(COUNT_WORDS):
    raise ValueError(f"Count {n} has no word; counts go up to {len(COUNT_WORDS) - 1}.")
  return COUNT_WORDS[n]


@dataclasses.dataclass(frozen=True)
class SceneObject:
  """One object of a scene (or one object read back from an image)."""

  shape: str
  color: str
  texture: str
  box: Box

  @property
  def name(self) -> str:
    """The object's name in a chain: "red circle", "striped blue star" (solid is implied)."""
    words = ([] if self.texture == SOLID else [self.texture]) + [self.color, self.shape]
    return " ".join(words)


def object_attributes(name: str, world: WorldConfig = WorldConfig()) -> tuple[Optional[str], Optional[str], str]:
  """SceneObject.name read back: the (colour, shape, texture) words of a name ("dotted blue star");
  None where a word is missing; texture "solid" when none is named (names leave solid out)."""
  words = str(name).lower().split()
  pick = lambda options: next((w for w in words if w in options), None)  # noqa: E731
  return pick(world.color_names), pick(world.shapes), pick(world.textures) or SOLID


@dataclasses.dataclass(frozen=True)
class Scene:
  objects: tuple[SceneObject, ...]


def box_center(box: Sequence[float]) -> tuple[float, float]:
  x1, y1, x2, y2 = box
  return (x1 + x2) / 2, (y1 + y2) / 2


def relation_margin(relation: str, box_a: Sequence[float], box_b: Sequence[float]) -> float:
  """How well `a <relation> b` holds on box centres, in frame units: > 0 iff it holds.

  The signed difference along the relation's axis minus the absolute difference along the
  other axis, so "left of" needs a to be left of b *and* more left than above/below.
  """
  relation = RELATION_SYNONYMS.get(relation, relation)
  (ax, ay), (bx, by) = box_center(box_a), box_center(box_b)
  dx, dy = bx - ax, by - ay  # > 0: b is right of / below a
  if relation == "to the left of":
    return dx - abs(dy)
  if relation == "to the right of":
    return -dx - abs(dy)
  if relation == "above":
    return dy - abs(dx)
  if relation == "below":
    return -dy - abs(dx)
  raise ValueError(f"Unknown relation {relation!r}; use one of {RELATIONS}.")


def relation_holds(relation: str, box_a: Sequence[float], box_b: Sequence[float]) -> bool:
  return relation_margin(relation, box_a, box_b) > 0


def box_to_pixels(box: Sequence[float], size: int) -> tuple[float, float, float, float]:
  """Maps a box in the [0, 1000) frame to continuous pixel edges of a size x size image."""
  s = size / COORD_MAX
  return tuple(float(v) * s for v in box)  # type: ignore[return-value]


def pixels_to_box(pixel_box: Sequence[float], size: int) -> Box:
  """Maps pixel edges (x1, y1, x2, y2; x2/y2 exclusive) back to the integer [0, 1000) frame."""
  s = COORD_MAX / size
  return tuple(min(COORD_MAX - 1, max(0, int(round(v * s)))) for v in pixel_box)  # type: ignore

