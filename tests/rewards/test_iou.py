"""Tests for gotr1_jax/rewards/iou.py against IoU worked by hand and a brute-force matching.

Tolerance 1e-12 (float64 area arithmetic on small integers is exact up to one division).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from gotr1_jax.data.chain import Obj
from gotr1_jax.rewards.iou import box_iou, grounding_score, match_iou, match_pairs, object_key, pairwise_iou

TOL = 1e-12


@pytest.mark.parametrize("a,b,expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),  # identical
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),  # no overlap
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),  # touching edges share no area
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),  # half overlap
    ((0, 0, 10, 10), (2, 2, 6, 6), 16 / 100),  # contained
    ((2, 2, 6, 6), (0, 0, 10, 10), 16 / 100),  # symmetric
    ((10, 10, 0, 0), (0, 0, 10, 10), 1.0),  # fully flipped corners
    ((10, 0, 0, 10), (5, 10, 15, 0), 50 / 150),  # flipped on one axis each
    ((5, 5, 5, 5), (0, 0, 10, 10), 0.0),  # zero-area point
    ((5, 5, 5, 5), (5, 5, 5, 5), 0.0),  # two identical points: degenerate, cannot match
    ((0, 5, 10, 5), (0, 0, 10, 10), 0.0),  # zero-area line
    ((0, 0, 999, 999), (0, 0, 499, 999), 499 / 999),
])
def test_box_iou(a, b, expected):
  assert box_iou(a, b) == pytest.approx(expected, abs=TOL)
  assert box_iou(b, a) == pytest.approx(expected, abs=TOL)


def test_pairwise_matches_scalar():
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 100, (5, 4)), rng.integers(0, 100, (7, 4))
  got = pairwise_iou(a, b)
  assert got.shape == (5, 7)
  want = [[box_iou(x, y) for y in b] for x in a]
  np.testing.assert_allclose(got, want, atol=TOL)
  assert pairwise_iou(np.zeros((0, 4)), b).shape == (0, 7)


def test_match_iou_is_the_best_one_to_one_assignment():
  rng = np.random.default_rng(1)
  for _ in range(20):
    planned = [tuple(sorted(rng.integers(0, 100, 2))) for _ in range(3)]
    planned = [(x1, y1, x1 + 20, y1 + 20) for x1, y1 in planned]
    grounded = [(x, y, x + 20, y + 20) for x, y in rng.integers(0, 100, (rng.integers(1, 5), 2))]
    got = match_iou(planned, grounded)
    iou = pairwise_iou(planned, grounded)
    best = 0.0  # brute force over injective assignments of planned -> grounded (or unmatched)
    slots = list(range(len(grounded))) + [None] * len(planned)
    for perm in itertools.permutations(slots, len(planned)):
      used = [p for p in perm if p is not None]
      if len(used) == len(set(used)):
        best = max(best, sum(iou[i, p] for i, p in enumerate(perm) if p is not None))
    assert got.sum() == pytest.approx(best, abs=1e-9)
    rows, cols, ious = match_pairs(planned, grounded)  # the same matching, as index pairs
    assert len(set(cols)) == len(cols) == min(len(planned), len(grounded))
    np.testing.assert_allclose(ious, iou[rows, cols])
    np.testing.assert_allclose(got[rows], ious)
  assert all(len(a) == 0 for a in match_pairs([], [(0, 0, 1, 1)]) + match_pairs([(0, 0, 1, 1)], []))


def test_grounding_score_rules():
  cat, dog = (0, 0, 100, 100), (500, 500, 700, 700)
  objects = [Obj("Red  Cat", cat), Obj("dog", dog), Obj("red cat", (200, 0, 300, 100))]
  # "red cat" planned twice, found once (the first); "dog" found at half overlap.
  grounded = {"red cat": [cat], "dog": [(600, 500, 800, 700)]}
  g = grounding_score(objects, grounded)
  np.testing.assert_allclose(g.ious, [1.0, 20000 / 60000, 0.0], atol=TOL)
  assert g.r_ri == pytest.approx((1 + 1 / 3) / 3, abs=TOL)
  assert (g.num_missing, g.num_unreadable) == (1, 0)
  # Unreadable answer (None) and an absent key both score 0 and count as unreadable.
  g = grounding_score(objects, {"red cat": None})
  assert g.r_ri == 0.0 and (g.num_missing, g.num_unreadable) == (0, 3)
  # Nothing found ([]) is missing, not unreadable.
  g = grounding_score(objects[1:2], {"dog": []})
  assert g.r_ri == 0.0 and (g.num_missing, g.num_unreadable) == (1, 0)
  # A chain with no boxes scores 0.
  assert grounding_score([], {}).r_ri == 0.0
  # Malformed spans are planned objects that cannot be grounded: they join the mean at IoU 0, so
  # breaking the span of a badly drawn object cannot raise R_RI.
  g = grounding_score(objects[:1], {"red cat": [cat]}, num_malformed=1)
  assert g.r_ri == pytest.approx(0.5, abs=TOL) and g.ious.tolist() == [1.0]
  assert grounding_score([], {}, num_malformed=2).r_ri == 0.0
  assert object_key("  Red   CAT ") == "red cat"
