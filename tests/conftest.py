"""Test set-up: 8 fake CPU devices for sharding tests, fp32 matmuls for parity tests, fast compiles.

The suite's time is mostly XLA compiling tiny models, so the tests compile at XLA's lowest CPU
optimisation level (`--xla_backend_optimization_level=0`, unless `XLA_FLAGS` sets one) and share a cache.

The cache: many tests build the same tiny models and compile the same steps in separate processes (the
two xdist workers, the tools' subprocesses). A persistent compilation cache shared by all of them turns
each repeat into a disk read. Tracing still runs on a hit, so the tests that count traces are unaffected.
It lives in `.xla_test_cache/` at the repository root (git-ignored; delete it freely), or wherever
`JAX_COMPILATION_CACHE_DIR` points.
"""
import os

_FLAGS = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _FLAGS:
  _FLAGS += " --xla_force_host_platform_device_count=8"
if "xla_backend_optimization_level" not in _FLAGS:
  _FLAGS += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = _FLAGS.strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".xla_test_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
