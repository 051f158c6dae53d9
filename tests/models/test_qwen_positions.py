"""M-RoPE position ids: parity with transformers' Qwen2_5_VLModel.get_rope_index and decoding."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLModel

from gotr1_jax.models.qwen_positions import MRopeConfig, continuation_position_ids, get_rope_index

IMG, VID, VS, VE, PAD = 5, 6, 3, 4, 0  # image/video placeholder, vision start/end, pad


@pytest.fixture(scope="module")
def hf_model():
  config = Qwen2_5_VLConfig(
      text_config=dict(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=1, rope_parameters=dict(
                           rope_type="default", rope_theta=10000.0, mrope_section=[2, 1, 1])),
      vision_config=dict(depth=1, hidden_size=16, intermediate_size=16, num_heads=2, out_hidden_size=16,
                         tokens_per_second=2),
      image_token_id=IMG, video_token_id=VID, vision_start_token_id=VS, vision_end_token_id=VE)
  return Qwen2_5_VLModel(config).eval()


def _image(grid, merge=2):
  return [VS] + [IMG] * (int(np.prod(grid)) // merge ** 2) + [VE]


def _video(grid, merge=2):
  return [VS] + [VID] * (int(np.prod(grid)) // merge ** 2) + [VE]


def _left_pad(rows):
  length = max(len(r) for r in rows)
  ids = np.array([[PAD] * (length - len(r)) + r for r in rows])
  mask = np.array([[0] * (length - len(r)) + [1] * len(r) for r in rows])
  return ids, mask


def _hf_rope_index(model, ids, mask, image_grids, video_grids=None, seconds=None):
  ids_t = torch.from_numpy(ids)
  types = (ids_t == IMG).int() + 2 * (ids_t == VID).int()
  as_t = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
  pos, deltas = model.get_rope_index(ids_t, mm_token_type_ids=types, image_grid_thw=as_t(image_grids),
                                     video_grid_thw=as_t(video_grids), second_per_grid_ts=as_t(seconds),
                                     attention_mask=None if mask is None else torch.from_numpy(mask))
  return pos.numpy(), deltas.numpy()


def test_config_from_hf(hf_model):
  assert MRopeConfig.from_hf(hf_model.config) == MRopeConfig(IMG, VID, 2, 2)


def test_two_images_left_padded_matches_transformers(hf_model):
  cfg = MRopeConfig.from_hf(hf_model.config)
  a, b, c = [1, 4, 6], [1, 6, 4], [1, 8, 4]  # merged 2x3, 3x2, 4x2
  rows = [
      [7, 8] + _image(a) + [9, 10, 11] + _image(b) + [12],  # two images of different sizes
      [7] + _image(c) + [13, 14],
      [7, 8, 9, 10],  # text only
      _image(b) + _image(a),  # images back to back, no text around them
  ]
  ids, mask = _left_pad(rows)
  image_grids = [a, b, c, b, a]
  got_pos, got_delta = get_rope_index(ids, cfg, image_grid_thw=np.array(image_grids), attention_mask=mask)
  want_pos, want_delta = _hf_rope_index(hf_model, ids, mask, image_grids)
  assert got_pos.shape == (3, 4, ids.shape[1]) and got_pos.dtype == np.int32
  np.testing.assert_array_equal(got_pos, want_pos)
  np.testing.assert_array_equal(got_delta, want_delta)
  # Hand check of row 0: text 0,1; <vs> 2; image at 3 (2x3 grid); <ve> resumes at 3 + max(2,3) = 6.
  row = got_pos[:, 0, mask[0] == 1]
  np.testing.assert_array_equal(row[:, :4].T, [[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
  np.testing.assert_array_equal(row[:, 3:9].T, [[3, 3 + i, 3 + j] for i in range(2) for j in range(3)])
  assert row[0, 9] == 6 and (got_pos[:, 0, mask[0] == 0] == 0).all()


def test_unpadded_and_video_match_transformers(hf_model):
  cfg = MRopeConfig.from_hf(hf_model.config)
  v, a = [3, 4, 4], [1, 4, 6]  # three temporal steps; at 1.3 s each and 2 ids/s: t = 0, 2, 5
  rows = [[7] + _video(v) + [8] + _image(a) + [9], [7, 8] + _image(a) + _video(v) + [9]]
  ids = np.array(rows)
  got = get_rope_index(ids, cfg, image_grid_thw=np.array([a, a]), video_grid_thw=np.array([v, v]),
                       second_per_grid_ts=np.array([1.3, 0.5]))
  want = _hf_rope_index(hf_model, ids, None, [a, a], [v, v], [1.3, 0.5])
  np.testing.assert_array_equal(got[0], want[0])
  np.testing.assert_array_equal(got[1], want[1])
  assert sorted(set(got[0][0, 0, 2:14].tolist())) == [2, 4, 7]


def test_continuation_matches_transformers_decoding(hf_model):
  cfg = MRopeConfig.from_hf(hf_model.config)
  a = [1, 4, 6]
  ids, mask = _left_pad([[7] + _image(a) + [8], [7, 8, 9] + _image(a) + [10, 11, 12, 13]])
  _, deltas = get_rope_index(ids, cfg, image_grid_thw=np.array([a, a]), attention_mask=mask)
  full_mask = np.concatenate([mask, np.ones((2, 3), mask.dtype)], axis=1)  # three generated tokens

  class Cache:
    def get_seq_length(self):
      return ids.shape[1] + 2

  hf_model.rope_deltas = torch.from_numpy(deltas).long()
  want = hf_model.compute_3d_position_ids(
      input_ids=None, image_grid_thw=None, video_grid_thw=None, inputs_embeds=torch.zeros(2, 1, 16),
      attention_mask=torch.from_numpy(full_mask), past_key_values=Cache()).numpy()
  got = continuation_position_ids(full_mask, deltas)
  np.testing.assert_array_equal(got, want)
  # The first generated token follows the prompt's largest id on every axis.
  prompt_pos, _ = get_rope_index(ids, cfg, image_grid_thw=np.array([a, a]), attention_mask=mask)
  np.testing.assert_array_equal(got[:, :, ids.shape[1]], prompt_pos.max(-1) + 1)


def test_mismatched_placeholders_raise(hf_model):
  cfg = MRopeConfig.from_hf(hf_model.config)
  ids = np.array([[7] + _image([1, 4, 6]) + [8]])
  with pytest.raises(ValueError, match="placeholder tokens"):
    get_rope_index(ids, cfg, image_grid_thw=np.array([[1, 4, 4]]))
  with pytest.raises(ValueError, match="image_grid_thw entries"):
    get_rope_index(ids, cfg, image_grid_thw=None)
