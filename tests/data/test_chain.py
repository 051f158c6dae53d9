"""data/chain.py: the GoT chain format round-trips, and malformed spans are skipped and counted."""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data.chain import Obj, format_chain, parse_chain, parse_chain_stats

GOT_R1_EXAMPLE = ("A yellow vase stands on the table. <|obj_start|>yellow vase<|obj_end|> "
                  "<|box_start|>(202,482),(729,964)<|box_end|>")


def test_published_example_parses():
  assert parse_chain(GOT_R1_EXAMPLE) == [Obj("yellow vase", (202, 482, 729, 964))]


def test_round_trip_on_random_objects():
  rng = np.random.default_rng(0)
  for _ in range(200):
    objs = []
    for i in range(rng.integers(0, 5)):
      x1, x2 = sorted(rng.integers(0, 1000, 2).tolist())
      y1, y2 = sorted(rng.integers(0, 1000, 2).tolist())
      objs.append(Obj(f"red thing {i}", (x1, y1, x2, y2)))
    text = format_chain(objs, text="Some scene.")
    assert parse_chain(text) == objs
    assert parse_chain_stats(text).num_malformed == 0


@pytest.mark.parametrize("span", [
    "<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(3)<|box_end|>",  # three numbers
    "<|obj_start|>cat<|obj_end|> <|box_start|>(a,2),(3,4)<|box_end|>",  # non-numeric
    "<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(3,1000)<|box_end|>",  # out of range
    "<|obj_start|>cat<|obj_end|> <|box_start|>(10,2),(3,4)<|box_end|>",  # x2 < x1
    "<|obj_start|>cat<|obj_end|> <|box_start|>(1,20),(3,4)<|box_end|>",  # y2 < y1
    "<|obj_start|><|obj_end|> <|box_start|>(1,2),(3,4)<|box_end|>",  # empty name
    "<|obj_start|>cat <|box_start|>(1,2),(3,4)",  # missing end tags
])
def test_malformed_span_is_skipped_and_counted(span):
  good = "<|obj_start|>dog<|obj_end|> <|box_start|>(5,6),(7,8)<|box_end|>"
  parsed = parse_chain_stats(f"{good} {span} {good}")
  assert parsed.objects == [Obj("dog", (5, 6, 7, 8))] * 2
  assert parsed.num_malformed == 1
