"""gotr1_jax/__init__.py: importing the package quiets transformers' advice that torch is missing."""
import os
import subprocess
import sys

# transformers looks for torch with importlib.util.find_spec: answer None for it, as on a machine
# with the runtime install only (`make demo`'s), then import transformers after `{first}`.
CODE = """
import importlib.util
_find = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a, **k: None if name == "torch" else _find(name, *a, **k)
{first}
import transformers
"""


def stderr_of(first: str, **env) -> str:
  env = {k: v for k, v in os.environ.items() if k != "TRANSFORMERS_NO_ADVISORY_WARNINGS"} | env
  run = subprocess.run([sys.executable, "-c", CODE.format(first=first)], capture_output=True, text=True,
                       env=env, check=True)
  return run.stderr


def test_no_torch_advice_after_importing_the_package():
  assert "PyTorch was not found" in stderr_of("")  # what a tool's output carried before
  assert "PyTorch was not found" not in stderr_of("import gotr1_jax")
  # A user's own setting wins: transformers advises when the variable is set but empty.
  assert "PyTorch was not found" in stderr_of("import gotr1_jax", TRANSFORMERS_NO_ADVISORY_WARNINGS="")
