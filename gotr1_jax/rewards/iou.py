"""Box IoU and the R_RI grounding score: planned boxes (chain) against boxes the judge found.

Owns the geometry and the matching rules; boxes are (x1, y1, x2, y2) in one frame (the chain's
[0, 1000)), read as continuous corners (area = width * height, no +1). It parses no text.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from gotr1_jax.data.chain import Obj

Box = Sequence[float]


def _as_boxes(boxes: Sequence[Box] | np.ndarray) -> np.ndarray:
  """[N, 4] float64 with corners sorted, so flipped boxes (x2 < x1) mean the same rectangle."""
  b = np.asarray(boxes, np.float64).reshape(-1, 4)
  return np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], axis=1)


def pairwise_iou(a: Sequence[Box] | np.ndarray, b: Sequence[Box] | np.ndarray) -> np.ndarray:
  """IoU of every box of `a` with every box of `b`: [len(a), len(b)] float64 in [0, 1].

  Flipped corners are sorted first. Zero-area boxes (a point or a line) have IoU 0 with anything,
  themselves included: a degenerate box cannot be matched.
  """
  a, b = _as_boxes(a), _as_boxes(b)
  lo = np.maximum(a[:, None, :2], b[None, :, :2])
  hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
  inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
  area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=-1)  # noqa: E731
  union = area(a)[:, None] + area(b)[None, :] - inter
  positive = union > 0
  return np.where(positive, inter / np.where(positive, union, 1.0), 0.0)


def box_iou(a: Box, b: Box) -> float:
  """Intersection over union of two boxes (x1, y1, x2, y2); see pairwise_iou for edge cases."""
  return float(pairwise_iou([a], [b])[0, 0])


def match_pairs(planned: Sequence[Box], grounded: Sequence[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The one-to-one matching that maximises the total IoU (Hungarian): (planned indices, grounded
  indices, their IoUs), each [min(len(planned), len(grounded))]; empty when either side is."""
  if not (len(planned) and len(grounded)):
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
  iou = pairwise_iou(planned, grounded)
  rows, cols = linear_sum_assignment(iou, maximize=True)
  return rows, cols, iou[rows, cols]


def match_iou(planned: Sequence[Box], grounded: Sequence[Box]) -> np.ndarray:
  """Per planned box, its IoU with the grounded box it is matched to: [len(planned)] float64.

  Matching is one-to-one and maximises the total IoU (match_pairs), so two planned objects with the
  same name cannot both claim one grounded box. A planned box left without a partner (the judge
  found fewer boxes) scores 0; extra grounded boxes are ignored.
  """
  out = np.zeros(len(planned), np.float64)
  rows, _, ious = match_pairs(planned, grounded)
  out[rows] = ious
  return out


def object_key(name: str) -> str:
  """How planned objects are grouped for grounding: one judge question per distinct key."""
  return " ".join(name.lower().split())


@dataclasses.dataclass(frozen=True)
class Grounding:
  """R_RI of one chain with its per-object IoUs (chain order) and counts for the metrics."""

  r_ri: float
  ious: np.ndarray  # [num_objects] float64
  num_missing: int  # planned objects with no matched grounded box (IoU 0 by rule)
  num_unreadable: int  # planned objects whose grounding answer could not be parsed


def grounding_score(objects: Sequence[Obj], grounded: Mapping[str, Optional[Sequence[Box]]],
                    num_malformed: int = 0) -> Grounding:
  """R_RI = mean over planned objects of IoU(planned box, matched grounded box).

  grounded: object_key(name) -> boxes the judge found for that name ([] = none, None = the answer
  was unreadable); a key absent from the mapping counts as unreadable. Objects sharing a name are
  matched one-to-one with that name's boxes (match_iou). Missing and unreadable objects score 0. A
  chain with no objects has R_RI = 0 (the caller counts it).

  num_malformed: the chain's object spans that could not be read (data/chain.py). Each is a
  planned object that cannot be grounded, so it joins the mean with IoU 0 (GoT-R1 does not say;
  without this a policy raises R_RI by breaking the spans of the objects it draws worst, which
  the shipped judge's run did). `ious` lists the readable objects only.
  """
  ious = np.zeros(len(objects), np.float64)
  missing = unreadable = 0
  by_key: dict[str, list[int]] = {}
  for i, obj in enumerate(objects):
    by_key.setdefault(object_key(obj.name), []).append(i)
  for key, idx in by_key.items():
    boxes = grounded.get(key)
    if boxes is None:
      unreadable += len(idx)
      continue
    ious[idx] = match_iou([objects[i].box for i in idx], boxes)
    missing += max(len(idx) - len(boxes), 0)
  planned = len(objects) + int(num_malformed)
  r_ri = float(ious.sum() / planned) if len(objects) else 0.0
  return Grounding(r_ri=r_ri, ious=ious, num_missing=missing, num_unreadable=unreadable)
