"""How far a judge can be trusted: its four rewards against the oracle's exact ones on a fixed sample.

Owns the fidelity sample (val prompts, chains and images of every quality made like the judge's
training data: pretrain/judge_data.py's `sample_pair`, held-out prompts and seeds; or a policy's
own samples, `pool_sample`) and the rank
correlations (Spearman rho, Kendall tau-b) per reward and for the combined reward; on a policy's
samples also within each group of one prompt, the only differences GRPO's advantages use. GoT-R1 reports
its Qwen2.5-VL judge at rho = 0.34 against humans; here the reference is exact, so the numbers say
how much of the oracle's ordering the judge keeps. Scoring is the reward model's (rewards/judge.py).
`grounding_localisation` asks whether the judge's R_RI boxes lie where the objects are;
`caption_reading` and `naming_reading` ask, apart from GoT-R1's questions, whether the judge sees
where objects are and what they are (its training's auxiliary questions, pretrain/judge_data.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import numpy as np
from scipy import stats

from gotr1_jax.data.shapes_world import detect
from gotr1_jax.data.shapes_world.oracle import oracle_rewards
from gotr1_jax.data.shapes_world.prompts import CATEGORIES, PromptSpec, parse_prompt
from gotr1_jax.data.shapes_world.world import COORD_MAX, WorldConfig, box_center, object_attributes
from gotr1_jax.eval.shapes_eval import eval_prompts
from gotr1_jax.pretrain.judge_data import (CAPTION, CAPTION_QUESTION, NAMING, NAMING_QUESTION, PolicyPool,
                                          naming_example, sample_pair)
from gotr1_jax.rewards.combine import combine
from gotr1_jax.rewards.iou import match_pairs, object_key
from gotr1_jax.rewards.judge import JudgeRequest, RewardBatch, fit_image
from gotr1_jax.rewards.parse import parse_boxes, parse_labelled_boxes

COMPONENTS = ("r_sem", "r_spa", "r_ri", "r_pi")
PAIR_IOU = 0.5  # caption_reading: an answered box and an object pair up at this IoU or more


@dataclasses.dataclass
class FidelitySample:
  specs: list[PromptSpec]
  chains: list[str]
  images: np.ndarray  # [N, H, W, 3] uint8


def fidelity_sample(num: int, seed: int = 0, split: str = "val", corrupt_p: float = 0.6,
                    world: WorldConfig = WorldConfig(),
                    image_transform: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> FidelitySample:
  """`num` (prompt, chain, image) triples, prompts cycling over the split's categories."""
  per_category = -(-num // len(CATEGORIES))
  by_category = [eval_prompts(split, per_category, (c,), world=world) for c in CATEGORIES]
  specs = [by_category[i % len(CATEGORIES)][i // len(CATEGORIES) % len(by_category[i % len(CATEGORIES)])]
           for i in range(num)]
  rng = np.random.default_rng(seed)
  pairs = [sample_pair(s, rng, world, corrupt_p, image_transform) for s in specs]
  return FidelitySample(specs, [c for c, _ in pairs], np.stack([im for _, im in pairs]))


def pool_sample(pool: PolicyPool, world: WorldConfig = WorldConfig()) -> FidelitySample:
  """A policy's own samples (pretrain/judge_data.PolicyPool) as a fidelity sample: how far the
  judge can be trusted on what GRPO actually produces."""
  specs = [parse_prompt(p, c, world) for p, c in zip(pool.prompts, pool.categories)]
  return FidelitySample(specs, list(pool.chains), np.asarray(pool.images, np.uint8))


def correlations(judge: np.ndarray, oracle: np.ndarray) -> dict[str, float]:
  """Spearman rho and Kendall tau-b; NaN when either side is constant (no ordering to compare)."""
  judge, oracle = np.asarray(judge, np.float64), np.asarray(oracle, np.float64)
  if np.ptp(judge) == 0 or np.ptp(oracle) == 0:
    return {"spearman": float("nan"), "kendall": float("nan")}
  return {"spearman": float(stats.spearmanr(judge, oracle).statistic),
          "kendall": float(stats.kendalltau(judge, oracle).statistic)}


def within_groups(judge: np.ndarray, oracle: np.ndarray, groups: list[slice]) -> dict[str, float]:
  """What GRPO sees: the judge's ranking *inside* each group of samples of one prompt.

  group_spearman: mean Spearman rho over the groups where both judge and oracle vary;
  judge_constant: fraction of groups where the judge gives every sample the same score (GRPO's
  advantage is then 0 for the whole group, whatever the oracle says). NaN without groups of 2+.
  """
  groups = [g for g in groups if g.stop - g.start > 1]
  if not groups:
    return {"group_spearman": float("nan"), "judge_constant": float("nan")}
  rhos = [correlations(judge[g], oracle[g])["spearman"] for g in groups]
  rhos = [r for r in rhos if np.isfinite(r)]
  constant = [np.ptp(judge[g]) == 0 for g in groups]
  return {"group_spearman": float(np.mean(rhos)) if rhos else float("nan"),
          "judge_constant": float(np.mean(constant))}


def prompt_groups(specs: list[PromptSpec]) -> list[slice]:
  """Runs of consecutive samples with the same prompt (a GRPO group in a policy pool)."""
  groups, start = [], 0
  for i in range(1, len(specs) + 1):
    if i == len(specs) or specs[i].text != specs[start].text:
      groups.append(slice(start, i))
      start = i
  return groups


def exact_rewards(sample: FidelitySample, reward_config: Any, world: WorldConfig = WorldConfig(),
                  keys: Sequence[str] = COMPONENTS, spa_scale: str = "fraction") -> dict[str, np.ndarray]:
  """The oracle's exact `keys` (any of oracle_rewards' outputs) per sample, [N] each, plus "reward":
  the four components combined as `reward_config.combine` says; r_spa on `spa_scale` (oracle.r_spa)."""
  exact = [oracle_rewards(s, c, im, world, spa_scale=spa_scale)
           for s, c, im in zip(sample.specs, sample.chains, sample.images)]
  out = {k: np.asarray([e[k] for e in exact]) for k in dict.fromkeys((*COMPONENTS, *keys))}
  out["reward"] = combine({k: out[k] for k in COMPONENTS}, reward_config)
  return out


def judge_fidelity(reward_model: Any, sample: FidelitySample, reward_config: Any, batch_size: int = 32,
                   world: WorldConfig = WorldConfig()) -> dict[str, Any]:
  """{'per_reward': {kind: {spearman, kendall, judge_mean, oracle_mean}}, 'counters': {...}, 'n': N}."""
  n = len(sample.specs)
  judged: dict[str, list] = {k: [] for k in COMPONENTS}
  counters: dict[str, float] = {}
  for start in range(0, n, batch_size):
    sl = slice(start, min(n, start + batch_size))
    batch = RewardBatch(prompts=[s.text for s in sample.specs[sl]], chains=sample.chains[sl],
                        images=sample.images[sl], group_size=1, categories=[s.category for s in sample.specs[sl]])
    out = reward_model.score(batch)
    for k in COMPONENTS:
      judged[k].extend(np.asarray(out[k]).tolist())
    for k, v in out.items():
      if np.ndim(v) == 0:
        counters[k] = counters.get(k, 0.0) + float(v)
  oracle = exact_rewards(sample, reward_config, world)
  judge = {k: np.asarray(v) for k, v in judged.items()}
  judge["reward"] = combine(judge, reward_config)
  groups = prompt_groups(sample.specs)
  per = {k: dict(correlations(judge[k], oracle[k]), **within_groups(judge[k], oracle[k], groups),
                 judge_mean=float(judge[k].mean()), oracle_mean=float(oracle[k].mean()))
         for k in (*COMPONENTS, "reward")}
  return {"per_reward": per, "counters": counters, "n": n}


def grounding_localisation(reward_model: Any, sample: FidelitySample, batch_size: int = 64,
                           world: WorldConfig = WorldConfig()) -> dict[str, float]:
  """Does the judge put its R_RI boxes where the objects are? For every object the oracle detects
  alone under its name (no other object of that name in the image), the judge is asked GoT-R1's
  grounding question about that name (reward_model: a JudgeRewardModel); where it answers with a
  box, its first box's centre is compared with the detected one. Returns the number asked, the
  fraction answered with a box, the Pearson correlations of the x and y centres (NaN with < 3
  boxes), and the mean absolute centre errors as fractions of the image side, beside those of
  always answering the image's centre (a judge that does not localise scores about that)."""
  size = reward_model.image_size
  asks = []  # (image seen by the judge, name, true centre in [0, 1))
  for image in sample.images:
    seen = fit_image(np.asarray(image), size)
    found = detect.detect_objects(np.asarray(image), world)
    names = [object_key(d.name) for d in found]
    for d, key in zip(found, names):
      if names.count(key) == 1:
        asks.append((seen, d.name, tuple(v / COORD_MAX for v in box_center(d.box))))
  true, got = [], []
  for start in range(0, len(asks), batch_size):
    chunk = asks[start:start + batch_size]
    answers = reward_model.ask("r_ri", [reward_model.prompts.ri(n) for _, n, _ in chunk], [im for im, _, _ in chunk])
    for (_, _, centre), answer in zip(chunk, answers):
      boxes = parse_boxes(answer, size, frame=reward_model.config.box_frame)
      if boxes:
        true.append(centre)
        got.append(tuple(v / COORD_MAX for v in box_center(boxes[0])))
  return {"asked": float(len(asks)), "answered_frac": len(true) / max(len(asks), 1), **_centre_stats(true, got)}


def _centre_stats(true: Sequence[tuple[float, float]], got: Sequence[tuple[float, float]]) -> dict[str, float]:
  """Pearson correlations of answered and true centres per axis (NaN with < 3 or a constant side),
  mean absolute errors, and those of always answering the image's centre; fractions of the side."""
  true_a, got_a = np.asarray(true, np.float64).reshape(-1, 2), np.asarray(got, np.float64).reshape(-1, 2)

  def corr(a, b):
    return float(np.corrcoef(a, b)[0, 1]) if len(a) >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")

  mean = lambda a: float(np.mean(a)) if len(a) else float("nan")  # noqa: E731
  return {"corr_x": corr(true_a[:, 0], got_a[:, 0]), "corr_y": corr(true_a[:, 1], got_a[:, 1]),
          "err_x": mean(np.abs(true_a[:, 0] - got_a[:, 0])), "err_y": mean(np.abs(true_a[:, 1] - got_a[:, 1])),
          "centre_err_x": mean(np.abs(true_a[:, 0] - 0.5)), "centre_err_y": mean(np.abs(true_a[:, 1] - 0.5))}


def _attribute_hits(true_name: str, answered_name: str, world: WorldConfig) -> np.ndarray:
  pairs = zip(object_attributes(true_name, world), object_attributes(answered_name, world))
  return np.array([a == b for a, b in pairs], np.float64)


def _ask(reward_model: Any, text: str, images: Sequence[np.ndarray], max_new_tokens: int, kind: str,
         batch_size: int) -> list[str]:
  """One question about each image (as the judge sees it), through the judge's generator."""
  out: list[str] = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    answers = reward_model.generate_fn([JudgeRequest(text, im, max_new_tokens, kind) for im in chunk])
    out += [a if isinstance(a, str) else "" for a in answers]
  return out


def caption_reading(reward_model: Any, sample: FidelitySample, batch_size: int = 64,
                    world: WorldConfig = WorldConfig(), max_new_tokens: int = 240) -> dict[str, float]:
  """Does the judge see where the objects are, and what they are, with no object named to it? It
  is asked the caption question (judge_data.CAPTION_QUESTION: name and box every object) about every
  image. For every object the oracle detects, the answered box whose centre is nearest to it is
  compared with it: centre correlation and error (beside always answering the image's centre), and
  that box's label against the object's colour, shape and texture (chance: colour 1/8, shape 1/6).
  The nearest box can be another object's, so the labels are also read apart from place: answered
  boxes are paired one-to-one with the image's objects (Hungarian on IoU, as R_RI pairs them), and
  the labels of pairs with IoU >= PAIR_IOU are scored (`paired_*`). Answers that are not a JSON
  list of boxes give no boxes and are counted."""
  size = reward_model.image_size
  seen = [fit_image(np.asarray(im), size) for im in sample.images]
  answers = _ask(reward_model, CAPTION_QUESTION, seen, max_new_tokens, CAPTION, batch_size)
  true, got, hits, paired_hits, unreadable, objects = [], [], [], [], 0, 0
  for image, answer in zip(sample.images, answers):
    labelled = parse_labelled_boxes(answer, size, frame="pixels")
    unreadable += labelled is None
    # (box, centre, label) of each answered entry with a readable box
    boxed = [(b, tuple(v / COORD_MAX for v in box_center(b)), label) for label, b in labelled or []]
    found = detect.detect_objects(np.asarray(image), world)
    objects += len(found)
    for d in found if boxed else []:
      centre = tuple(v / COORD_MAX for v in box_center(d.box))
      _, near, label = min(boxed, key=lambda b: (b[1][0] - centre[0]) ** 2 + (b[1][1] - centre[1]) ** 2)
      true.append(centre)
      got.append(near)
      hits.append(_attribute_hits(d.name, label, world))
    for i, j, iou in zip(*match_pairs([d.box for d in found], [b[0] for b in boxed])):
      if iou >= PAIR_IOU:
        paired_hits.append(_attribute_hits(found[i].name, boxed[j][2], world))
  acc = np.mean(hits, 0) if hits else np.full(3, np.nan)
  paired = np.mean(paired_hits, 0) if paired_hits else np.full(3, np.nan)
  return {"images": float(len(answers)), "unreadable_frac": unreadable / max(len(answers), 1),
          "objects": float(objects), "matched_frac": len(true) / max(objects, 1), **_centre_stats(true, got),
          "colour_acc": float(acc[0]), "shape_acc": float(acc[1]), "texture_acc": float(acc[2]),
          "paired_frac": len(paired_hits) / max(objects, 1), "paired_colour_acc": float(paired[0]),
          "paired_shape_acc": float(paired[1]), "paired_texture_acc": float(paired[2])}


def naming_reading(reward_model: Any, num: int = 160, seed: int = 0, batch_size: int = 64,
                   world: WorldConfig = WorldConfig(),
                   image_transform: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                   spread: float = 1.0) -> dict[str, float]:
  """What the judge sees in one object alone: `num` lone objects (judge_data.naming_example, seeded;
  `spread` 1 places them anywhere, 0 in the middle, as a naming_place_schedule's hold shows them),
  each asked NAMING_QUESTION; accuracy of the answer's colour, shape and texture words, and of the
  whole name."""
  rng = np.random.default_rng(seed)
  examples = [naming_example(rng, reward_model.image_size, world, image_transform, spread=spread)
              for _ in range(num)]
  answers = _ask(reward_model, NAMING_QUESTION, [e.image for e in examples], 16, NAMING, batch_size)
  acc = np.mean([_attribute_hits(e.answer, a, world) for e, a in zip(examples, answers)], 0)
  return {"asked": float(num), "colour_acc": float(acc[0]), "shape_acc": float(acc[1]),
          "texture_acc": float(acc[2]),
          "name_acc": float(np.mean([e.answer == a.strip() for e, a in zip(examples, answers)]))}


def format_reading(caption: dict[str, float], naming: dict[str, float],
                   centred: Optional[dict[str, float]] = None) -> str:
  """The caption line and the naming line (lone objects anywhere), then, given, the naming line of
  lone objects in the middle."""
  text = (f"Caption (every object, none named): {int(caption['objects'])} objects, {caption['matched_frac']:.0%} "
          f"with an answered box, {caption['unreadable_frac']:.0%} of answers unreadable; nearest box's centre "
          f"correlation x {caption['corr_x']:.3f}, y {caption['corr_y']:.3f}, error x {caption['err_x']:.3f}, "
          f"y {caption['err_y']:.3f} (the image's centre: {caption['centre_err_x']:.3f}, "
          f"{caption['centre_err_y']:.3f}); its label's colour {caption['colour_acc']:.2f}, shape "
          f"{caption['shape_acc']:.2f}, texture {caption['texture_acc']:.2f}; boxes paired one-to-one at IoU >= "
          f"{PAIR_IOU}: {caption['paired_frac']:.0%} of objects, their labels' colour "
          f"{caption['paired_colour_acc']:.2f}, shape {caption['paired_shape_acc']:.2f}, texture "
          f"{caption['paired_texture_acc']:.2f}\n"
          f"Naming (one object alone): {int(naming['asked'])} objects; colour {naming['colour_acc']:.2f}, shape "
          f"{naming['shape_acc']:.2f}, texture {naming['texture_acc']:.2f}, whole name {naming['name_acc']:.2f}")
  if centred is not None:
    text += (f"\nNaming, the object in the middle: colour {centred['colour_acc']:.2f}, shape "
             f"{centred['shape_acc']:.2f}, texture {centred['texture_acc']:.2f}, whole name {centred['name_acc']:.2f}")
  return text


def format_localisation(r: dict[str, float]) -> str:
  return (f"R_RI boxes: {int(r['asked'])} objects asked, {r['answered_frac']:.0%} answered with a box; centre "
          f"correlation with the object's x {r['corr_x']:.3f}, y {r['corr_y']:.3f}; mean centre error "
          f"x {r['err_x']:.3f}, y {r['err_y']:.3f} of the image side (always the image's centre: "
          f"{r['centre_err_x']:.3f}, {r['centre_err_y']:.3f})")


def format_fidelity(result: dict[str, Any]) -> str:
  lines = ["| reward | Spearman rho | Kendall tau | rho within groups | judge constant in group | judge mean | "
           "oracle mean |", "|---|---|---|---|---|---|---|"]
  for k, r in result["per_reward"].items():
    lines.append(f"| {k} | {r['spearman']:.3f} | {r['kendall']:.3f} | {r['group_spearman']:.3f} | "
                 f"{r['judge_constant']:.3f} | {r['judge_mean']:.3f} | {r['oracle_mean']:.3f} |")
  return "\n".join(lines)


def oracle_as_judge(world: WorldConfig = WorldConfig()):
  """A reward model whose answers are the oracle's own (fidelity 1): the ceiling, and a test double."""

  class _Oracle:
    def score(self, batch: RewardBatch) -> dict[str, Any]:
      rows = [oracle_rewards(p, c, im, world, category=cat) for p, c, im, cat in
              zip(batch.prompts, batch.chains, batch.images, batch.categories)]
      return {k: np.asarray([r[k] for r in rows], np.float32) for k in COMPONENTS}

  return _Oracle()

