"""A deterministic stream of ShapesWorld training examples: prompt, category, chain, scene, image.

Owns drawing prompts from the shipped split files and a fresh scene for each draw (seeded by the
stream's seed and the step, so a stage re-run gives the same batches). The scene sampler, chain
and renderer are gotr1_jax.data.shapes_world's; this module only composes them.
"""
from __future__ import annotations

import dataclasses
import zlib
from typing import Sequence

import numpy as np

from gotr1_jax.data.shapes_world.chains import scene_chain
from gotr1_jax.data.shapes_world.layout import sample_scene
from gotr1_jax.data.shapes_world.prompts import CATEGORIES, PROMPTS_DIR, PromptSpec, load_prompts
from gotr1_jax.data.shapes_world.render import render_scene
from gotr1_jax.data.shapes_world.world import Scene, WorldConfig


@dataclasses.dataclass
class SceneBatch:
  """n examples; `images` uint8 [n, H, W, 3]."""

  specs: list[PromptSpec]
  scenes: list[Scene]
  chains: list[str]
  images: np.ndarray

  @property
  def prompts(self) -> list[str]:
    return [s.text for s in self.specs]

  @property
  def categories(self) -> list[str]:
    return [s.category for s in self.specs]


def split_prompts(split: str, categories: Sequence[str] = CATEGORIES, prompts_dir: str = PROMPTS_DIR,
                  world: WorldConfig = WorldConfig()) -> list[PromptSpec]:
  """Every prompt of `split` over `categories`, category by category in file order."""
  return [spec for c in categories for spec in load_prompts(c, split, prompts_dir, world)]


def scene_batch(specs: Sequence[PromptSpec], rng: np.random.Generator,
                world: WorldConfig = WorldConfig()) -> SceneBatch:
  """One freshly sampled scene (and its chain and image) per prompt."""
  scenes = [sample_scene(s, rng, world) for s in specs]
  return SceneBatch(specs=list(specs), scenes=scenes, chains=[scene_chain(s, world) for s in scenes],
                    images=np.stack([render_scene(s, world) for s in scenes]))


class SceneStream:
  """Batches of uniformly drawn prompts of one split, each with a new scene; batch k depends only on
  (seed, split, k), so a stage restarted at step k sees the batches it would have seen."""

  def __init__(self, split: str, seed: int, categories: Sequence[str] = CATEGORIES,
               world: WorldConfig = WorldConfig(), prompts_dir: str = PROMPTS_DIR):
    self.specs = split_prompts(split, categories, prompts_dir, world)
    if not self.specs:
      raise ValueError(f"No {split!r} prompts for categories {list(categories)} under {prompts_dir}; "
                       "write them with `python -m gotr1_jax.data.shapes_world.make_assets`.")
    self.split, self.seed, self.world = split, seed, world

  def batch(self, step: int, n: int) -> SceneBatch:
    rng = np.random.default_rng([self.seed, zlib.crc32(self.split.encode()), step])
    picks = rng.integers(len(self.specs), size=n)
    return scene_batch([self.specs[int(i)] for i in picks], rng, self.world)
