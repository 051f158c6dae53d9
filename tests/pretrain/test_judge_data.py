"""pretrain/judge_data.py: the judge's training answers read back, through the reward parsers, to
exactly the oracle's rewards (so a perfect judge trained on them reproduces the oracle)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gotr1_jax.data.shapes_world.prompts import CATEGORIES, load_prompts
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.pretrain import judge_data
from gotr1_jax.rewards.config import reward_defaults
from gotr1_jax.rewards.iou import box_iou
from gotr1_jax.rewards.parse import parse_boxes, parse_score
from gotr1_jax.rewards.prompts import SCORE_SCALES

SIZE = (112, 112)


@pytest.fixture(scope="module")
def reward():
  r = reward_defaults()
  r.canvas.width = r.canvas.height = SIZE[0]
  return r


def test_uncorrupted_examples_get_full_marks(reward):
  rng = np.random.default_rng(0)
  for category in CATEGORIES:
    for spec in load_prompts(category, "train")[:3]:
      examples = judge_data.judge_examples(spec, rng, SIZE, reward, corrupt_p=0.0)
      kinds = [e.kind for e in examples]
      assert kinds[0] == "r_sem" and kinds[1] == "r_spa" and kinds[-1] == "r_pi" and "r_ri" in kinds
      for e in examples:
        if e.kind in ("r_ri", judge_data.CAPTION):
          assert parse_boxes(e.answer, SIZE) and e.image.shape == (*SIZE, 3)
        else:
          low, high = SCORE_SCALES[e.kind]
          assert parse_score(e.answer, scale=high, minimum=low) == 1.0, (spec.text, e.kind, e.answer)


def test_score_answers_round_trip_on_every_scale():
  for kind, (low, high) in SCORE_SCALES.items():
    for step in range(high - low + 1):
      value = step / (high - low)
      assert parse_score(judge_data.score_answer(value, kind), scale=high, minimum=low) == pytest.approx(value)


def test_grounding_answer_boxes_come_back_in_the_chain_frame():
  from gotr1_jax.data.shapes_world.world import SceneObject
  det = [SceneObject("circle", "red", "solid", (100, 200, 400, 500)),
         SceneObject("star", "blue", "solid", (0, 0, 90, 90))]
  boxes = parse_boxes(judge_data.grounding_answer("red circle", det, SIZE), SIZE)
  assert len(boxes) == 1 and box_iou(boxes[0], (100, 200, 400, 500)) > 0.97
  assert parse_boxes(judge_data.grounding_answer("green cross", det, SIZE), SIZE) == []


def test_caption_answer_names_and_boxes_every_object_left_to_right(reward):
  from gotr1_jax.data.shapes_world import detect
  from gotr1_jax.data.shapes_world.world import SceneObject
  det = [SceneObject("circle", "red", "solid", (500, 200, 800, 500)),
         SceneObject("star", "blue", "dotted", (0, 0, 90, 90))]
  answer = parse_boxes(judge_data.caption_answer(det, SIZE), SIZE)
  assert len(answer) == 2
  assert box_iou(answer[0], (0, 0, 90, 90)) > 0.9 and box_iou(answer[1], (500, 200, 800, 500)) > 0.97
  assert [e["label"] for e in json.loads(judge_data.caption_answer(det, SIZE))] == [
      "dotted blue star", "red circle"]
  # In the stream of questions it comes just before R_PI, about the same image, with every detection.
  rng = np.random.default_rng(4)
  spec = load_prompts("spatial", "train")[0]
  chain, image = judge_data.sample_pair(spec, rng, corrupt_p=0.0)
  examples = judge_data.examples_for(spec, chain, image, SIZE, reward)
  assert [e.kind for e in examples[-2:]] == [judge_data.CAPTION, "r_pi"]
  caption = examples[-2]
  np.testing.assert_array_equal(caption.image, examples[-1].image)
  labels = sorted(e["label"] for e in json.loads(caption.answer))
  assert labels == sorted(d.name for d in detect.detect_objects(image, WorldConfig())) and len(labels) >= 2


def test_naming_example_shows_one_object_and_answers_its_name():
  from gotr1_jax.data.shapes_world import detect
  world, rng = WorldConfig(), np.random.default_rng(0)
  examples = [judge_data.naming_example(rng, SIZE, world) for _ in range(24)]
  assert all(e.kind == judge_data.NAMING and e.text == judge_data.NAMING_QUESTION for e in examples)
  assert all(e.image.shape == SIZE + (3,) for e in examples)
  for e in examples:  # the answer is what the detector reads on the judge's own image
    found = detect.detect_objects(e.image, world)
    assert [d.name for d in found] == [e.answer]
  # spread 0 centres the object (same draws otherwise); 1 is the default's anywhere.
  centred = [judge_data.naming_example(np.random.default_rng(0), SIZE, world, spread=0.0) for _ in range(6)]
  for e in centred:
    (d,) = detect.detect_objects(e.image, world)
    assert all(abs((d.box[k] + d.box[k + 2]) / 2 - 500) < 40 for k in (0, 1)), d.box
  anywhere = judge_data.naming_example(np.random.default_rng(0), SIZE, world, spread=1.0)
  assert anywhere.answer == examples[0].answer and np.array_equal(anywhere.image, examples[0].image)
  words = [e.answer.split() for e in examples]
  assert len({w[-1] for w in words}) >= 4 and len({w[-2] for w in words}) >= 5  # shapes and colours vary
  # A transform that wipes the object leaves nothing to read: the rendered object's name stands.
  blank = lambda image: np.full_like(image, 255)  # noqa: E731
  e = judge_data.naming_example(np.random.default_rng(1), SIZE, world, blank, tries=2)
  assert not detect.detect_objects(e.image, world)
  assert e.answer.split()[-1] in world.shapes and e.answer.split()[-2] in world.color_names


def test_place_schedule_holds_then_ramps():
  spread = [judge_data.place_spread((10, 4), step) for step in (0, 9, 10, 11, 13, 14, 100)]
  assert spread == [0.0, 0.0, 0.0, 0.25, 0.75, 1.0, 1.0]
  assert judge_data.place_spread((), 0) == 1.0  # anywhere from the start
  assert judge_data.check_place_schedule([10, 4], "x") == (10, 4)
  for bad in ((10,), (-1, 4), (10, 0)):
    with pytest.raises(ValueError, match="my.schedule"):
      judge_data.check_place_schedule(bad, "my.schedule")


def test_corruptions_lower_the_exact_scores(reward):
  rng = np.random.default_rng(1)
  world = WorldConfig()
  specs = [s for c in ("color", "spatial", "complex") for s in load_prompts(c, "train")[:10]]
  answers = [judge_data.judge_examples(s, rng, SIZE, reward, world, corrupt_p=1.0) for s in specs]
  sem = [parse_score(ex[0].answer) for ex in answers]
  pi = [parse_score(ex[-1].answer) for ex in answers]
  assert np.mean(sem) < 0.9 and np.mean(pi) < 0.9  # corrupted chains and images lose points
  assert len(set(sem)) > 3 and len(set(pi)) > 3  # and the scores are graded, not all-or-nothing


def test_policy_pool_round_trips_and_asks_the_oracle(reward, tmp_path):
  from gotr1_jax.data.shapes_world import detect
  from gotr1_jax.data.shapes_world.oracle import r_pi, r_sem
  rng = np.random.default_rng(3)
  specs = load_prompts("spatial", "train")[:3]
  pairs = [judge_data.sample_pair(s, rng) for s in specs]
  pool = judge_data.PolicyPool([s.text for s in specs], ["spatial"] * 3, [c for c, _ in pairs],
                               np.stack([im for _, im in pairs]))
  pool.save(str(tmp_path / "pool.npz"))
  back = judge_data.PolicyPool.load(str(tmp_path / "pool.npz"))
  assert back.prompts == pool.prompts and back.chains == pool.chains and len(back) == 3
  np.testing.assert_array_equal(back.images, pool.images)
  # Its questions carry the oracle's answers for that very chain and image.
  examples = back.examples(1, SIZE, reward)
  by_kind = {e.kind: e for e in examples}
  # (answers are whole points on the 0-10 scale)
  assert parse_score(by_kind["r_sem"].answer, 10) == pytest.approx(r_sem(specs[1], pool.chains[1]), abs=0.05)
  want_pi = r_pi(specs[1], detect.detect_objects(pool.images[1]))
  assert parse_score(by_kind["r_pi"].answer, 10) == pytest.approx(want_pi, abs=0.05)
  again = judge_data.examples_for(specs[1], pool.chains[1], pool.images[1], SIZE, reward)
  assert [(e.kind, e.text, e.answer) for e in examples] == [(e.kind, e.text, e.answer) for e in again]
  with pytest.raises(ValueError, match="same positive number"):
    judge_data.PolicyPool(["a"], [], ["c"], pool.images[:1])
  with pytest.raises(FileNotFoundError, match="make_judge_pool.py"):
    judge_data.PolicyPool.load(str(tmp_path / "missing.npz"))


def test_layout_contrast_examples_differ_only_in_where_the_boxes_are(reward):
  """About half are the true layout (top score), half the same boxes swapped between two objects,
  which breaks a two-object spatial prompt's relation (that part scores 0: 2 of 3 checks hold)."""
  rng = np.random.default_rng(0)
  spec = load_prompts("spatial", "train")[0]
  examples = [judge_data.layout_contrast_example(spec, rng, reward) for _ in range(40)]
  assert {e.kind for e in examples} == {"r_spa"} and all(e.image.shape == (*SIZE, 3) for e in examples)
  scores = [parse_score(e.answer, scale=10, minimum=1) for e in examples]
  assert set(np.round(scores, 3)) == {1.0, round(2 / 3, 3)}
  assert 10 <= sum(s == 1.0 for s in scores) <= 30


def test_layout_pairs_are_groups_of_two_the_oracle_ranks():
  """Each pair: one prompt, the same image, the true layout's chain first (R_spa 1) and the swapped
  one second (R_spa below 1); names are the same, only the boxes moved."""
  from gotr1_jax.data.chain import parse_chain
  from gotr1_jax.data.shapes_world.oracle import r_spa
  from gotr1_jax.data.shapes_world.prompts import parse_prompt
  specs = load_prompts("spatial", "val")[:12] + load_prompts("color", "val")[:4]  # colour prompts: no relation, skipped
  pool = judge_data.layout_pairs(specs, np.random.default_rng(0))
  assert 16 <= len(pool) <= 24 and set(pool.categories) == {"spatial"}
  for a in range(0, len(pool), 2):
    assert pool.prompts[a] == pool.prompts[a + 1] and np.array_equal(pool.images[a], pool.images[a + 1])
    spec = parse_prompt(pool.prompts[a], "spatial")
    assert r_spa(spec, pool.chains[a]) == 1.0 > r_spa(spec, pool.chains[a + 1])
    true, swapped = parse_chain(pool.chains[a]), parse_chain(pool.chains[a + 1])
    assert [o.name for o in true] == [o.name for o in swapped] and [o.box for o in true] != [o.box for o in swapped]
