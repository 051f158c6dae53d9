"""Parity of a converted Qwen2.5-VL checkpoint: our Flax model vs transformers', in fp32.

Owns the reference (transformers' `Qwen2_5_VLForConditionalGeneration` filled from the torch
directory: with the file's own keys for v5 names, through our table for the older names), the
random probe and the error measure. The probe is two left-padded rows: random text around two
images of different sizes, and a shorter row with a third image; the images are random normalised
patches (no image processor involved) on merged grids that leave partial attention windows.
`tools/convert.py --verify` calls `verify`; the conversion itself is convert/qwen_vl.py's.
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

from gotr1_jax.convert import qwen_vl as convert
from gotr1_jax.convert.flax_io import max_rel_error
from gotr1_jax.convert.table import load_safetensors
from gotr1_jax.models.qwen_image_processing import VisionBatch, merged_valid, pack_vision_batch
from gotr1_jax.models.qwen_positions import get_rope_index, token_types
from gotr1_jax.models.qwen_vl import QwenVL, QwenVLConfig

PROBE_SEED = 0
# Merged-token grids (rows, columns) of the probe images, per row; 3x5 and 5x2 leave partial
# windows for any window of >= 2 tokens. Text runs: before, between and after the images.
PROBE_GRIDS = (((3, 5), (5, 2)), ((2, 3),))
PROBE_TEXT = ((4, 3, 2), (3, 2))


@dataclasses.dataclass(frozen=True)
class Probe:
  tokens: np.ndarray  # [R, T] left-padded ids, <|image_pad|> runs inside <|vision_start|> ... <|vision_end|>
  mask: np.ndarray  # [R, T]
  types: np.ndarray  # [R, T] transformers' mm_token_type_ids (1 at image placeholders)
  positions: np.ndarray  # [3, R, T] get_rope_index
  patches: np.ndarray  # [n, patch_dim] every image's patches, in batch order (transformers' pixel_values)
  grid_thw: np.ndarray  # [images, 3]
  vision: VisionBatch  # the same patches packed one row per example (ours)


def reference_model(torch_dir: str | os.PathLike) -> transformers.Qwen2_5_VLForConditionalGeneration:
  """transformers' model in fp32 holding the checkpoint's weights; every weight must be present
  (a tied head's lm_head.weight may be absent: it is the embedding)."""
  raw = json.loads((Path(torch_dir) / "config.json").read_text())
  state = load_safetensors(torch_dir)
  if convert.detect_layout(state) is not convert.TRANSFORMERS:  # older names, renamed through our table
    cfg = convert.config_from_json(raw)
    state = convert.params_to_state(convert.state_to_params(state, cfg), cfg)
  hf_config = transformers.Qwen2_5_VLConfig.from_dict(raw)
  with no_init_weights():
    model = transformers.Qwen2_5_VLForConditionalGeneration(hf_config)
  tensors = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in state.items()}
  missing, unexpected = model.load_state_dict(tensors, strict=False)
  missing = [k for k in missing if not (hf_config.tie_word_embeddings and k == "lm_head.weight")]
  if missing or unexpected:
    raise ValueError(f"the torch reference does not match {torch_dir}: missing {sorted(missing)[:20]}, "
                     f"unexpected {sorted(unexpected)[:20]}.")
  return model.eval().float()


def probe_inputs(cfg: QwenVLConfig, seed: int = PROBE_SEED) -> Probe:
  rng = np.random.default_rng(seed)
  m = cfg.vision.spatial_merge_size
  specials = [cfg.image_token_id, cfg.video_token_id, cfg.vision_start_token_id, cfg.vision_end_token_id]
  text_ids = np.setdiff1d(np.arange(cfg.lm.vocab_size), specials)
  rows, packed, grids = [], [], []
  for row_grids, runs in zip(PROBE_GRIDS, PROBE_TEXT):
    row_thw = np.array([[1, m * h, m * w] for h, w in row_grids])
    ids = list(rng.choice(text_ids, runs[0]))
    for (h, w), run in zip(row_grids, runs[1:]):
      ids += [cfg.vision_start_token_id] + [cfg.image_token_id] * (h * w) + [cfg.vision_end_token_id]
      ids += list(rng.choice(text_ids, run))
    patches = rng.normal(size=(int(row_thw.prod(-1).sum()), cfg.vision.patch_dim)).astype(np.float32)
    rows.append(ids)
    packed.append((patches, row_thw))
    grids.append(row_thw)
  length = max(len(r) for r in rows)
  tokens = np.array([[0] * (length - len(r)) + r for r in rows], np.int32)
  mask = np.array([[0] * (length - len(r)) + [1] * len(r) for r in rows], np.int32)
  grid_thw = np.concatenate(grids)
  positions, _ = get_rope_index(tokens, cfg.mrope, image_grid_thw=grid_thw, attention_mask=mask)
  vision = pack_vision_batch(packed, cfg.vision, buckets=(max(len(p) for p, _ in packed),))
  return Probe(tokens, mask, token_types(tokens, cfg.mrope), positions, np.concatenate([p for p, _ in packed]),
               grid_thw, vision)


def torch_outputs(model: transformers.Qwen2_5_VLForConditionalGeneration, probe: Probe) -> dict[str, np.ndarray]:
  """The reference's merged vision tokens [images' tokens, hidden] and logits [R, T, vocab]."""
  ids = torch.from_numpy(probe.tokens.astype(np.int64))
  pixels, grid = torch.from_numpy(probe.patches), torch.from_numpy(probe.grid_thw)
  with torch.no_grad():
    tower = model.model.visual(pixels, grid_thw=grid).pooler_output
    logits = model(input_ids=ids, attention_mask=torch.from_numpy(probe.mask), pixel_values=pixels,
                   image_grid_thw=grid, mm_token_type_ids=torch.from_numpy(probe.types)).logits
  return {"vision_tower": tower.numpy(), "logits": logits.numpy()}


def flax_outputs(cfg: QwenVLConfig, params: dict, probe: Probe) -> dict[str, np.ndarray]:
  model = QwenVL(cfg)
  with jax.default_matmul_precision("highest"):
    tower = np.asarray(model.apply(params, probe.vision, method=QwenVL.embed_images))
    logits = np.asarray(model.apply(params, probe.tokens, probe.mask, probe.positions, probe.vision))
  return {"vision_tower": tower[merged_valid(probe.vision.image_ids, cfg.vision)], "logits": logits}


def verify(flax_dir: str | os.PathLike, torch_dir: str | os.PathLike) -> dict[str, float]:
  """{'vision_tower', 'logits'} -> max relative error of ours (flax_dir) against the torch
  reference (torch_dir) on the same probe, both fp32 (logits at real tokens only). Needs memory
  for both models in fp32 (about 8 bytes per parameter)."""
  cfg, params = convert.load_flax_qwen_vl(flax_dir)
  cfg = convert.with_param_dtype(cfg, "float32")
  cfg = dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, dtype="float32"),
                            vision=dataclasses.replace(cfg.vision, dtype="float32"))
  params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
  probe = probe_inputs(cfg)
  ours = flax_outputs(cfg, params, probe)
  theirs = torch_outputs(reference_model(torch_dir), probe)
  valid = probe.mask.astype(bool)
  return {"vision_tower": max_rel_error(ours["vision_tower"], theirs["vision_tower"]),
          "logits": max_rel_error(ours["logits"][valid], theirs["logits"][valid])}
