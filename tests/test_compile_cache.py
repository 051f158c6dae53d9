"""Tests for gotr1_jax/compile_cache.py: where the tools' cache lives, and that a tool's second run reads
back what its first compiled."""
import os
import subprocess
import sys

from gotr1_jax import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A tool in miniature: run by config_lib.run_tool, it compiles one program and prints how many compiles
# the persistent cache answered.
TOOL = """
import jax, jax.numpy as jnp
from gotr1_jax import config_lib
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event)
                                       if event == "/jax/compilation_cache/cache_hits" else None)
def main(argv):
  print(float(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((8, 8))).sum()), len(hits))
config_lib.run_tool(main, ["tool"])
"""


def _run_tool(cwd, **env_overrides) -> list[str]:
  """TOOL's printed words (its result, the cache hits) from a fresh process in `cwd`."""
  env = {k: v for k, v in os.environ.items() if k != compile_cache.ENV}
  env.update(JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **env_overrides)
  run = subprocess.run([sys.executable, "-c", TOOL], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr[-3000:]
  return run.stdout.split()


def test_cache_dir_is_runs_under_the_working_directory_unless_the_variable_says(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert compile_cache.cache_dir({}) == str(tmp_path / "runs" / ".xla_cache")
  assert compile_cache.cache_dir({compile_cache.ENV: "elsewhere"}) == str(tmp_path / "elsewhere")
  assert compile_cache.cache_dir({compile_cache.ENV: ""}) == ""


def test_a_tools_second_run_reads_its_programs_from_the_cache(tmp_path):
  first = _run_tool(tmp_path)
  cache = tmp_path / "runs" / ".xla_cache"
  entries = sorted(os.listdir(cache))
  assert first[1] == "0" and entries
  second = _run_tool(tmp_path)
  assert second[0] == first[0] and int(second[1]) >= 1  # the same result, read back instead of compiled
  assert sorted(os.listdir(cache)) == entries


def test_the_variable_moves_the_cache_or_turns_it_off(tmp_path):
  assert _run_tool(tmp_path, **{compile_cache.ENV: str(tmp_path / "mine")})[1] == "0"
  assert os.listdir(tmp_path / "mine") and not (tmp_path / "runs").exists()
  off = tmp_path / "off"
  off.mkdir()
  assert _run_tool(off, **{compile_cache.ENV: ""})[1] == "0" and _run_tool(off, **{compile_cache.ENV: ""})[1] == "0"
  assert not (off / "runs").exists()
