"""tools/convert.py: both directions for Janus through the CLI function, `--verify` passing on a good
conversion and failing on a corrupted one, and the command line itself."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gotr1_jax.convert import family_module
from gotr1_jax.convert.table import load_safetensors, save_safetensors
from tests.models.test_janus import tiny_hf_janus

ROOT = Path(__file__).resolve().parents[2]


def _load_tool():
  spec = importlib.util.spec_from_file_location("convert_tool", ROOT / "tools" / "convert.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


tool = _load_tool()


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  """A transformers-layout tiny Janus checkpoint with a tokenizer file beside it."""
  d = tmp_path_factory.mktemp("hf")
  tiny_hf_janus().save_pretrained(d)
  (d / "tokenizer.json").write_text("{}")
  return d


def test_to_flax_and_back_verifies_within_tolerance(hf_dir, tmp_path, capsys):
  flax_dir, torch_dir = tmp_path / "flax", tmp_path / "deepseek"
  assert tool.convert("janus", "flax", str(hf_dir), str(flax_dir), verify=True) == 0
  out = capsys.readouterr().out
  errors = {line.split(":")[0]: float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "max rel error" in line}
  assert set(errors) == {"text_logits", "image_logits", "vq_decode"}
  assert max(errors.values()) < 1e-5
  assert (flax_dir / "tokenizer.json").exists()
  assert tool.convert("janus", "torch", str(flax_dir), str(torch_dir), layout="deepseek", verify=True) == 0
  # transformers -> Flax -> DeepSeek -> Flax: DeepSeek's names, and the same Flax tensors bit for bit.
  assert any(k.startswith("language_model.model.") for k in load_safetensors(torch_dir))
  assert tool.convert("janus", "flax", str(torch_dir), str(tmp_path / "flax2")) == 0
  first, second = load_safetensors(flax_dir), load_safetensors(tmp_path / "flax2")
  assert sorted(first) == sorted(second)
  assert all(np.array_equal(first[k], second[k]) for k in first)


def _corrupt(flax_dir: Path) -> None:
  """Scales one gen_head weight by 1.5, as a wrong transform in a rule table would."""
  flat = load_safetensors(flax_dir)
  key = next(k for k in flat if k.startswith("params/") and "gen_head" in k and k.endswith("kernel"))
  flat[key] = np.asarray(flat[key]) * 1.5
  for f in flax_dir.glob("*.safetensors"):
    f.unlink()
  save_safetensors(flat, flax_dir)


def test_verify_fails_on_a_wrong_conversion(hf_dir, tmp_path, monkeypatch, capsys):
  janus = family_module("janus")
  real_to_flax = janus.to_flax

  def buggy_to_flax(src, dst):
    real_to_flax(src, dst)
    _corrupt(Path(dst))

  monkeypatch.setattr(janus, "to_flax", buggy_to_flax)
  assert tool.convert("janus", "flax", str(hf_dir), str(tmp_path / "flax"), verify=True) == 1
  out = capsys.readouterr().out
  assert "FAILED: ['image_logits']" in out
  assert janus.verify(tmp_path / "flax", hf_dir)["image_logits"] > 1e-2


def test_user_errors_name_the_fix(hf_dir, tmp_path):
  with pytest.raises(ValueError, match="choose one of"):
    family_module("dalle")
  with pytest.raises(SystemExit, match="layouts"):
    tool.convert("janus", "torch", str(hf_dir), str(tmp_path / "x"), layout="megatron")
  with pytest.raises(ValueError, match="tools/convert.py --family janus --to flax"):
    tool.convert("janus", "torch", str(hf_dir), str(tmp_path / "y"), layout="deepseek")  # src is not Flax


def test_verify_without_torch_names_the_extras(hf_dir, tmp_path, monkeypatch):
  # `make demo` installs the stack without the dev extras; --verify then stops before converting.
  find_spec = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
  with pytest.raises(SystemExit, match=r"pip install -e '\.\[dev\]'"):
    tool.convert("janus", "flax", str(hf_dir), str(tmp_path / "z"), verify=True)
  assert not (tmp_path / "z").exists()


def test_command_line(hf_dir, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  run = subprocess.run([sys.executable, str(ROOT / "tools" / "convert.py"), "--family", "janus", "--to", "flax",
                        "--src", str(hf_dir), "--dst", str(tmp_path / "f")],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert run.returncode == 0, run.stderr[-2000:]
  assert "Converted janus" in run.stdout
  assert (tmp_path / "f" / "config.json").exists()
