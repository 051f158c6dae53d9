"""Training examples for ShapesWorld's tiny judge: GoT-R1's four questions with the oracle's answers.

Owns making (question, image, answer) triples whose answers are what a perfect judge would say:
for a prompt, a true scene is sampled, then the chain's scene and the image's scene are each
corrupted independently with some probability (an object recoloured, reshaped, re-textured,
dropped, added, or moved so a relation breaks), so that chains and images of every quality occur.
The questions are exactly the judge prompts of rewards/prompts.py (R_sem with the chain as text,
R_spa with the drawn layout canvas, R_RI per planned object, R_PI with the image) and the answers
are the oracle's exact scores (data/shapes_world/oracle.py) on the judge's published scales, and
for R_RI the oracle's detected boxes in the judge image's pixels, as JSON. Beside them, one question
that is not GoT-R1's and is only trained on ("caption"): name and box every object in the image.
Its answer follows from the image alone, so a judge can learn it directly; grounding a *named*
object among several cannot be learned by a judge that has not learned to name what it sees
(tools/probe_localisation.py, docs/shapes_findings.md). A second such question ("naming") shows one object alone
and asks its name, so that what the object *is* (colour, shape, texture) is learned apart from
where it is and which of several it is. It trains nothing (judge_train.py does). `PolicyPool` holds
a policy's own samples, asked the same questions.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Callable, Optional, Sequence

import numpy as np
from ml_collections import ConfigDict

from gotr1_jax.data.shapes_world import detect
from gotr1_jax.data.shapes_world.chains import planned_objects, scene_chain
from gotr1_jax.data.shapes_world.layout import sample_scene
from gotr1_jax.data.shapes_world.oracle import r_pi, r_sem, r_spa
from gotr1_jax.data.shapes_world.prompts import PromptSpec, parse_prompt
from gotr1_jax.data.shapes_world.render import render_scene
from gotr1_jax.data.shapes_world.world import COORD_MAX, Scene, SceneObject, WorldConfig
from gotr1_jax.data.chain import parse_chain
from gotr1_jax.rewards.canvas import draw_layout
from gotr1_jax.rewards.iou import object_key
from gotr1_jax.rewards.judge import fit_image
from gotr1_jax.rewards.prompts import SCORE_SCALES, get_prompts

KINDS = ("r_sem", "r_spa", "r_ri", "r_pi")
CAPTION = "caption"  # the auxiliary question (module docstring); asked in training only
# The caption question in the shipped judge's wording (rewards/prompts.py), the one its judges are trained on.
CAPTION_QUESTION = get_prompts("compact-v1").describe()
NAMING = "naming"  # the second auxiliary question (module docstring); asked in training only
NAMING_QUESTION = "Name the object in the image."
CORRUPTIONS = ("color", "shape", "texture", "drop", "add", "move")
EMPTY_GROUNDING = json.dumps([])  # grounding_answer when no object of the name is found


@dataclasses.dataclass(frozen=True)
class JudgeExample:
  kind: str  # r_sem | r_spa | r_ri | r_pi | caption
  text: str  # the user question (rewards/prompts.py)
  image: Optional[np.ndarray]  # uint8 [H, W, 3] as the judge sees it, or None (R_sem)
  answer: str  # the target answer (JSON)
  group: int = -1  # the pool group of an example in a ranking step (pretrain/judge_rank.py); -1 otherwise


def score_answer(value: float, kind: str) -> str:
  """An exact reward in [0, 1] as the judge's JSON answer on the kind's published scale."""
  low, high = SCORE_SCALES[kind]
  return json.dumps({"score": int(round(low + value * (high - low)))})


def _pixel_box(box: Sequence[int], size: tuple[int, int]) -> list[int]:
  w, h = size
  return [round(box[0] * w / COORD_MAX), round(box[1] * h / COORD_MAX), round(box[2] * w / COORD_MAX),
          round(box[3] * h / COORD_MAX)]


def grounding_answer(name: str, detections: Sequence[SceneObject], size: tuple[int, int]) -> str:
  """Every detected object called `name`, as Qwen2.5-VL answers grounding: pixel boxes of the image."""
  boxes = [_pixel_box(d.box, size) for d in detections if object_key(d.name) == object_key(name)]
  return json.dumps([{"bbox_2d": b, "label": name} for b in boxes])


def caption_answer(detections: Sequence[SceneObject], size: tuple[int, int]) -> str:
  """Every detected object, left to right (then top to bottom), named and boxed as grounding answers are."""
  ordered = sorted(detections, key=lambda d: (d.box[0], d.box[1]))
  return json.dumps([{"bbox_2d": _pixel_box(d.box, size), "label": d.name} for d in ordered])


def naming_example(rng: np.random.Generator, image_size: tuple[int, int], world: WorldConfig = WorldConfig(),
                   image_transform: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                   tries: int = 8, spread: float = 1.0) -> JudgeExample:
  """One object of random colour, shape, texture, size and place alone on the canvas (optionally
  through image_transform), asked NAMING_QUESTION; the answer is its name as the oracle's detector
  reads it. A draw the detector does not read as exactly one object (a VQ round trip can smear
  one) is redrawn, up to `tries` times; then the rendered object's own name is the answer.
  `spread` in [0, 1] scales the place's offset from the centre: 0 always centres the object, 1
  places it anywhere (the same draws at any spread). A ViT trained from scratch learns shapes of
  centred objects far sooner than anywhere (docs/shapes_findings.md), hence judge_train's place schedule."""
  margin = int(world.border * COORD_MAX)
  for _ in range(max(tries, 1)):
    side = int(rng.integers(int(world.min_object_size * COORD_MAX), int(world.max_object_size * COORD_MAX) + 1))
    centre = (COORD_MAX - side) // 2
    x1, y1 = (int(round(centre + spread * (int(v) - centre)))
              for v in rng.integers(margin, COORD_MAX - margin - side, 2))
    obj = SceneObject(shape=str(rng.choice(world.shapes)), color=str(rng.choice(world.color_names)),
                      texture=str(rng.choice(world.textures)), box=(x1, y1, x1 + side, y1 + side))
    image = render_scene(Scene(objects=(obj,)), world)
    image = image if image_transform is None else image_transform(image)
    found = detect.detect_objects(image, world)
    if len(found) == 1:
      return JudgeExample(NAMING, NAMING_QUESTION, fit_image(image, image_size), found[0].name)
  return JudgeExample(NAMING, NAMING_QUESTION, fit_image(image, image_size), obj.name)


def check_place_schedule(schedule: tuple, name: str) -> tuple:
  """`schedule` as given if it is () or (hold >= 0, ramp >= 1) steps; else a ValueError naming `name`."""
  schedule = tuple(schedule)
  if schedule and (len(schedule) != 2 or min(schedule) < 0 or schedule[1] < 1):
    raise ValueError(f"{name}={schedule} must be (hold, ramp) steps with hold >= 0 and ramp >= 1, or () to place "
                     "lone objects anywhere from the start.")
  return schedule


def place_spread(schedule: tuple, step: int) -> float:
  """naming_example's `spread` at `step` of a (hold, ramp) schedule: 0 (centred) for `hold` steps,
  then rising linearly to 1 (anywhere) over `ramp`; 1 throughout for ()."""
  return min(1.0, max(0.0, (step - schedule[0]) / schedule[1])) if schedule else 1.0


def swap_boxes(objs: list[SceneObject], i: int, j: int) -> None:
  """Objects i and j trade boxes (in place); everything else about them stays."""
  objs[i], objs[j] = dataclasses.replace(objs[i], box=objs[j].box), dataclasses.replace(objs[j], box=objs[i].box)


def corrupt_scene(scene: Scene, rng: np.random.Generator, world: WorldConfig) -> Scene:
  """One random corruption of a scene (see CORRUPTIONS); the scene itself if none applies."""
  objs = list(scene.objects)
  kind = CORRUPTIONS[rng.integers(len(CORRUPTIONS))]
  i = int(rng.integers(len(objs)))
  o = objs[i]
  other = lambda options, current: str(rng.choice([x for x in options if x != current]))
  if kind == "color":
    objs[i] = dataclasses.replace(o, color=other(world.color_names, o.color))
  elif kind == "shape":
    objs[i] = dataclasses.replace(o, shape=other(world.shapes, o.shape))
  elif kind == "texture":
    objs[i] = dataclasses.replace(o, texture=other(world.textures, o.texture))
  elif kind == "drop" and len(objs) > 1:
    objs.pop(i)
  elif kind == "add" and len(objs) < world.max_objects:
    x1, y1 = (int(v) for v in rng.integers(0, COORD_MAX // 2, 2))
    side = int(rng.integers(COORD_MAX // 6, COORD_MAX // 3))
    objs.append(SceneObject(shape=str(rng.choice(world.shapes)), color=str(rng.choice(world.color_names)),
                            texture=str(rng.choice(world.textures)),
                            box=(x1, y1, min(COORD_MAX - 1, x1 + side), min(COORD_MAX - 1, y1 + side))))
  elif kind == "move":  # swap two objects' boxes (breaks a relation), or move one elsewhere
    if len(objs) > 1:
      swap_boxes(objs, i, int((i + 1 + rng.integers(len(objs) - 1)) % len(objs)))
    else:
      w, h = o.box[2] - o.box[0], o.box[3] - o.box[1]
      x1, y1 = int(rng.integers(0, COORD_MAX - w)), int(rng.integers(0, COORD_MAX - h))
      objs[i] = dataclasses.replace(o, box=(x1, y1, x1 + w, y1 + h))
  return Scene(objects=tuple(objs))


def maybe_corrupt(scene: Scene, rng: np.random.Generator, world: WorldConfig, p: float, max_n: int = 2) -> Scene:
  """With probability p, 1..max_n corruptions."""
  if rng.random() >= p:
    return scene
  for _ in range(int(rng.integers(1, max_n + 1))):
    scene = corrupt_scene(scene, rng, world)
  return scene


def sample_pair(spec: PromptSpec, rng: np.random.Generator, world: WorldConfig = WorldConfig(),
                corrupt_p: float = 0.6,
                image_transform: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> tuple[str, np.ndarray]:
  """A (chain, image) for `spec`: a true scene, then the chain's copy and the image's copy each
  corrupted with probability corrupt_p (independently), the image optionally transformed."""
  truth = sample_scene(spec, rng, world)
  chain = scene_chain(maybe_corrupt(truth, rng, world, corrupt_p), world)
  image = render_scene(maybe_corrupt(truth, rng, world, corrupt_p), world)
  return chain, (image if image_transform is None else image_transform(image))


def layout_contrast_example(spec: PromptSpec, rng: np.random.Generator, reward: ConfigDict,
                            world: WorldConfig = WorldConfig()) -> JudgeExample:
  """An R_spa question about a true layout of `spec` or, with probability 1/2, the same layout with
  two objects' boxes swapped (their relation, if the prompt asks one, then breaks). The two differ
  in nothing but where the boxes are, the only thing a judge must read to rank the chains of one
  GRPO group by layout; corrupted chains (judge_examples) differ mostly in their objects."""
  scene = sample_scene(spec, rng, world)
  objs = list(scene.objects)
  if len(objs) > 1 and rng.random() < 0.5:
    swap_boxes(objs, *(int(v) for v in rng.choice(len(objs), 2, replace=False)))
  chain = scene_chain(Scene(objects=tuple(objs)), world)
  return JudgeExample("r_spa", get_prompts(reward.prompt_version).spa(spec.text),
                      draw_layout(parse_chain(chain), reward.canvas), score_answer(r_spa(spec, chain, world), "r_spa"))


def layout_pairs(specs: Sequence[PromptSpec], rng: np.random.Generator,
                 world: WorldConfig = WorldConfig()) -> "PolicyPool":
  """A pool of groups of two for measuring whether a judge reads layouts (tools/make_judge_pool.py
  --layout_pairs): per prompt with a relation, the chain of a true layout and the same chain with its
  first two objects' boxes swapped, both beside the true image. Prompts whose swap leaves the exact
  R_spa unchanged are skipped, so the oracle ranks every pair."""
  prompts, categories, chains, images = [], [], [], []
  for spec in specs:
    if not spec.relations:
      continue
    scene = sample_scene(spec, rng, world)
    objs = list(scene.objects)
    if len(objs) < 2:
      continue
    swap_boxes(objs, 0, 1)
    pair = (scene_chain(scene, world), scene_chain(Scene(objects=tuple(objs)), world))
    if r_spa(spec, pair[0], world) == r_spa(spec, pair[1], world):
      continue
    image = render_scene(scene, world)
    for chain in pair:
      prompts.append(spec.text)
      categories.append(spec.category)
      chains.append(chain)
      images.append(image)
  return PolicyPool(prompts, categories, chains, np.stack(images))


def judge_examples(spec: PromptSpec, rng: np.random.Generator, image_size: tuple[int, int], reward: ConfigDict,
                   world: WorldConfig = WorldConfig(), corrupt_p: float = 0.6,
                   image_transform: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> list[JudgeExample]:
  """The questions about one sampled (chain, image) (see `examples_for`).

  image_transform(uint8 image) -> uint8 image, e.g. a VQ round trip, so the judge also sees the
  decoder's artefacts; answers are computed on the transformed image, as the oracle would."""
  chain, image = sample_pair(spec, rng, world, corrupt_p, image_transform)
  return examples_for(spec, chain, image, image_size, reward, world)


def examples_for(spec: PromptSpec, chain: str, image: np.ndarray, image_size: tuple[int, int],
                 reward: ConfigDict, world: WorldConfig = WorldConfig()) -> list[JudgeExample]:
  """The four questions (R_RI once per distinct planned object) about one (chain, image), any
  source: sampled scenes or the policy's own samples (PolicyPool), with the oracle's answers; and
  the caption question (every detected object, named and boxed) just before R_PI."""
  prompts = get_prompts(reward.prompt_version)
  detections = detect.detect_objects(image, world)
  seen = fit_image(image, image_size)
  out = [JudgeExample("r_sem", prompts.sem(spec.text, chain), None, score_answer(r_sem(spec, chain, world), "r_sem"))]
  objects = parse_chain(chain)
  if objects:
    out.append(JudgeExample("r_spa", prompts.spa(spec.text), draw_layout(objects, reward.canvas),
                            score_answer(r_spa(spec, chain, world), "r_spa")))
  names = list(dict.fromkeys(o.name for o in planned_objects(chain, world)))
  out += [JudgeExample("r_ri", prompts.ri(n), seen, grounding_answer(n, detections, image_size)) for n in names]
  out.append(JudgeExample(CAPTION, CAPTION_QUESTION, seen, caption_answer(detections, image_size)))
  out.append(_pi_example(spec, seen, detections, reward))
  return out


def _pi_example(spec: PromptSpec, seen: np.ndarray, detections: Sequence[SceneObject], reward: ConfigDict,
                ) -> JudgeExample:
  return JudgeExample("r_pi", get_prompts(reward.prompt_version).pi(spec.text), seen,
                      score_answer(r_pi(spec, detections), "r_pi"))


@dataclasses.dataclass(frozen=True)
class PolicyPool:
  """A policy's own (prompt, chain, image) samples, for teaching the judge the images and chains
  GRPO actually produces (tools/make_judge_pool.py writes one; judge_train.py mixes it in with
  `judge.policy_fraction`). The answers are not stored: the oracle computes them when used."""

  prompts: list[str]
  categories: list[str]
  chains: list[str]
  images: np.ndarray  # [N, H, W, 3] uint8

  def __post_init__(self):
    n = len(self.prompts)
    if not (len(self.categories) == len(self.chains) == n == len(self.images)) or n == 0:
      raise ValueError(f"A PolicyPool needs the same positive number of prompts ({n}), categories "
                       f"({len(self.categories)}), chains ({len(self.chains)}) and images ({len(self.images)}).")

  def save(self, path: str) -> None:
    np.savez_compressed(path, prompts=np.array(self.prompts), categories=np.array(self.categories),
                        chains=np.array(self.chains), images=np.asarray(self.images, np.uint8))

  @classmethod
  def load(cls, path: str) -> "PolicyPool":
    try:
      with np.load(path) as f:
        return cls([str(x) for x in f["prompts"]], [str(x) for x in f["categories"]],
                   [str(x) for x in f["chains"]], np.asarray(f["images"], np.uint8))
    except FileNotFoundError:
      raise FileNotFoundError(f"config.judge.policy_pool={path!r} does not exist; write one with "
                              "`python tools/make_judge_pool.py --out PATH` or set policy_fraction=0.") from None

  def __len__(self) -> int:
    return len(self.prompts)

  def examples(self, i: int, image_size: tuple[int, int], reward: ConfigDict,
               world: WorldConfig = WorldConfig()) -> list[JudgeExample]:
    """The questions (examples_for) about sample i with the oracle's answers."""
    spec = parse_prompt(self.prompts[i], self.categories[i], world)
    return examples_for(spec, self.chains[i], self.images[i], image_size, reward, world)

  def pi_example(self, i: int, image_size: tuple[int, int], reward: ConfigDict,
                 world: WorldConfig = WorldConfig()) -> JudgeExample:
    """examples_for's R_PI question about sample i alone (the ranking steps ask nothing else)."""
    spec = parse_prompt(self.prompts[i], self.categories[i], world)
    image = self.images[i]
    return _pi_example(spec, fit_image(image, image_size), detect.detect_objects(image, world), reward)
