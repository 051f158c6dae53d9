"""Qwen2.5-VL's 3-axis M-RoPE position ids for mixed text + image (+ video) sequences, on the host.

Owns `get_rope_index` (the numpy counterpart of transformers' `Qwen2_5_VLModel.get_rope_index`,
v5 semantics) and the positions of tokens appended while decoding. It runs in the data pipeline,
outside jit; it builds no embeddings (llm.py turns the ids into rotary tables).
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Iterator, Optional

import numpy as np

TEXT, IMAGE, VIDEO = 0, 1, 2  # transformers' mm_token_type_ids values


@dataclasses.dataclass(frozen=True)
class MRopeConfig:
  """What position ids depend on. Defaults are Qwen2.5-VL's tokenizer ids and 3B/7B vision config."""

  image_token_id: int = 151655  # <|image_pad|>
  video_token_id: int = 151656  # <|video_pad|>
  spatial_merge_size: int = 2
  tokens_per_second: float = 2  # temporal ids per second of video

  @classmethod
  def from_hf(cls, hf: Any) -> "MRopeConfig":
    """From a transformers `Qwen2_5_VLConfig`."""
    return cls(image_token_id=hf.image_token_id, video_token_id=hf.video_token_id,
               spatial_merge_size=hf.vision_config.spatial_merge_size,
               tokens_per_second=hf.vision_config.tokens_per_second)


def token_types(input_ids: np.ndarray, cfg: MRopeConfig) -> np.ndarray:
  """transformers' mm_token_type_ids: 0 text, 1 image placeholder, 2 video placeholder."""
  input_ids = np.asarray(input_ids)
  types = np.full(input_ids.shape, TEXT, np.int32)
  types[input_ids == cfg.image_token_id] = IMAGE
  types[input_ids == cfg.video_token_id] = VIDEO
  return types


def _vision_positions(start: int, grid_thw: np.ndarray, merge: int, time_interval: float) -> np.ndarray:
  """[3, t*h'*w'] (temporal, height, width) ids of one image/video, offset by `start`."""
  t, h, w = (int(v) for v in grid_thw)
  h, w = h // merge, w // merge
  temporal = (np.arange(t) * time_interval).astype(np.int64) + start
  tt, hh, ww = np.meshgrid(temporal, np.arange(h) + start, np.arange(w) + start, indexing="ij")
  return np.stack([tt, hh, ww]).reshape(3, -1)


def _next_grid(grids: Optional[Iterator], kind: str, row: int) -> np.ndarray:
  grid = next(grids, None) if grids is not None else None
  if grid is None:
    raise ValueError(f"row {row} has more {kind} placeholder runs than {kind}_grid_thw entries: pass "
                     f"one grid per {kind}, in batch order.")
  return grid


def get_rope_index(input_ids: np.ndarray, cfg: MRopeConfig, image_grid_thw: Optional[np.ndarray] = None,
                   video_grid_thw: Optional[np.ndarray] = None,
                   second_per_grid_ts: Optional[np.ndarray] = None,
                   attention_mask: Optional[np.ndarray] = None,
                   mm_token_type_ids: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
  """M-RoPE ids of a batch, as transformers computes them.

  input_ids: [B, T]. image_grid_thw / video_grid_thw: [n, 3], one per image / video in batch order
  (row by row, left to right). second_per_grid_ts: [n_videos] seconds per temporal grid step.
  attention_mask: [B, T], 0 at padding (either side). mm_token_type_ids: [B, T]; derived from the
  placeholder ids when None.

  Text runs count up by 1 on all three axes. Each run of placeholder tokens is one image (video)
  at offset p, the position after the text before it: ids (p + t*interval, p + row, p + column) on
  its merged grid; the text after it resumes at p + max(h, w) / merge. Padding slots get 0.

  Returns (position_ids [3, B, T] int32, rope_deltas [B, 1] int32), where rope_delta = max
  position + 1 - number of real tokens: a token appended at real index i sits at i + rope_delta on
  all three axes (continuation_position_ids). A row with no real tokens gets zeros and delta 0.
  """
  input_ids = np.asarray(input_ids)
  b, t = input_ids.shape
  types = token_types(input_ids, cfg) if mm_token_type_ids is None else np.asarray(mm_token_type_ids)
  mask = np.ones((b, t), bool) if attention_mask is None else np.asarray(attention_mask).astype(bool)
  grids = {IMAGE: None if image_grid_thw is None else iter(np.asarray(image_grid_thw).reshape(-1, 3)),
           VIDEO: None if video_grid_thw is None else iter(np.asarray(video_grid_thw).reshape(-1, 3))}
  seconds = iter(np.ones(t) if second_per_grid_ts is None else np.asarray(second_per_grid_ts).reshape(-1))
  merge = cfg.spatial_merge_size

  position_ids = np.zeros((3, b, t), np.int64)
  deltas = np.zeros((b, 1), np.int64)
  for row in range(b):
    row_types = types[row][mask[row]]
    if row_types.size == 0:
      continue
    pieces, current = [], 0
    start = 0
    for kind, run in itertools.groupby(row_types.tolist()):
      length = len(list(run))
      if kind == TEXT:
        pieces.append(np.broadcast_to(np.arange(length) + current, (3, length)))
        current += length
      elif kind in (IMAGE, VIDEO):
        name = "image" if kind == IMAGE else "video"
        grid = _next_grid(grids[kind], name, row)
        interval = cfg.tokens_per_second * next(seconds) if kind == VIDEO else 1
        piece = _vision_positions(current, grid, merge, interval)
        if piece.shape[1] != length:
          raise ValueError(f"row {row}: a run of {length} {name} placeholder tokens at real index {start} "
                           f"but its grid {grid.tolist()} gives {piece.shape[1]} merged tokens: insert "
                           "image_token_counts(grid) placeholders per image.")
        pieces.append(piece)
        current += max(int(grid[1]), int(grid[2])) // merge
      else:
        raise ValueError(f"row {row}: token type {kind} is not text (0), image (1) or video (2).")
      start += length
    row_positions = np.concatenate(pieces, axis=1)
    position_ids[:, row, mask[row]] = row_positions
    deltas[row, 0] = row_positions.max() + 1 - row_types.size
  return position_ids.astype(np.int32), deltas.astype(np.int32)


def continuation_position_ids(attention_mask: np.ndarray, rope_deltas: np.ndarray) -> np.ndarray:
  """M-RoPE ids [3, B, S] of every slot of a decoding cache (transformers' cached-decoding branch).

  attention_mask: [B, S] over prompt + generated slots; rope_deltas: [B, 1] from get_rope_index.
  Slot s gets (number of real slots up to s) - 1 + rope_delta on all three axes (padding: the
  delta alone). The same sum in jnp (`llm.positions_from_mask(mask) + rope_deltas`) serves inside
  a jitted sampler; the ids of the prompt slots themselves come from get_rope_index.
  """
  mask = np.asarray(attention_mask).astype(np.int64)
  positions = np.where(mask != 0, np.cumsum(mask, axis=-1) - 1, 0) + np.asarray(rope_deltas).reshape(-1, 1)
  return np.broadcast_to(positions, (3,) + positions.shape).astype(np.int32)
