"""Reading a 0-10 judge score as an expectation over the judge's digit probabilities.

Owns `config.reward.score_readout = "expected"`: instead of greedily generating `{"score": 7}` and
parsing the 7, the answer's start `{"score": ` is given to the judge and the score is the mean of
the integer scores under its next-token probabilities (the probability-weighted score of G-Eval;
T2I-CompBench's VQA scores are likewise probabilities, not argmaxes). A small judge's greedy
answers are coarse: on the demo's rollouts the shipped judge gave all 8 samples of a prompt the same
R_PI in 92% of the groups and the same R_spa in 96%, so those components told GRPO nothing; their
expectations differ between samples wherever the judge's confidence does.

Two forward passes per question, no sampling: after `{"score": ` (the first digit) and after
`{"score": 1` (whether the 1 is 1 or the start of 10). Needs a judge generator with
`next_token_probs` (sampling/qwen_vl.QwenVLGenerator). It does not ask the questions' wording
(prompts.py) or parse generated text (parse.py).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

ANSWER_PREFIX = '{"score": '  # how every prompt version asks the answer to start (prompts.py)
DIGITS = tuple(str(d) for d in range(10))
CLOSE = "}"
# Below this much probability on a digit after the prefix the judge is not answering with a score:
# the question counts as a parse failure (it still gets the expectation of what mass there is).
MIN_DIGIT_MASS = 0.5


def expected_scores(first: np.ndarray, after_one: np.ndarray, low: int, high: int,
                    ) -> tuple[np.ndarray, np.ndarray]:
  """Expected score rescaled to [0, 1] as (E[s] - low) / (high - low), and the digit mass.

  first: [N, 10] P(first digit = d) after the prefix; after_one: [N, 2] P("0"), P("}") after
  `prefix + "1"`. The integer scores 0..10 get P(d) for d != 1, P(1) * P("}") / (P("0") + P("}"))
  for 1 and P(1) * P("0") / (...) for 10; scores are clipped into [low, high] (as parse_score
  clips a 0 on a 1-10 scale) and the distribution is renormalised over the digits. A row with no
  digit mass scores 0. Returns ([N] in [0, 1], [N] digit mass before renormalising).
  """
  first = np.asarray(first, np.float64)
  after_one = np.asarray(after_one, np.float64)
  if first.ndim != 2 or first.shape[1] != 10 or after_one.shape != (first.shape[0], 2):
    raise ValueError(f"first must be [N, 10] and after_one [N, 2]; got {first.shape} and {after_one.shape}.")
  if not 0 <= low < high <= 10:
    raise ValueError(f"expected_scores reads 0-10 scales; got low={low}, high={high}.")
  ends = after_one.sum(-1)
  ten = np.divide(after_one[:, 0], ends, out=np.zeros_like(ends), where=ends > 0)
  probs = np.concatenate([first[:, :1], first[:, 1:2] * (1 - ten)[:, None], first[:, 2:],
                          first[:, 1:2] * ten[:, None]], axis=1)  # [N, 11] over scores 0..10
  mass = probs.sum(-1)
  values = np.clip(np.arange(11, dtype=np.float64), low, high)
  mean = np.divide(probs @ values, mass, out=np.full_like(mass, float(low)), where=mass > 0)
  return (mean - low) / (high - low), mass


def check_generator(generator: Any) -> None:
  """Raises when `generator` cannot serve the expected readout (checked once, when the reward model
  is built, not on every scoring call)."""
  if not hasattr(generator, "next_token_probs"):
    raise ValueError(f"config.reward.score_readout='expected' needs a judge generator with next_token_probs "
                     f"(the Flax QwenVLGenerator); {type(generator).__name__} has none. Use "
                     "score_readout='greedy' with it.")


def judge_expected_scores(generator: Any, texts: Sequence[str], images: Sequence[Optional[np.ndarray]],
                          low: int, high: int) -> tuple[np.ndarray, int]:
  """Asks `generator` (one that passed check_generator) each question; ([N] scores in [0, 1], how
  many rows had less than MIN_DIGIT_MASS on a digit)."""
  n = len(texts)
  if n == 0:
    return np.zeros(0, np.float64), 0
  probs = generator.next_token_probs(list(texts) * 2, list(images) * 2,
                                     [ANSWER_PREFIX] * n + [ANSWER_PREFIX + "1"] * n, DIGITS + (CLOSE,))
  first, second = probs[:n, :10], probs[n:, [0, 10]]
  scores, mass = expected_scores(first, second, low, high)
  return scores, int(np.sum(mass < MIN_DIGIT_MASS))
