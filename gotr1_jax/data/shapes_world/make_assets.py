"""Writes ShapesWorld's shipped assets: the prompt split files and the tokenizer.

    python -m gotr1_jax.data.shapes_world.make_assets            # (re)write the shipped assets
    python -m gotr1_jax.data.shapes_world.make_assets --check    # fail if they are out of date

Owns only the recipe (which seed, sizes and corpus); deterministic, so `--check` compares bytes.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import sys
import tempfile
from typing import Mapping, Optional, Sequence

from gotr1_jax.data.shapes_world.prompts import (
    DEFAULT_SPLIT_SIZES, make_prompt_splits, write_prompt_files)
from gotr1_jax.data.shapes_world.tokenizer import (
    TokenizerConfig, tokenizer_corpus, train_tokenizer)
from gotr1_jax.data.shapes_world.world import ASSETS_DIR, WorldConfig


def make_assets(out_dir: str = ASSETS_DIR, seed: int = 0,
                sizes: Mapping[str, int] = DEFAULT_SPLIT_SIZES,
                world: WorldConfig = WorldConfig(),
                tokenizer_config: TokenizerConfig = TokenizerConfig()) -> list[str]:
  """Writes `prompts/<category>_<split>.txt` and `tokenizer.json` (trained on the train split's
  prompts and chains) under out_dir; returns the paths written."""
  splits = make_prompt_splits(seed, sizes, world=world)
  paths = write_prompt_files(splits, os.path.join(out_dir, "prompts"))
  train = [spec for by_split in splits.values() for spec in by_split["train"]]
  tokenizer = train_tokenizer(tokenizer_corpus(train, world, seed), tokenizer_config)
  path = os.path.join(out_dir, "tokenizer.json")
  tokenizer.save(path, pretty=True)
  return paths + [path]


def stale_assets(assets_dir: str = ASSETS_DIR, **kwargs) -> list[str]:
  """The files under assets_dir that differ from (or are missing against) a fresh build."""
  with tempfile.TemporaryDirectory() as tmp:
    fresh = make_assets(tmp, **kwargs)
    rel = [os.path.relpath(p, tmp) for p in fresh]
    return [r for r in rel if not os.path.exists(os.path.join(assets_dir, r))
            or not filecmp.cmp(os.path.join(tmp, r), os.path.join(assets_dir, r), shallow=False)]


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out_dir", default=ASSETS_DIR)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--check", action="store_true",
                      help="only compare out_dir with a fresh build; exit 1 if they differ")
  args = parser.parse_args(argv)
  if args.check:
    stale = stale_assets(args.out_dir, seed=args.seed)
    for r in stale:
      print(f"stale: {os.path.join(args.out_dir, r)}")
    print("assets up to date" if not stale else
          "rebuild with `python -m gotr1_jax.data.shapes_world.make_assets`")
    return 1 if stale else 0
  for path in make_assets(args.out_dir, args.seed):
    print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
