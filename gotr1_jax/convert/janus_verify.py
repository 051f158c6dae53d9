"""Parity of a converted Janus checkpoint: our Flax model vs the torch reference, in fp32.

Owns the reference (transformers' `JanusForConditionalGeneration` filled from the torch directory:
with the file's own keys for a transformers-layout checkpoint, through our DeepSeek -> transformers
mapping for an original-layout one), the random probe inputs (text + image tokens through both
heads, and a VQ decode) and the error measure. `tools/convert.py --verify` calls `verify`; the
conversion itself is convert/janus.py's.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np
import torch
import transformers
from transformers.initialization import no_init_weights

from gotr1_jax.convert import janus as convert
from gotr1_jax.convert.flax_io import max_rel_error
from gotr1_jax.convert.table import load_safetensors
from gotr1_jax.models.janus import JanusConfig, JanusPolicy
from gotr1_jax.models.vq import VQModel

PROBE_TEXT_TOKENS = 12  # text ids, then as many image codes, in each of PROBE_ROWS rows
PROBE_IMAGE_TOKENS = 12
PROBE_ROWS = 2
PROBE_SEED = 0
# A vision-less checkpoint still needs *some* SigLIP in transformers' model; the probe never runs it.
STUB_VISION = dict(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, image_size=16, patch_size=16,
                   mlp_ratio=1.0, num_image_tokens=1)
UNDERSTANDING_PREFIXES = ("model.vision_model.", "model.aligner.")


def reference_model(torch_dir: str | os.PathLike) -> transformers.JanusForConditionalGeneration:
  """transformers' model in fp32 holding the checkpoint's weights; every generation-path weight
  must be present (understanding weights may be absent only if the checkpoint says so)."""
  raw = json.loads((Path(torch_dir) / "config.json").read_text())
  state = load_safetensors(torch_dir)
  layout = convert.detect_layout(state)
  cfg = convert.config_from_json(raw)
  if layout is convert.TRANSFORMERS:  # transformers' own names: no mapping of ours involved
    hf_config = dict(raw)
  else:  # the original layout, renamed through our table
    params, vq_params = convert.state_to_params(state, cfg, layout)
    state = convert.params_to_state(params, vq_params, cfg, convert.TRANSFORMERS)
    hf_config = convert.config_to_json(cfg, convert.TRANSFORMERS)
  has_vision = hf_config.pop(convert.HAS_VISION_KEY, True)
  if not has_vision:
    hf_config["vision_config"] = dict(hf_config["vision_config"], **STUB_VISION)
  hf_config = {k: v for k, v in hf_config.items() if k not in ("model_type", "architectures")}
  with no_init_weights():
    model = transformers.JanusForConditionalGeneration(transformers.JanusConfig(**hf_config))
  tensors = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()
             if not k.endswith("rotary_emb.inv_freq")}
  missing, unexpected = model.load_state_dict(tensors, strict=False)
  missing = [k for k in missing if has_vision or not k.startswith(UNDERSTANDING_PREFIXES)]
  if missing or unexpected:
    raise ValueError(f"the torch reference does not match {torch_dir}: missing {sorted(missing)[:20]}, "
                     f"unexpected {sorted(unexpected)[:20]}.")
  # transformers derives the VQ grid from SigLIP's image/patch size; the checkpoint's VQ grid rules.
  model.model.vqmodel.quantize.quant_state_dims = [cfg.vq.num_patches] * 2
  return model.eval().float()


def probe_inputs(cfg: JanusConfig, seed: int = PROBE_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(tokens [R, T], is_image [R, T], VQ codes [1, grid^2]): random text ids then random codes."""
  rng = np.random.default_rng(seed)
  text = rng.integers(0, cfg.lm.vocab_size, (PROBE_ROWS, PROBE_TEXT_TOKENS))
  codes = rng.integers(0, cfg.image_vocab_size, (PROBE_ROWS, PROBE_IMAGE_TOKENS))
  tokens = np.concatenate([text, codes], axis=1).astype(np.int32)
  is_image = np.concatenate([np.zeros_like(text, bool), np.ones_like(codes, bool)], axis=1)
  image = rng.integers(0, cfg.image_vocab_size, (1, cfg.num_image_tokens)).astype(np.int32)
  return tokens, is_image, image


def torch_outputs(model: transformers.JanusForConditionalGeneration, tokens: np.ndarray, is_image: np.ndarray,
                  image: np.ndarray) -> dict[str, np.ndarray]:
  """The reference's text and image-token logits over the mixed probe and its VQ decode."""
  ids = torch.from_numpy(tokens.astype(np.int64))
  mask = torch.from_numpy(is_image)[..., None]
  with torch.no_grad():
    text = model.get_input_embeddings()(ids.clamp(max=model.config.text_config.vocab_size - 1))
    codes = model.prepare_embeddings_for_image_generation(ids.clamp(max=model.config.vq_config.num_embeddings - 1))
    hidden = model.model.language_model(inputs_embeds=torch.where(mask, codes, text)).last_hidden_state
    decoded = model.model.vqmodel.decode(torch.from_numpy(image.astype(np.int64)))
    return {"text_logits": model.lm_head(hidden).numpy(), "image_logits": model.model.generation_head(hidden).numpy(),
            "vq_decode": decoded.permute(0, 2, 3, 1).numpy()}


def flax_outputs(cfg: JanusConfig, params: dict, vq_params: dict, tokens: np.ndarray, is_image: np.ndarray,
                 image: np.ndarray) -> dict[str, np.ndarray]:
  mask = np.ones_like(tokens)
  with jax.default_matmul_precision("highest"):
    text, image_logits = JanusPolicy(cfg).apply(params, tokens, is_image, mask, method=JanusPolicy.forward_mixed)
    decoded = VQModel(cfg.vq).apply(vq_params, image, method=VQModel.decode_tokens)
  return {"text_logits": np.asarray(text), "image_logits": np.asarray(image_logits), "vq_decode": np.asarray(decoded)}


def verify(flax_dir: str | os.PathLike, torch_dir: str | os.PathLike) -> dict[str, float]:
  """{'text_logits', 'image_logits', 'vq_decode'} -> max relative error of ours (flax_dir) against
  the torch reference (torch_dir) on the same random probe, both fp32. Needs memory for both
  models in fp32 (about 8 bytes per parameter)."""
  cfg, params, vq_params = convert.load_flax_janus(flax_dir)
  fp32 = dict(dtype="float32", param_dtype="float32")
  cfg = dataclasses.replace(cfg, vision=None, lm=dataclasses.replace(cfg.lm, **fp32),
                            vq=dataclasses.replace(cfg.vq, **fp32))
  params = {"params": {k: v for k, v in params["params"].items() if k not in ("vision_model", "aligner")}}
  cast = lambda tree: jax.tree.map(lambda x: np.asarray(x, np.float32), tree)
  tokens, is_image, image = probe_inputs(cfg)
  ours = flax_outputs(cfg, cast(params), cast(vq_params), tokens, is_image, image)
  theirs = torch_outputs(reference_model(torch_dir), tokens, is_image, image)
  return {name: max_rel_error(ours[name], theirs[name]) for name in theirs}
