"""The metric writer: wide CSV with growing columns, TensorBoard events, PNG grids; log lines above a bar."""
import io
import logging
import os
import sys

import numpy as np
from PIL import Image

from tqdm import tqdm

from gotr1_jax.metrics import MetricWriter, image_grid, logs_above_bar, read_metrics


def test_csv_grows_columns_and_tensorboard_events(tmp_path):
  w = MetricWriter(str(tmp_path))
  w.write(1, {"reward/mean": 0.5})
  w.write(2, {"reward/mean": 0.75, "loss/kl": 0.01})
  w.close()
  rows = read_metrics(os.path.join(tmp_path, "metrics.csv"))
  assert [r["step"] for r in rows] == ["1", "2"]
  assert float(rows[0]["reward/mean"]) == 0.5 and rows[0]["loss/kl"] == ""
  assert float(rows[1]["loss/kl"]) == 0.01
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
  w2 = MetricWriter(str(tmp_path))  # a resumed run appends under the same header
  w2.write(3, {"reward/mean": 1.0})
  w2.close()
  assert [r["step"] for r in read_metrics(os.path.join(tmp_path, "metrics.csv"))] == ["1", "2", "3"]


def test_image_grid_layout_and_png(tmp_path):
  imgs = [np.full((4, 5, 3), 40 * i, np.uint8) for i in range(5)]
  grid = image_grid(imgs, ncols=3, pad=1)
  assert grid.shape == (2 * 5 + 1, 3 * 6 + 1, 3)
  assert grid[1, 1, 0] == 0 and grid[1 + 5, 1 + 6, 0] == 160 and grid[0, 0, 0] == 255
  w = MetricWriter(str(tmp_path))
  path = w.write_grid(4, "samples", imgs)
  w.close()
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image_grid(imgs))


def test_drop_after_forgets_the_steps_a_resume_rewrites(tmp_path):
  from gotr1_jax.metrics import MetricWriter, read_metrics
  w = MetricWriter(str(tmp_path))
  for step in (1, 2, 3):
    w.write(step, {"reward/mean": float(step)})
  w.drop_after(2)
  w.write(3, {"reward/mean": 30.0})
  w.close()
  rows = read_metrics(str(tmp_path / "metrics.csv"))
  assert [(r["step"], r["reward/mean"]) for r in rows] == [("1", "1.0"), ("2", "2.0"), ("3", "30.0")]


def test_log_lines_go_above_the_bar_and_files_still_get_them(monkeypatch, caplog):
  terminal = io.StringIO()
  monkeypatch.setattr(sys, "stderr", terminal)
  console = logging.StreamHandler(terminal)  # stands in for absl's handler on the root logger
  console.setFormatter(logging.Formatter("I %(name)s] %(message)s"))
  log_file = logging.StreamHandler(io.StringIO())  # a handler writing to a file: left as it is
  monkeypatch.setattr(logging.root, "handlers", [console, log_file, *logging.root.handlers])
  caplog.set_level(logging.INFO)  # root's setLevel: clears the loggers' cached isEnabledFor, restored after
  log = logging.getLogger("gotr1_jax.rl.trainer")
  bar = tqdm(total=3, desc="GRPO", file=terminal)
  with logs_above_bar():
    bar.update(1)
    log.info("step %d/%d: reward %.4f", 1, 3, 0.25)
    bar.update(1)
  bar.close()
  line = next(x for x in terminal.getvalue().split("\n") if "step 1/3" in x)
  # tqdm.write clears the bar ('\r' + blanks + '\r') and writes the record on a line of its own;
  # without it the record follows the bar's text on the bar's line.
  assert line.split("\r")[-1] == "I gotr1_jax.rl.trainer] step 1/3: reward 0.2500"
  assert log_file.stream.getvalue() == "step 1/3: reward 0.2500\n"
  assert console.stream is terminal  # restored
  log.info("after the bar")
  assert terminal.getvalue().endswith("I gotr1_jax.rl.trainer] after the bar\n")
