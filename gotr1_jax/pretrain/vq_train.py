"""Training the tiny Janus VQ tokenizer on ShapesWorld images, and measuring its round trip.

Owns the VQGAN-style objective without the GAN (pixel reconstruction weighted toward object pixels,
codebook and commitment terms, straight-through gradients through the nearest-code lookup, on
l2-normalised vectors as DeepSeek's VQ-16 does), its pure jitted step, the loop and the round-trip
evaluation (the oracle reads reconstructions back). The network is models/vq.py's, unchanged.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState
from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax.data.shapes_world import oracle
from gotr1_jax.data.shapes_world.detect import detect_objects
from gotr1_jax.data.shapes_world.prompts import PromptSpec
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.metrics import MetricWriter
from gotr1_jax.models.vq import VQConfig, VQModel, from_uint8, to_uint8
from gotr1_jax.pretrain.scenes import SceneBatch, SceneStream, scene_batch
from gotr1_jax.pretrain.step import supervised_step
from gotr1_jax.rl.optimizer import make_optimizer

Array = jax.Array
_EPS = 1e-12


def vq_config_from_dict(d: Any) -> VQConfig:
  """VQConfig from a ConfigDict / dict, naming unknown fields."""
  d = dict(d.to_dict() if hasattr(d, "to_dict") else d)
  known = {f.name for f in dataclasses.fields(VQConfig)}
  unknown = sorted(set(d) - known)
  if unknown:
    raise ValueError(f"config.vq.model has unknown fields {unknown}; VQConfig takes {sorted(known)}.")
  return VQConfig(**d)


def _normalize(x: Array) -> Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def straight_through(model: VQModel, images: Array) -> tuple[Array, Array, Array, Array]:
  """The training forward, as a method body for `model.apply(..., method=straight_through)`.

  images [B, H, W, 3] in [-1, 1] -> (recon [B, H, W, 3], ids [B, h, w], z [B, h, w, D] as the
  quantiser compares it, codes [B, h, w, D] as the decoder reads them). The decoder sees
  z + stop_gradient(codes - z), so pixel gradients reach the encoder.
  """
  cfg = model.config
  z = model.encode_latents(images).astype(jnp.float32)
  z = _normalize(z) if cfg.encode_l2_norm else z
  ids = model.quantize.nearest(z)
  codes = model.quantize.lookup(ids)
  recon = model.decode_latents(z + jax.lax.stop_gradient(codes - z))
  return recon, ids, z, codes


def _patch_max(mask: Array, f: int) -> Array:
  """[B, H, W, 1] bool -> [B, H/f, W/f, 1] float: 1 where any pixel of the f x f patch is set."""
  b, h, w, _ = mask.shape
  return jnp.max(mask.reshape(b, h // f, f, w // f, f, 1), axis=(2, 4)).astype(jnp.float32)


def vq_loss(params: Any, model: VQModel, images: Array, background: Array, loss_cfg: ConfigDict,
            ) -> tuple[Array, dict[str, Array]]:
  """Weighted pixel MSE + codebook_weight * |codes - sg(z)|^2 + commit_weight * |sg(codes) - z|^2
  + background_weight * (spread of z over empty patches).

  Pixels that differ from the background get weight `object_pixel_weight` (objects cover a small
  part of each image; their colours must survive the oracle's tolerance). The last term pulls the
  latents of patches with no object pixel together, so empty space gets one code: the encoder's
  GroupNorm and mid-block attention see the whole image, and without it an empty patch's code
  depends on what is elsewhere (measured: 167 distinct codes for empty patches), which the policy
  would have to predict for ~70% of its image tokens.
  """
  recon, ids, z, codes = model.apply(params, images, method=straight_through)
  is_object = jnp.any(jnp.abs(images - background) > 1e-3, axis=-1, keepdims=True)
  weight = jnp.where(is_object, loss_cfg.object_pixel_weight, 1.0)
  pixel = jnp.sum(weight * (recon - images) ** 2) / jnp.sum(weight * jnp.ones_like(images))
  codebook = jnp.mean((codes - jax.lax.stop_gradient(z)) ** 2)
  commit = jnp.mean((jax.lax.stop_gradient(codes) - z) ** 2)
  empty = 1.0 - _patch_max(is_object, model.config.downsample_factor)  # [B, h, w, 1]
  n_empty = jnp.maximum(jnp.sum(empty), 1.0)
  z_empty = jnp.sum(empty * z, axis=(0, 1, 2)) / n_empty
  spread = jnp.sum(empty * (z - z_empty) ** 2) / n_empty
  loss = (pixel + loss_cfg.codebook_weight * codebook + loss_cfg.commit_weight * commit
          + loss_cfg.background_weight * spread)
  n = model.config.num_embeddings
  usage = jnp.zeros(n).at[ids.reshape(-1)].add(1.0) / ids.size
  perplexity = jnp.exp(-jnp.sum(jnp.where(usage > 0, usage * jnp.log(usage + _EPS), 0.0)))
  mse = jnp.mean((jnp.clip(recon, -1, 1) - images) ** 2)
  return loss, {"loss/loss": loss, "loss/pixel": pixel, "loss/codebook": codebook,
                "loss/commit": commit, "loss/background_spread": spread,
                "vq/batch_perplexity": perplexity, "vq/psnr": 10 * jnp.log10(4.0 / jnp.maximum(mse, _EPS))}


def make_vq_train_step(model: VQModel, loss_cfg: ConfigDict, world: WorldConfig = WorldConfig()):
  """(state, images [B, H, W, 3] in [-1, 1]) -> (state, metrics): one pure optimizer step."""
  background = from_uint8(jnp.array(world.background, jnp.uint8))
  return supervised_step(lambda params, images: vq_loss(params, model, images, background, loss_cfg))


def init_vq_state(model: VQModel, optimizer_cfg: ConfigDict, steps: int, rng: Array) -> TrainState:
  f = model.config.downsample_factor
  params = jax.jit(model.init)(rng, jnp.zeros((1, f, f, model.config.in_channels)))  # one compile, not op by op
  params = nn.unbox(params)
  return TrainState.create(apply_fn=model.apply, params=params,
                           tx=make_optimizer(optimizer_cfg, steps))


def reconstruct(model: VQModel, params: Any, images: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """uint8 images [N, H, W, 3] -> (token ids [N, h*w], uint8 reconstructions), in fixed-size chunks."""
  fn = _roundtrip_fn(model)
  n = images.shape[0]
  padded = np.zeros((-(-n // batch_size) * batch_size,) + images.shape[1:], np.uint8)
  padded[:n] = images
  ids, recon = zip(*(jax.device_get(fn(params, jnp.asarray(padded[i:i + batch_size])))
                     for i in range(0, padded.shape[0], batch_size)))
  return np.concatenate(ids)[:n], np.concatenate(recon)[:n]


def image_roundtrip(model: VQModel, params: Any) -> Callable[[np.ndarray], np.ndarray]:
  """uint8 image [H, W, 3] -> its uint8 VQ reconstruction, compiled once for the returned function
  (a per-image `reconstruct` call would trace and compile again every time)."""
  fn = _roundtrip_fn(model)
  return lambda image: np.asarray(jax.device_get(fn(params, jnp.asarray(image[None], jnp.uint8)))[1][0])


def _roundtrip_fn(model: VQModel):
  def fn(params, pixels):
    ids = model.apply(params, from_uint8(pixels), method=VQModel.encode)
    f = model.config.downsample_factor
    grid = (pixels.shape[1] // f, pixels.shape[2] // f)
    return ids, to_uint8(model.apply(params, ids, grid, method=VQModel.decode_tokens))
  return jax.jit(fn)


def evaluate_vq(model: VQModel, params: Any, batch: SceneBatch, batch_size: int,
                world: WorldConfig = WorldConfig()) -> tuple[dict[str, float], np.ndarray]:
  """Round-trip metrics of images -> tokens -> pixels, read back by the oracle:

  vq/roundtrip_exact: the reconstruction holds exactly the scene's objects (names, as a multiset);
  vq/roundtrip_t2i: mean category score of the reconstructions (the originals score 1.0);
  vq/roundtrip_box_iou: the oracle's R_RI of the ground-truth chain against the reconstruction;
  vq/eval_psnr (dB, [0, 255] range), vq/code_usage (fraction of the codebook used) and
  vq/empty_patch_codes (distinct codes of patches with no object pixel; 1 is ideal for the policy)
  and vq/empty_patch_top_code (the fraction of those patches that share the commonest code).
  Returns (metrics, reconstructions).
  """
  ids, recon = reconstruct(model, params, batch.images, batch_size)
  exact, t2i, iou = [], [], []
  for spec, scene, chain, image in zip(batch.specs, batch.scenes, batch.chains, recon):
    found = detect_objects(image, world)
    exact.append(sorted(o.name for o in found) == sorted(o.name for o in scene.objects))
    t2i.append(oracle.category_score(spec, found))
    iou.append(oracle.r_ri(chain, found, world))
  mse = np.mean((recon.astype(np.float64) - batch.images.astype(np.float64)) ** 2)
  f = model.config.downsample_factor
  n, h, w, _ = batch.images.shape
  patches = batch.images.reshape(n, h // f, f, w // f, f, 3)
  empty = np.all(patches == np.asarray(world.background, np.uint8), axis=(2, 4, 5)).reshape(n, -1)
  return {"vq/roundtrip_exact": float(np.mean(exact)), "vq/roundtrip_t2i": float(np.mean(t2i)),
          "vq/roundtrip_box_iou": float(np.mean(iou)),
          "vq/eval_psnr": float(10 * np.log10(255.0 ** 2 / max(mse, _EPS))),
          "vq/code_usage": len(np.unique(ids)) / model.config.num_embeddings,
          "vq/empty_patch_codes": float(len(np.unique(ids[empty]))),
          "vq/empty_patch_top_code": float(np.max(np.bincount(ids[empty])) / max(1, empty.sum()))}, recon


def roundtrip_scores(model: VQModel, params: Any, specs: Sequence[PromptSpec], scenes_per_prompt: int,
                     seed: int, batch_size: int = 32, world: WorldConfig = WorldConfig()) -> dict[str, float]:
  """Per category, the oracle's mean score of the VQ's round trip of true scenes: `scenes_per_prompt`
  scenes drawn for each of `specs` (seeded), rendered, encoded, decoded and read back: what a policy
  that drew true scenes' codes would score on those prompts (a practical ceiling, not a bound: other
  codes may decode better)."""
  if scenes_per_prompt < 1:
    raise ValueError(f"scenes_per_prompt must be >= 1, got {scenes_per_prompt}.")
  batch = scene_batch([s for s in specs for _ in range(scenes_per_prompt)], np.random.default_rng(seed), world)
  _, recon = reconstruct(model, params, batch.images, batch_size)
  scores: dict[str, list[float]] = {}
  for spec, image in zip(batch.specs, recon):
    scores.setdefault(spec.category, []).append(oracle.category_score(spec, detect_objects(image, world)))
  return {c: float(np.mean(v)) for c, v in scores.items()}


def train_vq(config: ConfigDict, workdir: str, world: WorldConfig = WorldConfig(),
             steps: Optional[int] = None) -> tuple[VQConfig, Any, dict[str, float]]:
  """Trains the VQ of `config.vq` from scratch; returns (VQConfig, params, final eval metrics).

  Writes metrics.csv / TensorBoard under workdir and a PNG grid (originals above reconstructions).
  """
  c = config.vq
  steps = c.steps if steps is None else steps
  model = VQModel(vq_config_from_dict(c.model))
  stream = SceneStream("train", config.seed, world=world)
  eval_batch = SceneStream("val", config.seed, world=world).batch(0, c.eval_images)
  state = init_vq_state(model, c.optimizer, steps, jax.random.key(config.seed))
  step_fn = jax.jit(make_vq_train_step(model, c.loss, world), donate_argnums=0)
  writer = MetricWriter(workdir)
  bar = tqdm(range(steps), desc="vq", dynamic_ncols=True)
  for step in bar:
    state, metrics = step_fn(state, from_uint8(jnp.asarray(stream.batch(step, c.batch_size).images)))
    if (step + 1) % c.log_every == 0 or step + 1 == steps:
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      writer.write(step + 1, metrics)
      bar.set_postfix(loss=f"{metrics['loss/loss']:.4f}", psnr=f"{metrics['vq/psnr']:.1f}")
  final, recon = evaluate_vq(model, state.params, eval_batch, c.batch_size, world)
  writer.write(steps, final)
  shown = min(c.grid_images, len(recon))
  writer.write_grid(steps, "vq_roundtrip", list(eval_batch.images[:shown]) + list(recon[:shown]), ncols=shown)
  writer.close()
  return model.config, state.params, final

