"""The judge's vision tower's own pre-training, on lone objects and on scenes, before the judge learns its questions.

Owns the stage that Qwen2.5-VL's ViT has and a tiny judge trained from scratch lacks: the tower
learns what objects *are*, and where, before an LM is put on top of it. Two objectives, drawn per
step (`scene_fraction` of the steps are scene steps):
- lone objects: one object alone per image (judge_data.naming_example), three linear heads over
  the mean of the tower's merged tokens (colour, shape, texture), the sum of their softmax
  cross-entropies;
- scenes (a detector's objective, as in the ViT pre-training of grounding VLMs): the true scene of
  a train prompt, and per merged token (the tokens the judge's LM reads, raster order) the
  attributes of the object it lies on, with one more class for "nothing here", and that object's
  box twice: as its edges' distances from the token's centre in token cells (`token_targets`),
  which any tower can read, and in the image's own frame (cells from the top-left corner), which
  a tower can only give with place embeddings (`vision.abs_position_grid`; rotary angles put a
  patch's place into attention scores, not into the values the judge's LM reads, docs/shapes_findings.md). The
  image-frame box is asked once more as four classes, its pixel coordinates, which is how the
  judge writes a box (one number token each), so the LM need only copy what the token says. Labels
  are the oracle detector's reading of the image, which is what the judge is taught to answer.
Both see the VQ round trip for `vq_fraction` of their images. The objects are centred for
`place_schedule[0]` steps, then spread to anywhere over `place_schedule[1]`: alone, the tower
starts to tell shapes of centred objects apart within about 500 steps of 32 (more slowly through
the VQ, which rounds small shapes), where objects placed anywhere from the start leave it at
chance for about 1,400 (docs/shapes_findings.md, "What the caption judge sees"). Trained only
through the judge's LM, the same tower stayed at chance on shape over 1,200 steps with every
object centred; a judge built on a pre-trained tower names shapes as well as the tower did after
800 naming steps.

`pretrain_vision` returns the tower's plain params, which judge_train puts in place of the judge's
`visual` subtree (config.judge.vision_pretrain); the heads are dropped. It also saves the tower
(`<workdir>/tower`, a Flax directory), from which a later pre-training or judge starts
(`vision_pretrain.init`), so that one tower can seed several judges.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax.convert.flax_io import load_flax_dir, save_flax_dir
from gotr1_jax.data.shapes_world import detect
from gotr1_jax.data.shapes_world.layout import sample_scene
from gotr1_jax.data.shapes_world.prompts import PromptSpec
from gotr1_jax.data.shapes_world.render import render_scene
from gotr1_jax.data.shapes_world.world import COORD_MAX, SceneObject, WorldConfig, box_center, object_attributes
from gotr1_jax.metrics import MetricWriter
from gotr1_jax.models.qwen_image_processing import (QwenImageConfig, image_processor, pack_vision_batch,
                                                    patchify_images)
from gotr1_jax.models.qwen_vision import QwenVisionConfig, QwenVisionTower
from gotr1_jax.pretrain.judge_data import check_place_schedule, naming_example, place_spread
from gotr1_jax.pretrain.scenes import split_prompts
from gotr1_jax.rewards.judge import fit_image

Array = jax.Array
ATTRIBUTES = ("colour", "shape", "texture")
TOWER_FAMILY = "qwen_vision_tower"  # the family name of a saved tower's Flax directory
BACKGROUND_WEIGHT = 0.2  # scene steps: a token with nothing on it counts this much in the attribute losses
BOX_WEIGHT = 1.0  # scene steps: the box's L1 (in token cells) beside the attributes' cross-entropies


class TowerProbe(nn.Module):
  """The vision tower and its heads. Params: `tower` (QwenVisionTower's tree, as the judge's
  `visual`), `heads_<attribute>` over the mean merged token (lone objects), `dense_<attribute>`
  (one class more: nothing here), `dense_box` and `dense_pixels` over every merged token (scenes).
  Returns (pooled logits per attribute, per-token logits per attribute, per-token boxes [B, T, 8]:
  the edges' distances from the token, then x1, y1, x2, y2 in the image, both in token cells,
  per-token logits [B, T, 4, pixels + 1] of x1, y1, x2, y2 in the image's pixels)."""

  vision: QwenVisionConfig
  classes: tuple[int, int, int]  # colours, shapes, textures
  pixels: int = 56  # the image's side: pixel coordinates 0..pixels

  @nn.compact
  def __call__(self, patches: Array, positions: Array, image_ids: Array, window_ids: Array):
    tokens = QwenVisionTower(self.vision, name="tower")(patches, positions, image_ids, window_ids)
    valid = (image_ids[:, ::self.vision.merge_unit] >= 0)[..., None].astype(tokens.dtype)
    pooled = jnp.sum(tokens * valid, 1) / jnp.maximum(jnp.sum(valid, 1), 1.0)
    heads = tuple(nn.Dense(n, name=f"heads_{a}")(pooled).astype(jnp.float32)
                  for a, n in zip(ATTRIBUTES, self.classes))
    dense = tuple(nn.Dense(n + 1, name=f"dense_{a}")(tokens).astype(jnp.float32)
                  for a, n in zip(ATTRIBUTES, self.classes))
    coords = nn.Dense(4 * (self.pixels + 1), name="dense_pixels")(tokens).astype(jnp.float32)
    return (heads, dense, nn.Dense(8, name="dense_box")(tokens).astype(jnp.float32),
            coords.reshape(coords.shape[:-1] + (4, self.pixels + 1)))


def attribute_labels(names: list[str], world: WorldConfig) -> np.ndarray:
  """[N, 3] int32 (colour, shape, texture) indices of object names ("dotted blue star"; solid is
  left out of names), read by world.object_attributes; -1 for a word the name lacks."""
  options = (world.color_names, world.shapes, world.textures)
  return np.asarray([[o.index(w) if w in o else -1 for o, w in zip(options, object_attributes(name, world))]
                     for name in names], np.int32).reshape(len(names), len(ATTRIBUTES))


def class_counts(world: WorldConfig) -> tuple[int, int, int]:
  return len(world.color_names), len(world.shapes), len(world.textures)


def token_targets(objects: Sequence[SceneObject], grid: int,
                  world: WorldConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """A scene step's targets for a `grid` x `grid` image of merged tokens, raster order, T = grid^2:
  labels [T, 3] (attribute indices; the class count where nothing is, -1 where a name lacks the
  word), box [T, 4] (the object's left, top, right and bottom edges as distances from the token's
  centre, in token cells, so that a box is read the same anywhere), on [T] (1 on an object) and
  centre [T] (1 on the token holding an object's centre). A token lies on an object when its
  centre is inside the object's box; the smallest such object wins, and every object has at least
  the token holding its own centre."""
  t = grid * grid
  labels = np.tile(np.asarray(class_counts(world), np.int32), (t, 1))
  box, on, centre = np.zeros((t, 4), np.float32), np.zeros(t, np.float32), np.zeros(t, np.float32)
  cell = COORD_MAX / grid
  mid = (np.arange(grid) + 0.5) * cell
  cy, cx = (a.reshape(-1) for a in np.meshgrid(mid, mid, indexing="ij"))
  attrs = attribute_labels([o.name for o in objects], world)
  for k in sorted(range(len(objects)), key=lambda k: -(objects[k].box[2] - objects[k].box[0])
                  * (objects[k].box[3] - objects[k].box[1])):
    x1, y1, x2, y2 = objects[k].box
    inside = (cx >= x1) & (cx < x2) & (cy >= y1) & (cy < y2)
    ox, oy = box_center(objects[k].box)
    own = min(grid - 1, max(0, int(oy // cell))) * grid + min(grid - 1, max(0, int(ox // cell)))
    inside[own] = True
    idx = np.flatnonzero(inside)
    labels[idx] = attrs[k]
    box[idx] = np.stack([cx[idx] - x1, cy[idx] - y1, x2 - cx[idx], y2 - cy[idx]], -1) / cell
    on[idx] = 1.0
    centre[own] = 1.0
  return labels, box, on, centre


def scene_batch(rng: np.random.Generator, n: int, image_size: tuple[int, int], world: WorldConfig, processor,
                vision: QwenVisionConfig, specs: Sequence[PromptSpec], vq_fraction: float = 0.0,
                image_transform: Optional[Callable] = None) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
  """`n` true scenes of prompts drawn from `specs`, each through the VQ round trip with probability
  `vq_fraction`, as a packed VisionBatch tuple and the stacked `token_targets` of what the oracle's
  detector reads in each image."""
  images, targets = [], []
  grid = image_size[0] // (vision.patch_size * vision.spatial_merge_size)
  for _ in range(n):
    image = render_scene(sample_scene(specs[int(rng.integers(len(specs)))], rng, world), world)
    if image_transform is not None and rng.random() < vq_fraction:
      image = image_transform(image)
    targets.append(token_targets(detect.detect_objects(image, world), grid, world))
    images.append(fit_image(image, image_size))
  return _pack(images, processor, vision), tuple(np.stack(t) for t in zip(*targets))


def _pack(images: list[np.ndarray], processor, vision: QwenVisionConfig) -> tuple[np.ndarray, ...]:
  patches, grids = patchify_images(images, processor)
  per = int(np.prod(grids[0]))
  rows = [(patches[i * per:(i + 1) * per], grids[i:i + 1]) for i in range(len(images))]
  return tuple(pack_vision_batch(rows, vision, (per,)))


def lone_object_batch(rng: np.random.Generator, n: int, image_size: tuple[int, int], world: WorldConfig,
                      processor, vision: QwenVisionConfig, spread: float, vq_fraction: float = 0.0,
                      image_transform: Optional[Callable] = None) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
  """`n` lone objects (naming_example at `spread`) as a packed VisionBatch tuple and [n, 3] labels."""
  examples = [naming_example(rng, image_size, world,
                             image_transform if image_transform is not None and rng.random() < vq_fraction else None,
                             spread=spread) for _ in range(n)]
  return _pack([e.image for e in examples], processor, vision), attribute_labels([e.answer for e in examples], world)


def probe_loss(params, model: TowerProbe, vision: tuple, labels: Array) -> tuple[Array, dict[str, Array]]:
  logits = model.apply(params, *vision)[0]
  metrics, total = {}, 0.0
  for k, (a, lg) in enumerate(zip(ATTRIBUTES, logits)):
    loss = optax.softmax_cross_entropy_with_integer_labels(lg, labels[:, k]).mean()
    total = total + loss
    metrics[f"vision/{a}_acc"] = jnp.mean(jnp.argmax(lg, -1) == labels[:, k])
  metrics["vision/loss"] = total
  return total, metrics


def edges_to_box(edges: Array, grid: int) -> Array:
  """token_targets' box ([B, T, 4] edge distances in cells) -> [B, T, 4] (x1, y1, x2, y2) in cells."""
  mid = jnp.arange(grid, dtype=jnp.float32) + 0.5
  cy, cx = (a.reshape(-1) for a in jnp.meshgrid(mid, mid, indexing="ij"))
  return jnp.stack([cx - edges[..., 0], cy - edges[..., 1], cx + edges[..., 2], cy + edges[..., 3]], -1)


def box_iou(a: Array, b: Array) -> Array:
  """IoU of [..., 4] (x1, y1, x2, y2) boxes, elementwise over the leading axes."""
  w = jnp.clip(jnp.minimum(a[..., 2], b[..., 2]) - jnp.maximum(a[..., 0], b[..., 0]), 0)
  h = jnp.clip(jnp.minimum(a[..., 3], b[..., 3]) - jnp.maximum(a[..., 1], b[..., 1]), 0)
  area = lambda x: jnp.clip(x[..., 2] - x[..., 0], 0) * jnp.clip(x[..., 3] - x[..., 1], 0)  # noqa: E731
  return w * h / jnp.maximum(area(a) + area(b) - w * h, 1e-6)


def scene_loss(params, model: TowerProbe, vision: tuple, targets: tuple) -> tuple[Array, dict[str, Array]]:
  """Per-token cross-entropies (tokens on nothing weighted BACKGROUND_WEIGHT) plus BOX_WEIGHT times
  the L1 of both boxes and the pixel coordinates' cross-entropy, on tokens on an object; metrics
  read at each object's centre token."""
  labels, box, on, centre = targets
  _, dense, boxes, coords = model.apply(params, *vision)
  grid = int(round(labels.shape[1] ** 0.5))
  edges, absolute, target = boxes[..., :4], boxes[..., 4:], edges_to_box(box, grid)
  weight = on + BACKGROUND_WEIGHT * (1.0 - on)
  n_centre = jnp.maximum(jnp.sum(centre), 1.0)
  metrics, total = {}, 0.0
  for k, (a, lg) in enumerate(zip(ATTRIBUTES, dense)):
    y = labels[..., k]
    w = weight * (y >= 0)
    ce = optax.softmax_cross_entropy_with_integer_labels(lg, jnp.maximum(y, 0))
    total = total + jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1.0)
    metrics[f"vision/scene_{a}_acc"] = jnp.sum((jnp.argmax(lg, -1) == y) * centre) / n_centre
  nothing = jnp.argmax(dense[1], -1) == model.classes[1]
  metrics["vision/scene_nothing_acc"] = jnp.mean(nothing == (on == 0))
  l1 = lambda a, b: jnp.sum(jnp.abs(a - b) * on[..., None]) / jnp.maximum(4.0 * jnp.sum(on), 1.0)  # noqa: E731
  total = total + BOX_WEIGHT * (l1(edges, box) + l1(absolute, target))
  pixels = jnp.clip(jnp.round(target * model.pixels / grid), 0, model.pixels).astype(jnp.int32)
  ce = optax.softmax_cross_entropy_with_integer_labels(coords, pixels).mean(-1)
  total = total + jnp.sum(ce * on) / jnp.maximum(jnp.sum(on), 1.0)
  off = jnp.abs(jnp.argmax(coords, -1) - pixels)
  metrics["vision/scene_pixel_acc"] = jnp.sum(jnp.mean(off == 0, -1) * centre) / n_centre
  metrics["vision/scene_pixel_within1"] = jnp.sum(jnp.mean(off <= 1, -1) * centre) / n_centre
  for name, guess in (("box", edges_to_box(edges, grid)), ("image_box", absolute)):
    iou = box_iou(guess, target)
    metrics[f"vision/scene_{name}_iou"] = jnp.sum(iou * centre) / n_centre
    metrics[f"vision/scene_{name}_iou50"] = jnp.sum((iou >= 0.5) * centre) / n_centre
  metrics["vision/scene_loss"] = total
  return total, metrics


def save_tower(path: str, tower: dict, vision: QwenVisionConfig) -> None:
  save_flax_dir(path, TOWER_FAMILY, dataclasses.asdict(vision), {"params": tower})


def load_tower(path: str, vision: QwenVisionConfig) -> dict:
  """A tower saved by pretrain_vision (`<workdir>/vision/tower`); its config must be `vision`'s."""
  saved, trees = load_flax_dir(path, TOWER_FAMILY, ["params"])
  mine = json.loads(json.dumps(dataclasses.asdict(vision)))
  if saved != mine:
    diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
    raise ValueError(f"The tower in {path} was trained with another vision config (differs in {diff}); "
                     "pre-train one for config.judge.model.vision or set config.judge.vision_pretrain.init=''.")
  return trees["params"]["params"]


def pretrain_vision(vision: QwenVisionConfig, c: ConfigDict, image_size: tuple[int, int], seed: int, workdir: str,
                    world: WorldConfig = WorldConfig(), image_transform: Optional[Callable] = None,
                    vq_fraction: float = 0.0) -> tuple[dict, dict[str, float]]:
  """Trains a tower (config.judge.vision_pretrain `c`: steps, batch_size, lr, place_schedule, log_every,
  eval_objects; scene_fraction, eval_scenes; init, a saved tower to start from instead of a fresh
  one) and returns (the tower's params, final metrics): its accuracies on `eval_objects` held-out
  lone objects anywhere and, when it trained on scenes, its per-token readings of `eval_scenes`
  scenes of val prompts. Metrics go to `workdir`, the tower to `<workdir>/tower`."""
  schedule = check_place_schedule(c.get("place_schedule", None) or (), "config.judge.vision_pretrain.place_schedule")
  scene_p = float(c.get("scene_fraction", 0.0))
  if not 0.0 <= scene_p <= 1.0:
    raise ValueError(f"config.judge.vision_pretrain.scene_fraction={scene_p} must be in [0, 1]: the share of "
                     "steps on scenes (the rest on lone objects).")
  n = image_size[0] * image_size[1]
  processor = image_processor(QwenImageConfig(min_pixels=n, max_pixels=n), vision)
  model = TowerProbe(vision, class_counts(world), int(image_size[0]))
  train_specs = split_prompts("train", world=world) if scene_p > 0 else []

  def lone(rng, size, spread):
    return lone_object_batch(rng, size, image_size, world, processor, vision, spread, vq_fraction, image_transform)

  def scenes(rng, size, specs):
    return scene_batch(rng, size, image_size, world, processor, vision, specs, vq_fraction, image_transform)

  vb, _ = lone(np.random.default_rng([seed, 0]), 1, 0.0)
  params = nn.unbox(jax.jit(model.init)(jax.random.key(seed), *vb))  # one compile, not op by op
  if c.get("init", ""):
    params["params"]["tower"] = load_tower(c.init, vision)
  tx = optax.adamw(float(c.lr))
  opt_state = tx.init(params)

  def make_step(loss_fn):
    def step(params, opt_state, vision_batch, targets):
      grads, metrics = jax.grad(loss_fn, has_aux=True)(params, model, vision_batch, targets)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, metrics
    return jax.jit(step, donate_argnums=(0, 1))

  lone_step, scene_step = make_step(probe_loss), make_step(scene_loss)
  writer = MetricWriter(workdir)
  steps, logged = int(c.steps), {}
  bar = tqdm(range(steps), desc="judge vision", dynamic_ncols=True)
  for i in bar:
    rng = np.random.default_rng([seed, i, 7])
    if scene_p > 0 and np.random.default_rng([seed, i, 3]).random() < scene_p:
      params, opt_state, metrics = scene_step(params, opt_state, *scenes(rng, int(c.batch_size), train_specs))
    else:
      spread = place_spread(schedule, i)
      params, opt_state, metrics = lone_step(params, opt_state, *lone(rng, int(c.batch_size), spread))
      metrics = dict(metrics, **{"vision/spread": spread})
    logged.update(metrics)
    if (i + 1) % int(c.log_every) == 0 or i + 1 == steps:
      logged = {k: float(v) for k, v in jax.device_get(logged).items()}
      writer.write(i + 1, logged)
      bar.set_postfix({k.split("/")[1]: f"{v:.2f}" for k, v in logged.items()
                       if k in ("vision/shape_acc", "vision/scene_shape_acc", "vision/scene_box_iou")})
      logged = {}
  final = {}
  if steps > 0:  # held out: from streams the training steps never draw
    heldout = np.random.default_rng([seed, 1 << 30])
    final.update(jax.jit(lambda p, v, y: probe_loss(p, model, v, y)[1])(
        params, *lone(heldout, int(c.eval_objects), 1.0)))
    if scene_p > 0:
      final.update(jax.jit(lambda p, v, y: scene_loss(p, model, v, y)[1])(
          params, *scenes(heldout, int(c.get("eval_scenes", 128)), split_prompts("val", world=world))))
    final = {k.replace("vision/", "vision/heldout_"): float(v) for k, v in final.items()}
    writer.write(steps, final)
  writer.close()
  tower = params["params"]["tower"]
  save_tower(os.path.join(workdir, "tower"), tower, vision)
  return tower, final
