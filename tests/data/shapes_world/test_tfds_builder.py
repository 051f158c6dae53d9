"""tfds builder (array_record, no TensorFlow) and the resumable ShapesSource."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from gotr1_jax.data.shapes_world import chains, prompts, render, tfds_builder
from gotr1_jax.data.shapes_world.world import Scene

CONFIG = tfds_builder.ShapesWorldConfig(
    name="test", split_sizes={"train": 4, "val": 2}, scenes_per_prompt=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  builder = tfds_builder.ShapesWorld(config=CONFIG, data_dir=path, file_format="array_record")
  builder.download_and_prepare()
  return path


def test_build_needs_no_tensorflow(data_dir):
  assert "tensorflow" not in sys.modules


def test_read_back_through_data_source(data_dir):
  source = tfds.data_source("shapes_world", split="train", data_dir=data_dir,
                            builder_kwargs={"file_format": "array_record", "config": CONFIG})
  assert len(source) == 6 * 4 * 2  # categories x prompts x scenes per prompt
  expected = prompts.make_prompt_splits(0, CONFIG.split_sizes)
  for i in range(len(source)):
    ex = source[i]
    category, prompt = ex["category"].decode(), ex["prompt"].decode()
    # Examples keep generation order: category by category, prompt by prompt.
    assert category == prompts.CATEGORIES[i // 8]
    assert prompt == expected[category]["train"][(i % 8) // 2].text
    assert ex["image"].dtype == np.uint8 and ex["image"].shape == (64, 64, 3)
    # The chain describes the image exactly: re-rendering it gives the stored bytes.
    planned = chains.parse_chain_objects(ex["chain"].decode())
    assert render.render_scene(Scene(planned.objects)).tobytes() == ex["image"].tobytes()
  # The two scenes of one prompt differ.
  assert source[0]["chain"] != source[1]["chain"]


def _source(data_dir, **kwargs):
  return tfds_builder.ShapesSource("train", data_dir=data_dir, config=CONFIG, **kwargs)


def _keys(records):
  return [(r["prompt"], r["chain"], r["image"].tobytes()) for r in records]


def test_source_is_deterministic_and_covers_each_epoch(data_dir):
  a, b = _source(data_dir, seed=3), _source(data_dir, seed=3)
  epoch = a.next(48)
  assert _keys(epoch) == _keys(b.next(48))
  assert sorted(r["chain"] for r in epoch) == sorted(
      r["chain"] for r in _source(data_dir, shuffle=False).next(48))
  assert [r["chain"] for r in epoch] != [r["chain"] for r in _source(data_dir, seed=4).next(48)]
  assert [r["chain"] for r in a.next(48)] != [r["chain"] for r in epoch]  # a new order


def test_source_resumes_from_its_position(data_dir):
  a = _source(data_dir, fields=("prompt", "category"))
  a.next(5)
  state = a.get_state()
  assert state == {"position": 5}
  ahead = [a.next(7) for _ in range(8)]  # crosses the 48-example epoch boundary
  b = _source(data_dir, fields=("prompt", "category"))
  b.set_state(state)
  assert [b.next(7) for _ in range(8)] == ahead
  with pytest.raises(ValueError, match="non-negative 'position'"):
    b.set_state({})


def test_batches_and_process_slices(data_dir):
  whole = _source(data_dir).next_batch(6)
  assert whole["image"].shape == (6, 64, 64, 3) and len(whole["prompt"]) == 6
  parts = [_source(data_dir, process_index=i, process_count=3) for i in range(3)]
  sliced = [p.next_batch(2) for p in parts]
  assert sum((s["chain"] for s in sliced), []) == whole["chain"]
  np.testing.assert_array_equal(np.concatenate([s["image"] for s in sliced]), whole["image"])
  assert all(p.position == 6 for p in parts)
