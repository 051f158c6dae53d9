"""convert/janus.py: exact round trips in both layouts, files that transformers reads back, config.json
of the real Janus-Pro checkpoints, and clear errors for partial checkpoints."""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import transformers

from configs.models import janus_pro_1b, janus_pro_7b
from gotr1_jax.convert import janus as convert
from gotr1_jax.convert.table import flatten
from gotr1_jax.models.janus import janus_config_from_dict
from tests.models.test_janus import state_numpy, tiny_hf_janus

# DeepSeek's names from transformers' names: the inverse of transformers'
# convert_janus_weights_to_hf.py MAPPINGS, written out independently of our rule table.
TO_DEEPSEEK = [
    (r"^model\.language_model\.", "language_model.model."),
    (r"^lm_head\.", "language_model.lm_head."),
    (r"^model\.generation_embeddings\.", "gen_embed."),
    (r"^model\.generation_aligner\.fc1\.", "gen_aligner.layers.0."),
    (r"^model\.generation_aligner\.hidden_layers\.0\.", "gen_aligner.layers.2."),
    (r"^model\.generation_head\.proj_out\.", "gen_head.output_mlp_projector."),
    (r"^model\.generation_head\.", "gen_head."),
    (r"^model\.aligner\.fc1\.", "aligner.layers.0."),
    (r"^model\.aligner\.hidden_layers\.0\.", "aligner.layers.2."),
    (r"^model\.vision_model\.embeddings\.patch_embedding\.", "vision_model.vision_tower.patch_embed.proj."),
    (r"^model\.vision_model\.embeddings\.position_embedding\.weight", "vision_model.vision_tower.pos_embed"),
    (r"^model\.vision_model\.encoder\.layers\.", "vision_model.vision_tower.blocks."),
    (r"^model\.vision_model\.post_layernorm\.", "vision_model.vision_tower.norm."),
    (r"\.layer_norm(\d)\.", r".norm\1."),
    (r"\.self_attn\.projection_layer\.", ".attn.proj."),
    (r"^(vision_model.*)\.self_attn\.", r"\1.attn."),
    (r"^model\.vqmodel\.", "gen_vision_model."),
    (r"\.encoder\.down\.", ".encoder.conv_blocks."),
    (r"\.decoder\.up\.", ".decoder.conv_blocks."),
    (r"\.mid\.block_1\.", ".mid.0."), (r"\.mid\.attn_1\.", ".mid.1."), (r"\.mid\.block_2\.", ".mid.2."),
    (r"^(gen_vision_model.*)\.block\.", r"\1.res."),
]
ATTN_POOL = {"vision_model.vision_tower.attn_pool.latent": np.ones((1, 1, 24), np.float32),
             "vision_model.vision_tower.attn_pool.kv.weight": np.ones((48, 24), np.float32)}


def deepseek_state(hf_state: dict) -> dict:
  """A DeepSeek-layout state dict: renamed keys, fused qkv, [1, N, D] pos_embed, plus the keys
  Janus never runs (attention pool) and the VQ usage counter."""
  out = {}
  for key, value in hf_state.items():
    for pattern, repl in TO_DEEPSEEK:
      key = re.sub(pattern, repl, key)
    out[key] = value[None] if key.endswith("pos_embed") else value
  for key in [k for k in out if re.match(r"vision_model\..*attn\.q_proj\.", k)]:
    parts = [out.pop(key.replace("q_proj", n)) for n in ("q_proj", "k_proj", "v_proj")]
    out[key.replace("q_proj", "qkv")] = np.concatenate(parts)
  out["gen_vision_model.quantize.codebook_used"] = np.zeros(65536, np.float32)
  return {**out, **ATTN_POOL}


@pytest.fixture(scope="module")
def hf():
  ref = tiny_hf_janus(seed=7)
  return ref, convert.config_from_json(ref.config.to_dict()), state_numpy(ref)


def assert_states_equal(ours: dict, theirs: dict):
  assert sorted(ours) == sorted(theirs)
  for k in theirs:
    assert ours[k].shape == theirs[k].shape and np.array_equal(ours[k], theirs[k]), k


def test_transformers_round_trip_is_exact(hf):
  _, cfg, state = hf
  params, vq_params = convert.state_to_params(state, cfg, convert.TRANSFORMERS)
  assert params["params"]["language_model"]["layers"]["attn"]["q_proj"]["kernel"].shape == (2, 32, 32)
  assert_states_equal(convert.params_to_state(params, vq_params, cfg, convert.TRANSFORMERS), state)


def test_deepseek_round_trip_is_exact_and_agrees_with_transformers(hf):
  _, cfg, state = hf
  ds = deepseek_state(state)
  assert convert.detect_layout(ds) is convert.DEEPSEEK
  params, vq_params = convert.state_to_params(ds, cfg, convert.DEEPSEEK)
  back = convert.params_to_state(params, vq_params, cfg, convert.DEEPSEEK)
  assert_states_equal(back, {k: v for k, v in ds.items() if k not in ATTN_POOL})  # attn_pool is never run
  hf_params, hf_vq = convert.state_to_params(state, cfg, convert.TRANSFORMERS)
  for ours, theirs in ((params, hf_params), (vq_params, hf_vq)):
    a, b = flatten(ours), flatten(theirs)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("layout", ["transformers", "deepseek"])
def test_files_round_trip(hf, tmp_path, layout):
  ref, cfg, state = hf
  params, vq_params = convert.state_to_params(state, cfg, convert.TRANSFORMERS)
  convert.save_janus(tmp_path, params, vq_params, cfg, layout, max_shard_bytes=200_000)  # sharded
  assert (tmp_path / "model.safetensors.index.json").exists()
  cfg2, params2, vq2 = convert.load_janus(tmp_path)
  assert cfg2 == cfg
  for ours, theirs in ((params2, params), (vq2, vq_params)):
    a, b = flatten(ours), flatten(theirs)
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
  if layout == "transformers":  # transformers itself reads what we wrote
    reloaded = transformers.JanusForConditionalGeneration.from_pretrained(tmp_path).eval()
    assert_states_equal(state_numpy(reloaded), state)


def test_partial_checkpoint_lists_the_unmatched_keys(hf, tmp_path):
  _, cfg, state = hf
  gone = ("layers.1.mlp.up_proj", "generation_head.proj_out")
  broken = {k: v for k, v in state.items() if not any(g in k for g in gone)}
  broken["model.mystery.weight"] = np.zeros(3, np.float32)
  with pytest.raises(ValueError) as err:
    convert.state_to_params(broken, cfg, convert.TRANSFORMERS)
  message = str(err.value)
  for key in ("model.language_model.layers.1.mlp.up_proj.weight", "model.generation_head.proj_out.weight",
              "model.generation_head.proj_out.bias", "model.mystery.weight"):
    assert key in message
  with pytest.raises(ValueError, match="cannot tell the Janus layout"):
    convert.detect_layout(["foo.weight"])
  with pytest.raises(FileNotFoundError, match="config.json"):
    convert.load_janus(tmp_path)


def test_without_vision_the_understanding_keys_are_skipped(hf):
  _, cfg, state = hf
  params, _ = convert.state_to_params(state, dataclasses.replace(cfg, vision=None), convert.TRANSFORMERS)
  assert "vision_model" not in params["params"] and "aligner" not in params["params"]


# DeepSeek's published config.json files (deepseek-ai/Janus-Pro-7B and -1B), verbatim fields.
def deepseek_config(language_config: dict, n_embed: int) -> dict:
  mlp = lambda kind, input_dim: dict(cls="MlpProjector", model_type=kind, params=dict(
      depth=2, input_dim=input_dim, n_embed=n_embed, projector_type="mlp_gelu"))
  return {
      "aligner_config": mlp("aligner", 1024), "gen_aligner_config": mlp("gen_aligner", 8),
      "gen_head_config": {"cls": "vision_head", "model_type": "gen_head", "params": {
          "image_token_embed": n_embed, "image_token_size": 16384, "n_embed": n_embed}},
      "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision",
                            "params": {"image_token_size": 16384, "n_embed": 8}},
      "language_config": language_config, "model_type": "multi_modality", "torch_dtype": "bfloat16",
      "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision",
                        "params": {"image_size": 384, "model_name": "siglip_large_patch16_384",
                                   "select_feature": "same", "select_layer": -1}}}


@pytest.mark.parametrize("language_config,n_embed,ours", [
    ({"max_position_embeddings": 16384, "model_type": "llama", "num_hidden_layers": 30,
      "torch_dtype": "bfloat16", "vocab_size": 102400}, 4096, janus_pro_7b),
    ({"hidden_size": 2048, "intermediate_size": 5632, "max_position_embeddings": 16384, "model_type": "llama",
      "num_attention_heads": 16, "num_hidden_layers": 24, "num_key_value_heads": 16, "torch_dtype": "bfloat16",
      "vocab_size": 102400}, 2048, janus_pro_1b)])
def test_real_deepseek_configs_match_our_model_configs(language_config, n_embed, ours):
  parsed = convert.config_from_json(json.loads(json.dumps(deepseek_config(language_config, n_embed))))
  mine = janus_config_from_dict(ours.get_config())
  strip = lambda c: dataclasses.replace(c, dtype="float32", param_dtype="float32")  # compute choices
  assert strip(mine.lm) == parsed.lm and strip(mine.vision) == parsed.vision and strip(mine.vq) == parsed.vq
  assert (mine.gen_aligner_depth, mine.resolved_gen_head_dim, mine.aligner_depth) == (
      parsed.gen_aligner_depth, parsed.resolved_gen_head_dim, parsed.aligner_depth)
  assert parsed.num_image_tokens == 576 and parsed.image_vocab_size == 16384


@pytest.mark.parametrize("layout", ["transformers", "deepseek"])
def test_config_json_round_trip(hf, layout):
  _, cfg, _ = hf
  assert convert.config_from_json(convert.config_to_json(cfg, convert.layout_named(layout))) == cfg
  with pytest.raises(ValueError, match="layout"):
    convert.layout_named("safetensors")
