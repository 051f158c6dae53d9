"""Qwen2.5-VL in Flax (models/qwen_vl.py) against transformers' Qwen2_5_VLForConditionalGeneration built
from the same tiny config: vision tokens and logits on a left-padded text + image batch, M-RoPE ids."""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch

from gotr1_jax.convert import qwen_vl as convert
from gotr1_jax.convert.flax_io import max_rel_error
from gotr1_jax.data.qwen_chat import user_messages
from gotr1_jax.models import llm
from gotr1_jax.models.qwen_image_processing import merged_valid, pack_vision_batch
from gotr1_jax.models.qwen_positions import get_rope_index
from gotr1_jax.models.qwen_vl import QwenVL, init_qwen_vl, qwen_vl_config_from_dict
from tests.models.qwen_vl_reference import hf_processor, random_images, state_numpy, tiny_config, tiny_hf_qwen_vl

RTOL = 1e-5  # max |ours - ref| / max |ref|, fp32
# Row 0: two images of different sizes (merged grids 3x5 and 5x2: partial 2x2 windows) around no
# text; row 1: one square image and a shorter question, so it is left-padded.
SIZES = ((24, 40), (40, 16), (32, 32))
QUESTIONS = ("Where is the red cube? Answer with JSON only.", "Rate the image from 0 to 10.")
IMAGES_PER_ROW = (2, 1)


def processor_batch(cfg):
  """transformers' processor output (numpy) for the two rows: chat template, expanded pads, padding."""
  proc = hf_processor(cfg)
  texts = [proc.apply_chat_template(user_messages(q, n), add_generation_prompt=True, tokenize=False)
           for q, n in zip(QUESTIONS, IMAGES_PER_ROW)]
  return proc(text=texts, images=random_images(0, SIZES), padding=True, padding_side="left", return_tensors="np")


def ours_inputs(cfg, batch):
  """The same batch as our model reads it: patches packed one row per example, positions on the host."""
  grids = batch["image_grid_thw"]
  per_image = grids.prod(-1)
  split = int(per_image[:IMAGES_PER_ROW[0]].sum())
  rows = [(batch["pixel_values"][:split], grids[:IMAGES_PER_ROW[0]]),
          (batch["pixel_values"][split:], grids[IMAGES_PER_ROW[0]:])]
  vision = pack_vision_batch(rows, cfg.vision, buckets=(64, 128, 256))
  positions, _ = get_rope_index(batch["input_ids"], cfg.mrope, image_grid_thw=grids,
                                attention_mask=batch["attention_mask"])
  return batch["input_ids"].astype(np.int32), batch["attention_mask"].astype(np.int32), positions, vision


def torch_batch(batch):
  return {k: torch.from_numpy(np.asarray(v)) for k, v in batch.items()}


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def setup(request):
  cfg = tiny_config(tie_embeddings=request.param)
  ref = tiny_hf_qwen_vl(cfg)
  params = convert.state_to_params(state_numpy(ref), cfg)
  batch = processor_batch(cfg)
  return cfg, ref, params, batch


def test_vision_tokens_and_logits_match_transformers(setup):
  cfg, ref, params, batch = setup
  tokens, mask, positions, vision = ours_inputs(cfg, batch)
  assert vision.patches.shape == (2, 128, cfg.vision.patch_dim)  # 100 and 64 patches, padded to one bucket
  model = QwenVL(cfg)
  tower = np.asarray(model.apply(params, vision, method=QwenVL.embed_images))
  logits = np.asarray(model.apply(params, tokens, mask, positions, vision))
  with torch.no_grad():
    t = torch_batch(batch)
    want_tower = ref.model.visual(t["pixel_values"], grid_thw=t["image_grid_thw"]).pooler_output.numpy()
    want_logits = ref(**t).logits.numpy()
  got_tower = tower[merged_valid(vision.image_ids, cfg.vision)]
  assert got_tower.shape == want_tower.shape == (15 + 10 + 16, cfg.lm.hidden_size)
  # Measured in fp32: vision tokens 9.8e-7, logits 1.8e-6 (untied) / 2.4e-6 (tied).
  assert max_rel_error(got_tower, want_tower) <= RTOL
  valid = mask.astype(bool)
  assert max_rel_error(logits[valid], want_logits[valid]) <= RTOL
  # Each row holds exactly its images' merged tokens as placeholders.
  assert [(row == cfg.image_token_id).sum() for row in tokens] == [25, 16]


def test_the_forward_uses_mrope_position_ids(setup):
  cfg, ref, params, batch = setup
  tokens, mask, positions, vision = ours_inputs(cfg, batch)
  with torch.no_grad():
    t = torch_batch(batch)
    want, _ = ref.model.get_rope_index(t["input_ids"], mm_token_type_ids=t["mm_token_type_ids"],
                                       image_grid_thw=t["image_grid_thw"], attention_mask=t["attention_mask"])
    want_logits = ref(**t).logits.numpy()
  np.testing.assert_array_equal(positions, want.numpy())
  # The image's 2-D ids are what make the logits match: 1-D text positions over the same batch do not.
  plain = llm.positions_from_mask(mask)
  wrong = np.asarray(QwenVL(cfg).apply(params, tokens, mask, plain, vision))
  valid = mask.astype(bool)
  assert max_rel_error(wrong[valid], want_logits[valid]) > 0.1  # measured 1.0 (untied), 1.3 (tied)


def test_params_carry_logical_axis_names():
  cfg = tiny_config()
  specs = nn.get_partition_spec(init_qwen_vl(cfg, jax.random.key(0)))["params"]
  P = jax.sharding.PartitionSpec
  assert specs["language_model"]["layers"]["attn"]["q_proj"]["kernel"] == P("layers", "embed", "heads")
  assert specs["language_model"]["embed_tokens"]["embedding"] == P("vocab", "embed")
  assert specs["language_model"]["lm_head"]["kernel"] == P("embed", "vocab")
  assert specs["visual"]["blocks"]["mlp"]["gate_proj"]["kernel"] == P("layers", "embed", "mlp")
  assert specs["visual"]["merger"]["mlp_2"]["kernel"] == P("mlp", "embed")


def test_bad_config_names_the_fix():
  cfg = tiny_config()
  with pytest.raises(ValueError, match="out_hidden_size"):
    dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, out_hidden_size=32))
  with pytest.raises(ValueError, match="mrope_section"):
    dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, mrope_section=None))
  with pytest.raises(ValueError, match="distinct"):
    dataclasses.replace(cfg, video_token_id=cfg.image_token_id)
  with pytest.raises(ValueError, match="lacks"):
    qwen_vl_config_from_dict({"lm": dataclasses.asdict(cfg.lm)})
  with pytest.raises(ValueError, match="unknown fields"):
    qwen_vl_config_from_dict({"lm": dataclasses.asdict(cfg.lm), "vision": dataclasses.asdict(cfg.vision),
                              "image_token": 3})
