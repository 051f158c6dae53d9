"""Supervised fine-tuning of the tiny ShapesWorld Janus policy: prompt -> chain -> image codes.

Owns the teacher-forced layout of one example (the GRPO batch's layout, rl/janus_rollout.py: left
pad | BOS + templated prompt | ground-truth chain | <begin_of_image> | VQ codes of the rendered
scene), the classifier-free-guidance drop rows, the weighted next-token loss, its pure jitted step,
the loop, and the closing evaluation with the very `JanusGenerator` GRPO samples with (oracle
scores, PNG grid, samples.jsonl). The network is models/janus.py's; the sampler and the prompt
template are sampling/janus_generate.py's; the oracle evaluation is eval/shapes_eval.py's.

A CFG drop row is what JanusGenerator's unconditional branch reads (`unconditional_rows`): every
token of prompt and chain except BOS and <begin_of_image> replaced by the tokenizer's pad token,
still attended, trained on the image codes only (Janus' recipe for guidance).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.training.train_state import TrainState
from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax.data.shapes_world.tokenizer import load_tokenizer
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.eval import shapes_eval
from gotr1_jax.metrics import MetricWriter
from gotr1_jax.models.janus import JanusConfig, JanusPolicy, init_janus, janus_config_from_dict
from gotr1_jax.models.vq import VQConfig, VQModel, from_uint8
from gotr1_jax.pretrain.chain_reliance import TextBatch, chain_reliance
from gotr1_jax.pretrain.shipped import load_policy
from gotr1_jax.pretrain.scenes import SceneBatch, SceneStream, scene_batch
from gotr1_jax.pretrain.step import supervised_step
from gotr1_jax.rl.optimizer import make_optimizer
from gotr1_jax.sampling.buckets import left_pad
from gotr1_jax.sampling.janus_generate import (
    JanusGenerationConfig, JanusGenerator, SpecialIds, unconditional_rows)

Array = jax.Array


def janus_config_for(model: Any, vq_config: VQConfig, world: WorldConfig = WorldConfig()) -> JanusConfig:
  """The policy's JanusConfig: `config.policy.model` (lm + generation-path sizes), the trained VQ,
  no SigLIP. The image is the VQ's token grid of a ShapesWorld image (num_image_tokens = grid^2)."""
  f = vq_config.downsample_factor
  if world.image_size % f or world.image_size // f != vq_config.num_patches:
    raise ValueError(f"The VQ's num_patches={vq_config.num_patches} does not match ShapesWorld's "
                     f"{world.image_size} px images at {f} px per token; retrain the VQ with "
                     f"config.vq.model.num_patches={world.image_size // f}.")
  d = dict(model.to_dict() if hasattr(model, "to_dict") else model)
  return janus_config_from_dict(dict(d, vq=dataclasses.asdict(vq_config), vision=None))


# ---- the teacher-forced batch --------------------------------------------------------------
def text_sequences(generator: JanusGenerator, prompts: Sequence[str], chains: Sequence[str],
                   ) -> tuple[list[list[int]], list[int]]:
  """(BOS + templated prompt + chain + <begin_of_image> per row, prompt lengths), tokenized as
  JanusGenerator reads them (the chain follows "Assistant:" after a space, as in the tokenizer's
  corpus)."""
  prompt_ids = [generator.tokenize(p) for p in prompts]
  chain_ids = generator.tokenizer([" " + c for c in chains], add_special_tokens=False)["input_ids"]
  seqs = [list(p) + list(c) + [generator.ids.image_start] for p, c in zip(prompt_ids, chain_ids)]
  return seqs, [len(p) for p in prompt_ids]


def sft_batch(seqs: Sequence[Sequence[int]], prompt_lengths: Sequence[int], image_tokens: np.ndarray,
              drop: np.ndarray, ids: SpecialIds, max_text_length: int, image_loss_weight: float = 1.0,
              noisy_image_tokens: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
  """The training batch (host arrays), rl/janus_rollout.py's layout plus a per-target weight:

  tokens [B, T] int32 (T = max_text_length + num_image_tokens; the codes start at the same column
  in every row), is_image [B, T] bool, attention_mask [B, T] int32, and loss_weight [B, T-1]
  float32: entry t weights the target tokens[t + 1]; 1 on the chain and <begin_of_image>,
  `image_loss_weight` on every image code, 0 on the prompt and padding. Rows with drop[b] True
  are CFG rows (unconditional_rows of the sequence) weighted on their image codes only.
  With `noisy_image_tokens` [B, num_image_tokens] the batch also holds `input_tokens`: the model
  reads those codes while the targets stay `tokens` (ExampleMaker says why).
  """
  longest = max(len(s) for s in seqs)
  if longest > max_text_length:
    raise ValueError(f"A prompt + chain of {longest} tokens does not fit config.policy.max_text_length="
                     f"{max_text_length}; raise it.")
  rows = [unconditional_rows([s], ids.pad)[0] if d else list(s) for s, d in zip(seqs, drop)]
  text, mask = left_pad(rows, max_text_length, ids.pad)
  n, num_codes = image_tokens.shape
  total = max_text_length + num_codes
  weight = np.zeros((n, total - 1), np.float32)
  weight[:, max_text_length - 1:] = image_loss_weight  # codes, scored from <begin_of_image> on
  for i, (s, lp, d) in enumerate(zip(seqs, prompt_lengths, drop)):
    if not d:  # entry t scores token t + 1: from the chain's first token to <begin_of_image>
      weight[i, max_text_length - len(s) + lp - 1:max_text_length - 1] = 1.0
  batch = {
      "tokens": np.concatenate([text, image_tokens.astype(np.int32)], axis=1),
      "is_image": np.concatenate([np.zeros((n, max_text_length), bool), np.ones((n, num_codes), bool)], axis=1),
      "attention_mask": np.concatenate([mask, np.ones((n, num_codes), np.int32)], axis=1),
      "loss_weight": weight,
  }
  if noisy_image_tokens is not None:
    batch["input_tokens"] = np.concatenate([text, noisy_image_tokens.astype(np.int32)], axis=1)
  return batch


# ---- the loss and the step -----------------------------------------------------------------
def sft_loss(params: Any, policy: JanusPolicy, batch: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
  """Weighted mean negative log-likelihood of the targets (the log-probs GRPO optimises:
  JanusPolicy.mixed_logps, as rl/janus_rollout.py's janus_logps_fn), with the chain and image
  parts reported apart. A batch with `input_tokens` is read from those and scored on `tokens`."""
  logps = policy.apply(params, batch.get("input_tokens", batch["tokens"]), batch["is_image"],
                       batch["attention_mask"], targets=batch["tokens"], method=JanusPolicy.mixed_logps)
  w = batch["loss_weight"]
  loss = -jnp.sum(w * logps) / jnp.maximum(jnp.sum(w), 1e-6)
  target_is_image = batch["is_image"][:, 1:]

  def nll(where: Array) -> Array:  # NaN when the batch has no such target (e.g. no CFG row)
    count = jnp.sum(where)
    return jnp.where(count > 0, -jnp.sum(jnp.where(where, logps, 0.0)) / jnp.maximum(count, 1), jnp.nan)

  chain = (w > 0) & ~target_is_image
  image = (w > 0) & target_is_image
  uncond = image & ~jnp.any(chain, axis=1, keepdims=True)  # the CFG rows' codes
  return loss, {"loss/loss": loss, "loss/chain_nll": nll(chain), "loss/image_nll": nll(image & ~uncond),
                "loss/uncond_image_nll": nll(uncond)}


def make_sft_train_step(policy: JanusPolicy):
  """(state, batch) -> (state, metrics): one pure optimizer step."""
  return supervised_step(lambda params, batch: sft_loss(params, policy, batch))


def init_policy_state(config: JanusConfig, optimizer_cfg: ConfigDict, steps: int, rng: Array) -> TrainState:
  params = nn.unbox(init_janus(config, rng))
  return TrainState.create(apply_fn=JanusPolicy(config).apply, params=params, tx=make_optimizer(optimizer_cfg, steps))


class ExampleMaker:
  """SceneBatch -> training batch: tokenizes prompt + chain, encodes the images with the frozen VQ
  (one compiled shape per batch size), draws the CFG drop rows and, with `c.image_input_noise` > 0,
  the image codes the model reads: each replaced by a uniformly drawn code with that probability.

  Why the noise: with clean teacher forcing an image code is mostly predictable from the codes
  before it (an object's colour is visible in its left neighbour), so only the first code of each
  object needs the chain, and the image head learns to ignore the chain (measured on a val batch:
  rolling the chains across it moved the noise-free policy's image NLL 2.60 -> 2.71, the policy
  trained with noise 0.4 1.68 -> 2.22). Corrupted inputs make the chain the reliable source of
  what to draw where."""

  def __init__(self, generator: JanusGenerator, vq_params: Any, c: ConfigDict):
    self.generator, self.vq_params, self.c = generator, vq_params, c
    vq = generator.vq_model
    self._encode = jax.jit(lambda p, pixels: vq.apply(p, from_uint8(pixels), method=VQModel.encode))

  def __call__(self, scenes: SceneBatch | TextBatch, rng: np.random.Generator, drop_prob: Optional[float] = None,
               noise: Optional[float] = None) -> dict[str, np.ndarray]:
    seqs, prompt_lengths = text_sequences(self.generator, scenes.prompts, scenes.chains)
    codes = np.asarray(self._encode(self.vq_params, jnp.asarray(scenes.images)))
    p = self.c.cfg_drop_prob if drop_prob is None else drop_prob
    drop = rng.random(len(seqs)) < p
    noise = self.c.image_input_noise if noise is None else noise
    noisy = None
    if noise > 0:
      vocab = self.generator.policy.config.image_vocab_size
      noisy = np.where(rng.random(codes.shape) < noise, rng.integers(vocab, size=codes.shape), codes)
    return sft_batch(seqs, prompt_lengths, codes, drop, self.generator.ids, self.c.max_text_length,
                     self.c.image_loss_weight, noisy)


def load_init_params(path: str, like: Any) -> Any:
  """The params of the saved policy at `path`, which must have the shapes of `like` (the params
  the config builds)."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"config.policy.init_checkpoint={path!r} is not a directory; point it at a "
                            "policy saved by tools/pretrain_shapes.py, or set it to '' to train from scratch.")
  _, params, _ = load_policy(path)
  params = nn.unbox(params)
  shapes = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)
  if shapes(params) != shapes(like):
    raise ValueError(f"config.policy.init_checkpoint={path!r} holds a policy of another architecture than "
                     "config.policy.model builds; make config.policy.model match its config.json or train "
                     "from scratch (init_checkpoint='').")
  return params


def measure_chain_reliance(generator: JanusGenerator, params: Any, vq_params: Any, c: ConfigDict,
                           num_batches: int, seed: int, world: WorldConfig = WorldConfig(),
                           make_batch: Optional[ExampleMaker] = None, eval_fn: Any = None) -> dict[str, float]:
  """chain_reliance.py's image NLLs (true text, shapes / colours permuted, chains rolled) of
  `num_batches` x c.batch_size val scenes under `params`, read with clean inputs and no CFG rows.
  A caller that already holds an ExampleMaker and a jitted sft_loss metrics function (the SFT loop)
  passes them, so that nothing is compiled again."""
  make_batch = make_batch or ExampleMaker(generator, vq_params, c)
  eval_fn = eval_fn or jax.jit(lambda p, batch: sft_loss(p, generator.policy, batch)[1])
  stream = SceneStream("val", seed, world=world)
  batches = [stream.batch(i, c.batch_size) for i in range(num_batches)]
  texts = [TextBatch(b.prompts, b.chains, b.images) for b in batches]

  def image_nll(tb: TextBatch) -> float:
    return float(eval_fn(params, make_batch(tb, np.random.default_rng(seed), 0.0, 0.0))["loss/image_nll"])

  return chain_reliance(image_nll, texts, seed, world)


# ---- the loop ------------------------------------------------------------------------------
def train_policy(config: ConfigDict, workdir: str, vq_config: VQConfig, vq_params: Any,
                 world: WorldConfig = WorldConfig(), steps: Optional[int] = None,
                 ) -> tuple[JanusConfig, Any, dict[str, float]]:
  """Trains the policy of `config.policy` on the frozen VQ, from scratch or, with
  `policy.init_checkpoint`, on from a saved policy of the same architecture (its data stream then
  starts at `policy.init_step`, so that it sees new scenes); returns (JanusConfig, params, final
  metrics: the last training losses, teacher-forced val losses, oracle scores).

  Writes metrics.csv / TensorBoard under workdir, a PNG grid of generations and samples.jsonl.
  """
  c = config.policy
  steps = c.steps if steps is None else steps
  janus_config = janus_config_for(c.model, vq_config, world)
  policy = JanusPolicy(janus_config)
  generator = JanusGenerator(policy, VQModel(vq_config), load_tokenizer(),
                             JanusGenerationConfig.from_dict(c.eval.generation))
  make_batch = ExampleMaker(generator, vq_params, c)
  stream = SceneStream("train", config.seed, world=world)
  val_rng = np.random.default_rng(config.seed)
  val_batch = make_batch(SceneStream("val", config.seed, world=world).batch(0, c.batch_size), val_rng, 0.0, 0.0)
  state = init_policy_state(janus_config, c.optimizer, steps, jax.random.key(config.seed))
  if c.get("init_checkpoint", ""):
    state = state.replace(params=load_init_params(c.init_checkpoint, state.params))
  first = int(c.get("init_step", 0))
  step_fn = jax.jit(make_sft_train_step(policy), donate_argnums=0)
  eval_fn = jax.jit(lambda params, batch: sft_loss(params, policy, batch)[1])
  writer = MetricWriter(workdir)
  bar = tqdm(range(steps), desc="policy", dynamic_ncols=True)
  metrics, start, tokens = {}, time.time(), 0
  for step in bar:
    rng = np.random.default_rng([config.seed, first + step])
    batch = make_batch(stream.batch(first + step, c.batch_size), rng)
    tokens += int(batch["attention_mask"].sum())
    state, metrics = step_fn(state, batch)
    if (step + 1) % c.log_every == 0 or step + 1 == steps:
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      metrics["perf/tokens_per_s"] = tokens / (time.time() - start)
      writer.write(step + 1, metrics)
      bar.set_postfix(loss=f"{metrics['loss/loss']:.3f}", chain=f"{metrics['loss/chain_nll']:.3f}",
                      image=f"{metrics['loss/image_nll']:.3f}")
  final = {k: v for k, v in metrics.items() if k.startswith("loss/")}
  final.update({k.replace("loss/", "val/"): float(v) for k, v in jax.device_get(
      eval_fn(state.params, val_batch)).items() if k != "loss/uncond_image_nll"})
  if c.get("reliance_batches", 0) > 0:
    final.update(measure_chain_reliance(generator, state.params, vq_params, c, c.reliance_batches, config.seed,
                                        world, make_batch, eval_fn))
  if c.eval.prompts_per_category > 0:
    final.update(evaluate_policy(generator, state.params, vq_params, c.eval, writer, steps, config.seed, world))
  writer.write(steps, final)
  writer.close()
  return janus_config, state.params, final


def evaluate_policy(generator: JanusGenerator, params: Any, vq_params: Any, e: ConfigDict, writer: MetricWriter,
                    step: int, seed: int, world: WorldConfig = WorldConfig()) -> dict[str, float]:
  """Samples `e.num_samples` (chain, image) pairs per val prompt as GRPO does (temperature and CFG of
  `e.generation`) and scores them with the oracle (eval/*); with `e.greedy` also one greedy chain +
  greedy CFG image per prompt (eval_greedy/*). Writes the grid (per prompt: a ground-truth rendering,
  the samples, the greedy one) and samples.jsonl (chains and scores) under the workdir."""
  specs = shapes_eval.eval_prompts("val", int(e.prompts_per_category), world=world)
  rng = jax.random.key(seed)
  sampled = shapes_eval.evaluate(generator, params, vq_params, specs, int(e.num_samples), rng,
                                 int(e.batch_prompts), world)
  out = sampled.scalars("eval/")
  results = {"sampled": sampled}
  k = int(e.num_samples)
  columns = [sampled.images.reshape((len(specs), k) + sampled.images.shape[1:])]
  if e.greedy:
    greedy_gen = JanusGenerator(generator.policy, generator.vq_model, generator.tokenizer, dataclasses.replace(
        generator.config, greedy_text=True, greedy_image=True))
    greedy = shapes_eval.evaluate(greedy_gen, params, vq_params, specs, 1, rng, int(e.batch_prompts), world)
    out.update(greedy.scalars("eval_greedy/"))
    results["greedy"] = greedy
    columns.append(greedy.images[:, None])
  truth = scene_batch(specs, np.random.default_rng(seed), world).images[:, None]
  grid = np.concatenate([truth] + columns, axis=1)[:int(e.grid_prompts)]
  writer.write_grid(step, "policy_generations", list(grid.reshape((-1,) + grid.shape[2:])), ncols=grid.shape[1])
  with open(os.path.join(writer.workdir, "samples.jsonl"), "w") as f:
    for name, result in results.items():
      for r in result.records:
        f.write(json.dumps({"mode": name, **r}) + "\n")
  return out
