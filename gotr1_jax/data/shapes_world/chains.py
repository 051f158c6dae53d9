"""ShapesWorld reasoning chains: ground-truth GoT chains for scenes; chains read back as objects.

Owns the short scene sentence and the mapping scene <-> chain objects; the span format itself is
gotr1_jax.data.chain's:
`<|obj_start|>red circle<|obj_end|> <|box_start|>(x1,y1),(x2,y2)<|box_end|>`.
"""
from __future__ import annotations

import dataclasses

from gotr1_jax.data.chain import COORD_MAX, Obj, format_chain, parse_chain, parse_chain_stats
from gotr1_jax.data.shapes_world.prompts import parse_phrase
from gotr1_jax.data.shapes_world.world import (
    SOLID, Scene, SceneObject, WorldConfig, article, box_center, count_word)

# Where a box centre falls on a 3 x 3 grid of the image, in words.
_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "center", "right")
_PLACES = {
    ("top", "left"): "at the top left", ("top", "center"): "at the top",
    ("top", "right"): "at the top right", ("middle", "left"): "on the left",
    ("middle", "center"): "in the center", ("middle", "right"): "on the right",
    ("bottom", "left"): "at the bottom left", ("bottom", "center"): "at the bottom",
    ("bottom", "right"): "at the bottom right",
}


def place_words(obj: SceneObject) -> str:
  """Where the object sits, in words ("at the top left")."""
  cx, cy = box_center(obj.box)
  col = _COLS[min(2, int(3 * cx / COORD_MAX))]
  row = _ROWS[min(2, int(3 * cy / COORD_MAX))]
  return _PLACES[(row, col)]


def scene_text(scene: Scene, world: WorldConfig = WorldConfig()) -> str:
  """A short sentence describing the scene, e.g. "Two shapes on a white background: a red
  circle at the top left and a blue square on the right." """
  n = len(scene.objects)
  noun = "shape" if n == 1 else "shapes"
  parts = [f"{article(o.name)} {o.name} {place_words(o)}" for o in scene.objects]
  listing = parts[0] if n == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
  return (f"{count_word(n).capitalize()} {noun} on {article(world.background_name)} "
          f"{world.background_name} background: {listing}.")


def scene_chain(scene: Scene, world: WorldConfig = WorldConfig()) -> str:
  """The ground-truth GoT chain of a scene: the scene sentence, then one span per object."""
  if not scene.objects:
    raise ValueError("A chain needs at least one object; the scene is empty.")
  return format_chain([Obj(o.name, o.box) for o in scene.objects], scene_text(scene, world))


@dataclasses.dataclass(frozen=True)
class ChainObjects:
  """Planned objects read from a chain, and how many spans could not be read as objects."""

  objects: tuple[SceneObject, ...]
  num_unnamed: int     # well-formed spans whose name is not a ShapesWorld object
  num_malformed: int   # spans chain.parse_chain_stats could not read

  @property
  def num_planned(self) -> int:
    return len(self.objects) + self.num_unnamed + self.num_malformed


def parse_chain_objects(chain: str, world: WorldConfig = WorldConfig()) -> ChainObjects:
  """Reads a chain's spans as scene objects. A name without a texture word is solid."""
  parsed = parse_chain_stats(chain)
  objects, unnamed = [], 0
  for obj in parsed.objects:
    phrase = parse_phrase(obj.name, world, with_count=False)
    if phrase is None or phrase.color is None:
      unnamed += 1
      continue
    objects.append(SceneObject(shape=phrase.shape, color=phrase.color,
                               texture=phrase.texture or SOLID, box=obj.box))
  return ChainObjects(objects=tuple(objects), num_unnamed=unnamed,
                      num_malformed=parsed.num_malformed)


def planned_objects(chain: str, world: WorldConfig = WorldConfig()) -> list[Obj]:
  """The chain's well-formed spans with ShapesWorld names in canonical form ("solid red circle"
  -> "red circle"); names that are no ShapesWorld object are kept as written."""
  out = []
  for obj in parse_chain(chain):
    phrase = parse_phrase(obj.name, world, with_count=False)
    if phrase is not None and phrase.color is not None:
      name = SceneObject(phrase.shape, phrase.color, phrase.texture or SOLID, obj.box).name
      obj = Obj(name, obj.box)
    out.append(obj)
  return out
