"""setup.py: the wheel carries the shipped assets (checkpoints, prompts, tokenizer), and building it
warns of nothing (`make demo`'s set-up printed 160 lines of "Package would be ignored" before)."""
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_asset_quietly(tmp_path):
  # Built from a copy: setuptools builds in the source tree (build/, *.egg-info).
  source = tmp_path / "src"
  shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
      ".git", ".venv", ".whl", "runs", "build", "*.egg-info", ".xla_test_cache", "__pycache__", ".pytest_cache"))
  run = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(source)], capture_output=True, text=True, check=True,
                       cwd=tmp_path)
  assert "would be ignored" not in run.stdout + run.stderr
  (wheel,) = tmp_path.glob("gotr1_jax-*.whl")
  names = set(zipfile.ZipFile(wheel).namelist())
  assets = {p.relative_to(ROOT).as_posix() for p in (ROOT / "gotr1_jax" / "assets").rglob("*") if p.is_file()}
  assert assets and assets <= names
  for stage in ("vq", "policy", "judge"):
    assert f"gotr1_jax/assets/checkpoints/{stage}/model.safetensors" in names
  assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
