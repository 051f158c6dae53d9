"""Host-side image inputs for the Qwen2.5-VL vision tower: pixels -> patches -> padded buckets.

Owns resizing / normalising / patchifying (transformers' Qwen2-VL image processor, PIL backend),
the per-patch metadata the tower needs (2-D rotary positions, image and window segment ids; the
numpy counterpart of transformers' `vision_utils`), and padding a batch to a fixed patch bucket so
the jitted tower compiles once per bucket. It runs no model and does not build M-RoPE ids
(qwen_positions.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Sequence

import numpy as np
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from gotr1_jax.models.qwen_vision import QwenVisionConfig
from gotr1_jax.sampling.buckets import bucket_length


@dataclasses.dataclass(frozen=True)
class QwenImageConfig:
  """Preprocessing knobs. Patch/merge sizes come from the QwenVisionConfig they must match."""

  min_pixels: int = 56 * 56  # resized images keep h * w within [min_pixels, max_pixels]
  max_pixels: int = 28 * 28 * 1280
  image_mean: tuple[float, ...] = tuple(OPENAI_CLIP_MEAN)
  image_std: tuple[float, ...] = tuple(OPENAI_CLIP_STD)
  # Patches per row after padding; each a multiple of spatial_merge_size**2.
  patch_buckets: tuple[int, ...] = (1024, 4096, 16384)


class VisionBatch(NamedTuple):
  """The tower's inputs for B rows (examples), each padded to the same bucket of N patches."""

  patches: np.ndarray  # [B, N, patch_dim] float32, zeros at padding
  positions: np.ndarray  # [B, N, 2] int32, (row, column) of each patch in its image
  image_ids: np.ndarray  # [B, N] int32, one id per image frame in the row; -1 = padding
  window_ids: np.ndarray  # [B, N] int32, one id per attention window in the row; -1 = padding


def image_processor(image_cfg: QwenImageConfig, vision: QwenVisionConfig) -> Qwen2VLImageProcessorPil:
  """transformers' Qwen2-VL processor (PIL backend) configured to match the tower."""
  return Qwen2VLImageProcessorPil(
      min_pixels=image_cfg.min_pixels, max_pixels=image_cfg.max_pixels,
      image_mean=list(image_cfg.image_mean), image_std=list(image_cfg.image_std),
      patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
      merge_size=vision.spatial_merge_size)


def patchify_images(images: Sequence[Any], processor: Qwen2VLImageProcessorPil) -> tuple[np.ndarray, np.ndarray]:
  """Resizes to multiples of patch*merge, normalises and patchifies a list of images.

  Returns (patches [sum of t*h*w, patch_dim] float32 in processor order, grid_thw [n, 3] int64).
  Each image's patches are laid out block-major over its merge groups (what the tower expects).
  """
  if not images:
    raise ValueError("patchify_images needs at least one image; build text-only rows without it.")
  out = processor(images=list(images), return_tensors="np")
  return np.asarray(out["pixel_values"], np.float32), np.asarray(out["image_grid_thw"], np.int64)


def image_token_counts(grid_thw: np.ndarray, vision: QwenVisionConfig) -> np.ndarray:
  """LM placeholder tokens per image: t * h * w / merge_unit. grid_thw: [n, 3] -> [n]."""
  grid_thw = np.asarray(grid_thw, np.int64).reshape(-1, 3)
  return grid_thw.prod(-1) // vision.merge_unit


def patch_metadata(grid_thw: np.ndarray, vision: QwenVisionConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-patch (positions [N, 2], image_ids [N], window_ids [N]) for the images of one row.

  Patches are in processor order: image by image, frame by frame, block-major over merge groups.
  `positions` is transformers' `get_vision_position_ids`; `image_ids` numbers the frames (the
  segments of `get_vision_cu_seqlens`); `window_ids` numbers the windows of
  `get_vision_window_index` (windows of window_merged x window_merged merged tokens, tiled from the
  top-left corner of each frame, the last row/column of windows possibly smaller).
  """
  m, wm = vision.spatial_merge_size, vision.window_merged
  positions, image_ids, window_ids = [], [], []
  n_frames = n_windows = 0
  for t, h, w in np.asarray(grid_thw, np.int64).reshape(-1, 3).tolist():
    if h % m or w % m:
      raise ValueError(f"grid {(t, h, w)} is not divisible by spatial_merge_size={m}: patchify with the "
                       "processor from image_processor(), which resizes to multiples of patch*merge.")
    gh, gw = h // m, w // m  # merged-token grid
    # Block-major patch order: (block row, block col, row in block, col in block).
    bi, bj, ri, rj = np.meshgrid(np.arange(gh), np.arange(gw), np.arange(m), np.arange(m), indexing="ij")
    rows, cols = (bi * m + ri).reshape(-1), (bj * m + rj).reshape(-1)
    n_win_w = -(-gw // wm)
    window = ((bi // wm) * n_win_w + bj // wm).reshape(-1)  # window of each patch within a frame
    n_win_frame = -(-gh // wm) * n_win_w
    for frame in range(t):
      positions.append(np.stack([rows, cols], -1))
      image_ids.append(np.full(h * w, n_frames + frame))
      window_ids.append(window + n_windows + frame * n_win_frame)
    n_frames += t
    n_windows += t * n_win_frame
  return (np.concatenate(positions).astype(np.int32), np.concatenate(image_ids).astype(np.int32),
          np.concatenate(window_ids).astype(np.int32))


def pack_vision_batch(rows: Sequence[tuple[np.ndarray, np.ndarray]], vision: QwenVisionConfig,
                      buckets: Sequence[int]) -> VisionBatch:
  """Pads each row's (patches [n_i, patch_dim], grid_thw [k_i, 3]) to the bucket of the largest row.

  A row may hold several images (k_i >= 1); they attend within themselves only. Rows with no
  image (patches of shape [0, patch_dim], grid_thw [0, 3]) are all padding.
  """
  if not rows:
    raise ValueError("pack_vision_batch needs at least one row.")
  bad = [b for b in buckets if b % vision.merge_unit]
  if bad:
    raise ValueError(f"patch buckets {bad} are not multiples of merge_unit={vision.merge_unit}: fix "
                     "QwenImageConfig.patch_buckets.")
  largest = max(len(p) for p, _ in rows)
  if largest > max(buckets):
    raise ValueError(f"a row has {largest} patches, more than the largest bucket ({max(buckets)}): add a "
                     "larger QwenImageConfig.patch_buckets entry or lower max_pixels.")
  bucket = bucket_length(largest, buckets)
  batch = VisionBatch(
      patches=np.zeros((len(rows), bucket, vision.patch_dim), np.float32),
      positions=np.zeros((len(rows), bucket, 2), np.int32),
      image_ids=np.full((len(rows), bucket), -1, np.int32),
      window_ids=np.full((len(rows), bucket), -1, np.int32))
  for i, (patches, grid_thw) in enumerate(rows):
    grid_thw = np.asarray(grid_thw, np.int64).reshape(-1, 3)
    n = len(patches)
    if n != int(grid_thw.prod(-1).sum()):
      raise ValueError(f"row {i}: {n} patches but grid_thw {grid_thw.tolist()} describes "
                       f"{int(grid_thw.prod(-1).sum())}: keep each row's patches and grids together.")
    if n == 0:
      continue
    if patches.shape[-1] != vision.patch_dim:
      raise ValueError(f"row {i}: patches of length {patches.shape[-1]}, the tower expects "
                       f"{vision.patch_dim}: build the processor with image_processor(..., vision).")
    positions, image_ids, window_ids = patch_metadata(grid_thw, vision)
    batch.patches[i, :n] = patches
    batch.positions[i, :n] = positions
    batch.image_ids[i, :n] = image_ids
    batch.window_ids[i, :n] = window_ids
  return batch


def merged_valid(image_ids: np.ndarray, vision: QwenVisionConfig) -> np.ndarray:
  """Which merged tokens of the tower's output are real: image_ids [B, N] -> [B, N / merge_unit]."""
  image_ids = np.asarray(image_ids)
  return image_ids.reshape(image_ids.shape[0], -1, vision.merge_unit)[..., 0] >= 0


def preprocess_rows(rows: Sequence[Sequence[Any]], image_cfg: QwenImageConfig,
                    vision: QwenVisionConfig) -> tuple[VisionBatch, list[np.ndarray]]:
  """Images per example -> (padded VisionBatch, grid_thw [k_i, 3] per row).

  The grids give each row's placeholder counts (image_token_counts) and M-RoPE ids
  (qwen_positions.get_rope_index).
  """
  processor = image_processor(image_cfg, vision)
  packed = []
  for images in rows:
    if images:
      packed.append(patchify_images(images, processor))
    else:
      packed.append((np.zeros((0, vision.patch_dim), np.float32), np.zeros((0, 3), np.int64)))
  return pack_vision_batch(packed, vision, image_cfg.patch_buckets), [g for _, g in packed]
