"""convert/janus_vq.py: the VQ tables in transformers' and DeepSeek's layouts round-trip a tiny
JanusForConditionalGeneration's VQ weights bit-exactly and fit models/vq.py's param tree."""
from __future__ import annotations

import re

import jax
import numpy as np
import pytest
import torch
from transformers import (JanusConfig, JanusForConditionalGeneration, JanusVisionConfig,
                          JanusVQVAEConfig, LlamaConfig)

from gotr1_jax.convert import janus_vq, table
from gotr1_jax.models.vq import VQConfig, VQModel

TRANSFORMERS_VQ = r"model\.vqmodel\..*"

# transformers -> DeepSeek names: the inverse of the VQ part of transformers'
# convert_janus_weights_to_hf.py, written independently of janus_vq.VQLayout.
TO_DEEPSEEK = ((r"^model\.vqmodel\.", "gen_vision_model."),
               (r"\.(encoder\.down|decoder\.up)\.", lambda m: f".{m[1].split('.')[0]}.conv_blocks."),
               (r"(conv_blocks\.\d+)\.block\.", r"\1.res."),
               (r"\.mid\.block_1\.", ".mid.0."), (r"\.mid\.attn_1\.", ".mid.1."),
               (r"\.mid\.block_2\.", ".mid.2."))


def deepseek_name(key: str) -> str:
  for pattern, repl in TO_DEEPSEEK:
    key = re.sub(pattern, repl, key)
  return key


@pytest.fixture(scope="module")
def full_state() -> dict[str, np.ndarray]:
  """The state dict of a tiny full Janus model (LM, SigLIP, VQ, generation heads)."""
  vq = VQConfig.tiny()
  torch.manual_seed(0)
  config = JanusConfig(
      text_config=LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, num_key_value_heads=2, vocab_size=64),
      vision_config=JanusVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, image_size=16, patch_size=4,
                                      projection_dim=16),
      vq_config=JanusVQVAEConfig(
          embed_dim=vq.embed_dim, num_embeddings=vq.num_embeddings,
          latent_channels=vq.latent_channels, base_channels=vq.base_channels,
          channel_multiplier=list(vq.channel_multiplier), num_res_blocks=vq.num_res_blocks,
          projection_dim=16, image_token_embed_dim=16))
  model = JanusForConditionalGeneration(config)
  return {k: v.numpy() for k, v in model.state_dict().items()}


def vq_only(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {k: v for k, v in state.items() if re.fullmatch(TRANSFORMERS_VQ, k)}


def assert_bit_exact(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
  assert sorted(got) == sorted(want)
  for key, value in want.items():
    assert got[key].dtype == value.dtype and got[key].shape == value.shape, key
    assert got[key].tobytes() == value.tobytes(), key


def test_transformers_layout_round_trip(full_state):
  state = vq_only(full_state)
  assert len(state) > 100  # the real prefix of JanusForConditionalGeneration
  params = table.torch_to_flax(full_state, janus_vq.VQ_RULES_TRANSFORMERS,
                               ignore=[rf"(?!{TRANSFORMERS_VQ}).*"])
  model = VQModel(VQConfig.tiny())
  expected = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32))
  table.check_structure(params, expected["params"])
  assert_bit_exact(table.flax_to_torch(params, janus_vq.VQ_RULES_TRANSFORMERS), state)


def test_deepseek_layout_round_trip_matches_transformers_params(full_state):
  state = vq_only(full_state)
  deepseek = {deepseek_name(k): v for k, v in state.items()}
  deepseek["gen_vision_model.quantize.codebook_used"] = np.zeros(65536, np.float32)
  assert "gen_vision_model.encoder.conv_blocks.2.res.0.nin_shortcut.weight" in deepseek
  assert "gen_vision_model.decoder.mid.1.proj_out.weight" in deepseek
  params = table.torch_to_flax(deepseek, janus_vq.VQ_RULES_DEEPSEEK)
  reference = table.flatten(table.torch_to_flax(state, janus_vq.VQ_RULES_TRANSFORMERS))
  flat = table.flatten(params)
  assert sorted(flat) == sorted(reference)
  assert all(np.array_equal(flat[p], reference[p]) for p in flat)
  assert_bit_exact(table.flax_to_torch(params, janus_vq.VQ_RULES_DEEPSEEK), deepseek)


def test_wrong_layout_lists_the_keys(full_state):
  deepseek = {deepseek_name(k): v for k, v in vq_only(full_state).items()}
  with pytest.raises(ValueError) as info:
    table.torch_to_flax(deepseek, janus_vq.VQ_RULES_TRANSFORMERS)
  msg = str(info.value)
  assert "gen_vision_model.encoder.conv_blocks.0.res.0.conv1.weight" in msg
  assert "missing expected key 'model.vqmodel.encoder.conv_in.weight'" in msg


def test_standalone_prefix():
  rules = janus_vq.vq_rules(janus_vq.TRANSFORMERS.with_prefix(""))
  assert rules[0].torch == "encoder.conv_in.weight" and rules[0].flax == "encoder/conv_in/kernel"
