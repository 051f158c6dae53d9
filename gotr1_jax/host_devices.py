"""Splits a CPU host into several XLA devices, so that the mesh's `data` axis uses every core.

XLA's CPU backend runs a device's program on one thread for most ops (a large matmul may use a
few); a data-parallel batch on one CPU device leaves the other cores idle. Started with
`--xla_force_host_platform_device_count=N`, the host shows N devices and the `data` mesh axis
(config.mesh, gotr1_jax/parallel.py) spreads the batch over N cores. On the 2-core machine the
ShapesWorld demo was built on, two devices made its 160 steps 3.46 s against 4.57 s and its
evaluations 14-21 s against 21-26 s, every step's reward and the evaluations the same
(docs/benchmarks.md).

tools/train.py and tools/evaluate.py call `split_cpu()` before they import jax (XLA reads XLA_FLAGS
once, when its first backend starts). It changes nothing when XLA_FLAGS already sets a device
count (`XLA_FLAGS=--xla_force_host_platform_device_count=1` keeps one device), and nothing on a
GPU or TPU machine beyond host devices nobody uses. The count is the largest power of two not over
the cores this process may use, at most 8, so it divides the power-of-two batches of the configs.
"""
import logging
import os
import sys

FLAG = "--xla_force_host_platform_device_count"
MAX_DEVICES = 8


def usable_cores() -> int:
  """Cores this process may run on (its affinity mask, where the OS has one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def default_count(cores: int) -> int:
  """The largest power of two <= min(cores, MAX_DEVICES), at least 1."""
  count = 1
  while count * 2 <= min(cores, MAX_DEVICES):
    count *= 2
  return count


def with_device_count(xla_flags: str, count: int) -> str:
  """`xla_flags` with FLAG=count appended, or unchanged when it already sets a device count."""
  if FLAG in xla_flags:
    return xla_flags
  return f"{xla_flags} {FLAG}={count}".strip()


def split_cpu(count: int | None = None) -> str:
  """Sets XLA_FLAGS so the CPU backend starts with `count` devices (default: default_count of the
  usable cores). Returns the XLA_FLAGS in effect. Must run before jax is imported; after, it only
  warns, since the backend has already read the flags."""
  if "jax" in sys.modules:
    logging.warning("host_devices.split_cpu() ran after jax was imported; XLA_FLAGS left as it is. Call it "
                    "before the first `import jax` (tools/train.py shows where).")
    return os.environ.get("XLA_FLAGS", "")
  flags = with_device_count(os.environ.get("XLA_FLAGS", ""), count or default_count(usable_cores()))
  os.environ["XLA_FLAGS"] = flags
  return flags
