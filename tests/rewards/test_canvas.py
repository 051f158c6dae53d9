"""Tests for gotr1_jax/rewards/canvas.py: golden pixel checksums plus a NumPy reference of outlines.

Golden values are sha256 of the raw uint8 pixels (not of PNG bytes, whose zlib output may differ
between builds) drawn with the pinned Pillow 13 and the embedded bitmap font. Outside label areas
the canvas must equal the NumPy reference exactly.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import ImageFont

from gotr1_jax.data.chain import Obj, parse_chain
from gotr1_jax.rewards.canvas import box_colours, draw_chain, draw_layout, load_font, to_pixels
from gotr1_jax.rewards.config import reward_defaults

CHAINS = {
    "two": ("<|obj_start|>yellow vase<|obj_end|> <|box_start|>(202,482),(729,964)<|box_end|> "
            "<|obj_start|>red apple<|obj_end|> <|box_start|>(10,10),(300,250)<|box_end|>"),
    "edge": ("A scene. <|obj_start|>a very long object name at the edge<|obj_end|> "
             "<|box_start|>(900,950),(999,999)<|box_end|>"),
    "overlap": " ".join(f"<|obj_start|>obj{i}<|obj_end|> <|box_start|>({50 * i},{40 * i}),"
                        f"({400 + 50 * i},{300 + 40 * i})<|box_end|>" for i in range(13)),
}
GOLDEN = {
    ("two", "default"): "7f75b48a2f982301ab8c956affd88d0780ecefe978d25634a36c40e6f4ce3092",
    ("two", "small"): "a8e9796e6c71976cf6021dd0cb44eaee2b690a7f4b7614f2898cdbfb665f74dd",
    ("edge", "default"): "3fea33d93d35bf21697be95a8d26e603a99c355b56124406c353a883b2b9b31c",
    ("edge", "small"): "9564285a31c8e0251c05e584a1b8c85309dde4df7d53420cda632d1ea52fb4a1",
    ("overlap", "default"): "7cca2cea223afc94d6d7100bd170848b1d7fcf06392bebbf869489bca9ef79fb",
    ("overlap", "small"): "85ac9de4088b9d942a38df7b423f092dc1b276e647e4bc5294714a20745cd6ae",
}


def canvases():
  default = reward_defaults().canvas
  small = reward_defaults().canvas
  small.width, small.height, small.line_width, small.palette, small.font_scale = 112, 84, 1, ((0, 0, 0),), 1
  return {"default": default, "small": small}


@pytest.mark.parametrize("chain,canvas", sorted(GOLDEN))
def test_golden_checksums(chain, canvas):
  image = draw_chain(CHAINS[chain], canvases()[canvas])
  assert image.dtype == np.uint8 and image.shape == (canvases()[canvas].height, canvases()[canvas].width, 3)
  assert hashlib.sha256(image.tobytes()).hexdigest() == GOLDEN[(chain, canvas)]


def ref_canvas_and_label_zones(objects, cfg):
  """Background + outlines drawn with NumPy, and a mask of where labels may be (not referenced)."""
  h, w, lw = cfg.height, cfg.width, cfg.line_width
  ref = np.empty((h, w, 3), np.uint8)
  ref[:] = cfg.background
  zones = np.zeros((h, w), bool)
  font = ImageFont.load_default_imagefont()
  for i, obj in enumerate(objects):
    x1, y1, x2, y2 = [v * n // 1000 for v, n in zip(obj.box, (w, h, w, h))]
    ring = np.zeros((h, w), bool)
    ring[y1:y2 + 1, x1:x2 + 1] = True
    ring[y1 + lw:y2 - lw + 1, x1 + lw:x2 - lw + 1] = False
    ref[ring] = cfg.palette[i % len(cfg.palette)]
    _, _, tw, th = font.getbbox(obj.name)
    zones[y1:y1 + lw + cfg.text_margin + th * cfg.font_scale + 1,
          x1:x1 + lw + cfg.text_margin + tw * cfg.font_scale + 1] = True
  return ref, zones


def test_outlines_and_labels_match_numpy_reference():
  cfg = canvases()["default"]
  objects = parse_chain(CHAINS["two"])
  image = draw_layout(objects, cfg)
  ref, zones = ref_canvas_and_label_zones(objects, cfg)
  np.testing.assert_array_equal(image[~zones], ref[~zones])
  for i, obj in enumerate(objects):  # each name is drawn in its box's colour, in its corner
    x1, y1, _, _ = to_pixels(obj.box, cfg.width, cfg.height)
    corner = image[y1 + cfg.line_width:y1 + 40, x1 + cfg.line_width:x1 + 200]
    colour = np.array(cfg.palette[i])
    ink = np.all(corner == colour, axis=-1)
    assert ink.sum() > 50
    assert np.all(ink | np.all(corner == cfg.background, axis=-1))  # bitmap text: no blending


def test_edge_label_stays_on_canvas_and_empty_layout_is_blank():
  cfg = canvases()["default"]
  image = draw_chain(CHAINS["edge"], cfg)
  colour = np.array(cfg.palette[0])
  ink = np.all(image == colour, axis=-1)
  cols = np.nonzero(ink.any(0))[0]
  assert cols.min() < 0.9 * cfg.width  # the long name was shifted left to stay visible
  blank = draw_layout([], cfg)
  assert np.all(blank == np.array(cfg.background))


def test_truetype_font_is_deterministic_and_path_errors():
  cfg = canvases()["default"]
  cfg.font = "truetype"
  objects = [Obj("blue cube", (100, 100, 600, 500))]
  a, b = draw_layout(objects, cfg), draw_layout(objects, cfg)
  np.testing.assert_array_equal(a, b)
  cfg.font = "/no/such/font.ttf"
  with pytest.raises(ValueError, match="font"):
    load_font(cfg)


def test_names_outside_latin1_are_drawn_not_raised():
  from gotr1_jax.rewards.canvas import draw_layout
  from gotr1_jax.rewards.config import canvas_defaults
  objs = [Obj("\ufffd red 圆 circle", (100, 100, 400, 400))]
  image = draw_layout(objs, canvas_defaults())
  assert image.shape == (448, 448, 3) and (image != 255).any()


def test_named_box_colours_follow_the_colour_word_and_fall_back_to_the_palette():
  cfg = canvases()["small"]
  cfg.palette = ((10, 20, 30), (40, 50, 60), (70, 80, 90))
  objects = [Obj("red circle", (100, 100, 300, 300)), Obj("striped Cyan star", (600, 100, 900, 400)),
             Obj("thing", (400, 600, 700, 900))]
  assert box_colours(objects, cfg) == [(10, 20, 30), (40, 50, 60), (70, 80, 90)]  # "palette"
  cfg.box_colours = "named"
  assert box_colours(objects, cfg) == [(255, 0, 0), (0, 255, 255), (70, 80, 90)]
  image = draw_layout(objects, cfg)
  for obj, colour in zip(objects, box_colours(objects, cfg)):
    x1, y1, x2, y2 = to_pixels(obj.box, cfg.width, cfg.height)
    np.testing.assert_array_equal(image[y2, x1:x2 + 1], np.tile(colour, (x2 - x1 + 1, 1)))  # bottom edge


def test_filled_style_fills_boxes_largest_first_without_names():
  cfg = canvases()["small"]
  cfg.box_colours, cfg.style = "named", "filled"
  big, small = Obj("blue square", (0, 0, 999, 999)), Obj("red circle", (250, 250, 500, 500))
  for order in ([small, big], [big, small]):  # the small box shows whichever the chain names first
    image = draw_layout(order, cfg)
    ref = np.empty((cfg.height, cfg.width, 3), np.uint8)
    ref[:] = (0, 0, 255)
    x1, y1, x2, y2 = to_pixels(small.box, cfg.width, cfg.height)
    ref[y1:y2 + 1, x1:x2 + 1] = (255, 0, 0)
    np.testing.assert_array_equal(image, ref)  # exact: two solid rectangles, no outline, no name
  assert np.all(draw_layout([], cfg) == np.array(cfg.background))
