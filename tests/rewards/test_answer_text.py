"""Tests for gotr1_jax/rewards/answer_text.py: where answers are searched and what decodes."""
from __future__ import annotations

import re

from gotr1_jax.rewards.answer_text import NUM, blocks, json_values, number


def test_blocks_put_fences_first_and_drop_think():
  text = "<think>{\"a\": 1}</think>pre ```json\n{\"b\": 2}\n``` post ```\n[3]"
  got = blocks(text)
  assert got[:2] == ['{"b": 2}\n', "[3]"] and "think" not in got[2] and got[2].endswith("[3]")


def test_json_values_decode_tolerantly_in_order():
  text = "a {'x': true, 'y': null,} b [1, 2,] {z: 3} {bad [4]"
  assert json_values(text) == [{"x": True, "y": None}, [1, 2], {"z": 3}, [4]]
  # Spans deeper than any judge answer are skipped; only the innermost "{}" is read.
  assert json_values("{" * 50 + "}" * 50) == [{}]
  assert json_values('{"s": "a } ] b", "t": 1}') == [{"s": "a } ] b", "t": 1}]


def test_number_and_num_pattern():
  assert [number(v) for v in (3, 2.5, "7", " 8.5 ", True, float("nan"), "x", None)] == \
      [3.0, 2.5, 7.0, 8.5, None, None, None, None]
  assert re.findall(NUM, "a -3 b 4.25 c 1.2.3 d") == ["-3", "4.25", "1.2"]
