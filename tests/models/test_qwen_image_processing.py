"""Qwen2.5-VL image inputs: processor output vs numpy, per-patch metadata vs transformers, buckets."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.vision_utils import get_vision_cu_seqlens, get_vision_position_ids, get_vision_window_index

from gotr1_jax.models.qwen_image_processing import (QwenImageConfig, image_processor, image_token_counts,
                                                    merged_valid, pack_vision_batch, patch_metadata,
                                                    patchify_images, preprocess_rows)
from gotr1_jax.models.qwen_vision import QwenVisionConfig

TINY = QwenVisionConfig.tiny()  # patch 4, merge 2 (factor 8), windows of 2x2 merged tokens
REAL = QwenVisionConfig()  # patch 14, merge 2, windows of 4x4 merged tokens


def _segments(cu: torch.Tensor) -> list[tuple[int, int]]:
  cu = cu.tolist()
  return [(a, b) for a, b in zip(cu[:-1], cu[1:]) if b > a]


@pytest.mark.parametrize("vision,grids", [
    (TINY, [[1, 6, 10], [1, 10, 4], [2, 4, 4], [1, 8, 8]]),  # partial windows, frames, exact tiling
    (REAL, [[1, 36, 50], [1, 16, 16], [2, 10, 6]]),
])
def test_patch_metadata_matches_transformers(vision, grids):
  grid_thw = torch.tensor(grids)
  positions, image_ids, window_ids = patch_metadata(np.array(grids), vision)
  m = vision.spatial_merge_size
  np.testing.assert_array_equal(positions, get_vision_position_ids(grid_thw, m).numpy())
  # Full attention: one id per transformers cu_seqlens segment, distinct between segments.
  full = _segments(get_vision_cu_seqlens(grid_thw))
  assert [len(set(image_ids[a:b])) for a, b in full] == [1] * len(full)
  assert len({image_ids[a] for a, _ in full}) == len(full)
  # Windows: reorder our ids with transformers' window_index (per merge group); each
  # cu_window_seqlens segment must then carry one id, distinct between segments.
  window_index, cu_window = get_vision_window_index(grid_thw, m, vision.window_size, vision.patch_size)
  unit = vision.merge_unit
  permuted = window_ids.reshape(-1, unit)[window_index.numpy()].reshape(-1)
  windows = _segments(cu_window)
  assert sum(b - a for a, b in windows) == len(window_ids)
  assert [len(set(permuted[a:b])) for a, b in windows] == [1] * len(windows)
  assert len({permuted[a] for a, _ in windows}) == len(windows)


def _reference_patches(image: np.ndarray, vision: QwenVisionConfig) -> np.ndarray:
  """Normalise and cut [H, W, C] uint8 into (C, T, P, P) patches, merge group by merge group."""
  x = (image.astype(np.float64) / 255 - np.array(OPENAI_CLIP_MEAN)) / np.array(OPENAI_CLIP_STD)
  p, m, t = vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
  out = []
  for bi in range(image.shape[0] // (p * m)):
    for bj in range(image.shape[1] // (p * m)):
      for ri in range(m):
        for rj in range(m):
          r, c = (bi * m + ri) * p, (bj * m + rj) * p
          patch = x[r:r + p, c:c + p].transpose(2, 0, 1)  # [C, P, P]
          out.append(np.stack([patch] * t, axis=1).reshape(-1))  # the frame repeated T times
  return np.array(out)


def test_patchify_normalises_and_orders_like_the_tower_expects():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)  # already a multiple of 8
  processor = image_processor(QwenImageConfig(min_pixels=8 * 8, max_pixels=64 * 64), TINY)
  patches, grid_thw = patchify_images([Image.fromarray(image)], processor)
  np.testing.assert_array_equal(grid_thw, [[1, 6, 10]])
  np.testing.assert_allclose(patches, _reference_patches(image, TINY), atol=1e-5)


def test_resize_to_multiples_of_28_within_pixel_limits():
  cfg = QwenImageConfig(min_pixels=56 * 56, max_pixels=28 * 28 * 16)
  processor = image_processor(cfg, REAL)
  # 100x60 (H x W): round to 112x56 -> 8x4 patches. 400x400: 392^2 > max -> 112x112 -> 8x8.
  # 20x30: 28x28 < min -> scaled up by sqrt(3136/600) then ceil -> 56x84 -> 4x6.
  images = [Image.new("RGB", (60, 100), (10, 20, 30)), Image.new("RGB", (400, 400)), Image.new("RGB", (30, 20))]
  grids = np.concatenate([patchify_images([im], processor)[1] for im in images])
  np.testing.assert_array_equal(grids, [[1, 8, 4], [1, 8, 8], [1, 4, 6]])
  assert all(cfg.min_pixels <= h * w * 14 * 14 <= cfg.max_pixels for _, h, w in grids)
  np.testing.assert_array_equal(image_token_counts(grids, REAL), [8, 16, 6])


def test_pack_vision_batch_pads_to_one_bucket():
  rng = np.random.default_rng(0)
  grids = [np.array([[1, 6, 10], [1, 10, 4]]), np.array([[1, 4, 4]]), np.zeros((0, 3), np.int64)]
  rows = [(rng.normal(size=(int(g.prod(-1).sum()), TINY.patch_dim)).astype(np.float32), g) for g in grids]
  batch = pack_vision_batch(rows, TINY, buckets=(64, 128, 256))
  assert batch.patches.shape == (3, 128, TINY.patch_dim) and batch.window_ids.shape == (3, 128)
  for i, (patches, g) in enumerate(rows):
    n = len(patches)
    positions, image_ids, window_ids = patch_metadata(g, TINY) if n else (None, [], [])
    np.testing.assert_array_equal(batch.patches[i, :n], patches)
    np.testing.assert_array_equal(batch.image_ids[i, :n], image_ids)
    np.testing.assert_array_equal(batch.window_ids[i, :n], window_ids)
    assert not batch.patches[i, n:].any() and (batch.image_ids[i, n:] == -1).all()
    assert (batch.window_ids[i, n:] == -1).all()
  np.testing.assert_array_equal(merged_valid(batch.image_ids, TINY).sum(-1), [25, 4, 0])
  with pytest.raises(ValueError, match="largest bucket"):
    pack_vision_batch(rows, TINY, buckets=(64,))
  with pytest.raises(ValueError, match="multiples of merge_unit"):
    pack_vision_batch(rows, TINY, buckets=(130,))
  with pytest.raises(ValueError, match="describes"):
    pack_vision_batch([(rows[0][0][:-4], grids[0])], TINY, buckets=(128,))


def test_preprocess_rows_end_to_end():
  cfg = QwenImageConfig(min_pixels=8 * 8, max_pixels=64 * 64, patch_buckets=(32, 128))
  rows = [[Image.new("RGB", (40, 24), (255, 0, 0)), Image.new("RGB", (16, 32))], []]
  batch, grids = preprocess_rows(rows, cfg, TINY)
  np.testing.assert_array_equal(grids[0], [[1, 6, 10], [1, 8, 4]])
  assert grids[1].shape == (0, 3) and batch.patches.shape == (2, 128, TINY.patch_dim)
  red = (np.array([1.0, 0, 0]) - OPENAI_CLIP_MEAN) / OPENAI_CLIP_STD  # first image, channel-major
  np.testing.assert_allclose(batch.patches[0, 0].reshape(3, -1), np.repeat(red[:, None], 32, 1), atol=1e-5)
  np.testing.assert_array_equal(merged_valid(batch.image_ids, TINY).sum(-1), [23, 0])
