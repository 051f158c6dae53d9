"""Tests for gotr1_jax/rewards/prompts.py: filled templates, published scales, the readable chain."""
from __future__ import annotations

import pytest

from gotr1_jax.data.chain import Obj, format_chain
from gotr1_jax.rewards.prompts import PROMPT_VERSIONS, SCORE_SCALES, get_prompts, readable_chain

CHAIN = format_chain([Obj("yellow vase", (202, 482, 729, 964)), Obj("cat", (0, 0, 10, 10))], text="A vase.")


def test_readable_chain_drops_special_tokens():
  assert readable_chain(CHAIN) == "A vase. yellow vase (202,482),(729,964) cat (0,0),(10,10)"


def test_v1_templates_fill_and_ask_for_json():
  p = get_prompts("v1")
  sem, spa, ri, pi = p.sem("a vase and a cat", CHAIN), p.spa("a cat left of a vase"), p.ri("red cube"), p.pi("a dog")
  assert "Prompt: a vase and a cat" in sem and "yellow vase (202,482),(729,964)" in sem
  assert "<|box_start|>" not in sem and "1000x1000" in sem
  for word in ("completeness", "faithfulness", "consistency", "clarity"):
    assert word in sem
  assert "8-10" in spa and "5-7" in spa and "1-4" in spa and "a cat left of a vase" in spa
  assert ri.count("red cube") == 4 and '"bbox_2d": [x1, y1, x2, y2]' in ri and "[]" in ri
  assert "strictly" in pi and "a dog" in pi
  for text, scale in ((sem, "0 to 10"), (spa, "1 to 10"), (pi, "0 to 10")):
    assert f'Answer with JSON only and no other text: {{"score": <integer from {scale}>}}' in text
  assert SCORE_SCALES == {"r_sem": (0, 10), "r_spa": (1, 10), "r_pi": (0, 10)}
  assert all(v.version == k for k, v in PROMPT_VERSIONS.items())


def test_unknown_version():
  with pytest.raises(ValueError, match="prompt_version"):
    get_prompts("v0")


def test_compact_templates_carry_the_same_fields_and_scales():
  p = get_prompts("compact-v1")
  sem, spa, ri, pi = p.sem("a vase and a cat", CHAIN), p.spa("a cat left of a vase"), p.ri("red cube"), p.pi("a dog")
  assert "Prompt: a vase and a cat" in sem and "yellow vase (202,482),(729,964)" in sem and "<|box_start|>" not in sem
  assert '0-10 as JSON {"score": n}' in sem and '1-10 as JSON {"score": n}' in spa and "a cat left of a vase" in spa
  assert '0-10 as JSON {"score": n}' in pi and "a dog" in pi
  assert ri.count("red cube") == 2 and '"bbox_2d": [x1, y1, x2, y2]' in ri
  assert max(len(t) for t in (sem, spa, ri, pi)) < 3 * len(CHAIN)  # short: a small judge reads them often
