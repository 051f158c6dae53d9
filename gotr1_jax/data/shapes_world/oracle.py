"""ShapesWorld oracle scores: T2I-CompBench-like category scores and exact GoT-R1 rewards.

Owns the symbolic checks of objects against a prompt (attribute binding, counts, relations,
precision, and what became of each object the prompt asks for), the per-category scores, and
exact r_sem / r_spa / r_ri / r_pi in [0, 1]. Reading objects out of an image is detect.py's job;
parsing chains is chains.py's.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Union

import numpy as np
from scipy.optimize import linear_sum_assignment

from gotr1_jax.data.shapes_world import chains, detect
from gotr1_jax.data.shapes_world.prompts import PromptSpec, parse_prompt
from gotr1_jax.data.shapes_world.world import SceneObject, WorldConfig, relation_holds
from gotr1_jax.rewards.iou import grounding_score, object_key


@dataclasses.dataclass(frozen=True)
class Checks:
  """How a set of objects (read from an image or planned in a chain) satisfies a prompt."""

  binding: float                # prompt objects matched one-to-one by objects with their attributes
  counts: tuple[bool, ...]      # per group: the number of matching objects equals the count
  relations: tuple[bool, ...]   # per relation: some matching pair of objects satisfies it
  precision: float              # fraction of the objects that matched a prompt object (0 if none)

  @property
  def count_score(self) -> float:
    return float(np.mean(self.counts)) if self.counts else 1.0

  @property
  def relation_score(self) -> float:
    return float(np.mean(self.relations)) if self.relations else 1.0

  @property
  def perfect(self) -> bool:
    return (self.binding == 1.0 and all(self.counts) and all(self.relations)
            and self.precision == 1.0)


def _max_matching(compatible: np.ndarray) -> np.ndarray:
  """Row -> column matches of a maximum bipartite matching of a bool matrix. [k, 2]"""
  if compatible.size == 0:
    return np.zeros((0, 2), dtype=int)
  rows, cols = linear_sum_assignment(-compatible.astype(np.float64))
  keep = compatible[rows, cols]
  return np.stack([rows[keep], cols[keep]], axis=-1)


def check_objects(spec: PromptSpec, objects: Sequence[SceneObject]) -> Checks:
  """Symbolic checks of `objects` against `spec` (order-free)."""
  instances = [g for g in spec.groups for _ in range(g.count)]
  compatible = np.array([[g.matches(o) for o in objects] for g in instances], dtype=bool)
  compatible = compatible.reshape(len(instances), len(objects))
  matched = _max_matching(compatible)
  binding = len(matched) / len(instances) if instances else 1.0
  precision = len(matched) / len(objects) if objects else 0.0
  counts = tuple(sum(g.matches(o) for o in objects) == g.count for g in spec.groups)
  relations = tuple(
      any(relation_holds(r.relation, a.box, b.box)
          for a in objects if spec.groups[r.subject].matches(a)
          for b in objects if b is not a and spec.groups[r.object].matches(b))
      for r in spec.relations)
  return Checks(binding=binding, counts=counts, relations=relations, precision=precision)


OUTCOMES = ("read", "shape_misread", "attribute_misread", "missing")


def object_outcomes(spec: PromptSpec, objects: Sequence[SceneObject]) -> dict[str, int]:
  """What became of each object `spec` asks for (a group of count n is n objects) among `objects`.

  "read": matched one-to-one with every attribute asked for (the matches attribute binding counts).
  The rest are matched one-to-one, in this order, to the objects left over: "shape_misread" (its
  colour and texture, another shape), "attribute_misread" (its shape, another colour or texture),
  and "missing" (neither). The counts sum to the number of objects asked for.
  """
  instances = [g for g in spec.groups for _ in range(g.count)]
  left_i, left_o = list(range(len(instances))), list(range(len(objects)))
  out = {}
  tests = {"read": lambda g, o: g.matches(o),
           "shape_misread": lambda g, o: o.shape != g.shape and g.matches(dataclasses.replace(o, shape=g.shape)),
           "attribute_misread": lambda g, o: o.shape == g.shape}
  for outcome, test in tests.items():
    compatible = np.array([[test(instances[i], objects[j]) for j in left_o] for i in left_i], dtype=bool)
    matched = _max_matching(compatible.reshape(len(left_i), len(left_o)))
    out[outcome] = len(matched)
    taken_i, taken_o = set(matched[:, 0].tolist()), set(matched[:, 1].tolist())
    left_i = [i for k, i in enumerate(left_i) if k not in taken_i]
    left_o = [j for k, j in enumerate(left_o) if k not in taken_o]
  out["missing"] = len(left_i)
  return out


def category_score(spec: PromptSpec, objects: Sequence[SceneObject]) -> float:
  """T2I-CompBench-like score for `spec.category`: color/shape/texture -> attribute binding,
  spatial -> relations satisfied, numeracy -> counts correct, complex -> mean of the three."""
  checks = check_objects(spec, objects)
  if spec.category in ("color", "shape", "texture"):
    return checks.binding
  if spec.category == "spatial":
    return checks.relation_score
  if spec.category == "numeracy":
    return checks.count_score
  if spec.category == "complex":
    return float(np.mean([checks.binding, checks.relation_score, checks.count_score]))
  raise ValueError(f"Unknown category {spec.category!r} in the prompt spec.")


# ---------------------------------------------------------------------------------------------
# Exact GoT-R1 rewards, each in [0, 1].


def r_sem(spec: PromptSpec, chain: str, world: WorldConfig = WorldConfig()) -> float:
  """Prompt -> reasoning, semantic: mean of completeness (prompt objects planned with their
  attributes) and faithfulness (planned objects, malformed spans included, that the prompt asks
  for). An empty chain scores 0."""
  parsed = chains.parse_chain_objects(chain, world)
  if parsed.num_planned == 0:
    return 0.0
  checks = check_objects(spec, parsed.objects)
  faithful = checks.precision * len(parsed.objects) / parsed.num_planned
  return 0.5 * (checks.binding + faithful)


SPA_SCALES = ("fraction", "rubric")


def r_spa(spec: PromptSpec, chain: str, world: WorldConfig = WorldConfig(), scale: str = "fraction") -> float:
  """Prompt -> reasoning, spatial, from the chain's boxes.

  scale "fraction": the fraction f of the prompt's counts and relations that the boxes satisfy.
  scale "rubric": the judge's R_spa rubric (rewards/prompts.py, GOT_R1_FACTS.md §4) read exactly, on
  its 1-10 scale rescaled to [0, 1] as the judge's answer is: 10 when every count and relation
  holds; 5-7 ("partly right") when the counts hold and some but not all relations do (5 + 2 x the
  share of relations that hold); 1-4 ("contradicts the prompt or objects are missing") otherwise
  (1 + 3f). A spatial prompt's one relation planned the wrong way round scores 2/9 instead of the
  fraction's 2/3, so that in GoT-R1's product a wrong layout costs as the rubric says it should.
  """
  if scale not in SPA_SCALES:
    raise ValueError(f"R_spa scale {scale!r} is unknown; choose one of {SPA_SCALES} (config.task.exact_spa).")
  parsed = chains.parse_chain_objects(chain, world)
  checks = check_objects(spec, parsed.objects)
  f = float(np.mean(checks.counts + checks.relations))
  if scale == "fraction":
    return f
  if f == 1.0:
    return 1.0
  if all(checks.counts) and any(checks.relations):
    score = 5.0 + 2.0 * checks.relation_score
  else:
    score = 1.0 + 3.0 * f
  return (score - 1.0) / 9.0


def r_ri(chain: str, detections: Sequence[SceneObject], world: WorldConfig = WorldConfig(),
         ) -> float:
  """Reasoning -> image: the judge's R_RI (gotr1_jax.rewards.iou.grounding_score) with the
  detections as the grounding: each well-formed planned object is matched one-to-one to detected
  objects of the same name; missing or non-ShapesWorld objects and malformed spans score 0; no
  objects scores 0."""
  planned = chains.planned_objects(chain, world)
  malformed = chains.parse_chain_objects(chain, world).num_malformed
  grounded = {object_key(p.name): [d.box for d in detections if object_key(d.name)
                                   == object_key(p.name)] for p in planned}
  return grounding_score(planned, grounded, malformed).r_ri


def r_pi(spec: PromptSpec, detections: Sequence[SceneObject]) -> float:
  """Prompt -> image: mean of attribute binding, counts, relations (when the prompt has any)
  and precision (no unasked-for objects)."""
  checks = check_objects(spec, detections)
  parts = [checks.binding, checks.count_score, checks.precision]
  if checks.relations:
    parts.append(checks.relation_score)
  return float(np.mean(parts))


def oracle_rewards(prompt: Union[str, PromptSpec], chain: str, image: np.ndarray,
                   world: WorldConfig = WorldConfig(),
                   detect_config: detect.DetectConfig = detect.DetectConfig(),
                   category: Optional[str] = None, spa_scale: str = "fraction",
                   detections: Optional[Sequence[SceneObject]] = None) -> dict[str, float]:
  """All exact rewards and the category score for one (prompt, chain, image).

  `prompt` may be text (parsed with `category`, default "complex") or a `PromptSpec`; `spa_scale`
  is r_spa's `scale`; `detections`, when given, are `image`'s objects already read by detect.py.
  """
  spec = prompt if isinstance(prompt, PromptSpec) else parse_prompt(
      prompt, category or "complex", world)
  if detections is None:
    detections = detect.detect_objects(image, world, detect_config)
  return {
      "r_sem": r_sem(spec, chain, world),
      "r_spa": r_spa(spec, chain, world, spa_scale),
      "r_ri": r_ri(chain, detections, world),
      "r_pi": r_pi(spec, detections),
      "t2i_score": category_score(spec, detections),
  }
