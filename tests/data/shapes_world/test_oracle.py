"""Oracle: ground truth scores 1.0; violations score what the definitions say, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data.shapes_world import chains, layout, oracle, prompts, render
from gotr1_jax.data.shapes_world.world import Scene, SceneObject

RED_CIRCLE_LEFT = prompts.parse_prompt("a red circle to the left of a blue square", "spatial")


def _obj(shape, color, box, texture="solid"):
  return SceneObject(shape, color, texture, box)


def _chain(*objs):
  return chains.scene_chain(Scene(tuple(objs)))


def test_ground_truth_scores_one_on_every_category():
  rng = np.random.default_rng(0)
  for i in range(60):
    spec = prompts.sample_prompt(prompts.CATEGORIES[i % 6], rng)
    scene = layout.sample_scene(spec, rng)
    image = render.render_scene(scene)
    rewards = oracle.oracle_rewards(spec, chains.scene_chain(scene), image)
    assert rewards["t2i_score"] == rewards["r_pi"] == rewards["r_sem"] == rewards["r_spa"] == 1.0
    # Planned boxes vs boxes read back from pixels (measured >= 0.94 on 300 scenes).
    assert rewards["r_ri"] > 0.9
    text_rewards = oracle.oracle_rewards(spec.text, chains.scene_chain(scene), image,
                                         category=spec.category)
    assert text_rewards == rewards


def test_violated_relation():
  left, right = (100, 400, 300, 600), (600, 400, 800, 600)
  good = [_obj("circle", "red", left), _obj("square", "blue", right)]
  bad = [_obj("circle", "red", right), _obj("square", "blue", left)]
  assert oracle.category_score(RED_CIRCLE_LEFT, good) == 1.0
  assert oracle.category_score(RED_CIRCLE_LEFT, bad) == 0.0
  assert oracle.r_pi(RED_CIRCLE_LEFT, bad) == pytest.approx(0.75)  # mean(1, 1, 1, 0)
  # The chain plans both objects once (2 count checks) but breaks the relation: 2 of 3.
  assert oracle.r_spa(RED_CIRCLE_LEFT, _chain(*bad)) == pytest.approx(2 / 3)
  assert oracle.r_sem(RED_CIRCLE_LEFT, _chain(*bad)) == 1.0  # semantics are right
  # Left-of needs the horizontal offset to dominate: straight above is not "left of".
  above = [_obj("circle", "red", (400, 100, 600, 300)),
           _obj("square", "blue", (420, 600, 620, 800))]
  assert oracle.category_score(RED_CIRCLE_LEFT, above) == 0.0


def test_r_spa_rubric_reads_the_judge_bands_exactly():
  left, right = (100, 400, 300, 600), (600, 400, 800, 600)
  good = _chain(_obj("circle", "red", left), _obj("square", "blue", right))
  swapped = _chain(_obj("circle", "red", right), _obj("square", "blue", left))
  assert oracle.r_spa(RED_CIRCLE_LEFT, good, scale="rubric") == 1.0  # 10 of 1-10
  # Contradicts the prompt: 1 + 3 x (2 of 3 checks) = 3 on 1-10, rescaled as the judge's answer is.
  assert oracle.r_spa(RED_CIRCLE_LEFT, swapped, scale="rubric") == pytest.approx(2 / 9)
  # An object missing: 1 + 3 x (1 of 3) = 2.
  assert oracle.r_spa(RED_CIRCLE_LEFT, _chain(_obj("circle", "red", left)), scale="rubric") == pytest.approx(1 / 9)
  # Relations partly right (counts hold, one of two relations): 5 + 2 x 1/2 = 6.
  two = prompts.PromptSpec(
      groups=RED_CIRCLE_LEFT.groups + (prompts.ObjectSpec("cross", "green", None, 1),),
      relations=RED_CIRCLE_LEFT.relations + (prompts.Relation(subject=2, relation="above", object=0),),
      category="complex")
  partly = _chain(_obj("circle", "red", left), _obj("square", "blue", right),
                  _obj("cross", "green", (100, 800, 300, 990)))
  assert oracle.r_spa(two, partly) == pytest.approx(4 / 5)
  assert oracle.r_spa(two, partly, scale="rubric") == pytest.approx(5 / 9)
  with pytest.raises(ValueError, match="exact_spa"):
    oracle.r_spa(RED_CIRCLE_LEFT, good, scale="bands")


def test_wrong_colour():
  spec = prompts.parse_prompt("a red circle and a blue square", "color")
  objs = [_obj("circle", "green", (100, 100, 300, 300)),
          _obj("square", "blue", (600, 600, 800, 800))]
  assert oracle.category_score(spec, objs) == 0.5
  assert oracle.r_pi(spec, objs) == pytest.approx(0.5)  # binding 1/2, counts 1/2, precision 1/2
  assert oracle.r_sem(spec, _chain(*objs)) == pytest.approx(0.5)


def test_object_outcomes_say_what_became_of_each_object_asked_for():
  spec = prompts.parse_prompt("a red circle and a blue square", "color")
  box, other = (100, 100, 300, 300), (600, 600, 800, 800)
  outcomes = lambda *objs: oracle.object_outcomes(spec, objs)
  assert outcomes(_obj("circle", "red", box), _obj("square", "blue", other)) == dict(
      read=2, shape_misread=0, attribute_misread=0, missing=0)
  # Green circle: the red circle's shape in another colour; blue star: the blue square's colour, another shape.
  assert outcomes(_obj("circle", "green", box), _obj("star", "blue", other)) == dict(
      read=0, shape_misread=1, attribute_misread=1, missing=0)
  # One-to-one, misread shapes first: a lone blue circle is the square drawn round; the red circle is missing.
  assert outcomes(_obj("circle", "blue", box)) == dict(read=0, shape_misread=1, attribute_misread=0, missing=1)
  assert outcomes() == dict(read=0, shape_misread=0, attribute_misread=0, missing=2)
  striped = prompts.parse_prompt("a striped red circle", "texture")
  assert oracle.object_outcomes(striped, [_obj("circle", "red", box, "dotted")])["attribute_misread"] == 1
  assert oracle.object_outcomes(striped, [_obj("star", "red", box, "striped")])["shape_misread"] == 1
  three = prompts.parse_prompt("three purple circles", "numeracy")
  objs = [_obj("circle", "purple", box), _obj("circle", "purple", other), _obj("square", "purple", box),
          _obj("circle", "green", other)]
  assert oracle.object_outcomes(three, objs) == dict(read=2, shape_misread=1, attribute_misread=0, missing=0)
  assert oracle.check_objects(three, objs).binding == pytest.approx(2 / 3)  # "read" is what binding counts


def test_wrong_count():
  spec = prompts.parse_prompt("three purple circles", "numeracy")
  four = [_obj("circle", "purple", (100 + 300 * i, 100 + 500 * j, 300 + 300 * i, 300 + 500 * j))
          for j in range(2) for i in range(2)]
  two = four[:2]
  assert oracle.category_score(spec, two) == 0.0
  assert oracle.category_score(spec, four) == 0.0
  assert oracle.category_score(spec, four[:3]) == 1.0
  assert oracle.r_pi(spec, two) == pytest.approx((2 / 3 + 0 + 1) / 3)
  assert oracle.r_pi(spec, four) == pytest.approx((1 + 0 + 3 / 4) / 3)


def test_complex_is_the_mean_of_binding_relation_and_count():
  spec = prompts.parse_prompt("a striped red circle above a blue square and two green stars",
                              "complex")
  objs = [_obj("circle", "red", (100, 100, 300, 300), "dotted"),   # wrong texture
          _obj("square", "blue", (100, 600, 300, 800)),
          _obj("star", "green", (600, 100, 800, 300)), _obj("star", "green", (600, 600, 800, 800))]
  # binding 3/4; the relation has no striped red circle: 0; counts 2 of 3 groups right.
  assert oracle.category_score(spec, objs) == pytest.approx((3 / 4 + 0 + 2 / 3) / 3)


def test_r_sem_completeness_and_faithfulness():
  circle = _obj("circle", "red", (0, 0, 100, 100))
  square = _obj("square", "blue", (500, 0, 600, 99))
  extra = _obj("star", "green", (0, 500, 100, 600))
  assert oracle.r_sem(RED_CIRCLE_LEFT, _chain(circle, square, extra)) == pytest.approx(
      (1 + 2 / 3) / 2)
  assert oracle.r_sem(RED_CIRCLE_LEFT, _chain(circle)) == pytest.approx((1 / 2 + 1) / 2)
  malformed = _chain(circle, square) + " <|obj_start|>green star<|obj_end|> <|box_start|>(1,2)"
  assert oracle.r_sem(RED_CIRCLE_LEFT, malformed) == pytest.approx((1 + 2 / 3) / 2)
  assert oracle.r_sem(RED_CIRCLE_LEFT, "no boxes at all") == 0.0


def test_r_ri_is_the_mean_matched_iou():
  chain = _chain(_obj("circle", "red", (0, 0, 100, 100)),
                 _obj("square", "blue", (500, 0, 600, 100)))
  found = [_obj("circle", "red", (50, 0, 150, 100))]
  assert oracle.r_ri(chain, found) == pytest.approx((50 * 100 / (150 * 100) + 0) / 2)
  # Names must agree: a striped red circle is not the planned (solid) red circle.
  assert oracle.r_ri(chain, [_obj("circle", "red", (0, 0, 100, 100), "striped")]) == 0.0
  # One-to-one: two planned circles cannot both claim one detection.
  two = _chain(_obj("circle", "red", (0, 0, 100, 100)), _obj("circle", "red", (0, 0, 100, 100)))
  assert oracle.r_ri(two, [_obj("circle", "red", (0, 0, 100, 100))]) == pytest.approx(0.5)
  assert oracle.r_ri("", found) == 0.0
  # Names are read, not compared as strings: "solid red circle" is the detected "red circle".
  solid = "<|obj_start|>solid red circle<|obj_end|> <|box_start|>(50,0),(150,100)<|box_end|>"
  assert oracle.r_ri(solid, found) == 1.0
  # A name that is no ShapesWorld object cannot be found: it scores 0 in the mean.
  ball = solid + " <|obj_start|>red ball<|obj_end|> <|box_start|>(0,0),(9,9)<|box_end|>"
  assert oracle.r_ri(ball, found) == 0.5
  # Neither can a malformed span: breaking an object's box does not drop it from the mean.
  broken = solid + " <|obj_start|>blue square<|obj_end|> <|box_start|>(500,0)<|box_end|>"
  assert oracle.r_ri(broken, found) == 0.5


def test_rewards_read_from_a_rendered_image_with_a_mistake():
  # The plan is right; the image draws the square on the wrong side.
  planned = Scene((_obj("circle", "red", (100, 400, 300, 600)),
                   _obj("square", "blue", (600, 400, 800, 600))))
  drawn = Scene((_obj("circle", "red", (600, 400, 800, 600)),
                 _obj("square", "blue", (100, 400, 300, 600))))
  rewards = oracle.oracle_rewards(RED_CIRCLE_LEFT, chains.scene_chain(planned),
                                  render.render_scene(drawn))
  assert rewards["r_sem"] == rewards["r_spa"] == 1.0
  assert rewards["r_ri"] == 0.0  # the planned boxes and the drawn boxes do not overlap
  assert rewards["t2i_score"] == 0.0
  assert rewards["r_pi"] == pytest.approx(0.75)
