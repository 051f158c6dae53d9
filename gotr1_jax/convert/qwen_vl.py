"""Qwen2.5-VL checkpoints <-> (QwenVLConfig, QwenVL params), in transformers' layout (v5 and older names).

Owns the whole model's rule table (the shared LM table of convert/llm_rules.py under
`language_model/`, the tower's table of convert/qwen_vision_rules.py under `visual/`), the two key
layouts it reads (transformers v5's in-memory names `model.language_model.*`, `model.visual.*`,
`lm_head.*`, which it also writes, and the older `model.*`, `visual.*`, `lm_head.*` of Qwen's
released files, which transformers 5's save_pretrained still writes by default), config.json
through transformers' `Qwen2_5_VLConfig`, `load_qwen_vl` / `save_qwen_vl_torch`, and tools/convert.py's
family interface (`to_flax`, `to_torch`, `verify`). The Flax directory format is convert/flax_io.py's;
the torch parity check convert/qwen_vl_verify.py's.

A tied head (3B) has no `lm_head.weight` of its own: it is dropped on load and not written, as
transformers' save_pretrained does.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import jax
import numpy as np
import transformers

from gotr1_jax.convert import flax_io
from gotr1_jax.convert import qwen_vision_rules as vision_layouts
from gotr1_jax.convert.llm_rules import decoder_lm_rules, lm_config_from_hf
from gotr1_jax.convert.table import (DEFAULT_MAX_SHARD_BYTES, Rule, check_structure, flax_to_torch,
                                     load_safetensors, nest, save_safetensors, torch_to_flax)
from gotr1_jax.models.llm import resolve_dtype
from gotr1_jax.models.qwen_vision import QwenVisionConfig
from gotr1_jax.models.qwen_vl import QwenVLConfig, init_qwen_vl, qwen_vl_config_from_dict

FAMILY = "qwen_vl"
LAYOUTS = ("transformers",)  # the torch layouts to_torch writes; older names are read as well
ARCHITECTURE = "Qwen2_5_VLForConditionalGeneration"
QWEN_BOS_ID, QWEN_EOS_ID = 151643, 151645  # config.json's bos/eos of the released checkpoints


@dataclasses.dataclass(frozen=True)
class QwenVLLayout:
  """Key prefixes of one checkpoint layout."""

  name: str
  lm: str  # precedes layers. / embed_tokens. / norm.
  lm_head: str
  visual: str


TRANSFORMERS = QwenVLLayout("transformers", "model.language_model.", "lm_head.", vision_layouts.TRANSFORMERS)
# Qwen's released files, and what transformers 5 itself writes (save_pretrained's save_original_format).
ORIGINAL = QwenVLLayout("original", "model.", "lm_head.", vision_layouts.ORIGINAL)


def qwen_vl_rules(cfg: QwenVLConfig, layout: QwenVLLayout = TRANSFORMERS) -> list[Rule]:
  """Every QwenVL param. The tower's stacked block index is renamed `{vision_layer}` so that LM
  layers and vision blocks are counted separately (sizes={'layer': ..., 'vision_layer': ...})."""
  vision = [dataclasses.replace(r, torch=r.torch.replace("{layer}", "{vision_layer}"))
            for r in nest(vision_layouts.qwen_vision_rules(cfg.vision, layout.visual), "visual")]
  return decoder_lm_rules(cfg.lm, layout.lm, layout.lm_head, "language_model/") + vision


def _sizes(cfg: QwenVLConfig) -> dict[str, int]:
  return {"layer": cfg.lm.num_layers, "vision_layer": cfg.vision.depth}


def detect_layout(keys: Iterable[str]) -> QwenVLLayout:
  """v5 names if any key starts with `model.language_model.`, the older names if one starts with
  `model.layers.` / `model.embed_tokens.`; anything else is not a Qwen2.5-VL checkpoint."""
  keys = list(keys)
  if any(k.startswith(TRANSFORMERS.lm) for k in keys):
    return TRANSFORMERS
  if any(k.startswith((ORIGINAL.lm + "layers.", ORIGINAL.lm + "embed_tokens.")) for k in keys):
    return ORIGINAL
  raise ValueError(f"cannot tell the Qwen2.5-VL layout: no key starts with {TRANSFORMERS.lm!r} (transformers v5) "
                   f"or '{ORIGINAL.lm}layers.' (Qwen's files, transformers' save_pretrained). First keys: "
                   f"{sorted(keys)[:8]}")


# ----------------------------------------------------------------------------- config.json
def config_from_hf(hf: Any) -> QwenVLConfig:
  """QwenVLConfig from a transformers `Qwen2_5_VLConfig`."""
  lm = lm_config_from_hf(hf.text_config, qkv_bias=True, tie_embeddings=bool(hf.tie_word_embeddings))
  return QwenVLConfig(lm=lm, vision=QwenVisionConfig.from_hf(hf.vision_config),
                      image_token_id=hf.image_token_id, video_token_id=hf.video_token_id,
                      vision_start_token_id=hf.vision_start_token_id, vision_end_token_id=hf.vision_end_token_id,
                      tokens_per_second=hf.vision_config.tokens_per_second)


def config_from_json(d: Mapping[str, Any]) -> QwenVLConfig:
  """QwenVLConfig from a config.json dict, in v5's nested form or the older flat one (text fields
  at the top level, `rope_scaling` with type 'mrope'), as transformers reads both."""
  if d.get("model_type") != "qwen2_5_vl":
    raise ValueError(f"config.json has model_type {d.get('model_type')!r}; expected 'qwen2_5_vl' "
                     "(a Qwen2.5-VL checkpoint).")
  return config_from_hf(transformers.Qwen2_5_VLConfig.from_dict(dict(d)))


def config_to_hf(cfg: QwenVLConfig) -> transformers.Qwen2_5_VLConfig:
  """transformers' config of the same architecture (what config.json holds)."""
  lm, v = cfg.lm, cfg.vision
  if lm.resolved_head_dim * lm.num_heads != lm.hidden_size:
    raise ValueError(f"lm.head_dim={lm.resolved_head_dim} x {lm.num_heads} heads != hidden_size {lm.hidden_size}: "
                     "transformers' Qwen2.5-VL derives head_dim from hidden_size / num_heads.")
  if not lm.qkv_bias:
    raise ValueError("lm.qkv_bias=False: transformers' Qwen2.5-VL LM always has q/k/v biases.")
  text = dict(vocab_size=lm.vocab_size, hidden_size=lm.hidden_size, intermediate_size=lm.intermediate_size,
              num_hidden_layers=lm.num_layers, num_attention_heads=lm.num_heads,
              num_key_value_heads=lm.num_kv_heads, rms_norm_eps=lm.rms_norm_eps,
              rope_parameters=dict(rope_type="default", rope_theta=lm.rope_theta,
                                   mrope_section=list(lm.mrope_section)))
  # Qwen's <|endoftext|> / <|im_end|> ids (transformers' defaults) where the vocabulary holds them.
  text.update(bos_token_id=QWEN_BOS_ID if QWEN_BOS_ID < lm.vocab_size else None,
              eos_token_id=QWEN_EOS_ID if QWEN_EOS_ID < lm.vocab_size else None)
  vision = dict(depth=v.depth, hidden_size=v.hidden_size, intermediate_size=v.intermediate_size,
                num_heads=v.num_heads, in_channels=v.in_channels, patch_size=v.patch_size,
                temporal_patch_size=v.temporal_patch_size, spatial_merge_size=v.spatial_merge_size,
                window_size=v.window_size, fullatt_block_indexes=list(v.fullatt_block_indexes),
                out_hidden_size=v.out_hidden_size, hidden_act=v.hidden_act,
                tokens_per_second=cfg.tokens_per_second,
                rope_parameters=dict(rope_type="axial", rope_theta=v.rope_theta))
  hf = transformers.Qwen2_5_VLConfig(
      text_config=text, vision_config=vision, image_token_id=cfg.image_token_id,
      video_token_id=cfg.video_token_id, vision_start_token_id=cfg.vision_start_token_id,
      vision_end_token_id=cfg.vision_end_token_id, tie_word_embeddings=lm.tie_embeddings)
  hf.architectures = [ARCHITECTURE]
  return hf


# ----------------------------------------------------------------------------- load / save
def _expected_params(cfg: QwenVLConfig) -> Any:
  return jax.eval_shape(functools.partial(init_qwen_vl, cfg), jax.random.key(0))["params"]


def _cast(tree: Any, dtype: Optional[str]) -> Any:
  return tree if dtype is None else jax.tree.map(lambda x: np.asarray(x).astype(resolve_dtype(dtype)), tree)


def with_param_dtype(cfg: QwenVLConfig, param_dtype: Optional[str]) -> QwenVLConfig:
  if param_dtype is None:
    return cfg
  return dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, param_dtype=param_dtype),
                             vision=dataclasses.replace(cfg.vision, param_dtype=param_dtype))


def state_to_params(state: Mapping[str, Any], cfg: QwenVLConfig,
                    layout: Optional[QwenVLLayout] = None) -> dict:
  """A torch state dict (either layout; detected when None) -> {'params': tree}, checked against
  the config's shapes. Unmatched and missing keys are raised together, listed by name."""
  layout = layout or detect_layout(state)
  params = torch_to_flax(state, qwen_vl_rules(cfg, layout), sizes=_sizes(cfg))
  check_structure(params, _expected_params(cfg))
  return {"params": params}


def params_to_state(params: Mapping[str, Any], cfg: QwenVLConfig,
                    layout: QwenVLLayout = TRANSFORMERS) -> dict[str, np.ndarray]:
  """The inverse of state_to_params (without a tied head's `lm_head.weight`)."""
  if cfg.vision.abs_position_grid:
    raise ValueError(f"vision.abs_position_grid={cfg.vision.abs_position_grid}: transformers' Qwen2.5-VL has no "
                     "learned position table to put it in; keep this model in our Flax format (save_flax_qwen_vl).")
  tree = params["params"] if "params" in params else params
  return flax_to_torch(jax.device_get(tree), qwen_vl_rules(cfg, layout))


def load_qwen_vl_torch(path: str | os.PathLike, param_dtype: Optional[str] = None) -> tuple[QwenVLConfig, dict]:
  """A torch checkpoint directory (config.json + safetensors, either layout) -> (QwenVLConfig,
  {'params': tree}). param_dtype (e.g. 'bfloat16') casts every array and sets the config's
  param_dtype; None keeps the arrays as stored."""
  d = Path(path)
  if not (d / "config.json").is_file():
    raise FileNotFoundError(f"{d / 'config.json'} not found; point at a Qwen2.5-VL checkpoint directory "
                            "(config.json + *.safetensors).")
  if flax_io.is_flax_dir(d):
    raise ValueError(f"{d} is already a gotr1_jax Flax directory, not a torch checkpoint: read it with "
                     "load_qwen_vl, or convert it with `tools/convert.py --family qwen_vl --to torch`.")
  cfg = with_param_dtype(config_from_json(json.loads((d / "config.json").read_text())), param_dtype)
  return cfg, _cast(state_to_params(load_safetensors(d), cfg), param_dtype)


def save_qwen_vl_torch(path: str | os.PathLike, params: Mapping[str, Any], cfg: QwenVLConfig,
                       layout: str = "transformers", max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
  """config.json + safetensors that transformers' Qwen2_5_VLForConditionalGeneration.from_pretrained reads."""
  if layout not in LAYOUTS:
    raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}; the older names are read but not written.")
  files = save_safetensors(params_to_state(params, cfg, TRANSFORMERS), path, max_shard_bytes)
  config_to_hf(cfg).to_json_file(str(Path(path) / "config.json"))
  return files + [Path(path) / "config.json"]


def save_flax_qwen_vl(path: str | os.PathLike, cfg: QwenVLConfig, params: Mapping[str, Any],
                      max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> list[Path]:
  """Our Flax directory: the params under `params/`, the QwenVLConfig as config.json's `model`."""
  return flax_io.save_flax_dir(path, FAMILY, dataclasses.asdict(cfg), {"params": jax.device_get(params)},
                               max_shard_bytes)


def load_flax_qwen_vl(path: str | os.PathLike) -> tuple[QwenVLConfig, dict]:
  """A directory written by save_flax_qwen_vl -> (QwenVLConfig, {'params': tree}), shape-checked."""
  model, trees = flax_io.load_flax_dir(path, FAMILY, ("params",))
  cfg = qwen_vl_config_from_dict(model)
  check_structure(trees["params"]["params"], _expected_params(cfg))
  return cfg, trees["params"]


def load_qwen_vl(path: str | os.PathLike, param_dtype: Optional[str] = None) -> tuple[QwenVLConfig, dict]:
  """Our Flax directory (tools/convert.py --to flax) or a torch checkpoint in either layout ->
  (QwenVLConfig, {'params': tree}); param_dtype casts as load_qwen_vl_torch does."""
  if flax_io.is_flax_dir(path, FAMILY):
    cfg, params = load_flax_qwen_vl(path)
    return with_param_dtype(cfg, param_dtype), _cast(params, param_dtype)
  return load_qwen_vl_torch(path, param_dtype)


# ----------------------------------------------------------------------------- the convert CLI
def to_flax(src: str | os.PathLike, dst: str | os.PathLike) -> None:
  """A transformers checkpoint directory (v5 or older names) -> our Flax directory (+ tokenizer)."""
  cfg, params = load_qwen_vl_torch(src)
  save_flax_qwen_vl(dst, cfg, params)
  flax_io.copy_tokenizer_files(src, dst)


def to_torch(src: str | os.PathLike, dst: str | os.PathLike, layout: str = "transformers") -> None:
  """Our Flax directory -> a transformers v5 checkpoint directory (+ tokenizer)."""
  cfg, params = load_flax_qwen_vl(src)
  save_qwen_vl_torch(dst, params, cfg, layout)
  flax_io.copy_tokenizer_files(src, dst)


def verify(flax_dir: str | os.PathLike, torch_dir: str | os.PathLike) -> dict[str, float]:
  """Max relative error of our model (flax_dir) against transformers' Qwen2_5_VLForConditionalGeneration
  (torch_dir) on the same random text + 2-image batch, fp32: {'vision_tower', 'logits'}.
  See convert/qwen_vl_verify.py."""
  from gotr1_jax.convert import qwen_vl_verify  # torch is needed only here
  return qwen_vl_verify.verify(flax_dir, torch_dir)
