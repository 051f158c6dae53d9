"""World: relation geometry, frame <-> pixel mapping, config validation."""
from __future__ import annotations

import pytest

from gotr1_jax.data.shapes_world import world


def test_relation_margin_on_box_centres():
  a, b = (0, 0, 100, 100), (300, 50, 400, 150)  # centres (50, 50) and (350, 100)
  assert world.relation_margin("to the left of", a, b) == 300 - 50
  assert world.relation_margin("to the right of", a, b) == -300 - 50
  assert world.relation_margin("above", a, b) == 50 - 300
  assert world.relation_margin("on the left of", a, b) == 250  # T2I-CompBench wording
  assert world.relation_holds("to the right of", b, a) and not world.relation_holds("below", b, a)
  with pytest.raises(ValueError, match="Unknown relation 'near'"):
    world.relation_margin("near", a, b)


def test_frame_pixel_mapping():
  assert world.box_to_pixels((250, 0, 500, 999), 64) == (16.0, 0.0, 32.0, 63.936)
  assert world.pixels_to_box((16, 0, 32, 64), 64) == (250, 0, 500, 999)  # clamped to [0, 1000)


def test_names_and_words():
  assert world.SceneObject("star", "red", "solid", (0, 0, 1, 1)).name == "red star"
  assert world.SceneObject("cross", "blue", "dotted", (0, 0, 1, 1)).name == "dotted blue cross"
  assert (world.plural("cross"), world.plural("circle")) == ("crosses", "circles")
  assert (world.article("orange"), world.article("red")) == ("an", "a")


def test_config_validation_names_the_fix():
  with pytest.raises(ValueError, match="min_object_size"):
    world.WorldConfig(image_size=32, min_object_size=0.1)
  with pytest.raises(ValueError, match="must contain 'solid'"):
    world.WorldConfig(textures=("striped",))
  with pytest.raises(KeyError, match="palette has"):
    world.WorldConfig().color("teal")
