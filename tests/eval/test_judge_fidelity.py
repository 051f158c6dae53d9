"""eval/judge_fidelity.py: the oracle judged against itself correlates perfectly, a noisy judge less,
a constant one not at all (NaN), and the sample is fixed by its seed."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gotr1_jax.data.shapes_world.prompts import parse_prompt
from gotr1_jax.eval import judge_fidelity as jf
from gotr1_jax.rewards.config import reward_defaults


@pytest.fixture(scope="module")
def sample():
  return jf.fidelity_sample(36, seed=0)


def test_sample_is_fixed_by_its_seed_and_covers_every_category(sample):
  again = jf.fidelity_sample(36, seed=0)
  assert again.chains == sample.chains and np.array_equal(again.images, sample.images)
  assert {s.category for s in sample.specs} == {"color", "shape", "texture", "spatial", "numeracy", "complex"}
  assert jf.fidelity_sample(36, seed=1).chains != sample.chains


def test_oracle_judge_is_perfect(sample):
  result = jf.judge_fidelity(jf.oracle_as_judge(), sample, reward_defaults(), batch_size=10)
  assert result["n"] == 36
  for k, r in result["per_reward"].items():
    assert r["spearman"] == pytest.approx(1.0) and r["kendall"] == pytest.approx(1.0), k
    assert r["judge_mean"] == pytest.approx(r["oracle_mean"])
  assert "| r_pi | 1.000 | 1.000 | nan | nan |" in jf.format_fidelity(result)  # no groups: all prompts differ


class _Noisy:
  def __init__(self, noise: float, constant: bool = False):
    self.inner, self.noise, self.constant = jf.oracle_as_judge(), noise, constant
    self.rng = np.random.default_rng(0)

  def score(self, batch):
    out = self.inner.score(batch)
    if self.constant:
      return {k: np.full_like(v, 0.5) for k, v in out.items()}
    return {k: np.clip(v + self.rng.normal(0, self.noise, v.shape), 0, 1).astype(np.float32) for k, v in out.items()}


def test_noise_lowers_the_correlation_and_a_constant_judge_has_none(sample):
  noisy = jf.judge_fidelity(_Noisy(0.3), sample, reward_defaults())["per_reward"]["r_pi"]
  assert 0.0 < noisy["spearman"] < 0.95 and noisy["kendall"] < noisy["spearman"]
  flat = jf.judge_fidelity(_Noisy(0, constant=True), sample, reward_defaults())["per_reward"]["r_sem"]
  assert math.isnan(flat["spearman"]) and math.isnan(flat["kendall"])


def test_a_policy_pool_is_a_fidelity_sample(sample):
  from gotr1_jax.pretrain.judge_data import PolicyPool
  pool = PolicyPool([s.text for s in sample.specs], [s.category for s in sample.specs], sample.chains, sample.images)
  back = jf.pool_sample(pool)
  assert [s.text for s in back.specs] == [s.text for s in sample.specs]
  assert [s.category for s in back.specs] == [s.category for s in sample.specs]
  result = jf.judge_fidelity(jf.oracle_as_judge(), back, reward_defaults(), batch_size=12)
  assert result["per_reward"]["reward"]["spearman"] == pytest.approx(1.0)


def test_within_group_agreement_is_what_grpo_sees():
  specs = [parse_prompt(t, "color") for t in ["a red circle"] * 3 + ["a blue square"] * 3 + ["a red star"]]
  groups = jf.prompt_groups(specs)
  assert groups == [slice(0, 3), slice(3, 6), slice(6, 7)]
  oracle = np.array([0.1, 0.5, 0.9, 0.2, 0.4, 0.6, 0.3])
  # Group 1 ranked in reverse (rho -1), group 2 constant (no advantage), group 3 a single sample.
  judge = np.array([0.9, 0.5, 0.1, 0.7, 0.7, 0.7, 0.0])
  got = jf.within_groups(judge, oracle, groups)
  assert got == {"group_spearman": pytest.approx(-1.0), "judge_constant": pytest.approx(0.5)}
  assert math.isnan(jf.within_groups(judge, oracle, [slice(0, 1)])["group_spearman"])


def _grounding_judge(answer_fn):
  """A JudgeRewardModel at 56 px whose R_RI answers are answer_fn(name, image) -> str."""
  from gotr1_jax.rewards.judge import JudgeRewardModel
  from gotr1_jax.rewards.prompts import get_prompts
  config = reward_defaults()
  config.prompt_version = "compact-v1"
  prompts = get_prompts("compact-v1")
  names = {}

  def generate(requests):
    return [answer_fn(names.setdefault(r.text, next(n for n in _ALL_NAMES if prompts.ri(n) == r.text)), r.image)
            for r in requests]

  return JudgeRewardModel(generate, (56, 56), config)


def _all_names():
  from gotr1_jax.data.shapes_world.world import SceneObject, WorldConfig
  w = WorldConfig()
  return [SceneObject(shape=s, color=c, texture=t, box=(0, 0, 1, 1)).name
          for t in w.textures for c in w.color_names for s in w.shapes]


_ALL_NAMES = _all_names()


def test_grounding_localisation_tells_a_judge_that_localises_from_one_that_does_not(sample):
  import json
  from gotr1_jax.data.shapes_world import detect
  from gotr1_jax.rewards.iou import object_key

  from gotr1_jax.rewards.judge import fit_image
  found = {fit_image(im, (56, 56)).tobytes(): detect.detect_objects(im) for im in sample.images}

  def true_box(name, image):  # what a perfect grounder answers, in the 56 px image's pixels
    d = next(d for d in found[image.tobytes()] if object_key(d.name) == object_key(name))
    return json.dumps([{"bbox_2d": [round(v * 56 / 1000) for v in d.box], "label": name}])

  perfect = jf.grounding_localisation(_grounding_judge(true_box), sample)
  assert perfect["asked"] > 30 and perfect["answered_frac"] == 1.0
  assert perfect["corr_x"] > 0.99 and perfect["corr_y"] > 0.99 and perfect["err_x"] < 0.02 and perfect["err_y"] < 0.02
  centre = jf.grounding_localisation(_grounding_judge(lambda n, im: '[{"bbox_2d": [18, 18, 38, 38]}]'), sample)
  assert math.isnan(centre["corr_x"]) and centre["err_x"] == pytest.approx(centre["centre_err_x"], abs=0.01)
  assert centre["centre_err_x"] > 0.1  # objects are not all in the middle: the baseline is a real bar
  blind = jf.grounding_localisation(_grounding_judge(lambda n, im: "I cannot tell."), sample)
  assert blind["answered_frac"] == 0.0 and math.isnan(blind["err_x"])
  assert "answered with a box" in jf.format_localisation(perfect)


def _reading_judge(answer_fn):
  """A JudgeRewardModel at 56 px whose answers to any question are answer_fn(text, image) -> str."""
  from gotr1_jax.rewards.judge import JudgeRewardModel
  return JudgeRewardModel(lambda requests: [answer_fn(r.text, r.image) for r in requests], (56, 56), reward_defaults())


def test_caption_and_naming_reading_tell_what_the_judge_sees(sample):
  from gotr1_jax.data.shapes_world import detect
  from gotr1_jax.pretrain.judge_data import CAPTION_QUESTION, NAMING_QUESTION, caption_answer

  def truthful(text, image):  # reads the judge's own 56 px image as the oracle does
    found = detect.detect_objects(image)
    return caption_answer(found, (56, 56)) if text == CAPTION_QUESTION else found[0].name

  perfect = jf.caption_reading(_reading_judge(truthful), sample)
  assert perfect["objects"] > 60 and perfect["matched_frac"] == 1.0 and perfect["unreadable_frac"] == 0.0
  assert perfect["corr_x"] > 0.98 and perfect["corr_y"] > 0.98 and perfect["err_x"] < 0.03
  assert perfect["colour_acc"] > 0.95 and perfect["shape_acc"] > 0.9 and perfect["texture_acc"] > 0.9
  assert perfect["paired_frac"] > 0.95 and perfect["paired_shape_acc"] > 0.9 and perfect["paired_colour_acc"] > 0.95
  # Always one red circle in the middle: boxes no better than the centre, labels at about chance.
  one = '[{"bbox_2d": [18, 18, 38, 38], "label": "red circle"}]'
  blind = jf.caption_reading(_reading_judge(lambda t, im: one if t == CAPTION_QUESTION else "red circle"), sample)
  assert math.isnan(blind["corr_x"]) and blind["err_x"] == pytest.approx(blind["centre_err_x"], abs=0.01)
  assert blind["colour_acc"] < 0.3 and blind["shape_acc"] < 0.35
  assert blind["paired_frac"] < 0.15  # one box in the middle overlaps few objects at IoU 0.5
  assert jf.caption_reading(_reading_judge(lambda t, im: "no idea"), sample)["unreadable_frac"] == 1.0
  named = jf.naming_reading(_reading_judge(truthful), num=40)
  # (Answers are read on the 64 px render, the judge sees it at 56 px: a texture can blur away.)
  assert named["asked"] == 40 and named["name_acc"] >= 0.95 and named["shape_acc"] >= 0.95
  guess = jf.naming_reading(_reading_judge(lambda t, im: "red circle" if t == NAMING_QUESTION else ""), num=40)
  assert guess["colour_acc"] < 0.35 and guess["shape_acc"] < 0.4 and guess["name_acc"] < 0.2
  assert "Naming (one object alone)" in jf.format_reading(perfect, named)

  def centre_only(text, image):  # names an object only when it lies in the middle of the image
    found = detect.detect_objects(image)
    x1, y1, x2, y2 = found[0].box
    centred = abs((x1 + x2) / 2 - 500) < 80 and abs((y1 + y2) / 2 - 500) < 80
    return found[0].name if centred else "red circle"

  middle = jf.naming_reading(_reading_judge(centre_only), num=40, spread=0.0)
  anywhere = jf.naming_reading(_reading_judge(centre_only), num=40)
  assert middle["name_acc"] >= 0.95 and anywhere["shape_acc"] < 0.5
  assert "Naming, the object in the middle: colour 1.00" in jf.format_reading(perfect, named, middle)
  assert jf.object_attributes("dotted blue star") == ("blue", "star", "dotted")
  assert jf.object_attributes("red circle") == ("red", "circle", "solid")
