"""ShapesWorld layouts: sample a scene (objects + boxes) that satisfies a prompt.

Owns turning a `PromptSpec` into a `Scene`: attributes the prompt leaves open are drawn at random
(texture defaults to solid), boxes are placed apart from each other and inside the border, and
relations hold by a margin. Every sampled scene is verified with the oracle's symbolic checks.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from gotr1_jax.data.chain import COORD_MAX
from gotr1_jax.data.shapes_world import oracle
from gotr1_jax.data.shapes_world.prompts import PromptSpec
from gotr1_jax.data.shapes_world.world import (
    SOLID, Box, Scene, SceneObject, WorldConfig, relation_margin)


@dataclasses.dataclass(frozen=True)
class LayoutConfig:
  box_tries: int = 50      # placements tried per object before the layout starts over
  layout_tries: int = 200  # whole layouts tried before giving up


def _sample_box(rng: np.random.Generator, world: WorldConfig, shrink: float) -> Box:
  side = rng.uniform(world.min_object_size, world.max_object_size * shrink) * COORD_MAX
  aspect = math.exp(rng.uniform(-1, 1) * math.log(world.max_aspect))
  w, h = side * math.sqrt(aspect), side / math.sqrt(aspect)
  lo, hi = world.border * COORD_MAX, (1 - world.border) * COORD_MAX - 1
  x1 = rng.uniform(lo, max(lo, hi - w))
  y1 = rng.uniform(lo, max(lo, hi - h))
  return (int(round(x1)), int(round(y1)), int(round(min(hi, x1 + w))), int(round(min(hi, y1 + h))))


def _apart(a: Box, b: Box, gap: float) -> bool:
  return (a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1])


def _place_boxes(rng: np.random.Generator, n: int, world: WorldConfig, config: LayoutConfig,
                 shrink: float) -> list[Box] | None:
  gap = world.min_gap * COORD_MAX
  boxes: list[Box] = []
  for _ in range(n):
    for _ in range(config.box_tries):
      box = _sample_box(rng, world, shrink)
      if all(_apart(box, other, gap) for other in boxes):
        boxes.append(box)
        break
    else:
      return None
  return boxes


def _instances(spec: PromptSpec, rng: np.random.Generator, world: WorldConfig,
               ) -> list[tuple[int, str, str, str]]:
  """(group index, shape, colour, texture) for every object the prompt asks for."""
  out = []
  for gi, g in enumerate(spec.groups):
    for _ in range(g.count):
      color = g.color or world.color_names[int(rng.integers(len(world.color_names)))]
      out.append((gi, g.shape, color, g.texture or SOLID))
  return out


def sample_scene(spec: PromptSpec, rng: np.random.Generator, world: WorldConfig = WorldConfig(),
                 config: LayoutConfig = LayoutConfig()) -> Scene:
  """A scene with exactly the prompt's objects that the oracle scores 1.0 on every check.

  Objects appear in prompt order (a group's instances together). Raises ValueError when no
  layout is found (too many or too large objects for the image).
  """
  if spec.num_objects > world.max_objects:
    raise ValueError(f"The prompt asks for {spec.num_objects} objects; WorldConfig.max_objects "
                     f"is {world.max_objects}. Raise it or ask for fewer objects.")
  margin = world.relation_margin * COORD_MAX
  for attempt in range(config.layout_tries):
    # Crowded scenes get smaller objects after repeated failures.
    shrink = max(world.min_object_size / world.max_object_size,
                 1.0 - attempt / config.layout_tries)
    instances = _instances(spec, rng, world)
    boxes = _place_boxes(rng, len(instances), world, config, shrink)
    if boxes is None:
      continue
    objects = tuple(SceneObject(shape=s, color=c, texture=t, box=b)
                    for (_, s, c, t), b in zip(instances, boxes))
    group_of = [gi for gi, *_ in instances]
    if not all(relation_margin(r.relation, objects[group_of.index(r.subject)].box,
                               objects[group_of.index(r.object)].box) >= margin
               for r in spec.relations):
      continue
    if oracle.check_objects(spec, objects).perfect:
      return Scene(objects=objects)
  raise ValueError(f"No layout found for {spec.text!r} in {config.layout_tries} tries; lower "
                   "WorldConfig.max_object_size/min_gap or the number of objects.")
