"""The expected-score readout (rewards/score_readout.py): the expectation over the digit
probabilities on both published scales, the 1-or-10 split, rows without digit mass, and the
judge reward model reading R_sem / R_spa / R_PI through it from a generator's probabilities."""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data.chain import Obj, format_chain
from gotr1_jax.rewards.config import reward_defaults
from gotr1_jax.rewards.judge import JudgeRewardModel, RewardBatch
from gotr1_jax.rewards.score_readout import ANSWER_PREFIX, MIN_DIGIT_MASS, expected_scores


def one_hot(d: int) -> np.ndarray:
  return np.eye(10)[d]


def test_expectation_on_the_zero_to_ten_scale():
  first = np.stack([one_hot(7), one_hot(0), 0.5 * one_hot(2) + 0.5 * one_hot(4), one_hot(1), one_hot(1),
                    0.5 * one_hot(1) + 0.5 * one_hot(9)])
  after_one = np.array([[0.3, 0.7], [0.3, 0.7], [0.3, 0.7], [1.0, 0.0], [0.0, 1.0], [0.25, 0.25]])
  scores, mass = expected_scores(first, after_one, 0, 10)
  # 7; 0; (2+4)/2; "1" then "0" = 10; "1" then "}" = 1; half 9, a quarter 1, a quarter 10.
  np.testing.assert_allclose(scores, [0.7, 0.0, 0.3, 1.0, 0.1, (4.5 + 0.25 + 2.5) / 10])
  np.testing.assert_allclose(mass, 1.0)


def test_one_to_ten_scale_clips_zero_and_renormalises():
  first = np.stack([one_hot(0), 0.2 * one_hot(10 - 1), 0.1 * one_hot(4) + 0.1 * one_hot(7), np.zeros(10)])
  scores, mass = expected_scores(first, np.full((4, 2), 0.5), 1, 10)
  np.testing.assert_allclose(scores, [0.0, 8 / 9, (5.5 - 1) / 9, 0.0])  # a 0 reads as 1, like parse_score
  np.testing.assert_allclose(mass, [1.0, 0.2, 0.2, 0.0])
  with pytest.raises(ValueError, match="0-10 scales"):
    expected_scores(first, np.full((4, 2), 0.5), 0, 100)


class ProbGenerator:
  """A judge whose digit probabilities are set per question kind (by the question's first word)."""

  def __init__(self, probs: dict[str, np.ndarray]):
    self.probs, self.calls = probs, []

  def next_token_probs(self, texts, images, prefixes, candidates):
    self.calls.append((list(prefixes), tuple(candidates)))
    rows = []
    for text, prefix in zip(texts, prefixes):
      p = self.probs[text.split()[0]]
      rows.append(p if prefix == ANSWER_PREFIX else np.r_[0.5, np.zeros(9), 0.5])
    return np.stack(rows)

  def __call__(self, requests):  # R_RI still generates: one box answer per request
    return ['[{"bbox_2d": [0, 0, 28, 28], "label": "x"}]' for _ in requests]


def test_judge_reads_scores_as_expectations():
  config = reward_defaults()
  config.score_readout = "expected"
  config.prompt_version = "compact-v1"
  config.canvas.update(width=56, height=56, font_scale=1, line_width=1)
  probs = {"Plan": np.r_[np.zeros(8), 1.0, 0.0, 0.0], "Layout": np.r_[np.zeros(5), 0.6, 0, 0, 0, 0, 0],
           "Image": np.r_[0.0, 0.4, np.zeros(8), 0.0]}
  gen = ProbGenerator(probs)
  judge = JudgeRewardModel(gen, (56, 56), config)
  chain = format_chain([Obj("red cube", (0, 0, 500, 500))])
  batch = RewardBatch(prompts=["a red cube"] * 2, chains=[chain, "no boxes"],
                      images=np.zeros((2, 64, 64, 3), np.uint8), group_size=2)
  out = judge.score(batch)
  np.testing.assert_allclose(out["r_sem"], 0.8)
  np.testing.assert_allclose(out["r_spa"], [4 / 9, 0.0])  # 5 on 1-10; no boxes: not asked, 0
  np.testing.assert_allclose(out["r_pi"], 0.55)  # "1": half 1, half 10 -> 5.5 (mass 0.4, counted)
  assert out["parse_fail/r_sem"] == 0 and out["parse_fail/r_spa"] == 0 and out["parse_fail/r_pi"] == 2
  assert 0.4 < MIN_DIGIT_MASS
  assert gen.calls[0] == ([ANSWER_PREFIX] * 2 + [ANSWER_PREFIX + "1"] * 2, tuple("0123456789}"))
  with pytest.raises(ValueError, match="score_readout"):
    config.score_readout = "mean"
    JudgeRewardModel(gen, (56, 56), config)
  config.score_readout = "expected"
  with pytest.raises(ValueError, match="next_token_probs"):  # when the reward model is built, before any step
    JudgeRewardModel(lambda requests: ['{"score": 3}'] * len(requests), (56, 56), config)
