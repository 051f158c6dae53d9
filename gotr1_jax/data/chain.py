"""The GoT reasoning-chain format: parse and format object spans with bounding boxes.

Owns the text format of GOT_R1_FACTS.md §3 only:
``<|obj_start|>yellow vase<|obj_end|> <|box_start|>(202,482),(729,964)<|box_end|>``.
Coordinates are integers in [0, 1000), (x1, y1) top-left, origin top-left. Parsing never raises:
malformed spans are skipped and counted (``parse_chain_stats``).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Sequence

OBJ_START, OBJ_END = "<|obj_start|>", "<|obj_end|>"
BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"
SPECIAL_TOKENS = (OBJ_START, OBJ_END, BOX_START, BOX_END)
COORD_MAX = 1000  # coordinates live in [0, COORD_MAX)

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True)
class Obj:
  """One planned object: its name and its box (x1, y1, x2, y2) in the [0, 1000) frame."""

  name: str
  box: Box


@dataclasses.dataclass(frozen=True)
class ChainParse:
  """Objects parsed from a chain and the number of malformed spans that were skipped."""

  objects: list[Obj]
  num_malformed: int


# One object span: the name, then (after optional whitespace) a box span. Everything inside the
# box span is captured loosely so that malformed coordinates are counted, not silently missed.
_SPAN = re.compile(
    re.escape(OBJ_START) + r"(?P<name>.*?)" + re.escape(OBJ_END)
    + r"\s*" + re.escape(BOX_START) + r"(?P<box>.*?)" + re.escape(BOX_END),
    re.DOTALL,
)
_COORDS = re.compile(r"^\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)\s*,\s*\(\s*(-?\d+)\s*,\s*(-?\d+)\s*\)\s*$")


def _valid_box(box: Sequence[int]) -> bool:
  x1, y1, x2, y2 = box
  in_range = all(0 <= v < COORD_MAX for v in box)
  return in_range and x2 >= x1 and y2 >= y1


def parse_chain_stats(text: str) -> ChainParse:
  """Parses every well-formed object span; counts the malformed ones.

  A span is malformed when its box is not two integer points, a coordinate is outside
  [0, 1000), x2 < x1 or y2 < y1, or the name is empty; an ``<|obj_start|>`` that never reaches a
  complete ``... <|box_end|>`` span also counts as one malformed span.
  """
  objects, malformed = [], 0
  consumed_starts = 0
  for m in _SPAN.finditer(text):
    consumed_starts += m.group(0).count(OBJ_START)
    # A name containing another obj_start means an earlier span lost its end tags.
    name = m.group("name")
    if OBJ_START in name:
      malformed += name.count(OBJ_START)
      name = name.rsplit(OBJ_START, 1)[1]
    name = name.strip()
    coords = _COORDS.match(m.group("box"))
    if not name or coords is None:
      malformed += 1
      continue
    box = tuple(int(v) for v in coords.groups())
    if not _valid_box(box):
      malformed += 1
      continue
    objects.append(Obj(name=name, box=box))
  malformed += text.count(OBJ_START) - consumed_starts
  return ChainParse(objects=objects, num_malformed=malformed)


def parse_chain(text: str) -> list[Obj]:
  """Returns the well-formed objects of a chain, in order (malformed spans are skipped)."""
  return parse_chain_stats(text).objects


def format_box(box: Box) -> str:
  x1, y1, x2, y2 = box
  return f"{BOX_START}({x1},{y1}),({x2},{y2}){BOX_END}"


def format_obj(obj: Obj) -> str:
  return f"{OBJ_START}{obj.name}{OBJ_END} {format_box(obj.box)}"


def format_chain(objs: Iterable[Obj], text: str = "") -> str:
  """Formats objects as a chain: optional scene text, then one object span per object.

  ``parse_chain(format_chain(objs)) == list(objs)`` for valid objects.
  """
  spans = " ".join(format_obj(o) for o in objs)
  return f"{text.strip()} {spans}".strip() if text else spans
