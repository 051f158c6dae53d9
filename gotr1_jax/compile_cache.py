"""The persistent XLA compilation cache the tools keep on disk, so that a program compiled once is read back.

Every tool run by `config_lib.run_tool` (tools/train.py, evaluate.py, generate.py, ...) turns on jax's
persistent compilation cache before it compiles anything. A program compiled before, with the same
shapes, shardings, flags and jax version, is then read from disk instead of compiled again: in a run
resumed after Ctrl-C, in the same config run again in another directory, in a later tool that builds
the same program. What is read back is the executable XLA wrote, so results are the same as with a
fresh compile. The staged demo cut to 3 + 3 steps took 228 s with the cache off, 226 s with it empty
and 159 s with it filled (README, "Training a config"): a first run gains little.

Where: `runs/.xla_cache` under the working directory, beside the run directories the tools write
(`runs/<name>`), so a fresh clone starts empty; delete it freely. `JAX_COMPILATION_CACHE_DIR` (jax's own
variable) puts it elsewhere, and set to '' turns it off. Programs that compile in under a second are
not kept (`JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`, jax's default of 1 s). The tests keep theirs
in `.xla_test_cache/` (tests/conftest.py).
"""
from __future__ import annotations

import os
from typing import Mapping

ENV = "JAX_COMPILATION_CACHE_DIR"
DEFAULT = os.path.join("runs", ".xla_cache")


def cache_dir(environ: Mapping[str, str] = os.environ) -> str:
  """The cache's directory, absolute: $JAX_COMPILATION_CACHE_DIR when set ('' when that turns the
  cache off), else DEFAULT under the working directory."""
  directory = environ.get(ENV, DEFAULT)
  return os.path.abspath(directory) if directory else ""


def enable() -> str:
  """Turns the cache on at cache_dir() (nothing when that is ''); returns the directory. Call it before
  the first compile: jax opens the cache once, when it first compiles."""
  directory = cache_dir()
  if directory:
    import jax
    jax.config.update("jax_compilation_cache_dir", directory)
  return directory
