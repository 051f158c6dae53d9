"""Metrics and pictures a person can read: one writer for CSV + TensorBoard event files + PNG grids.

Owns the on-disk format of a run's metrics (``metrics.csv``, wide: one row per step, one column
per stable metric name such as ``reward/r_pi``, ``loss/kl``, ``perf/tokens_per_s``), TensorBoard
scalars (tensorboardX; TensorFlow is not needed) and image grids under ``images/``. It computes no
metric itself.
"""
from __future__ import annotations

import csv
import math
import os
from typing import Mapping, Sequence

import numpy as np
from PIL import Image
from tensorboardX import SummaryWriter


class MetricWriter:
  """Appends scalars per step to ``<workdir>/metrics.csv`` and TensorBoard event files."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    os.makedirs(workdir, exist_ok=True)
    self.csv_path = os.path.join(workdir, "metrics.csv")
    self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    self._columns: list[str] = []
    if os.path.exists(self.csv_path):
      with open(self.csv_path, newline="") as f:
        header = next(csv.reader(f), None)
      self._columns = list(header or [])

  def write(self, step: int, scalars: Mapping[str, float]) -> None:
    values = {k: float(v) for k, v in scalars.items()}
    for k, v in values.items():
      self._tb.add_scalar(k, v, step)
    new = [k for k in values if k not in self._columns]
    if new or not self._columns:
      self._rewrite_header((self._columns or ["step"]) + sorted(new))
    with open(self.csv_path, "a", newline="") as f:
      row = {"step": step, **values}
      csv.DictWriter(f, self._columns).writerow({k: row.get(k, "") for k in self._columns})

  def _rewrite_header(self, columns: list[str]) -> None:
    rows = read_metrics(self.csv_path) if os.path.exists(self.csv_path) else []
    self._columns = columns
    with open(self.csv_path, "w", newline="") as f:
      w = csv.DictWriter(f, columns)
      w.writeheader()
      for r in rows:
        w.writerow({k: r.get(k, "") for k in columns})

  def write_grid(self, step: int, name: str, images: Sequence[np.ndarray], ncols: int | None = None) -> str:
    """Saves uint8 [H, W, 3] images as one PNG grid under images/ and to TensorBoard."""
    grid = image_grid(images, ncols)
    path = os.path.join(self.workdir, "images", f"{name}_{step:06d}.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(grid).save(path)
    self._tb.add_image(name, grid, step, dataformats="HWC")
    return path

  def flush(self) -> None:
    self._tb.flush()

  def close(self) -> None:
    self._tb.close()


def read_metrics(path: str) -> list[dict[str, str]]:
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def image_grid(images: Sequence[np.ndarray], ncols: int | None = None, pad: int = 2) -> np.ndarray:
  """Tiles same-sized uint8 images into one grid with a white `pad`-pixel border."""
  if not len(images):
    raise ValueError("image_grid needs at least one image.")
  h, w = images[0].shape[:2]
  ncols = ncols or math.ceil(math.sqrt(len(images)))
  nrows = math.ceil(len(images) / ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), 255, np.uint8)
  for i, img in enumerate(images):
    r, c = divmod(i, ncols)
    grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
  return grid
