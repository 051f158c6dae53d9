"""The shipped ShapesWorld checkpoints on disk: where they live, how they are written and read.

Owns the directory layout `gotr1_jax/assets/checkpoints/{vq,policy,judge}` and the VQ's own
format (transformers' standalone JanusVQVAE key names + a config.json of VQConfig fields). The
policy goes through convert/janus.py's save_janus / load_janus (DeepSeek's layout, the one GoT-R1
ships), so loading the shipped policy exercises the real conversion path; its directory also holds
the tokenizer files, so generator_from_checkpoint reads it as it reads any Janus checkpoint.
The judge's directory also records how it must be asked (`judge_usage.json`: the question order,
wording, R_RI question and canvas it was trained on), which a run that loads it checks.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from gotr1_jax.convert import janus_vq
from gotr1_jax.convert.janus import load_janus, save_janus
from gotr1_jax.convert.table import check_structure, flax_to_torch, load_safetensors, save_safetensors, torch_to_flax
from gotr1_jax.data.shapes_world.tokenizer import load_tokenizer
from gotr1_jax.models.janus import JanusConfig
from gotr1_jax.models.vq import VQConfig, VQModel

CHECKPOINTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets",
                               "checkpoints")
VQ_LAYOUT = janus_vq.TRANSFORMERS.with_prefix("")  # a standalone JanusVQVAE's state dict
VQ_MODEL_TYPE = "gotr1_janus_vq"


def checkpoint_dir(stage: str, root: str | os.PathLike = CHECKPOINTS_DIR) -> Path:
  return Path(root) / stage


def _unwrap(params: Mapping[str, Any]) -> Mapping[str, Any]:
  return params["params"] if "params" in params else params


def _require(path: Path, what: str) -> None:
  if not (path / "config.json").exists():
    raise FileNotFoundError(f"No {what} checkpoint at {path} (config.json missing); train it with "
                            f"`python tools/pretrain_shapes.py --config configs/shapes_pretrain.py`.")


def save_vq(path: str | os.PathLike, config: VQConfig, params: Mapping[str, Any]) -> list[Path]:
  """config.json + model.safetensors of a VQModel."""
  state = flax_to_torch(jax.device_get(_unwrap(params)), janus_vq.vq_rules(VQ_LAYOUT))
  files = save_safetensors(state, path)
  fields = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
  (Path(path) / "config.json").write_text(json.dumps({"model_type": VQ_MODEL_TYPE, **fields}, indent=2) + "\n")
  return files + [Path(path) / "config.json"]


def load_vq(path: str | os.PathLike) -> tuple[VQConfig, dict]:
  """(VQConfig, {'params': ...}) of a directory written by save_vq."""
  d = Path(path)
  _require(d, "VQ")
  fields = json.loads((d / "config.json").read_text())
  if fields.pop("model_type", None) != VQ_MODEL_TYPE:
    raise ValueError(f"{d / 'config.json'} is not a {VQ_MODEL_TYPE} config; use load_janus for a policy.")
  config = VQConfig(**fields)
  params = torch_to_flax(load_safetensors(d), janus_vq.vq_rules(VQ_LAYOUT))
  f = config.downsample_factor
  images = np.zeros((1, f, f, config.in_channels), np.float32)
  check_structure(params, jax.eval_shape(VQModel(config).init, jax.random.key(0), images)["params"])
  return config, {"params": params}


def save_policy(path: str | os.PathLike, config: JanusConfig, params: Mapping[str, Any],
                vq_params: Mapping[str, Any], tokenizer: Any = None) -> list[Path]:
  """The policy and its VQ in DeepSeek's Janus layout (what GoT-R1's checkpoints use), with the
  tokenizer files (default: ShapesWorld's) so that generator_from_checkpoint reads the directory."""
  files = save_janus(path, jax.device_get(params), jax.device_get(vq_params), config, layout="deepseek")
  tokenizer = tokenizer if tokenizer is not None else load_tokenizer()
  return files + [Path(f) for f in tokenizer.save_pretrained(str(path))]


def load_policy(path: str | os.PathLike) -> tuple[JanusConfig, dict, dict]:
  """(JanusConfig, {'params': policy}, {'params': vq}) through convert.janus.load_janus; the
  tokenizer is sampling.janus_generate.load_tokenizer(path)."""
  _require(Path(path), "policy")
  return load_janus(path, with_vision=False)


_LOAD_ORIGIN_KEYS = ("is_local", "local_files_only")


JUDGE_USAGE_FILE = "judge_usage.json"


def save_judge(path: str | os.PathLike, config: Any, params: Mapping[str, Any], tokenizer: Any,
               image_size: int, usage: Mapping[str, Any] | None = None) -> list[Path]:
  """The judge as our Flax Qwen2.5-VL directory (convert/qwen_vl.py) with its tokenizer, `usage`
  (how it must be asked, see judge_usage) and, written last, a preprocessor_config.json that keeps
  images at image_size^2 pixels (what it was trained on)."""
  from gotr1_jax.convert.qwen_vl import save_flax_qwen_vl
  files = save_flax_qwen_vl(path, config, jax.device_get(params))
  if usage is not None:
    files.append(Path(path) / JUDGE_USAGE_FILE)
    files[-1].write_text(json.dumps(dict(usage), indent=2) + "\n")
  files += [Path(f) for f in tokenizer.save_pretrained(str(path))]
  # transformers records where it loaded a tokenizer from (is_local, local_files_only); a shipped
  # judge is the same wherever it is loaded from, so its saved config should not say.
  tok_config = Path(path) / "tokenizer_config.json"
  if tok_config.is_file():
    entries = json.loads(tok_config.read_text())
    if any(k in entries for k in _LOAD_ORIGIN_KEYS):
      tok_config.write_text(json.dumps({k: v for k, v in entries.items() if k not in _LOAD_ORIGIN_KEYS},
                                       indent=2, ensure_ascii=False) + "\n")
  pre = Path(path) / "preprocessor_config.json"
  pre.write_text(json.dumps({"min_pixels": image_size ** 2, "max_pixels": image_size ** 2}, indent=2) + "\n")
  return files + [pre]


def judge_usage(path: str | os.PathLike) -> dict[str, Any]:
  """How the judge at `path` must be asked, as its training recorded it (run-config field ->
  value, e.g. "judge_generation.images_first": False); {} for a judge that recorded nothing."""
  f = Path(path) / JUDGE_USAGE_FILE
  return json.loads(f.read_text()) if f.is_file() else {}
