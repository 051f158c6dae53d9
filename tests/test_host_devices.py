"""Tests for gotr1_jax/host_devices.py: the device count, the flags, and a fresh process's devices."""
import os
import subprocess
import sys

import pytest

from gotr1_jax import host_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("cores,count", [(1, 1), (2, 2), (3, 2), (4, 4), (6, 4), (8, 8), (16, 8), (0, 1)])
def test_default_count_is_a_power_of_two_within_the_cores(cores, count):
  assert host_devices.default_count(cores) == count


def test_with_device_count_appends_once_and_keeps_a_users_count():
  flag = host_devices.FLAG
  assert host_devices.with_device_count("", 2) == f"{flag}=2"
  assert host_devices.with_device_count("--xla_cpu_use_thunk_runtime=false", 4) == (
      f"--xla_cpu_use_thunk_runtime=false {flag}=4")
  assert host_devices.with_device_count(f"{flag}=1", 2) == f"{flag}=1"


def _fresh_process(code: str, xla_flags: str | None = None) -> subprocess.CompletedProcess:
  """Runs `code` in a new CPU-only Python whose XLA_FLAGS are `xla_flags` (unset when None)."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  env["JAX_PLATFORMS"] = "cpu"
  return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=120, check=True)


def _devices_in_fresh_process(code: str, xla_flags: str | None) -> str:
  return _fresh_process(code, xla_flags).stdout.strip().splitlines()[-1]


SPLIT = "from gotr1_jax import host_devices; host_devices.split_cpu({arg}); import jax; print(jax.device_count())"


def test_split_cpu_gives_a_fresh_process_its_default_count():
  expected = host_devices.default_count(host_devices.usable_cores())
  assert _devices_in_fresh_process(SPLIT.format(arg=""), None) == str(expected)
  assert _devices_in_fresh_process(SPLIT.format(arg="4"), None) == "4"


def test_split_cpu_keeps_a_count_xla_flags_already_sets():
  flags = f"{host_devices.FLAG}=1"
  assert _devices_in_fresh_process(SPLIT.format(arg="4"), flags) == "1"


def test_split_cpu_after_jax_is_imported_leaves_the_flags_and_warns():
  code = ("import jax, logging; logging.basicConfig(); from gotr1_jax import host_devices; "
          "print(repr(host_devices.split_cpu(4))); print(jax.device_count())")
  out = _fresh_process(code)
  assert out.stdout.split() == ["''", "1"]
  assert "before the first `import jax`" in out.stderr


@pytest.mark.parametrize("tool", ["train.py", "evaluate.py"])
def test_tools_split_the_host_before_importing_jax(tool):
  """The sampling tools call split_cpu() before any import that pulls in jax."""
  src = open(os.path.join(ROOT, "tools", tool)).read()
  head = src[:src.index("host_devices.split_cpu()")]
  imports = [line for line in head.splitlines() if line.startswith(("import ", "from "))]
  modules = [line.split()[1].split(".")[0] for line in imports]
  assert "gotr1_jax" in modules and not {"jax", "flax", "optax", "configs"} & set(modules), imports
  assert all(line == "from gotr1_jax import host_devices  # noqa: E402"
             for line, module in zip(imports, modules) if module == "gotr1_jax"), imports
