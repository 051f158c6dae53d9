"""Ground-truth chains: exact text for a known scene, and chain -> objects round trip."""
from __future__ import annotations

import numpy as np

from gotr1_jax.data.shapes_world import chains, layout, prompts
from gotr1_jax.data.shapes_world.world import Scene, SceneObject


def test_known_scene_chain_text():
  scene = Scene((SceneObject("circle", "red", "solid", (50, 60, 300, 310)),
                 SceneObject("star", "orange", "striped", (700, 400, 950, 640)),
                 SceneObject("cross", "blue", "dotted", (400, 700, 600, 990))))
  assert chains.scene_chain(scene) == (
      "Three shapes on a white background: a red circle at the top left, a striped orange "
      "star on the right and a dotted blue cross at the bottom. "
      "<|obj_start|>red circle<|obj_end|> <|box_start|>(50,60),(300,310)<|box_end|> "
      "<|obj_start|>striped orange star<|obj_end|> <|box_start|>(700,400),(950,640)<|box_end|> "
      "<|obj_start|>dotted blue cross<|obj_end|> <|box_start|>(400,700),(600,990)<|box_end|>")


def test_chain_objects_round_trip():
  rng = np.random.default_rng(0)
  for i in range(200):
    scene = layout.sample_scene(prompts.sample_prompt(prompts.CATEGORIES[i % 6], rng), rng)
    parsed = chains.parse_chain_objects(chains.scene_chain(scene))
    assert parsed.objects == scene.objects
    assert parsed.num_unnamed == parsed.num_malformed == 0


def test_unnamed_and_malformed_spans_are_counted():
  chain = ("x <|obj_start|>red ball<|obj_end|> <|box_start|>(1,2),(3,4)<|box_end|> "
           "<|obj_start|>blue star<|obj_end|> <|box_start|>(5,6),(7,8)<|box_end|> "
           "<|obj_start|>circle<|obj_end|> <|box_start|>(5,6),(7,8)<|box_end|> "
           "<|obj_start|>green square<|obj_end|> <|box_start|>(9,9),(1,1)<|box_end|>")
  parsed = chains.parse_chain_objects(chain)
  assert parsed.objects == (SceneObject("star", "blue", "solid", (5, 6, 7, 8)),)
  # "red ball" is no ShapesWorld object; "circle" names no colour; (9,9),(1,1) is malformed.
  assert (parsed.num_unnamed, parsed.num_malformed, parsed.num_planned) == (2, 1, 4)


def test_place_words_follow_the_three_by_three_grid():
  def at(x, y):
    box = (x - 10, y - 10, x + 10, y + 10)
    return chains.place_words(SceneObject("square", "red", "solid", box))
  assert [at(100, 100), at(500, 100), at(900, 500), at(500, 500), at(100, 900)] == [
      "at the top left", "at the top", "on the right", "in the center", "at the bottom left"]
