"""The judge's vision tower's own pre-training on lone objects, before the judge learns its questions.

Owns the stage that Qwen2.5-VL's ViT has and a tiny judge trained from scratch lacks: the tower
learns what objects *are* before an LM is put on top of it. One object alone per image
(judge_data.naming_example, through the VQ round trip for `vq_fraction` of them), three linear
heads over the mean of the tower's merged tokens (colour, shape, texture), the sum of their softmax
cross-entropies. The objects are centred for `place_schedule[0]` steps, then spread to anywhere
over `place_schedule[1]`: alone, the tower starts to tell shapes of centred objects apart within
about 500 steps of 32 (more slowly through the VQ, which rounds small shapes), where objects
placed anywhere from the start leave it at chance for about 1,400 (README, "What the caption judge
sees"). Trained only through the judge's LM, the same tower stayed at chance on shape over 1,200
steps with every object centred; a judge built on a pre-trained tower names shapes as well as the
tower did after 800 naming steps.

`pretrain_vision` returns the tower's plain params, which judge_train puts in place of the judge's
`visual` subtree (config.judge.vision_pretrain); the heads are dropped.
"""
from __future__ import annotations

from typing import Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax.data.shapes_world.world import WorldConfig, object_attributes
from gotr1_jax.metrics import MetricWriter
from gotr1_jax.models.qwen_image_processing import (QwenImageConfig, image_processor, pack_vision_batch,
                                                    patchify_images)
from gotr1_jax.models.qwen_vision import QwenVisionConfig, QwenVisionTower
from gotr1_jax.pretrain.judge_data import check_place_schedule, naming_example, place_spread

Array = jax.Array
ATTRIBUTES = ("colour", "shape", "texture")


class TowerProbe(nn.Module):
  """The vision tower, the mean of its merged tokens, one linear head per attribute. Params:
  `tower` (QwenVisionTower's tree, as the judge's `visual`) and `heads_<attribute>`."""

  vision: QwenVisionConfig
  classes: tuple[int, int, int]  # colours, shapes, textures

  @nn.compact
  def __call__(self, patches: Array, positions: Array, image_ids: Array, window_ids: Array) -> tuple[Array, ...]:
    tokens = QwenVisionTower(self.vision, name="tower")(patches, positions, image_ids, window_ids)
    valid = (image_ids[:, ::self.vision.merge_unit] >= 0)[..., None].astype(tokens.dtype)
    pooled = jnp.sum(tokens * valid, 1) / jnp.maximum(jnp.sum(valid, 1), 1.0)
    return tuple(nn.Dense(n, name=f"heads_{a}")(pooled).astype(jnp.float32)
                 for a, n in zip(ATTRIBUTES, self.classes))


def attribute_labels(names: list[str], world: WorldConfig) -> np.ndarray:
  """[N, 3] int32 (colour, shape, texture) indices of object names ("dotted blue star"; solid is
  left out of names), read by world.object_attributes."""
  options = (world.color_names, world.shapes, world.textures)
  return np.asarray([[o.index(w) for o, w in zip(options, object_attributes(name, world))] for name in names],
                    np.int32)


def lone_object_batch(rng: np.random.Generator, n: int, image_size: tuple[int, int], world: WorldConfig,
                      processor, vision: QwenVisionConfig, spread: float, vq_fraction: float = 0.0,
                      image_transform: Optional[Callable] = None) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
  """`n` lone objects (naming_example at `spread`) as a packed VisionBatch tuple and [n, 3] labels."""
  examples = [naming_example(rng, image_size, world,
                             image_transform if image_transform is not None and rng.random() < vq_fraction else None,
                             spread=spread) for _ in range(n)]
  patches, grids = patchify_images([e.image for e in examples], processor)
  per = int(np.prod(grids[0]))
  rows = [(patches[i * per:(i + 1) * per], grids[i:i + 1]) for i in range(n)]
  return tuple(pack_vision_batch(rows, vision, (per,))), attribute_labels([e.answer for e in examples], world)


def probe_loss(params, model: TowerProbe, vision: tuple, labels: Array) -> tuple[Array, dict[str, Array]]:
  logits = model.apply(params, *vision)
  metrics, total = {}, 0.0
  for k, (a, lg) in enumerate(zip(ATTRIBUTES, logits)):
    loss = optax.softmax_cross_entropy_with_integer_labels(lg, labels[:, k]).mean()
    total = total + loss
    metrics[f"vision/{a}_acc"] = jnp.mean(jnp.argmax(lg, -1) == labels[:, k])
  metrics["vision/loss"] = total
  return total, metrics


def pretrain_vision(vision: QwenVisionConfig, c: ConfigDict, image_size: tuple[int, int], seed: int, workdir: str,
                    world: WorldConfig = WorldConfig(), image_transform: Optional[Callable] = None,
                    vq_fraction: float = 0.0) -> tuple[dict, dict[str, float]]:
  """Trains a fresh tower (config.judge.vision_pretrain `c`: steps, batch_size, lr, place_schedule,
  log_every, eval_objects) and returns (the tower's params, final metrics), the last being
  its accuracies on `eval_objects` held-out lone objects anywhere. Metrics go to `workdir`."""
  schedule = check_place_schedule(c.get("place_schedule", None) or (), "config.judge.vision_pretrain.place_schedule")
  n = image_size[0] * image_size[1]
  processor = image_processor(QwenImageConfig(min_pixels=n, max_pixels=n), vision)
  model = TowerProbe(vision, (len(world.color_names), len(world.shapes), len(world.textures)))

  def batch(rng, size, spread):
    return lone_object_batch(rng, size, image_size, world, processor, vision, spread, vq_fraction, image_transform)

  vb, _ = batch(np.random.default_rng([seed, 0]), 1, 0.0)
  params = nn.unbox(model.init(jax.random.key(seed), *vb))
  tx = optax.adamw(float(c.lr))
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, vision_batch, labels):
    grads, metrics = jax.grad(probe_loss, has_aux=True)(params, model, vision_batch, labels)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  eval_fn = jax.jit(lambda p, v, y: probe_loss(p, model, v, y)[1])
  writer = MetricWriter(workdir)
  bar = tqdm(range(int(c.steps)), desc="judge vision", dynamic_ncols=True)
  for i in bar:
    spread = place_spread(schedule, i)
    vision_batch, labels = batch(np.random.default_rng([seed, i, 7]), int(c.batch_size), spread)
    params, opt_state, metrics = step(params, opt_state, vision_batch, labels)
    if (i + 1) % int(c.log_every) == 0 or i + 1 == int(c.steps):
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      writer.write(i + 1, dict(metrics, **{"vision/spread": spread}))
      bar.set_postfix(shape=f"{metrics['vision/shape_acc']:.2f}", colour=f"{metrics['vision/colour_acc']:.2f}")
  # Held out: lone objects anywhere, from a stream the training steps never draw.
  vision_batch, labels = batch(np.random.default_rng([seed, 1 << 30]), int(c.eval_objects), 1.0)
  final = {k.replace("vision/", "vision/heldout_"): float(v) for k, v in eval_fn(params, vision_batch, labels).items()}
  writer.write(int(c.steps), final)
  writer.close()
  return params["params"]["tower"], final
