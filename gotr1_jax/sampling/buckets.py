"""Length buckets and left padding, so compiled functions see a few static shapes.

Owns the host-side step that turns variable-length token lists into fixed [batch, bucket] arrays
with a validity mask. It does not tokenize and does not run any model.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def bucket_length(length: int, buckets: Sequence[int]) -> int:
  """The smallest bucket that holds `length` tokens."""
  for b in sorted(buckets):
    if length <= b:
      return b
  raise ValueError(f"A sequence of {length} tokens is longer than the largest bucket "
                   f"({max(buckets)}): add a larger bucket to the config's prompt buckets or "
                   "shorten the prompt.")


def left_pad(seqs: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads token lists to `length`; returns (tokens [B, length] int32, mask [B, length] int32)."""
  tokens = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), np.int32)
  for i, s in enumerate(seqs):
    if len(s) > length:
      raise ValueError(f"Sequence {i} has {len(s)} tokens but the bucket holds {length}.")
    if len(s):
      tokens[i, length - len(s):] = s
      mask[i, length - len(s):] = 1
  return tokens, mask


def pad_to_bucket(seqs: Sequence[Sequence[int]], buckets: Sequence[int],
                  pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads a batch to the bucket of its longest sequence."""
  return left_pad(seqs, bucket_length(max(len(s) for s in seqs), buckets), pad_id)
