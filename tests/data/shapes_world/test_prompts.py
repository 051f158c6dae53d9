"""Prompt generator: determinism, grammar round trip, canonical forms and disjoint splits."""
from __future__ import annotations

import os

import numpy as np
import pytest

from gotr1_jax.data.shapes_world import prompts
from gotr1_jax.data.shapes_world.prompts import ObjectSpec, PromptSpec, Relation

SMALL = {"train": 40, "val": 15, "test": 15}


def _texts(splits):
  return {c: {s: [p.text for p in ps] for s, ps in by.items()} for c, by in splits.items()}


def test_same_seed_same_prompts_other_seed_other_prompts():
  a = _texts(prompts.make_prompt_splits(3, SMALL))
  b = _texts(prompts.make_prompt_splits(3, SMALL))
  c = _texts(prompts.make_prompt_splits(4, SMALL))
  assert a == b
  assert a != c
  for category in prompts.CATEGORIES:
    assert [len(a[category][s]) for s in ("train", "val", "test")] == [40, 15, 15]


def test_smaller_sizes_give_prefixes():
  big = _texts(prompts.make_prompt_splits(0, SMALL))
  small = _texts(prompts.make_prompt_splits(0, {"train": 10, "val": 4, "test": 4}))
  for category in prompts.CATEGORIES:
    for split, texts in small[category].items():
      assert texts == big[category][split][:len(texts)]


def test_splits_are_disjoint_by_canonical_key_and_stable_across_seeds():
  keys = {}
  for seed in (0, 1):
    for category, by_split in prompts.make_prompt_splits(seed, SMALL).items():
      for split, specs in by_split.items():
        for spec in specs:
          key = prompts.canonical_key(spec)
          # The same scene description always lands in the same split, whatever the seed.
          assert keys.setdefault(key, split) == split
  assert len(set(keys.values())) == 3
  assert len(keys) > 500


def test_shipped_prompt_files_are_disjoint_and_parse():
  for category in prompts.CATEGORIES:
    split_keys = {}
    for split, n in prompts.DEFAULT_SPLIT_SIZES.items():
      specs = prompts.load_prompts(category, split)
      assert len(specs) == n
      assert all(s.category == category for s in specs)
      split_keys[split] = {prompts.canonical_key(s) for s in specs}
      assert len(split_keys[split]) == n  # no duplicates within a split
    assert not split_keys["train"] & split_keys["val"]
    assert not split_keys["train"] & split_keys["test"]
    assert not split_keys["val"] & split_keys["test"]


def test_text_parse_round_trip_on_every_category():
  rng = np.random.default_rng(0)
  for category in prompts.CATEGORIES:
    for _ in range(200):
      spec = prompts.sample_prompt(category, rng)
      assert prompts.parse_prompt(spec.text, category) == spec


def test_text_and_parse_of_known_prompts():
  spec = PromptSpec((ObjectSpec("triangle", "green"), ObjectSpec("star", "yellow")),
                    (Relation(0, "to the left of", 1),), "spatial")
  assert spec.text == "a green triangle to the left of a yellow star"
  assert prompts.parse_prompt("A red circle Above a blue star.").relations == (
      Relation(0, "above", 1),)
  assert prompts.parse_prompt("Three purple circles.", "numeracy") == PromptSpec(
      (ObjectSpec("circle", "purple", count=3),), category="numeracy")
  assert prompts.parse_prompt("a striped orange square on the left of a blue star").relations \
      == (Relation(0, "to the left of", 1),)
  assert prompts.parse_prompt("an orange cross, a dotted red star and two cyan diamonds") \
      .groups == (ObjectSpec("cross", "orange"), ObjectSpec("star", "red", "dotted"),
                  ObjectSpec("diamond", "cyan", count=2))
  with pytest.raises(ValueError, match="Cannot read 'a red bicycle'"):
    prompts.parse_prompt("a red bicycle and a blue star")


def test_canonical_key_identifies_mirrored_relations_and_clause_order():
  a = prompts.parse_prompt("a red circle to the right of a blue square and two green stars")
  b = prompts.parse_prompt("two green stars and a blue square to the left of a red circle")
  c = prompts.parse_prompt("a red circle to the left of a blue square and two green stars")
  assert prompts.canonical_key(a) == prompts.canonical_key(b)
  assert prompts.canonical_key(a) != prompts.canonical_key(c)
  assert prompts.split_of(a) == prompts.split_of(b)


def test_generated_prompts_follow_their_category():
  rng = np.random.default_rng(1)
  for _ in range(100):
    color = prompts.sample_prompt("color", rng)
    assert len({g.color for g in color.groups}) == len(color.groups) in (2, 3)
    shape = prompts.sample_prompt("shape", rng)
    assert len({g.shape for g in shape.groups}) == len(shape.groups)
    texture = prompts.sample_prompt("texture", rng)
    assert len({g.texture for g in texture.groups}) == len(texture.groups)
    assert None not in {g.texture for g in texture.groups}
    spatial = prompts.sample_prompt("spatial", rng)
    assert len(spatial.groups) == 2 and len(spatial.relations) == 1
    numeracy = prompts.sample_prompt("numeracy", rng)
    assert max(g.count for g in numeracy.groups) >= 2 and numeracy.num_objects <= 4
    complex_ = prompts.sample_prompt("complex", rng)
    assert len(complex_.relations) == 1 and complex_.num_objects <= 4


def test_write_and_read_prompt_files(tmp_path):
  splits = prompts.make_prompt_splits(0, {"train": 5, "val": 2}, categories=("spatial",))
  paths = prompts.write_prompt_files(splits, str(tmp_path))
  assert sorted(os.path.basename(p) for p in paths) == ["spatial_train.txt", "spatial_val.txt"]
  lines = (tmp_path / "spatial_train.txt").read_text().splitlines()
  assert lines == [s.text for s in splits["spatial"]["train"]]
  assert prompts.read_prompt_file(str(tmp_path / "spatial_val.txt")) == splits["spatial"]["val"]
  with pytest.raises(FileNotFoundError, match="make_assets"):
    prompts.read_prompt_file(str(tmp_path / "missing_val.txt"))
