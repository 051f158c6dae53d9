"""The R_spa layout canvas: a chain's boxes drawn on a blank picture, each name at its box's corner
(canvas.style "outline", GoT-R1's) or each box filled in its colour without names ("filled").

Owns drawing only (deterministic, PIL, settings from `config.reward.canvas`; see
config.canvas_defaults). It does not parse chains beyond gotr1_jax.data.chain, and asks no judge.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from ml_collections import ConfigDict
from PIL import Image, ImageColor, ImageDraw, ImageFont

from gotr1_jax.data.chain import COORD_MAX, Obj, parse_chain


def load_font(canvas: ConfigDict) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
  """The font named by canvas.font: "bitmap", "truetype" or a font file path."""
  if canvas.font == "bitmap":
    return ImageFont.load_default_imagefont()
  if canvas.font == "truetype":
    return ImageFont.load_default(size=canvas.font_size)
  if not os.path.isfile(canvas.font):
    raise ValueError(f"config.reward.canvas.font={canvas.font!r} is neither 'bitmap', 'truetype' "
                     "nor an existing font file; pass one of those.")
  return ImageFont.truetype(canvas.font, canvas.font_size)


def to_pixels(box: Sequence[int], width: int, height: int) -> tuple[int, int, int, int]:
  """A [0, 1000) box as inclusive pixel corners on a width x height canvas (floor, kept inside)."""
  x1, y1, x2, y2 = box
  px = lambda v, n: min(max(v * n // COORD_MAX, 0), n - 1)  # noqa: E731
  return px(x1, width), px(y1, height), px(x2, width), px(y2, height)


def box_colours(objects: Sequence[Obj], canvas: ConfigDict) -> list[tuple[int, int, int]]:
  """Each object's outline and name colour. canvas.box_colours "palette": palette[i % len(palette)]
  for object i; "named": the first word of the object's name that is a colour Pillow knows
  (ImageColor: CSS names, e.g. "red", "cyan"), so that a judge can tell the boxes apart by colour as
  well as by their names; objects with no such word take their palette colour."""
  palette = [tuple(canvas.palette[i % len(canvas.palette)]) for i in range(len(objects))]
  if canvas.get("box_colours", "palette") == "palette":
    return palette
  out = []
  for obj, fallback in zip(objects, palette):
    for word in obj.name.lower().split():
      try:
        out.append(ImageColor.getrgb(word)[:3])
        break
      except ValueError:
        continue
    else:
      out.append(fallback)
  return out


def _label_mask(text: str, font, canvas: ConfigDict) -> Image.Image:
  """The text as an 'L' mask (255 = ink), bitmap glyphs scaled up by font_scale (nearest).
  Characters the bitmap font cannot encode (it is Latin-1; a policy may write anything) become '?'."""
  if canvas.font == "bitmap":
    text = text.encode("latin-1", "replace").decode("latin-1")
  left, top, right, bottom = font.getbbox(text)
  mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)), 0)
  ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font)
  if canvas.font == "bitmap" and canvas.font_scale > 1:
    mask = mask.resize((mask.width * canvas.font_scale, mask.height * canvas.font_scale),
                       Image.Resampling.NEAREST)
  return mask


def draw_layout(objects: Sequence[Obj], canvas: ConfigDict) -> np.ndarray:
  """Draws each object's box outline and name (or, canvas.style "filled", the filled box alone);
  returns uint8 [height, width, 3].

  Object i gets box_colours(...)[i] for both its outline (canvas.line_width pixels, drawn inward
  from the box edge) and its name. Names go inside the box's top-left corner, offset by the
  line width plus canvas.text_margin, shifted back onto the canvas when they would overflow. All
  outlines are drawn before any name, so a later box never hides an earlier name.
  Filled boxes are drawn largest area first (ties in chain order), so a box inside another shows.
  """
  w, h = canvas.width, canvas.height
  image = Image.new("RGB", (w, h), tuple(canvas.background))
  draw = ImageDraw.Draw(image)
  colours = box_colours(objects, canvas)
  corners = [to_pixels(o.box, w, h) for o in objects]
  if canvas.get("style", "outline") == "filled":
    area = lambda i: (corners[i][2] - corners[i][0] + 1) * (corners[i][3] - corners[i][1] + 1)  # noqa: E731
    for i in sorted(range(len(objects)), key=lambda i: -area(i)):
      draw.rectangle(corners[i], fill=colours[i])
    return np.asarray(image, dtype=np.uint8)
  for (x1, y1, x2, y2), colour in zip(corners, colours):
    draw.rectangle((x1, y1, x2, y2), outline=colour, width=canvas.line_width)
  font = load_font(canvas) if objects else None
  for obj, (x1, y1, _, _), colour in zip(objects, corners, colours):
    mask = _label_mask(obj.name, font, canvas)
    offset = canvas.line_width + canvas.text_margin
    x = min(x1 + offset, max(w - mask.width, 0))
    y = min(y1 + offset, max(h - mask.height, 0))
    image.paste(Image.new("RGB", mask.size, colour), (x, y), mask)
  return np.asarray(image, dtype=np.uint8)


def draw_chain(chain: str, canvas: ConfigDict) -> np.ndarray:
  """draw_layout of the chain's well-formed objects (malformed spans are skipped)."""
  return draw_layout(parse_chain(chain), canvas)
