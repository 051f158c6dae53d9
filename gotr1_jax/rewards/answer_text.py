"""Free-text helpers for reading judge answers: where to look and which JSON-like values are there.

Owns the number pattern, <think>/code-fence handling and the tolerant decoding of {...} / [...]
spans (JSON, then Python literals, after light repairs). It never raises on answer text and knows
nothing of scores or boxes (parse.py).
"""
from __future__ import annotations

import ast
import json
import math
import re
import warnings
from typing import Any, Optional

# A number starts only where no digit or dot precedes it, and its digits are taken possessively:
# regex searches stay linear on long digit runs.
NUM = r"(?<![\d.])[-+]?\d++(?:\.\d++)?+"
THINK = re.compile(r"<think>.*?(?:</think>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)(?:```|$)", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BARE_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_ ]*?)\s*:")
_PY_LITERALS = ((re.compile(r"\btrue\b"), "True"), (re.compile(r"\bfalse\b"), "False"),
                (re.compile(r"\bnull\b"), "None"))
_MAX_DEPTH = 8
_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


def blocks(text: str) -> list[str]:
  """Where to look, in order: fenced blocks, then the whole answer (both without <think>)."""
  text = THINK.sub(" ", text)
  return [m.group(1) for m in _FENCE.finditer(text)] + [text]


def _matching_close(s: str, start: int) -> Optional[int]:
  """Index of the bracket closing s[start] ('{' or '['), skipping quoted strings; None if none
  or if the nesting is deeper than any judge answer (keeps the scan and the decoders cheap)."""
  depth, quote, i = 0, None, start
  while i < len(s):
    c = s[i]
    if quote:
      if c == "\\":
        i += 1
      elif c == quote:
        quote = None
    elif c in "\"'":
      quote = c
    elif c in "{[":
      depth += 1
      if depth > _MAX_DEPTH:
        return None
    elif c in "}]":
      depth -= 1
      if depth == 0:
        return i
    i += 1
  return None


def _decode(s: str) -> tuple[bool, Any]:
  """(ok, value): JSON first, then Python-literal syntax, each also after light repairs."""
  repaired = _BARE_KEY.sub(r'\1"\2":', _TRAILING_COMMA.sub(r"\1", s))
  for attempt in (s, repaired):
    try:
      return True, json.loads(attempt)
    except (ValueError, RecursionError):
      pass  # not strict JSON; the Python-literal reading below is the next try
    python = attempt
    for pattern, word in _PY_LITERALS:
      python = pattern.sub(word, python)
    try:
      with warnings.catch_warnings():  # e.g. "invalid decimal literal" from the compiler
        warnings.simplefilter("ignore", SyntaxWarning)
        return True, ast.literal_eval(python)
    except _LITERAL_ERRORS:
      pass  # not a literal either; try the repaired text, then give up on this span
  return False, None


def json_values(s: str) -> list[Any]:
  """Every decodable top-level {...} or [...] span of s, in order."""
  out, i = [], 0
  while i < len(s):
    if s[i] in "{[":
      end = _matching_close(s, i)
      if end is not None:
        ok, value = _decode(s[i:end + 1])
        if ok:
          out.append(value)
          i = end + 1
          continue
    i += 1
  return out


def number(v: Any) -> Optional[float]:
  if isinstance(v, bool):
    return None
  if isinstance(v, (int, float)):
    return float(v) if math.isfinite(v) else None
  if isinstance(v, str) and re.fullmatch(r"\s*" + NUM + r"\s*", v):
    return float(v)
  return None
