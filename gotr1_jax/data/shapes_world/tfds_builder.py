"""ShapesWorld as a tensorflow-datasets dataset (array_record) and the trainer's data source.

Owns the `shapes_world` builder (prompt, category, chain, image per example) and `ShapesSource`,
which reads it through `tfds.data_source` with deterministic shuffling and a resumable position.
TensorFlow is not needed: images are stored as zlib-compressed uint8 tensors, not PNG `Image`
features (tfds encodes those with TF), and array_record is read by its own reader.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Any, Mapping, Sequence, Union

import numpy as np
import tensorflow_datasets as tfds

from gotr1_jax.data.shapes_world.chains import scene_chain
from gotr1_jax.data.shapes_world.layout import sample_scene
from gotr1_jax.data.shapes_world.prompts import (
    CATEGORIES, DEFAULT_SPLIT_SIZES, SPLITS, make_prompt_splits)
from gotr1_jax.data.shapes_world.render import render_scene
from gotr1_jax.data.shapes_world.world import WorldConfig

FIELDS: tuple[str, ...] = ("prompt", "category", "chain", "image")


@dataclasses.dataclass(eq=False)
class ShapesWorldConfig(tfds.core.BuilderConfig):
  """What to build: prompt counts per split and category, scenes per prompt, world, seed."""

  world: WorldConfig = WorldConfig()
  split_sizes: Mapping[str, int] = dataclasses.field(
      default_factory=lambda: dict(DEFAULT_SPLIT_SIZES))
  scenes_per_prompt: int = 1
  categories: tuple[str, ...] = CATEGORIES
  seed: int = 0


class ShapesWorld(tfds.core.GeneratorBasedBuilder):
  """ShapesWorld prompts with ground-truth chains and rendered images."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      ShapesWorldConfig(name="default", description="700/300/300 prompts per category, 64x64."),
      ShapesWorldConfig(name="tiny", description="12/6/6 prompts per category, for tests.",
                        split_sizes={"train": 12, "val": 6, "test": 6}),
  ]
  DEFAULT_CONFIG_NAME = "default"
  # Nothing is downloaded, so there is no checksums file to look up beside the code. tfds 4.9.10
  # finds that file through `code_path`, which imports `importlib_resources` (a backport that is
  # not installed on Python >= 3.9); a None code path skips the lookup.
  code_path = None

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.world.image_size
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "prompt": tfds.features.Text(),
            "category": tfds.features.Text(),
            "chain": tfds.features.Text(),
            "image": tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8,
                                          encoding=tfds.features.Encoding.ZLIB),
        }),
        disable_shuffling=True,  # examples keep generation order; ShapesSource shuffles
    )

  def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
    del dl_manager  # everything is generated
    config = self.builder_config
    prompts = make_prompt_splits(config.seed, config.split_sizes, config.categories, config.world)
    return {split: self._generate_examples(split, prompts) for split in config.split_sizes}

  def _generate_examples(self, split: str, prompts: Mapping[str, Mapping[str, Sequence[Any]]]):
    config = self.builder_config
    for category, by_split in prompts.items():
      for i, spec in enumerate(by_split[split]):
        for k in range(config.scenes_per_prompt):
          rng = np.random.default_rng(
              [config.seed, zlib.crc32(category.encode()), SPLITS.index(split), i, k])
          scene = sample_scene(spec, rng, config.world)
          yield f"{category}/{i:05d}/{k}", {
              "prompt": spec.text,
              "category": category,
              "chain": scene_chain(scene, config.world),
              "image": render_scene(scene, config.world),
          }


def shapes_data_source(split: str, data_dir: str,
                       config: Union[str, ShapesWorldConfig] = "default") -> Sequence[dict]:
  """The random-access array_record source of one split, built into data_dir when missing."""
  if isinstance(config, str):
    return tfds.data_source(f"shapes_world/{config}", split=split, data_dir=data_dir,
                            builder_kwargs={"file_format": "array_record"})
  return tfds.data_source("shapes_world", split=split, data_dir=data_dir,
                          builder_kwargs={"file_format": "array_record", "config": config})


def _decode(record: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
  return {f: record[f].decode("utf-8") if isinstance(record[f], bytes) else record[f]
          for f in fields}


class ShapesSource:
  """Deterministic, resumable batches from a ShapesWorld split (the trainer's PromptSource).

  The position counts examples handed out (by all processes together). Epoch e visits the split
  in the order `np.random.default_rng([seed, e]).permutation(len)`; batches run across epoch
  boundaries. With several processes, each takes its own slice of every global batch.
  """

  def __init__(self, split: str = "train", *, data_dir: str,
               config: Union[str, ShapesWorldConfig] = "default", seed: int = 0,
               shuffle: bool = True, fields: Sequence[str] = FIELDS, process_index: int = 0,
               process_count: int = 1):
    unknown = set(fields) - set(FIELDS)
    if unknown:
      raise ValueError(f"Unknown fields {sorted(unknown)}; ShapesWorld has {FIELDS}.")
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index={process_index} must be in [0, {process_count}).")
    self._source = shapes_data_source(split, data_dir, config)
    if len(self._source) == 0:
      raise ValueError(f"Split {split!r} is empty; build it with non-zero split_sizes.")
    self._seed, self._shuffle, self._fields = seed, shuffle, tuple(fields)
    self._process_index, self._process_count = process_index, process_count
    self._position = 0
    self._epoch, self._order = -1, np.zeros(0, dtype=np.int64)

  def __len__(self) -> int:
    return len(self._source)

  @property
  def position(self) -> int:
    return self._position

  def _index(self, position: int) -> int:
    epoch, offset = divmod(position, len(self))
    if epoch != self._epoch:
      n = len(self)
      self._order = (np.random.default_rng([self._seed, epoch]).permutation(n) if self._shuffle
                     else np.arange(n))
      self._epoch = epoch
    return int(self._order[offset])

  def next(self, n: int) -> list[dict[str, Any]]:
    """This process' next n examples (dicts of the chosen fields; text as str)."""
    start = self._position + self._process_index * n
    records = [_decode(self._source[self._index(p)], self._fields) for p in range(start, start + n)]
    self._position += n * self._process_count
    return records

  def next_batch(self, n: int) -> dict[str, Any]:
    """The next n examples stacked: text fields as lists of str, "image" as uint8 [n, H, W, 3]."""
    records = self.next(n)
    return {f: (np.stack([r[f] for r in records]) if f == "image" else [r[f] for r in records])
            for f in self._fields}

  def get_state(self) -> dict[str, int]:
    return {"position": self._position}

  def set_state(self, state: Mapping[str, int]) -> None:
    if "position" not in state or int(state["position"]) < 0:
      raise ValueError(f"ShapesSource state needs a non-negative 'position'; got {state}.")
    self._position = int(state["position"])
