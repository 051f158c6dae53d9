"""Metrics and pictures a person can read: one writer for CSV + TensorBoard event files + PNG grids.

Owns the on-disk format of a run's metrics (``metrics.csv``, wide: one row per step, one column
per stable metric name such as ``reward/r_pi``, ``loss/kl``, ``perf/tokens_per_s``), TensorBoard
scalars (tensorboardX; TensorFlow is not needed) and image grids under ``images/``, and how log
lines share the terminal with a tqdm bar (``logs_above_bar``). It computes no metric itself.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import sys
from typing import Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, features
from tensorboardX import SummaryWriter
from tqdm import tqdm


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

  @property
  def columns(self) -> list[str]:
    """The metric names written so far (metrics.csv's header)."""
    return list(self._columns)

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

  def drop_after(self, step: int) -> None:
    """Forgets CSV rows after `step` (a resumed run rewrites the steps its checkpoint lacks)."""
    if os.path.exists(self.csv_path) and self._columns:
      rows = [r for r in read_metrics(self.csv_path) if r.get("step", "") == "" or int(r["step"]) <= step]
      with open(self.csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, self._columns)
        w.writeheader()
        w.writerows({k: r.get(k, "") for k in self._columns} for r in rows)

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


PLOT_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75))


def line_plot(series: Mapping[str, Sequence[tuple[float, float]]], title: str = "", size: tuple[int, int] = (640, 360),
              smooth: int = 1) -> np.ndarray:
  """Plots {name: [(x, y), ...]} as lines on shared axes (PIL; no plotting library needed).
  `smooth` > 1 draws a trailing moving average over that many points beside the faint raw line.
  Returns a uint8 [H, W, 3] image with the y range, x range, title and a legend written on it."""
  from PIL import ImageDraw, ImageFont
  w, h = size
  left, right, top, bottom = 48, 12, 24, 28
  img = Image.new("RGB", size, "white")
  draw = ImageDraw.Draw(img)
  # Pillow's scalable default font where FreeType is present (the bitmap one runs "GRPO step" together).
  draw.font = ImageFont.load_default(size=11) if features.check("freetype2") else ImageFont.load_default()
  points = [p for s in series.values() for p in s]
  if not points:
    raise ValueError("line_plot needs at least one point.")
  xs, ys = [p[0] for p in points], [p[1] for p in points]
  x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
  y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
  pad = 0.05 * (y1 - y0)
  y0, y1 = y0 - pad, y1 + pad
  to_px = lambda x, y: (left + (x - x0) / (x1 - x0) * (w - left - right),
                        top + (1 - (y - y0) / (y1 - y0)) * (h - top - bottom))
  draw.rectangle([left, top, w - right, h - bottom], outline=(0, 0, 0))
  for frac in (0.25, 0.5, 0.75):
    y = top + frac * (h - top - bottom)
    draw.line([left, y, w - right, y], fill=(225, 225, 225))
  draw.text((4, top - 6), f"{y1:.3g}", fill=(0, 0, 0))
  draw.text((4, h - bottom - 6), f"{y0:.3g}", fill=(0, 0, 0))
  draw.text((left, h - bottom + 6), f"{x0:g}", fill=(0, 0, 0))
  draw.text((w - right - 40, h - bottom + 6), f"{x1:g}", fill=(0, 0, 0))
  draw.text((left, 6), title, fill=(0, 0, 0))
  for i, (name, s) in enumerate(series.items()):
    color = PLOT_COLORS[i % len(PLOT_COLORS)]
    pts = sorted(s)
    if smooth > 1:
      faint = tuple(int(c + (255 - c) * 0.65) for c in color)
      if len(pts) > 1:
        draw.line([to_px(x, y) for x, y in pts], fill=faint, width=1)
      ys_s = np.convolve([y for _, y in pts], np.ones(smooth), "full")[:len(pts)]
      counts = np.minimum(np.arange(1, len(pts) + 1), smooth)
      pts = [(x, float(v / c)) for (x, _), v, c in zip(pts, ys_s, counts)]
    if len(pts) > 1:
      draw.line([to_px(x, y) for x, y in pts], fill=color, width=2)
    else:
      cx, cy = to_px(*pts[0])
      draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=color)
    draw.text((w - right - 150, top + 4 + 12 * i), name, fill=color)
  return np.asarray(img)


class _AboveBar:
  """A console stream whose writes go through tqdm.write: each line lands above the bars drawn there."""

  def __init__(self, stream):
    self.stream = stream

  def write(self, text: str) -> None:
    if text.rstrip("\n"):
      tqdm.write(text.rstrip("\n"), file=self.stream)

  def flush(self) -> None:
    self.stream.flush()

  def __getattr__(self, name: str):
    return getattr(self.stream, name)


def _console_handlers() -> list[logging.StreamHandler]:
  """The root logger's handlers that write to the terminal (absl's through its PythonHandler)."""
  consoles = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
  found = []
  for handler in logging.root.handlers:
    handler = getattr(handler, "python_handler", handler)
    if isinstance(handler, logging.StreamHandler) and any(handler.stream is c for c in consoles):
      found.append(handler)
  return found


@contextlib.contextmanager
def logs_above_bar() -> Iterator[None]:
  """While a tqdm bar is drawn: the root logger's console handlers write each record through
  tqdm.write, a line above the bar, instead of after the bar's text on the bar's line (which leaves
  a torn bar behind at every record). Handlers writing to files, levels and formats are unchanged."""
  swapped = [(handler, handler.stream) for handler in _console_handlers()]
  for handler, stream in swapped:
    handler.stream = _AboveBar(stream)
  try:
    yield
  finally:
    for handler, stream in swapped:
      handler.stream = stream
