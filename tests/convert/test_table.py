"""convert/table.py: bit-exact round trips through a synthetic table (with scan-stacked layers),
one error listing every problem, and safetensors I/O (sharded, bf16, pickle refused)."""
from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from gotr1_jax.convert import table
from gotr1_jax.convert.table import CONV2D, IDENTITY, LINEAR, Rule, reshape

LAYERS, EXPERTS, EMBED, HEADS, HEAD_DIM = 3, 2, 6, 2, 3
RULES = (
    Rule("model.embed.weight", "embed/embedding", IDENTITY),
    # Stacked over {layer}: per-layer [out, in] -> one [L, in, heads, head_dim] scan array.
    Rule("model.layers.{layer}.q.weight", "layers/q/kernel",
         LINEAR.then(reshape((EMBED, EMBED), (EMBED, HEADS, HEAD_DIM)))),
    Rule("model.layers.{layer}.norm.weight", "layers/norm/scale", IDENTITY),
    # Two stacked placeholders -> [L, E, in, out].
    Rule("model.layers.{layer}.experts.{expert}.w", "layers/experts/kernel", LINEAR),
    # A placeholder in both templates indexes separate params; conv OIHW -> HWIO.
    Rule("model.convs.{i}.weight", "conv_{i}/kernel", CONV2D),
    Rule("model.buffer", None, fill=lambda: np.zeros(4, np.float32)),
)


def synthetic_state(seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  state = {"model.embed.weight": rng.standard_normal((10, EMBED)).astype(np.float32),
           "model.buffer": np.zeros(4, np.float32)}
  for layer in range(LAYERS):
    state[f"model.layers.{layer}.q.weight"] = rng.standard_normal((EMBED, EMBED)).astype(np.float32)
    state[f"model.layers.{layer}.norm.weight"] = rng.standard_normal(EMBED).astype(ml_dtypes.bfloat16)
    for e in range(EXPERTS):
      state[f"model.layers.{layer}.experts.{e}.w"] = rng.standard_normal((4, EMBED)).astype(np.float32)
  for i in range(2):
    state[f"model.convs.{i}.weight"] = rng.standard_normal((5, 3, 3, 2)).astype(np.float32)
  return state


def test_round_trip_is_bit_exact_and_layouts_are_right():
  state = synthetic_state()
  params = table.torch_to_flax(state, RULES)
  q = params["layers"]["q"]["kernel"]
  assert q.shape == (LAYERS, EMBED, HEADS, HEAD_DIM)
  np.testing.assert_array_equal(q[1].reshape(EMBED, EMBED), state["model.layers.1.q.weight"].T)
  experts = params["layers"]["experts"]["kernel"]
  assert experts.shape == (LAYERS, EXPERTS, EMBED, 4)
  np.testing.assert_array_equal(experts[2, 1], state["model.layers.2.experts.1.w"].T)
  np.testing.assert_array_equal(params["conv_1"]["kernel"],
                                np.transpose(state["model.convs.1.weight"], (2, 3, 1, 0)))
  assert params["layers"]["norm"]["scale"].dtype == ml_dtypes.bfloat16
  assert "buffer" not in str(table.flatten(params))
  back = table.flax_to_torch(params, RULES)
  assert sorted(back) == sorted(state)
  for key, value in state.items():
    assert back[key].dtype == value.dtype and back[key].shape == value.shape, key
    assert back[key].tobytes() == value.tobytes(), key


def test_torch_to_flax_lists_every_problem_in_one_error():
  state = synthetic_state()
  state["model.unknown.a"] = np.zeros(1)
  state["model.layers.0.extra"] = np.zeros(1)
  del state["model.embed.weight"]
  del state["model.layers.1.q.weight"]
  with pytest.raises(ValueError) as info:
    table.torch_to_flax(state, RULES)
  msg = str(info.value)
  assert "2 torch keys match no rule" in msg
  assert "model.unknown.a" in msg and "model.layers.0.extra" in msg
  assert "missing expected key 'model.embed.weight'" in msg
  assert "missing expected key 'model.layers.1.q.weight'" in msg


def test_sizes_and_ignore():
  state = synthetic_state()
  with pytest.raises(ValueError, match=r"missing expected key 'model\.layers\.3\.q\.weight'"):
    table.torch_to_flax(state, RULES, sizes={"layer": 4})
  state["vision.tower.w"] = np.zeros(1)
  params = table.torch_to_flax(state, RULES, ignore=[r"vision\..*"])
  assert params["layers"]["norm"]["scale"].shape == (LAYERS, EMBED)


def test_flax_to_torch_lists_unmatched_and_missing_params():
  params = table.torch_to_flax(synthetic_state(), RULES)
  params["stray"] = {"kernel": np.zeros(2)}
  del params["embed"]
  with pytest.raises(ValueError) as info:
    table.flax_to_torch(params, RULES)
  msg = str(info.value)
  assert "stray/kernel" in msg and "missing expected Flax param 'embed/embedding'" in msg


def test_ambiguous_and_invalid_rules_are_rejected():
  rules = RULES + (Rule("model.embed.{i}", "other_{i}"), Rule("model.embed.weight", "dup"))
  with pytest.raises(ValueError, match="matches several rules"):
    table.torch_to_flax(synthetic_state(), rules)
  with pytest.raises(ValueError, match="not in the torch template"):
    Rule("a.weight", "layer_{i}/w")


def test_check_structure_reports_all_differences():
  params = {"a": {"w": np.zeros((2, 3))}, "b": np.zeros(1)}
  expected = {"a": {"w": np.zeros((3, 2))}, "c": np.zeros(1)}
  with pytest.raises(ValueError) as info:
    table.check_structure(params, expected)
  msg = str(info.value)
  assert "missing param 'c'" in msg and "unexpected param 'b'" in msg and "(3, 2)" in msg


def test_safetensors_sharded_round_trip(tmp_path):
  state = synthetic_state()
  files = table.save_safetensors(state, tmp_path, max_shard_bytes=200)
  index = json.loads((tmp_path / table.INDEX_NAME).read_text())
  assert len(files) > 2 and set(index["weight_map"]) == set(state)
  assert index["metadata"]["total_size"] == sum(v.nbytes for v in state.values())
  loaded = table.load_safetensors(tmp_path)
  assert sorted(loaded) == sorted(state)
  for key, value in state.items():
    assert loaded[key].dtype == value.dtype and loaded[key].tobytes() == value.tobytes(), key
  single = tmp_path / "single"
  assert table.save_safetensors(state, single) == [single / table.SINGLE_NAME]
  assert sorted(table.load_safetensors(single / table.SINGLE_NAME)) == sorted(state)


def test_pickle_checkpoints_are_refused(tmp_path):
  (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
  with pytest.raises(ValueError, match="pickle.*safetensors"):
    table.load_safetensors(tmp_path)
  with pytest.raises(ValueError, match="safetensors"):
    table.load_safetensors(tmp_path / "pytorch_model.bin")
  with pytest.raises(FileNotFoundError):
    table.load_safetensors(tmp_path / "missing.safetensors")


def test_shape_errors_are_collected_with_the_rest():
  state = synthetic_state()
  state["model.layers.2.q.weight"] = np.zeros((EMBED, EMBED + 1), np.float32)
  state["model.other"] = np.zeros(1)
  with pytest.raises(ValueError) as info:
    table.torch_to_flax(state, RULES)
  msg = str(info.value)
  assert "model.layers.2.q.weight: reshape rule expects" in msg and "model.other" in msg


def test_nest_moves_flax_paths_under_a_prefix():
  state = synthetic_state()
  nested = table.torch_to_flax(state, table.nest(RULES, "part"))
  assert nested["part"]["layers"]["q"]["kernel"].shape == (LAYERS, EMBED, HEADS, HEAD_DIM)
  back = table.flax_to_torch(nested, table.nest(RULES, "part"))
  assert all(back[k].tobytes() == v.tobytes() for k, v in state.items())
