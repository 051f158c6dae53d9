"""Qwen2.5-VL vision tower: parity with transformers, exact padding, weight map round trip."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from gotr1_jax.convert.qwen_vision_rules import TRANSFORMERS, qwen_vision_rules
from gotr1_jax.convert.table import check_structure, flax_to_torch, torch_to_flax
from gotr1_jax.models.qwen_image_processing import pack_vision_batch, patch_metadata
from gotr1_jax.models.qwen_vision import QwenVisionConfig, QwenVisionTower

CFG = QwenVisionConfig.tiny()  # patch 4, windows of 2x2 merged tokens, layers 1 and 3 full
# Two images of different sizes whose merged grids (3x5, 5x2) leave partial windows, plus a
# two-frame entry (full attention is per frame in transformers).
GRIDS = np.array([[1, 6, 10], [1, 10, 4], [2, 4, 4]])


def _hf_config(cfg: QwenVisionConfig) -> Qwen2_5_VLVisionConfig:
  hf = Qwen2_5_VLVisionConfig(
      depth=cfg.depth, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
      num_heads=cfg.num_heads, patch_size=cfg.patch_size, window_size=cfg.window_size,
      fullatt_block_indexes=list(cfg.fullatt_block_indexes), out_hidden_size=cfg.out_hidden_size)
  hf._attn_implementation = "eager"
  return hf


@pytest.fixture(scope="module")
def reference():
  """transformers' tower with seeded random weights (norms near 1, every bias non-zero)."""
  torch.manual_seed(0)
  model = Qwen2_5_VisionTransformerPretrainedModel(_hf_config(CFG)).eval()
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      p.copy_(1 + 0.1 * noise if ("norm" in name or "ln_q" in name) else 0.2 * noise)
  state = {k: v.numpy() for k, v in model.state_dict().items()}
  patches = np.random.default_rng(0).normal(size=(int(GRIDS.prod(-1).sum()), CFG.patch_dim))
  return model, state, patches.astype(np.float32)


def _to_flax(state, prefix=""):
  return torch_to_flax(state, qwen_vision_rules(CFG, prefix), sizes={"layer": CFG.depth})


def _run(params, patches, positions, image_ids, window_ids):
  return np.asarray(QwenVisionTower(CFG).apply({"params": params}, patches, positions, image_ids, window_ids))


def test_config_from_hf():
  assert QwenVisionConfig.from_hf(_hf_config(CFG)) == CFG
  real = QwenVisionConfig.from_hf(Qwen2_5_VLVisionConfig(hidden_size=1280, out_hidden_size=2048))
  assert real == QwenVisionConfig()
  assert real.window_merged == 4 and real.patch_dim == 1176 and sum(real.full_attention_pattern) == 4


def test_parity_with_transformers(reference):
  model, state, patches = reference
  with torch.no_grad():
    want = model(torch.from_numpy(patches), grid_thw=torch.from_numpy(GRIDS)).pooler_output.numpy()
  params = _to_flax(state)
  positions, image_ids, window_ids = patch_metadata(GRIDS, CFG)
  got = _run(params, patches[None], positions[None], image_ids[None], window_ids[None])[0]
  assert got.shape == want.shape == (int(GRIDS.prod(-1).sum()) // 4, CFG.out_hidden_size)
  # Error relative to the output's scale (max |ref| is about 12): measured 9.5e-7 in fp32.
  rel = np.abs(got - want).max() / np.abs(want).max()
  assert rel <= 1e-5, rel


def test_padding_is_ignored(reference):
  _, state, patches = reference
  params = _to_flax(state)
  split = int(GRIDS[:2].prod(-1).sum())
  rows = [(patches[:split], GRIDS[:2]), (patches[split:], GRIDS[2:])]
  batch = pack_vision_batch(rows, CFG, buckets=(64, 128, 256))
  assert batch.patches.shape == (2, 128, CFG.patch_dim)
  apply = jax.jit(lambda p, *a: QwenVisionTower(CFG).apply({"params": p}, *a))
  padded = np.asarray(apply(params, *batch))

  # Exact: garbage in the padding slots leaves every output bit unchanged; padding groups are 0.
  rng = np.random.default_rng(1)
  pad = batch.image_ids < 0
  garbage = batch._replace(
      patches=np.where(pad[..., None], 100 * rng.normal(size=batch.patches.shape), batch.patches).astype(np.float32),
      positions=np.where(pad[..., None], rng.integers(0, 99, batch.positions.shape), batch.positions).astype(np.int32))
  np.testing.assert_array_equal(np.asarray(apply(params, *garbage)), padded)

  # Each row's real tokens equal the unpadded single-row run up to float order (XLA picks
  # different kernels per shape): measured max |diff| / max |out| = 1.2e-6 (10 float32 ulps).
  for i, (row_patches, row_grids) in enumerate(rows):
    positions, image_ids, window_ids = patch_metadata(row_grids, CFG)
    alone = np.asarray(apply(params, row_patches[None], positions[None], image_ids[None], window_ids[None]))[0]
    n = len(alone)
    assert np.abs(padded[i, :n] - alone).max() <= 3e-6 * np.abs(alone).max()
    assert not padded[i, n:].any()


def test_weight_map_round_trip(reference):
  _, state, patches = reference
  params = _to_flax(state)
  positions, image_ids, window_ids = patch_metadata(GRIDS, CFG)
  init = QwenVisionTower(CFG).init(jax.random.key(0), patches[None], positions[None], image_ids[None],
                                   window_ids[None])
  check_structure(params, init["params"])
  back = flax_to_torch(params, qwen_vision_rules(CFG))
  assert set(back) == set(state)
  for key, value in state.items():
    np.testing.assert_array_equal(back[key], value)
  # The same weights under transformers v5's full-model prefix convert identically.
  prefixed = _to_flax({TRANSFORMERS + k: v for k, v in state.items()}, TRANSFORMERS)
  for a, b in zip(jax.tree.leaves(prefixed), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="match no rule"):
    _to_flax({**state, "lm_head.weight": np.zeros(3)})
  with pytest.raises(ValueError, match="built for another model size"):
    torch_to_flax(state, qwen_vision_rules(QwenVisionConfig.tiny(num_heads=4, hidden_size=48)))


def test_logical_axes_and_input_checks():
  positions, image_ids, window_ids = patch_metadata(GRIDS[:1], CFG)
  patches = np.zeros((1, len(image_ids), CFG.patch_dim), np.float32)
  specs = nn.get_partition_spec(QwenVisionTower(CFG).init(
      jax.random.key(0), patches, positions[None], image_ids[None], window_ids[None]))["params"]
  assert specs["blocks"]["attn"]["qkv"]["kernel"] == jax.sharding.PartitionSpec(
      "layers", "embed", None, "heads", "head_dim")
  assert specs["blocks"]["attn"]["proj"]["kernel"] == jax.sharding.PartitionSpec(
      "layers", "heads", "head_dim", "embed")
  assert specs["blocks"]["mlp"]["down_proj"]["kernel"] == jax.sharding.PartitionSpec("layers", "mlp", "embed")
  assert specs["merger"]["mlp_2"]["kernel"] == jax.sharding.PartitionSpec("mlp", "embed")
  with pytest.raises(ValueError, match="patch_dim"):
    QwenVisionTower(CFG).init(jax.random.key(0), patches[..., :-1], positions[None], image_ids[None],
                              window_ids[None])


def test_abs_positions_put_place_into_values():
  """With identical patches everywhere, rotary angles change only which equal values a patch averages,
  so every merged token comes out the same: nothing downstream can read where a token sits. The
  optional learned row/column embeddings (not Qwen's; off by default) make them differ."""
  positions, image_ids, window_ids = patch_metadata(GRIDS[:1], CFG)  # 6 x 10 patches -> 3 x 5 tokens
  inputs = (np.full((1, len(image_ids), CFG.patch_dim), 0.5, np.float32), positions[None], image_ids[None],
            window_ids[None])

  def spread(cfg):
    tower = QwenVisionTower(cfg)
    params = nn.meta.unbox(tower.init(jax.random.key(0), *inputs)["params"])
    out = np.asarray(tower.apply({"params": params}, *inputs))[0]  # [15, out_hidden]
    return params, np.abs(out - out[:1]).max(-1) / np.abs(out).max()

  params, plain = spread(CFG)
  assert "abs_position_embed" not in params and plain.max() < 1e-5, plain.max()
  params, placed = spread(QwenVisionConfig.tiny(abs_position_grid=10))
  assert params["abs_position_embed"].shape == (2, 10, CFG.hidden_size)
  assert placed[1:].min() > 1e-2, placed  # every token differs from the first
  with pytest.raises(ValueError, match="abs_position_grid"):
    QwenVisionConfig.tiny(abs_position_grid=-1)
