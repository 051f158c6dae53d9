"""Tolerant reading of judge answers: a score in [0, 1] or boxes in the chain's [0, 1000) frame.

Owns the text -> number step for messy answers (code fences, <think> blocks, trailing prose,
single quotes, trailing commas, bare numbers, boxes as lists or dicts in several frames). It never
raises on answer text: an answer it cannot read gives None, which the caller scores 0 and counts.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Optional, Sequence

from gotr1_jax.data.chain import COORD_MAX
from gotr1_jax.rewards.answer_text import NUM, THINK, blocks, json_values, number
from gotr1_jax.rewards.config import BOX_FRAMES

Box = tuple[int, int, int, int]

_SCORE_KEYS = ("score", "overall_score", "overall", "final_score", "total_score", "rating", "total",
               "value")
_SCORE_TEXT = re.compile(r"(?:^|[^A-Za-z])(?:score|rating)\b[^0-9+\-]{0,12}?(" + NUM + r"\s*(?:/|out of)?)",
                         re.IGNORECASE)
_FRACTION = re.compile(r"(" + NUM + r")\s*(?:/|out of)\s*(" + NUM + ")", re.IGNORECASE)
_LEADING = re.compile(r"^[\s\"'*#:]*(" + NUM + ")")


def _score_from_string(s: str, scale: float) -> Optional[float]:
  """A score written as text: '7', '7/10', '7 out of 10', '70%' (in units of `scale`)."""
  m = re.match(r"\s*(" + NUM + r")\s*(?:(?:/|out of)\s*(" + NUM + r")|(%))?", s, re.IGNORECASE)
  if not m:
    return None
  value = float(m.group(1))
  if m.group(2) is not None:
    denominator = float(m.group(2))
    return value / denominator * scale if denominator > 0 else None
  return value / 100 * scale if m.group(3) else value


def _score_from_value(v: Any, scale: float) -> Optional[float]:
  if isinstance(v, str):
    return _score_from_string(v, scale)
  if isinstance(v, (list, tuple)):
    return next((s for s in (_score_from_value(e, scale) for e in v) if s is not None), None)
  if not isinstance(v, dict):
    return number(v)
  d = {str(k).strip().lower(): val for k, val in v.items()}
  for key in _SCORE_KEYS:
    if key in d and (s := _score_from_value(d[key], scale)) is not None:
      return s
  for val in d.values():  # e.g. {"result": {"score": 7}}
    if isinstance(val, dict) and (s := _score_from_value(val, scale)) is not None:
      return s
  # No score key: the mean of the numeric entries (e.g. the four R_sem criteria).
  numbers = [n for n in map(number, d.values()) if n is not None]
  return sum(numbers) / len(numbers) if numbers else None


def _score_from_text(s: str, scale: float) -> Optional[float]:
  for m in _SCORE_TEXT.finditer(s):
    if (v := _score_from_string(s[m.start(1):], scale)) is not None:
      return v
  if m := _FRACTION.search(s):
    return _score_from_string(m.group(0), scale)
  numbers = list(re.finditer(NUM, s))
  if (m := _LEADING.match(s)) or len(numbers) == 1:
    return _score_from_string(s[(m or numbers[0]).start(1 if m else 0):], scale)
  return None


def parse_score(text: Any, scale: float = 10, minimum: float = 0) -> Optional[float]:
  """The judge's score rescaled to [0, 1] as (s - minimum) / (scale - minimum); None if unreadable.

  Looks in fenced blocks first, then the whole answer; in each, JSON (or Python-literal) objects
  first (keys score/overall/rating/...; without one, the mean of the numeric values), then
  'score: 7', then 'a/b' or 'a out of b' (rescaled to `scale`), then a leading number, then the
  only number in the text. Scores in [0, minimum) are clipped to minimum (a judge answering 0 on
  R_spa's 1-10 scale); scores below 0 or above `scale` are unreadable (None).
  """
  if scale <= minimum:
    raise ValueError(f"parse_score needs scale > minimum, got scale={scale}, minimum={minimum}.")
  if not isinstance(text, str):
    return None
  raw = None
  places = blocks(text)
  for block in places:
    for value in json_values(block):
      if (raw := _score_from_value(value, scale)) is not None:
        break
    if raw is not None:
      break
  if raw is None:
    raw = next((s for s in (_score_from_text(b, scale) for b in places) if s is not None), None)
  if raw is None or not math.isfinite(raw) or raw < 0 or raw > scale * (1 + 1e-6):
    return None
  return (min(max(raw, minimum), scale) - minimum) / (scale - minimum)

_BOX_KEYS = ("bbox_2d", "bbox2d", "bbox", "box_2d", "box", "bounding_box", "boundingbox",
             "coordinates", "coords", "position", "location")
_CORNER_KEYS = (("x1", "y1", "x2", "y2"), ("xmin", "ymin", "xmax", "ymax"),
                ("x_min", "y_min", "x_max", "y_max"), ("left", "top", "right", "bottom"))
_SIZE_KEYS = (("x", "y", "w", "h"), ("x", "y", "width", "height"))
_QWEN2_BOX = re.compile(r"<\|box_start\|>\s*\(\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*\)\s*,\s*\(\s*("
                        + NUM + r")\s*,\s*(" + NUM + r")\s*\)\s*<\|box_end\|>")
_POINT_PAIR = re.compile(r"\(\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*\)\s*(?:,|-|to)?\s*\(\s*("
                         + NUM + r")\s*,\s*(" + NUM + r")\s*\)")
_FOUR = re.compile(r"\[\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*,\s*(" + NUM + r")\s*\]")
_KEY_VALUE = re.compile(r"\b(x1|y1|x2|y2|xmin|ymin|xmax|ymax)\b\W{0,3}?\s*[:=]\s*(" + NUM + ")", re.IGNORECASE)
_NOTHING = re.compile(r"^\s*(?:\[\s*\]|none|null|n/?a|not found|no such object)\s*\.?\s*$", re.IGNORECASE)


def _boxes_from_value(v: Any) -> Optional[list[list[float]]]:
  """Raw boxes [x1, y1, x2, y2] in a decoded answer; [] = explicitly none; None = no box info."""
  if isinstance(v, str):
    nums = [float(n) for n in re.findall(NUM, v)]
    return [nums] if len(nums) == 4 else None
  if isinstance(v, (list, tuple)):
    nums = [number(e) for e in v]
    if len(v) == 4 and None not in nums:
      return [nums]
    if len(v) == 2 and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in v):
      corners = [number(c) for p in v for c in p]
      return [corners] if None not in corners else None
    if not v:
      return []
    found = [b for b in map(_boxes_from_value, v) if b is not None]
    return [box for boxes in found for box in boxes] if found else None
  if not isinstance(v, dict):
    return None
  d = {str(k).strip().lower(): val for k, val in v.items()}
  for key in _BOX_KEYS:
    if key in d:
      if d[key] is None:
        return []
      if (boxes := _boxes_from_value(d[key])) is not None:
        return boxes
  for keys in _CORNER_KEYS:
    nums = [number(d.get(k)) for k in keys]
    if None not in nums:
      return [nums]
  for x, y, w, h in _SIZE_KEYS:
    nums = [number(d.get(k)) for k in (x, y, w, h)]
    if None not in nums:
      return [[nums[0], nums[1], nums[0] + nums[2], nums[1] + nums[3]]]
  found = [b for b in map(_boxes_from_value, d.values()) if b is not None]  # {"objects": [...]}
  return [box for boxes in found for box in boxes] if found else None


def _boxes_from_text(s: str) -> Optional[list[list[float]]]:
  for pattern in (_POINT_PAIR, _FOUR):
    found = [[float(g) for g in m.groups()] for m in pattern.finditer(s)]
    if found:
      return found
  pairs = {k.lower(): float(v) for k, v in _KEY_VALUE.findall(s)}
  for keys in _CORNER_KEYS[:2]:
    if all(k in pairs for k in keys):
      return [[pairs[k] for k in keys]]
  return [] if _NOTHING.match(s) else None


def _frame(raw: list[list[float]], image_size: tuple[int, int], hint: Optional[str]) -> str:
  """Guesses the frame of one answer's boxes (see parse_boxes)."""
  width, height = image_size
  values = [v for box in raw for v in box]
  if hint:
    return hint
  if max(values) <= 1.0 and any(not v.is_integer() for v in values):
    return "norm1"
  beyond = any(b[0] > width or b[2] > width or b[1] > height or b[3] > height for b in raw)
  return "norm1000" if beyond and max(values) <= COORD_MAX else "pixels"


def _to_chain_frame(box: list[float], frame: str, image_size: tuple[int, int]) -> Box:
  width, height = image_size
  sx, sy = {"pixels": (COORD_MAX / width, COORD_MAX / height), "norm1": (COORD_MAX, COORD_MAX),
            "norm1000": (1.0, 1.0)}[frame]
  x1, y1, x2, y2 = box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy
  snap = lambda v: min(max(int(math.floor(v + 0.5)), 0), COORD_MAX - 1)  # noqa: E731
  return (snap(min(x1, x2)), snap(min(y1, y2)), snap(max(x1, x2)), snap(max(y1, y2)))


def parse_boxes(text: Any, image_size: Sequence[int], frame: str = "auto") -> Optional[list[Box]]:
  """All boxes of a grounding answer in the chain's [0, 1000) frame; [] = none found; None = unreadable.

  image_size = (width, height) in pixels of the image the judge saw. Accepted: JSON/Python lists
  or dicts (keys bbox_2d/bbox/box/..., x1..y2, xmin..ymax, left..bottom, x/y/w/h), Qwen2-VL
  '<|box_start|>(x1,y1),(x2,y2)<|box_end|>', '(x1,y1),(x2,y2)' and '[x1, y1, x2, y2]' in prose.
  frame: "pixels" (Qwen2.5-VL's own), "norm1000", "norm1", or "auto": Qwen2-VL box tokens are
  0-1000; all values <= 1 with a fraction are 0-1; a coordinate beyond the image yet <= 1000 is
  0-1000; otherwise pixels. Corners are sorted (flipped boxes), rounded and clipped to [0, 999].
  Boxes with a non-finite coordinate are dropped.
  """
  width, height = (int(v) for v in image_size)
  if width < 1 or height < 1:
    raise ValueError(f"image_size={tuple(image_size)} must be a positive (width, height).")
  if frame not in BOX_FRAMES:
    raise ValueError(f"Unknown box frame {frame!r}; use one of {BOX_FRAMES}.")
  if not isinstance(text, str):
    return None
  raw, hint = None, None
  stripped = THINK.sub(" ", text)
  if tokens := _QWEN2_BOX.findall(stripped):
    raw, hint = [[float(v) for v in t] for t in tokens], "norm1000"
  for block in blocks(text) if raw is None else ():
    raw = next((b for b in map(_boxes_from_value, json_values(block)) if b is not None), None)
    if raw is not None:
      break
  if raw is None:
    raw = next((b for b in map(_boxes_from_text, blocks(text)) if b is not None), None)
  if raw is None:
    return None
  raw = [b for b in raw if all(math.isfinite(v) for v in b)]
  if not raw:
    return []
  chosen = _frame(raw, (width, height), hint) if frame == "auto" else frame
  return [_to_chain_frame(b, chosen, (width, height)) for b in raw]


def parse_box(text: Any, image_size: Sequence[int]) -> Optional[Box]:
  """The first box of a grounding answer in the [0, 1000) frame (see parse_boxes); None if the
  answer is unreadable or names no box."""
  boxes = parse_boxes(text, image_size)
  return boxes[0] if boxes else None


def parse_labelled_boxes(text: Any, image_size: Sequence[int],
                         frame: str = "auto") -> Optional[list[tuple[str, Box]]]:
  """A caption answer, a JSON list of {"bbox_2d": [...], "label": name}, as (label, box) pairs in the
  chain's [0, 1000) frame (each entry read as parse_boxes reads one, its first box); entries without
  a readable box are skipped. None when the answer is not such a list."""
  if not isinstance(text, str):
    return None
  value = next((v for block in blocks(text) for v in json_values(block) if isinstance(v, list)), None)
  if value is None:
    return None
  out = []
  for entry in value:
    boxes = parse_boxes(json.dumps([entry]), image_size, frame) if isinstance(entry, dict) else None
    if boxes:
      out.append((str(entry.get("label", "")), boxes[0]))
  return out
