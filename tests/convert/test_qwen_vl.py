"""convert/qwen_vl.py: exact round trips (v5 and older key names, tied and untied heads), files that
transformers reads back, tools/convert.py's interface with `verify`, config.json of the released
checkpoints, and clear errors for a wrong checkpoint."""
from __future__ import annotations

import dataclasses
import functools
import json
import re

import flax.linen as nn
import jax
import numpy as np
import pytest
import transformers

from configs.models import qwen2_5_vl_3b, qwen2_5_vl_7b
from gotr1_jax.convert import family_module
from gotr1_jax.convert import qwen_vl as convert
from gotr1_jax.convert.flax_io import VERIFY_TOLERANCE
from gotr1_jax.convert.table import flatten, load_safetensors, save_safetensors
from gotr1_jax.models.qwen_vl import init_qwen_vl, qwen_vl_config_from_dict
from tests.models.qwen_vl_reference import state_numpy, tiny_config, tiny_hf_qwen_vl

# transformers v5 names -> the older names of Qwen's released files (and transformers < 5).
TO_ORIGINAL = [(r"^model\.language_model\.", "model."), (r"^model\.visual\.", "visual.")]


def original_state(state: dict) -> dict:
  out = {}
  for key, value in state.items():
    for pattern, repl in TO_ORIGINAL:
      key = re.sub(pattern, repl, key)
    out[key] = value
  return out


def assert_trees_equal(a, b):
  a, b = flatten(a), flatten(b)
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def hf(request):
  cfg = tiny_config(tie_embeddings=request.param)
  ref = tiny_hf_qwen_vl(cfg, seed=3)
  return ref, cfg, state_numpy(ref)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  """A transformers checkpoint of the untied tiny model (with a tokenizer file) and its Flax conversion."""
  root = tmp_path_factory.mktemp("qwen_vl")
  tiny_hf_qwen_vl(tiny_config(), seed=1).save_pretrained(root / "hf")
  (root / "hf" / "tokenizer.json").write_text("{}")
  convert.to_flax(root / "hf", root / "flax")
  return root


def test_round_trip_is_exact(hf):
  _, cfg, state = hf
  params = convert.state_to_params(state, cfg)
  assert params["params"]["language_model"]["layers"]["attn"]["q_proj"]["kernel"].shape == (2, 64, 64)
  assert params["params"]["visual"]["blocks"]["attn"]["qkv"]["kernel"].shape == (4, 32, 3, 2, 16)
  back = convert.params_to_state(params, cfg)
  # A tied head is the embedding: transformers' save_pretrained does not write it, nor do we.
  want = {k: v for k, v in state.items() if not (cfg.lm.tie_embeddings and k == "lm_head.weight")}
  assert sorted(back) == sorted(want)
  for k in want:
    assert back[k].dtype == want[k].dtype and np.array_equal(back[k], want[k]), k


def test_older_names_load_the_same_params(hf):
  _, cfg, state = hf
  old = original_state(state)
  assert convert.detect_layout(old) is convert.ORIGINAL and convert.detect_layout(state) is convert.TRANSFORMERS
  assert_trees_equal(convert.state_to_params(old, cfg), convert.state_to_params(state, cfg))


def test_files_round_trip_and_transformers_reads_them(hf, tmp_path):
  ref, cfg, state = hf
  params = convert.state_to_params(state, cfg)
  convert.save_qwen_vl_torch(tmp_path, params, cfg, max_shard_bytes=100_000)  # sharded
  assert (tmp_path / "model.safetensors.index.json").exists()
  cfg2, params2 = convert.load_qwen_vl_torch(tmp_path)
  assert cfg2 == cfg
  assert_trees_equal(params2, params)
  reloaded = transformers.Qwen2_5_VLForConditionalGeneration.from_pretrained(tmp_path).eval()
  assert reloaded.config.tie_word_embeddings == cfg.lm.tie_embeddings
  got = state_numpy(reloaded)
  assert sorted(got) == sorted(state)
  assert all(np.array_equal(got[k], state[k]) for k in state)
  # bf16 on request: every array and the config's param_dtype.
  cfg16, params16 = convert.load_qwen_vl_torch(tmp_path, param_dtype="bfloat16")
  assert cfg16.lm.param_dtype == cfg16.vision.param_dtype == "bfloat16"
  assert {x.dtype.name for x in jax.tree.leaves(params16)} == {"bfloat16"}


def test_cli_interface_round_trip_and_verify(dirs):
  module = family_module("qwen_vl")
  assert module is convert and module.FAMILY == "qwen_vl" and module.LAYOUTS == ("transformers",)
  assert (dirs / "flax" / "tokenizer.json").exists()
  # transformers' save_pretrained writes the older names (save_original_format=True): the reference
  # is read through our table there, and with the file's own v5 names after to_torch.
  hf_file = load_safetensors(dirs / "hf")
  assert convert.detect_layout(hf_file) is convert.ORIGINAL
  errors = convert.verify(dirs / "flax", dirs / "hf")
  assert set(errors) == {"vision_tower", "logits"}
  assert max(errors.values()) < 1e-5 < VERIFY_TOLERANCE  # measured: vision_tower 6.7e-7, logits 3.1e-6
  convert.to_torch(dirs / "flax", dirs / "back")
  back = load_safetensors(dirs / "back")
  assert convert.detect_layout(back) is convert.TRANSFORMERS and (dirs / "back" / "tokenizer.json").exists()
  renamed = original_state(back)
  assert sorted(renamed) == sorted(hf_file) and all(np.array_equal(renamed[k], hf_file[k]) for k in hf_file)
  assert max(convert.verify(dirs / "flax", dirs / "back").values()) < 1e-5
  with pytest.raises(ValueError, match="already a gotr1_jax Flax directory"):
    convert.to_flax(dirs / "flax", dirs / "again")
  # load_qwen_vl reads either directory into the same params.
  (c1, p1), (c2, p2) = convert.load_qwen_vl(dirs / "flax"), convert.load_qwen_vl(dirs / "back")
  assert c1 == c2
  assert_trees_equal(p1, p2)


def test_verify_catches_a_wrong_weight(dirs, tmp_path):
  flat = load_safetensors(dirs / "flax")
  key = "params/visual/merger/mlp_2/kernel"
  save_safetensors({**flat, key: flat[key] * 1.5}, tmp_path / "bad")
  (tmp_path / "bad" / "config.json").write_text((dirs / "flax" / "config.json").read_text())
  errors = convert.verify(tmp_path / "bad", dirs / "hf")
  assert errors["vision_tower"] > 0.1 and errors["logits"] > 0.1  # measured 0.50 and 0.26


def test_wrong_checkpoint_lists_the_unmatched_keys(hf, tmp_path):
  _, cfg, state = hf
  gone = ("language_model.layers.1.mlp.up_proj", "visual.blocks.3.attn.qkv.bias")
  broken = {k: v for k, v in state.items() if not any(g in k for g in gone)}
  broken["model.language_model.mystery.weight"] = np.zeros(3, np.float32)
  with pytest.raises(ValueError) as err:
    convert.state_to_params(broken, cfg)
  for key in ("model.language_model.layers.1.mlp.up_proj.weight", "model.visual.blocks.3.attn.qkv.bias",
              "model.language_model.mystery.weight"):
    assert key in str(err.value)
  with pytest.raises(ValueError, match="built for another model size"):
    convert.state_to_params(state, dataclasses.replace(
        cfg, vision=dataclasses.replace(cfg.vision, hidden_size=48, num_heads=4)))
  with pytest.raises(ValueError, match="cannot tell the Qwen2.5-VL layout"):
    convert.detect_layout(["language_model.model.layers.0.mlp.up_proj.weight", "gen_head.weight"])  # Janus
  with pytest.raises(ValueError, match="model_type 'janus'"):
    convert.config_from_json({"model_type": "janus"})
  with pytest.raises(FileNotFoundError, match="config.json"):
    convert.load_qwen_vl_torch(tmp_path)


# The released config.json files (Qwen/Qwen2.5-VL-3B-Instruct and -7B-Instruct): transformers 4.x's
# flat layout, text fields at the top level and M-RoPE under rope_scaling.
def released_config(hidden, mlp, layers, heads, kv_heads, vocab, tie, window_layers) -> dict:
  return {
      "architectures": ["Qwen2_5_VLForConditionalGeneration"], "attention_dropout": 0.0, "bos_token_id": 151643,
      "eos_token_id": 151645, "vision_start_token_id": 151652, "vision_end_token_id": 151653,
      "vision_token_id": 151654, "image_token_id": 151655, "video_token_id": 151656, "hidden_act": "silu",
      "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": mlp,
      "max_position_embeddings": 128000,
      "max_window_layers": window_layers, "model_type": "qwen2_5_vl", "num_attention_heads": heads,
      "num_hidden_layers": layers, "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
      "sliding_window": 32768, "tie_word_embeddings": tie, "torch_dtype": "bfloat16",
      "transformers_version": "4.41.2", "use_cache": True, "use_sliding_window": False,
      "vision_config": {"depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420,
                        "num_heads": 16, "in_chans": 3, "out_hidden_size": hidden, "patch_size": 14,
                        "spatial_merge_size": 2, "spatial_patch_size": 14, "window_size": 112,
                        "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
                        "temporal_patch_size": 2},
      "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": vocab}


@pytest.mark.parametrize("released,ours,num_params", [
    (released_config(2048, 11008, 36, 16, 2, 151936, True, 70), qwen2_5_vl_3b, 3_754_622_976),
    (released_config(3584, 18944, 28, 28, 4, 152064, False, 28), qwen2_5_vl_7b, 8_292_166_656)])
def test_released_configs_match_our_model_configs(released, ours, num_params):
  parsed = convert.config_from_json(json.loads(json.dumps(released)))
  mine = qwen_vl_config_from_dict(ours.get_config())
  fp32 = dict(dtype="float32", param_dtype="float32")  # compute choices, not architecture
  assert dataclasses.replace(mine, lm=dataclasses.replace(mine.lm, **fp32),
                             vision=dataclasses.replace(mine.vision, **fp32)) == parsed
  # The parameter counts the model cards state (3.75B, 8.29B), from the shapes alone.
  shapes = jax.eval_shape(functools.partial(init_qwen_vl, parsed), jax.random.key(0))["params"]
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == num_params
  # Our config.json of the same architecture reads back to it.
  assert convert.config_from_json(convert.config_to_hf(parsed).to_dict()) == parsed


def test_a_place_table_stays_in_our_format(tmp_path):
  """vision.abs_position_grid (not Qwen's) round-trips through our Flax directory; transformers'
  layout has no tensor for it, so writing that layout stops with a message naming the way out."""
  cfg = tiny_config()
  cfg = dataclasses.replace(cfg, vision=dataclasses.replace(cfg.vision, abs_position_grid=6))
  params = jax.tree.map(np.asarray, nn.unbox(init_qwen_vl(cfg, jax.random.key(2))["params"]))
  convert.save_flax_qwen_vl(tmp_path / "flax", cfg, params)
  loaded_cfg, loaded = convert.load_flax_qwen_vl(tmp_path / "flax")
  assert loaded_cfg == cfg and loaded["params"]["visual"]["abs_position_embed"].shape == (2, 6, cfg.vision.hidden_size)
  assert_trees_equal(loaded["params"], params)
  with pytest.raises(ValueError, match="keep this model in our Flax format"):
    convert.params_to_state({"params": params}, cfg)
