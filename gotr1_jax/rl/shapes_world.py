"""The GoT-R1 GRPO task on ShapesWorld: a Janus policy, the four rewards, the oracle evaluation.

Owns assembling the main job from its parts for the trainer (`Task`): the policy and VQ loaded from
a checkpoint directory (the shipped SFT policy by default), the compiled two-phase sampler
(sampling/janus_generate.py) behind `rl/janus_rollout.py`, prompts from the ShapesWorld tfds source
with a resumable position, rewards from `config.reward` (kind "gotr1": the Flax Qwen2.5-VL judge
on the four GoT-R1 questions; kind "function": `task.reward_fn`, by default the oracle's exact
versions of the same four, or "color_share", a dense check that the GRPO path learns at all) and
the oracle evaluation on fixed val prompts. With `task.log_oracle` the oracle also scores every
training sample, so a judge-reward run logs how the exact rewards moved (`oracle/*`); it reads
them on a thread while the judge's questions run on the devices.
`task.sample_images=False` draws chains only, for a run whose loss and reward read nothing else
(`check_chain_only` says which runs those are); its evaluations still draw images.
"""
from __future__ import annotations

import concurrent.futures
import os
from typing import Any, Mapping, Sequence

import numpy as np
from ml_collections import ConfigDict

from gotr1_jax import config_lib
from gotr1_jax.data.shapes_world.detect import label_pixels
from gotr1_jax.data.shapes_world.oracle import SPA_SCALES, oracle_rewards, r_sem, r_spa
from gotr1_jax.data.shapes_world.prompts import CATEGORIES, parse_prompt
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.data.shapes_world.tfds_builder import ShapesSource
from gotr1_jax.eval import shapes_eval
from gotr1_jax.models.janus import init_janus
from gotr1_jax.rewards.judge import RewardBatch, build_reward_model
from gotr1_jax.rl.janus_rollout import janus_logps_fn, make_janus_rollout
from gotr1_jax.rl.task import Task, register
from gotr1_jax.sampling.janus_generate import generator_from_checkpoint

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(PACKAGE_DIR, "assets", "checkpoints")
EXACT = ("r_sem", "r_spa", "r_ri", "r_pi")


def shipped_checkpoint(name: str) -> str:
  """gotr1_jax/assets/checkpoints/<name> (policy, vq, judge)."""
  return os.path.join(SHIPPED, name)


def _checkpoint(path: str, what: str, field: str) -> str:
  path = path or shipped_checkpoint(what)
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f"config.{field}={path!r} is not a directory. Point it at a Janus checkpoint (Flax directory from "
        "tools/convert.py or a torch one), or re-create the shipped ones with "
        "`python tools/pretrain_shapes.py --config configs/shapes_pretrain.py`.")
  return path


def oracle_reward_fn(spa_scale: str = "fraction"):
  """fn(RewardBatch) -> the oracle's exact r_sem, r_spa, r_ri, r_pi per sample (and t2i_score);
  r_spa on `spa_scale` (oracle.r_spa), checked here, before any sample is drawn. A batch without
  images gets r_sem and r_spa alone."""
  if spa_scale not in SPA_SCALES:
    raise ValueError(f"config.task.exact_spa={spa_scale!r} must be one of {SPA_SCALES}.")

  def fn(batch: RewardBatch) -> dict[str, np.ndarray]:
    cats = batch.categories or ["complex"] * batch.size
    specs = [parse_prompt(p, c) for p, c in zip(batch.prompts, cats)]
    if batch.images is None:  # chains only: the two rewards of the chain
      return {"r_sem": np.asarray([r_sem(s, chain) for s, chain in zip(specs, batch.chains)], np.float32),
              "r_spa": np.asarray([r_spa(s, chain, scale=spa_scale) for s, chain in zip(specs, batch.chains)],
                                  np.float32)}
    rows = [oracle_rewards(s, chain, im, spa_scale=spa_scale) for s, chain, im in
            zip(specs, batch.chains, batch.images)]
    return {k: np.asarray([r[k] for r in rows], np.float32) for k in EXACT + ("t2i_score",)}

  return fn


def color_share_reward_fn(color: str, world: WorldConfig = WorldConfig()):
  """fn(RewardBatch) -> {"reward": the share of image pixels the oracle reads as `color`} in [0, 1].

  Not a GoT-R1 reward: a dense signal that every sample earns some of, for checking that the whole
  GRPO path (sampler, CFG, loss over image tokens, LoRA, optimizer) learns before blaming a sparse
  reward for a flat curve (configs/shapes_sanity.py)."""
  if color not in world.color_names:
    raise ValueError(f"config.task.sanity_color={color!r} is not a ShapesWorld colour; pick one of "
                     f"{world.color_names}.")
  k = world.color_names.index(color)

  def fn(batch: RewardBatch) -> dict[str, np.ndarray]:
    share = [float(np.mean(label_pixels(im, world).labels == k)) for im in batch.images]
    return {"reward": np.asarray(share, np.float32)}

  return fn


def t2i_reward_fn():
  """fn(RewardBatch) -> the oracle's exact rewards with 'reward' = its category score (t2i_score).

  Not a GoT-R1 reward: the evaluation's own metric as the reward, the most any reward model could
  tell GRPO about what the evaluation counts. It bounds what a judge-reward run can gain in the
  same steps (docs/shapes_findings.md)."""
  exact = oracle_reward_fn()

  def fn(batch: RewardBatch) -> dict[str, np.ndarray]:
    out = exact(batch)
    out["reward"] = out["t2i_score"]
    return out

  return fn


REWARD_FNS = {"oracle": lambda t: oracle_reward_fn(t.get("exact_spa", "fraction")),
              "t2i_score": lambda t: t2i_reward_fn(), "color_share": lambda t: color_share_reward_fn(t.sanity_color)}


def judge_reward_model(config: ConfigDict, judge_dir: str = ""):
  """GoT-R1's judge rewards with the Qwen2.5-VL at judge_dir (default config.reward.judge_checkpoint,
  else the shipped judge), run with config.judge_generation, images at reward.judge_image_size."""
  from gotr1_jax.sampling.qwen_vl import generator_from_checkpoint as judge_from_checkpoint
  reward = config.reward
  path = _checkpoint(judge_dir or reward.get("judge_checkpoint", ""), "judge", "reward.judge_checkpoint")
  check_judge_usage(config, path)
  size = int(reward.judge_image_size)
  return build_reward_model(_with_kind(reward, "gotr1"), generate_fn=judge_from_checkpoint(
      path, config.get("judge_generation", None)), image_size=(size, size))


def check_judge_usage(config: ConfigDict, judge_dir: str) -> None:
  """Raises one ValueError naming every field where `config` asks the judge at judge_dir otherwise
  than it was trained to be asked (its judge_usage.json; nothing to check if it has none). A run
  config without the judge_generation block or reward.ri_question asks as their defaults do."""
  from gotr1_jax.pretrain.shipped import JUDGE_USAGE_FILE, judge_usage
  from gotr1_jax.rewards.config import reward_defaults
  from gotr1_jax.sampling.qwen_vl import QwenVLGenerationConfig
  defaults = {"judge_generation.images_first": QwenVLGenerationConfig().images_first,
              "reward.ri_question": reward_defaults().ri_question}
  wrong = []
  for field, want in judge_usage(judge_dir).items():
    have = config_lib.get_field(config, field, defaults.get(field))
    if have != want:
      wrong.append(f"--config.{field}={str(want).lower() if isinstance(want, bool) else want} (the run has {have!r})")
  if wrong:
    raise ValueError(f"The judge at {judge_dir} was trained to be asked otherwise than this run asks it "
                     f"({os.path.join(judge_dir, JUDGE_USAGE_FILE)}); set " + ", ".join(wrong) + ".")


def _with_kind(reward: ConfigDict, kind: str) -> ConfigDict:
  out = ConfigDict(reward.to_dict())
  out.kind = kind
  return out


def _reward_model(config: ConfigDict):
  if config.reward.kind == "function":
    name = config.task.get("reward_fn", "oracle")
    if name not in REWARD_FNS:
      raise ValueError(f"config.task.reward_fn={name!r} must be one of {tuple(REWARD_FNS)}.")
    return build_reward_model(config.reward, fn=REWARD_FNS[name](config.task))
  return judge_reward_model(config)


def check_chain_only(config: ConfigDict) -> None:
  """Raises naming the fix unless a run that samples no images (task.sample_images=False) can: its
  loss on the chain alone, no KL weight of its own for image codes (rl.image_beta), and its reward
  the oracle's chain rewards (R_sem, R_spa) as a weighted sum that weighs nothing else."""
  t, r = config.task, config.reward
  fix = "; or set config.task.sample_images=True."
  if t.get("loss_tokens", "all") != "chain":
    raise ValueError("config.task.sample_images=False needs config.task.loss_tokens='chain' (there are no "
                     f"image tokens to train), not {t.get('loss_tokens', 'all')!r}" + fix)
  if config.rl.get("image_beta") is not None:
    raise ValueError("config.task.sample_images=False leaves no image codes for config.rl.image_beta="
                     f"{config.rl.image_beta} to weigh; leave it unset" + fix)
  if r.kind != "function" or t.get("reward_fn", "oracle") != "oracle":
    raise ValueError("config.task.sample_images=False needs a reward of the chain alone: config.reward.kind="
                     f"'function' with config.task.reward_fn='oracle' (this run has {r.kind!r}, "
                     f"{t.get('reward_fn', 'oracle')!r}; the judge and the other functions read images)" + fix)
  image_weights = {k: r.weights[k] for k in ("r_ri", "r_pi") if r.weights.get(k, 0.0)}
  if r.combine != "weighted_sum" or image_weights:
    raise ValueError("config.task.sample_images=False needs config.reward.combine='weighted_sum' with "
                     f"weights.r_ri = weights.r_pi = 0 (this run has {r.combine!r}, {image_weights or 'no'} image "
                     "weights): R_RI and R_PI read the image" + fix)


class PromptStream:
  """The trainer's PromptSource over a ShapesSource: {'prompt', 'category'} dicts, resumable.

  With `categories` only prompts of those categories are handed out (the others are read and
  skipped, so the source position still says where the stream is)."""

  def __init__(self, source: ShapesSource, categories: Sequence[str] = ()):
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
      raise ValueError(f"config.task.train_categories has unknown categories {unknown}; use some of {CATEGORIES} "
                       "(or () for all).")
    self.source, self.categories = source, frozenset(categories)

  def next(self, n: int) -> list[dict[str, str]]:
    if not self.categories:
      return self.source.next(n)
    out: list[dict[str, str]] = []
    read = 0
    while len(out) < n:
      if read >= len(self.source) and not out:  # a whole epoch without one: it would loop forever
        raise ValueError(f"config.task.train_categories={sorted(self.categories)} matches no prompt of the "
                         "train split; build the split with those categories or pick others.")
      rows = self.source.next(n - len(out))
      read += len(rows)
      out += [r for r in rows if r["category"] in self.categories]
    return out

  def get_state(self) -> dict:
    return self.source.get_state()

  def set_state(self, state: Mapping[str, Any]) -> None:
    self.source.set_state(state)


@register("shapes_world")
def build(config: ConfigDict) -> Task:
  t = config.task
  checkpoint = _checkpoint(t.policy_checkpoint, "policy", "task.policy_checkpoint")
  generator, params, vq_params = generator_from_checkpoint(
      checkpoint, dict(generation=config.generation, dtype=config.model.dtype, param_dtype=config.model.param_dtype),
      t.tokenizer or None)
  policy = generator.policy
  source = ShapesSource("train", data_dir=os.path.expanduser(t.data_dir), config=t.data_config, seed=config.seed,
                        fields=("prompt", "category"))
  reward_model = _reward_model(config)
  exact = oracle_reward_fn() if t.log_oracle and config.reward.kind != "function" else None
  oracle_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oracle") if exact else None
  images = bool(t.get("sample_images", True))
  if not images:
    check_chain_only(config)
  rollout_fn = make_janus_rollout(generator, vq_params, t.get("loss_tokens", "all"), images)
  specs = shapes_eval.eval_prompts(t.eval_split, int(t.eval_prompts_per_category))

  def init_params(rng):
    return init_janus(policy.config, rng)

  def load_params():
    return params

  def rollout(p, rows: Sequence[Mapping[str, str]], rng):
    return rollout_fn(p, [r["prompt"] for r in rows], rng)

  def reward_fn(rows: Sequence[Mapping[str, str]], r) -> dict[str, Any]:
    batch = RewardBatch(prompts=[x["prompt"] for x in rows], chains=list(r.extras["chains"]),
                        images=r.extras["images"], group_size=int(config.rl.group_size),
                        categories=[x["category"] for x in rows])
    # Judge rewards: the exact ones beside them, for fidelity, read while the judge runs.
    beside = None if exact is None else oracle_thread.submit(exact, batch)
    out = dict(reward_model.score(batch))
    if beside is not None:
      out.update({f"oracle_{k}": v for k, v in beside.result().items()})
    out["chain/capped"] = int(np.sum(r.extras["chain_capped"]))
    return out

  def evaluate(p, rng) -> shapes_eval.EvalResult:
    return shapes_eval.evaluate(generator, p, vq_params, specs, int(t.eval_samples), rng,
                                batch_prompts=int(t.eval_batch_prompts))

  return Task(name="shapes_world", init_params=init_params, load_params=load_params, rollout=rollout,
              logps_fn=janus_logps_fn(policy), prompts=PromptStream(source, tuple(t.train_categories)),
              reward_fn=reward_fn, evaluate=evaluate)


def task_defaults() -> ConfigDict:
  """config.task for shapes_world; see configs/shapes_demo.py for the choices."""
  return ConfigDict(dict(
      name="shapes_world", policy_checkpoint="", tokenizer="", data_dir="~/tensorflow_datasets",
      data_config="default", log_oracle=True, eval_split="val", eval_prompts_per_category=8,
      eval_samples=2, eval_batch_prompts=8, eval_every=0,
      # reward.kind "function": "oracle" (exact GoT-R1 rewards), "t2i_score" (the evaluation's own score,
      # a ceiling check) or "color_share" (a dense sanity check)
      reward_fn="oracle",
      train_categories=(),  # () = every category; e.g. ("spatial",) trains on spatial prompts only
      loss_tokens="all",  # GoT-R1's loss over chain and image tokens; "chain" / "image" train one part (diagnosis)
      # False: chains only, no image phase or VQ decode (needs loss_tokens "chain" and the oracle's
      # chain rewards alone, check_chain_only); evaluations still draw images
      sample_images=True,
      # the oracle's exact R_spa: "fraction" of counts and relations held, or "rubric", the judge's
      # 1-10 bands read exactly (data/shapes_world/oracle.r_spa)
      exact_spa="fraction",
      sanity_color="red"))  # the colour "color_share" rewards
