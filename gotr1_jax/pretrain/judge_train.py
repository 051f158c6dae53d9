"""Supervised training of ShapesWorld's tiny judge: a Qwen2.5-VL that answers GoT-R1's four questions.

Owns the judge's tokenizer (a small BPE over the judge's own questions and answers, Qwen's special
tokens and chat template), the teacher-forced batch (chat prompt with the image's `<|image_pad|>`
slots expanded, as `QwenVLGenerator.prompt_row` builds it for generation, then the answer and
`<|im_end|>`; loss on the answer only), the pure jitted step, the loop, and the closing check of
the trained judge through the real reward path (`JudgeRewardModel` over a `QwenVLGenerator`) against
the oracle on held-out val prompts (eval/judge_fidelity.py). The questions and answers are
pretrain/judge_data.py's; the network models/qwen_vl.py's.

With `vq_fraction` > 0 that fraction of images goes through the trained VQ (encode -> decode), so
the judge also learns the decoder's artefacts that the policy's images carry.

`judge.phases` splits the training into phases run one after the other (`phase_configs`; the
pipeline runs and saves them): each phase's fields replace the judge block's, and each phase after
the first continues from the judge the one before saved.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState
from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax.data.qwen_chat import IM_END, build_qwen_tokenizer, render_chat
from gotr1_jax.data.shapes_world.prompts import PromptSpec
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.eval import judge_fidelity
from gotr1_jax.metrics import MetricWriter
from gotr1_jax.models.qwen_image_processing import QwenImageConfig, pack_vision_batch
from gotr1_jax.models.qwen_positions import get_rope_index
from gotr1_jax.models.qwen_vl import QwenVL, QwenVLConfig, init_qwen_vl, qwen_vl_config_from_dict
from gotr1_jax.pretrain import judge_rank
from gotr1_jax.pretrain.judge_data import (CAPTION, EMPTY_GROUNDING, KINDS, NAMING, JudgeExample, PolicyPool,
                                          check_place_schedule, judge_examples, layout_contrast_example,
                                          naming_example, place_spread, score_answer)
from gotr1_jax.pretrain.judge_vision import pretrain_vision
from gotr1_jax.pretrain.scenes import split_prompts
from gotr1_jax.rewards.config import reward_defaults
from gotr1_jax.rewards.judge import JudgeRewardModel
from gotr1_jax.pretrain.step import supervised_step
from gotr1_jax.rl.optimizer import frozen_for, make_optimizer
from gotr1_jax.sampling.buckets import bucket_length
from gotr1_jax.sampling.qwen_vl import QwenVLGenerationConfig, QwenVLGenerator
from gotr1_jax.sampling.qwen_vl import generator_from_checkpoint as judge_from_checkpoint

Array = jax.Array


def reward_config(c: ConfigDict) -> ConfigDict:
  """The reward block the judge is trained for (and must be used with): canvas at the judge's size,
  R_RI asked as `judge.ri_question` says (rewards/config.py)."""
  r = reward_defaults()
  r.prompt_version = c.get("prompt_version", r.prompt_version)
  r.ri_question = c.get("ri_question", r.ri_question)
  r.canvas.width = r.canvas.height = int(c.image_size)
  r.canvas.font_scale = 1
  r.canvas.line_width = 1
  r.canvas.box_colours = c.get("canvas_box_colours", r.canvas.box_colours)
  r.canvas.style = c.get("canvas_style", r.canvas.style)
  return r


def example_stream(specs: Sequence[PromptSpec], seed: int, c: ConfigDict, reward: ConfigDict,
                   world: WorldConfig, image_transform: Optional[Callable] = None,
                   pool: Optional[PolicyPool] = None):
  """step -> c.batch_size JudgeExamples of one question kind (KINDS[step % 4], so that a batch's
  lengths are alike and short kinds use a short bucket), deterministic in (seed, step). With
  c.kind_weights (four numbers, KINDS order) the step's kind is drawn with those weights instead, and
  R_spa examples whose answer is the top score are kept with probability c.spa_top_keep: most chains
  satisfy their layout, and a judge taught them as they come answers every layout with the top
  score (R_spa then tells no two samples of a group apart). An R_spa draw is, with probability
  c.spa_contrast_fraction, a layout_contrast_example of a prompt with a relation. With a
  `pool`, each draw is one of the policy's own samples with probability c.policy_fraction; its
  R_RI questions whose true answer is "nothing found" are kept with probability
  c.policy_empty_grounding_keep (most objects the policy draws are not found by the oracle, and a
  judge taught them as they come learns to find nothing: R_RI, and so the product, 0 for every
  sample). With c.caption_fraction > 0 a step is, with that probability, a step of the caption
  question (judge_data.CAPTION: name and box every object) instead, and with c.naming_fraction > 0
  a step of the naming question (judge_data.NAMING: one object alone, its name); the other steps
  keep the kinds they had without them. c.naming_place_schedule = (hold, ramp) centres the naming
  objects for the first `hold` steps and spreads them to anywhere over the next `ramp` (() = anywhere
  from the start). With c.pi_rank_fraction > 0 a step is, with that probability, a ranking step:
  whole groups of c.pi_rank_group samples of the (grouped) pool, each asked R_PI (judge_rank.py)."""
  size = (int(c.image_size), int(c.image_size))
  pool_p = float(c.get("policy_fraction", 0.0)) if pool is not None else 0.0
  empty_keep = float(c.get("policy_empty_grounding_keep", 1.0))
  weights = tuple(c.get("kind_weights", None) or ())
  if weights and (len(weights) != len(KINDS) or min(weights) < 0 or not sum(weights) > 0):
    raise ValueError(f"config.judge.kind_weights={weights} must be {len(KINDS)} non-negative numbers "
                     f"(for {KINDS}) with a positive sum, or () for one kind per step in turn.")
  top_keep = float(c.get("spa_top_keep", 1.0))
  contrast_p = float(c.get("spa_contrast_fraction", 0.0))
  related = [s for s in specs if s.relations]
  top_spa = score_answer(1.0, "r_spa")
  kind_p = np.array(weights, np.float64) / sum(weights) if weights else None
  caption_p, naming_p = float(c.get("caption_fraction", 0.0)), float(c.get("naming_fraction", 0.0))
  if not (0.0 <= caption_p and 0.0 <= naming_p and caption_p + naming_p < 1.0):
    raise ValueError(f"config.judge.caption_fraction={caption_p} and naming_fraction={naming_p} must be "
                     "non-negative with a sum below 1: the shares of steps that ask the auxiliary questions "
                     "instead of GoT-R1's.")

  schedule = check_place_schedule(c.get("naming_place_schedule", None) or (), "config.judge.naming_place_schedule")
  rank_p = float(c.get("pi_rank_fraction", 0.0)) if pool is not None else 0.0
  rank_group = int(c.get("pi_rank_group", 8))
  if rank_p > 0:
    judge_rank.check_rank_pool(pool, rank_group, int(c.batch_size))

  def examples(step: int) -> list[JudgeExample]:
    if rank_p and np.random.default_rng([seed, step, 3]).random() < rank_p:
      return judge_rank.rank_examples(pool, np.random.default_rng([seed, step, 4]), rank_group, int(c.batch_size),
                                      size, reward, world)
    rng = np.random.default_rng([seed, step])
    if weights:
      kind = KINDS[int(np.random.default_rng([seed, step, 1]).choice(len(KINDS), p=kind_p))]
    else:
      kind = KINDS[step % len(KINDS)]
    if caption_p or naming_p:
      u = np.random.default_rng([seed, step, 2]).random()
      kind = CAPTION if u < caption_p else NAMING if u < caption_p + naming_p else kind

    def keep(e: JudgeExample) -> bool:  # thins top-score R_spa; draws nothing unless spa_top_keep < 1
      return not (e.kind == "r_spa" and e.answer == top_spa and top_keep < 1.0 and rng.random() >= top_keep)

    def maybe_vq() -> Optional[Callable]:  # one draw: the VQ round trip for c.vq_fraction of images
      return image_transform if image_transform is not None and rng.random() < c.vq_fraction else None

    out: list[JudgeExample] = []
    while len(out) < c.batch_size:
      if kind == NAMING:
        drawn = [naming_example(rng, size, world, maybe_vq(), spread=place_spread(schedule, step))]
      elif kind == "r_spa" and contrast_p and related and rng.random() < contrast_p:
        drawn = [layout_contrast_example(related[int(rng.integers(len(related)))], rng, reward, world)]
      elif pool_p and rng.random() < pool_p:
        drawn = [e for e in pool.examples(int(rng.integers(len(pool))), size, reward, world)
                 if not (e.kind == "r_ri" and e.answer == EMPTY_GROUNDING and rng.random() >= empty_keep)]
      else:
        spec = specs[int(rng.integers(len(specs)))]
        drawn = judge_examples(spec, rng, size, reward, world, c.corrupt_p, maybe_vq())
      out += [e for e in drawn if e.kind == kind and keep(e)]
    return out[:c.batch_size]

  return examples


def build_judge_tokenizer(specs: Sequence[PromptSpec], c: ConfigDict, reward: ConfigDict, world: WorldConfig):
  """A BPE over rendered chat prompts and answers of sampled judge examples (no expanded pads)."""
  texts = []
  stream = example_stream(specs, 12345, c, reward, world)
  images_first = generation_config(c).images_first
  for step in range(c.tokenizer_steps):
    for e in stream(step):
      texts.append(render_chat(None, e.text, 0 if e.image is None else 1, images_first) + e.answer + IM_END)
  return build_qwen_tokenizer(texts, vocab_size=int(c.vocab_size))


def judge_batch(generator: QwenVLGenerator, examples: Sequence[JudgeExample], length_buckets: Sequence[int],
                patch_bucket: int) -> dict[str, Any]:
  """Right-padded teacher-forced batch: tokens/mask [B, L] (L the smallest bucket that fits),
  positions [3, B, L], the VisionBatch and loss_weight [B, L-1] (1 where the target is an answer
  token or the closing <|im_end|>); for a ranking step's examples also judge_rank.rank_fields."""
  tok = generator.tokenizer
  end = tok.convert_tokens_to_ids(IM_END)
  rows, seqs, starts = [], [], []
  for e in examples:
    row = generator.prompt_row(e.text, e.image)
    answer = list(tok(e.answer, add_special_tokens=False)["input_ids"]) + [end]
    seq = row.ids + answer
    if len(seq) > max(length_buckets):
      raise ValueError(f"a judge example has {len(seq)} tokens, more than the largest of "
                       f"config.judge.length_buckets={tuple(length_buckets)}; add a larger bucket.")
    rows.append(row)
    seqs.append(seq)
    starts.append(len(row.ids))
  b, max_length = len(seqs), bucket_length(max(len(q) for q in seqs), length_buckets)
  tokens = np.full((b, max_length), generator.pad_id, np.int32)
  mask = np.zeros((b, max_length), np.int32)
  weight = np.zeros((b, max_length - 1), np.float32)
  for i, (seq, start) in enumerate(zip(seqs, starts)):
    tokens[i, :len(seq)] = seq
    mask[i, :len(seq)] = 1
    weight[i, start - 1:len(seq) - 1] = 1.0  # entry t scores token t + 1
  grids = np.concatenate([r.grid_thw for r in rows])
  positions, _ = get_rope_index(tokens, generator.model.config.mrope, image_grid_thw=grids if len(grids) else None,
                                attention_mask=mask)
  vision = pack_vision_batch([(r.patches, r.grid_thw) for r in rows], generator.model.config.vision, (patch_bucket,))
  batch = dict(tokens=tokens, mask=mask, positions=np.asarray(positions, np.int32), vision=tuple(vision),
               loss_weight=weight)
  if any(e.group >= 0 for e in examples):
    batch.update(judge_rank.rank_fields(tok, examples, seqs, starts))
  return batch


def judge_loss(params: Any, model: QwenVL, batch: dict[str, Any], digits: Optional[Array] = None,
               rank_weight: float = 0.0) -> tuple[Array, dict[str, Array]]:
  """Mean NLL of the answer tokens, and their greedy accuracy; on a ranking step's batch (and with
  `digits`, judge_rank.digit_ids) plus rank_weight times judge_rank.rank_loss."""
  logits = model.apply(params, batch["tokens"], batch["mask"], batch["positions"], batch["vision"])[:, :-1]
  targets = batch["tokens"][:, 1:]
  logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), targets[..., None], -1)[..., 0]
  w = batch["loss_weight"]
  n = jnp.maximum(jnp.sum(w), 1.0)
  loss = -jnp.sum(w * logp) / n
  acc = jnp.sum(w * (jnp.argmax(logits, -1) == targets)) / n
  metrics = {"loss/loss": loss, "train/answer_token_acc": acc}
  if digits is not None:  # a run with ranking steps logs their terms on every step (0 on the others)
    zero = jnp.zeros((), loss.dtype)
    rank, rank_metrics = (judge_rank.rank_loss(logits, batch, digits) if "rank_pos" in batch else
                          (zero, {"loss/rank": zero, "train/rank_pair_acc": zero, "train/rank_pairs": zero}))
    metrics.update(rank_metrics)
    metrics["loss/nll"] = loss
    loss = loss + rank_weight * rank
    metrics["loss/loss"] = loss
  return loss, metrics


def make_judge_train_step(model: QwenVL, digits: Optional[Array] = None, rank_weight: float = 0.0):
  return supervised_step(lambda params, batch: judge_loss(params, model, batch, digits, rank_weight))


def usage_of(c: ConfigDict) -> dict[str, Any]:
  """How a judge trained with `judge` block c must be asked, as run-config fields (saved beside it as
  judge_usage.json; rl/shapes_world.judge_reward_model checks a run against it)."""
  r = reward_config(c)
  return {"judge_generation.images_first": bool(c.get("images_first", True)),
          "reward.prompt_version": r.prompt_version, "reward.ri_question": r.ri_question,
          "reward.judge_image_size": int(c.image_size),
          **{f"reward.canvas.{k}": r.canvas[k]
             for k in ("width", "height", "font_scale", "line_width", "box_colours", "style")}}


_SET_BY_PHASES = ("phases", "init_checkpoint", "vision_pretrain")


def phase_configs(config: ConfigDict) -> list[ConfigDict]:
  """The judge's training phases: one copy of `config` per entry of `judge.phases` (a tuple of
  dicts of judge fields), its judge block updated with the entry. Phase k > 0 continues from phase
  k - 1's judge (the caller sets its `init_checkpoint`), pre-trains no tower of its own, and draws
  its own examples (seed + k). Only the last phase runs the closing fidelity check. Without phases,
  the one config as given. `judge.steps` must equal the phases' total (a phase without `steps`
  runs judge.steps), so that a `--config.judge.steps` override is not silently ignored."""
  c = config.judge
  phases = tuple(c.get("phases", ()))
  if not phases:
    return [config]
  configs = []
  for k, fields in enumerate(phases):
    if not isinstance(fields, dict):
      raise ValueError(f"config.judge.phases[{k}]={fields!r} must be a dict of judge fields, e.g. "
                       "dict(steps=800, vision_frozen_steps=800).")
    unknown = sorted(f for f in fields if f not in c or f in _SET_BY_PHASES)
    if unknown:
      raise ValueError(f"config.judge.phases[{k}] sets {unknown}: a phase may set fields of config.judge "
                       f"other than {_SET_BY_PHASES} (the pipeline chains the phases through those).")
    phase = ConfigDict(config.to_dict())
    phase.judge.phases = ()
    for field, value in fields.items():
      if isinstance(value, dict):
        phase.judge[field].update(value)
      else:
        phase.judge[field] = value
    if k > 0:
      phase.seed = int(config.seed) + k
      if "vision_pretrain" in phase.judge:
        phase.judge.vision_pretrain.update(steps=0, init="")
    if k < len(phases) - 1:
      phase.judge.fidelity_samples = 0
    configs.append(phase)
  per_phase = [int(p.judge.steps) for p in configs]
  if int(c.steps) != sum(per_phase):
    raise ValueError(
        f"config.judge.steps={c.steps}, but config.judge.phases run {'+'.join(map(str, per_phase))} = "
        f"{sum(per_phase)} steps: set the steps of each phase in config.judge.phases (and judge.steps to "
        "their total), or clear the phases (\"--config.judge.phases=()\") to train one run of judge.steps.")
  return configs


def judge_model_config(c: ConfigDict, vocab_size: int) -> QwenVLConfig:
  d = c.model.to_dict()
  d["lm"] = dict(d["lm"], vocab_size=vocab_size)
  return qwen_vl_config_from_dict(d)


def generation_config(c: ConfigDict) -> QwenVLGenerationConfig:
  """How the trained judge is run (also what ships in its directory): one patch bucket, 56 px."""
  n = int(c.image_size) ** 2
  return QwenVLGenerationConfig(prompt_buckets=tuple(c.prompt_buckets), row_buckets=tuple(c.row_buckets),
                                patch_buckets=(int(c.patch_bucket),), min_pixels=n, max_pixels=n,
                                images_first=bool(c.get("images_first", True)))


def train_judge(config: ConfigDict, workdir: str, image_transform: Optional[Callable] = None,
                world: WorldConfig = WorldConfig(), steps: Optional[int] = None):
  """Trains the judge of `config.judge` (from scratch, or on from `judge.init_checkpoint`, a judge
  directory whose tokenizer and model it keeps); returns (QwenVLConfig, params, tokenizer,
  generation config, final metrics incl. the judge-vs-oracle correlations on val prompts).
  `judge.policy_pool` (tools/make_judge_pool.py) with `judge.policy_fraction` > 0 mixes in the
  policy's own samples, so the judge learns the images and chains GRPO produces."""
  c = config.judge
  ranks = float(c.get("pi_rank_fraction", 0.0)) > 0
  if ranks and not c.get("policy_pool", ""):
    raise ValueError(f"config.judge.pi_rank_fraction={c.pi_rank_fraction} ranks groups of a policy pool: set "
                     "config.judge.policy_pool to one written with `tools/make_judge_pool.py --group 8`.")
  steps = c.steps if steps is None else steps
  metrics, vision_metrics = {}, {}
  reward = reward_config(c)
  train_specs = split_prompts("train", world=world)
  init = c.get("init_checkpoint", "")
  if init:
    start = judge_from_checkpoint(init)
    tokenizer, model_cfg, params = start.tokenizer, start.model.config, start.params
  else:
    tokenizer = build_judge_tokenizer(train_specs, c, reward, world)
    model_cfg = judge_model_config(c, len(tokenizer))
    params = nn.unbox(init_qwen_vl(model_cfg, jax.random.key(config.seed)))
    vp = c.get("vision_pretrain", None)
    if vp is not None and (int(vp.steps) > 0 or vp.get("init", "")):  # the tower first (pretrain/judge_vision.py)
      params["params"]["visual"], vision_metrics = pretrain_vision(
          model_cfg.vision, vp, (int(c.image_size),) * 2, config.seed, os.path.join(workdir, "vision"), world,
          image_transform, float(c.vq_fraction))
  model = QwenVL(model_cfg)
  gen_cfg = generation_config(c)
  n = int(c.image_size) ** 2
  generator = QwenVLGenerator(model, None, tokenizer, gen_cfg, QwenImageConfig(min_pixels=n, max_pixels=n))
  uses_pool = c.get("policy_fraction", 0.0) > 0 or ranks
  pool = PolicyPool.load(c.policy_pool) if c.get("policy_pool", "") and uses_pool else None
  stream = example_stream(train_specs, config.seed, c, reward, world, image_transform, pool)
  tx = make_optimizer(c.optimizer, steps)
  if int(c.get("vision_frozen_steps", 0)) > 0:  # the LM learns to read a tower held still first
    tx = optax.chain(tx, frozen_for(int(c.vision_frozen_steps), lambda path: path.startswith("params/visual/")))
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  digits = jnp.asarray(judge_rank.digit_ids(tokenizer)) if ranks else None
  step_fn = jax.jit(make_judge_train_step(model, digits, float(c.get("pi_rank_weight", 1.0))), donate_argnums=0)
  writer = MetricWriter(workdir)
  bar = tqdm(range(steps), desc="judge", dynamic_ncols=True)
  start, tokens = time.time(), 0
  for step in bar:
    batch = judge_batch(generator, stream(step), tuple(c.length_buckets), int(c.patch_bucket))
    tokens += int(batch["mask"].sum())
    state, metrics = step_fn(state, batch)
    if (step + 1) % c.log_every == 0 or step + 1 == steps:
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      metrics["perf/tokens_per_s"] = tokens / (time.time() - start)
      writer.write(step + 1, metrics)
      bar.set_postfix(loss=f"{metrics['loss/loss']:.3f}", acc=f"{metrics['train/answer_token_acc']:.3f}")
  final = {k: v for k, v in metrics.items() if k.startswith(("loss/", "train/answer"))}
  final.update(vision_metrics)
  generator.params = state.params
  if c.fidelity_samples > 0:
    sample = judge_fidelity.fidelity_sample(int(c.fidelity_samples), seed=config.seed + 1, world=world,
                                            image_transform=image_transform)
    result = judge_fidelity.judge_fidelity(JudgeRewardModel(generator, (int(c.image_size),) * 2, reward), sample,
                                           reward, batch_size=int(c.row_buckets[-1]), world=world)
    for k, r in result["per_reward"].items():
      final[f"fidelity/{k}_spearman"] = r["spearman"]
      final[f"fidelity/{k}_kendall"] = r["kendall"]
    final.update({f"fidelity/{k}": v for k, v in result["counters"].items()})
  writer.write(steps, final)
  writer.close()
  return model_cfg, state.params, tokenizer, gen_cfg, final
