"""eval/localisation_probe.py: each answer is the cell holding the square's centre, chance is the
answers' entropy, and a short run of a tiny judge config trains on the digit alone."""
from __future__ import annotations

import math

import numpy as np
import pytest

from configs.shapes_pretrain import get_config
from gotr1_jax.eval import localisation_probe as lp


@pytest.mark.parametrize("axis", lp.POSITION_AXES)
def test_answer_is_the_cell_of_the_squares_centre(axis):
  rng = np.random.default_rng(0)
  seen = set()
  for _ in range(200):
    example, index, pick = lp.probe_example(rng, 56, 8, axis)
    assert pick == 1.0  # one square: finding it is answering
    ys, xs = np.nonzero((example.image != lp.BACKGROUND).any(-1))
    centre = (xs.min() + xs.max() + 1) // 2 if axis == "column" else (ys.min() + ys.max() + 1) // 2
    assert index == centre // 8 and example.answer == str(index)
    assert example.text == lp.question(axis)
    seen.add(index)
  assert seen == set(range(7))


def test_chance_is_the_answers_entropy_and_top_share():
  loss, acc = lp.chance(np.arange(7).repeat(3), 7)
  assert loss == pytest.approx(math.log(7)) and acc == pytest.approx(1 / 7)
  loss, acc = lp.chance(np.array([2, 2, 2, 5]), 7)
  assert loss == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))) and acc == 0.75


def test_bad_axis_names_the_choices():
  with pytest.raises(ValueError, match="column"):
    lp.probe_example(np.random.default_rng(0), 56, 8, "diagonal")


def _tiny_judge(batch_size: int):
  """The judge config the probe defaults to (the plain recipe), its model small enough to train a few
  steps in seconds."""
  judge = get_config("judge=plain").judge
  judge.model.lm.update(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2, num_kv_heads=1)
  judge.model.vision.update(depth=2, hidden_size=16, intermediate_size=32, num_heads=2, fullatt_block_indexes=(1,),
                            out_hidden_size=32)
  judge.batch_size = batch_size
  return judge


def test_short_run_scores_the_digit_only():
  judge = _tiny_judge(batch_size=4)
  logged = []
  rows = lp.run_probe(judge, 2, log_every=1, on_log=logged.append)
  assert rows == logged and [r["step"] for r in rows] == [1, 2]
  vocab = len(lp.probe_tokenizer("column"))
  for r in rows:
    # An untrained model spreads the digit over the whole vocabulary; with <|im_end|> scored too
    # the mean would fall toward 0 (it is one fixed token), and accuracy would be at least 1/2.
    assert 0.6 * math.log(vocab) < r["loss"] < 1.5 * math.log(vocab)
    assert r["acc"] in (0.0, 0.25, 0.5, 0.75, 1.0) and r["acc"] <= 0.5
    assert 0.0 < r["chance_loss"] <= math.log(4) and 0.25 <= r["chance_acc"] <= 1.0


def test_filler_moves_the_answer_away_from_the_image_and_changes_nothing_else():
  plain, _, _ = lp.probe_example(np.random.default_rng(3), 56, 8, "column")
  lengths = set()
  rng = np.random.default_rng(3)
  for _ in range(40):
    example, i, _ = lp.probe_example(rng, 56, 8, "column", max_filler=3)
    lengths.add(example.text.count(lp.FILLER))
    assert example.text.replace(lp.FILLER, "") == plain.text and example.answer == str(i)
  assert lengths == {0, 1, 2, 3}


def test_distractors_are_other_colours_and_the_question_names_the_target():
  rng = np.random.default_rng(5)
  for _ in range(50):
    example, index, _ = lp.probe_example(rng, 56, 8, "row", distractors=2)
    colour = next(c for c in lp.COLOURS if f"the {c} square" in example.text)
    ys, xs = np.nonzero((example.image == lp.COLOURS[colour]).all(-1))
    # the target is drawn last, so it is a whole square, and the answer is its centre's row
    assert (ys.max() - ys.min()) == (xs.max() - xs.min()) and len(ys) == (ys.max() - ys.min() + 1) ** 2
    assert index == (ys.min() + ys.max() + 1) // 2 // 8
    others = {tuple(p) for p in example.image.reshape(-1, 3).tolist()} - {(lp.BACKGROUND,) * 3, lp.COLOURS[colour]}
    assert len(others) <= 2 and others <= set(lp.COLOURS.values())
  with pytest.raises(ValueError, match="one colour per square"):
    lp.probe_example(rng, 56, 8, "row", distractors=len(lp.COLOURS))
  # without distractors the stream is the one the README's rows were measured on
  rng = np.random.default_rng(0)
  plain = [lp.probe_example(rng, 56, 8, "column") for _ in range(8)]
  assert [d.answer for d in plain] == [4, 0, 5, 4, 3, 5, 5, 4]
  assert plain[0][0].text == lp.question("column") == "Which column of the image holds the square? Answer one digit."


def test_schedules_give_the_distractors_per_batch():
  rng = np.random.default_rng(0)
  assert [lp.distractor_count("fixed", 2, s, 9, rng) for s in range(9)] == [2] * 9
  assert [lp.distractor_count("staged", 2, s, 9, rng) for s in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
  mixed = [lp.distractor_count("mixed", 2, s, 300, rng) for s in range(300)]
  assert set(mixed) == {0, 1, 2} and all(80 < mixed.count(n) < 120 for n in (0, 1, 2))
  with pytest.raises(ValueError, match="staged"):
    lp.distractor_count("random", 2, 0, 9, rng)


def test_named_question_without_distractors_names_the_only_square():
  example, _, _ = lp.probe_example(np.random.default_rng(1), 56, 8, "column", named=True)
  colour = next(c for c in lp.COLOURS if f"the {c} square" in example.text)
  assert ((example.image == lp.COLOURS[colour]).all(-1)).any()
  assert {tuple(p) for p in example.image.reshape(-1, 3).tolist()} == {(lp.BACKGROUND,) * 3, lp.COLOURS[colour]}


def test_staged_run_reports_accuracy_with_the_most_distractors_once_they_come():
  judge = _tiny_judge(batch_size=2)
  rows = lp.run_probe(judge, 4, log_every=2, distractors=1, schedule="staged")
  # steps 1-2 have no distractor, steps 3-4 one; each row's acc_most is over its own batches only
  assert rows[0]["acc_most"] is None and rows[1]["acc_most"] in (0.0, 0.25, 0.5, 0.75, 1.0)
  with pytest.raises(ValueError, match="mixed"):
    lp.run_probe(judge, 1, distractors=1, schedule="curriculum")


def test_the_default_tokenizer_has_a_token_per_colour_word_as_the_judges_does():
  from gotr1_jax.data.qwen_chat import render_chat
  for vocab, whole in ((400, True), (300, False)):
    tokenizer = lp.probe_tokenizer("column", images_first=False, named=True, vocab_size=vocab)
    for colour in lp.COLOURS:
      ids = tokenizer(render_chat(None, lp.question("column", 0, colour), 1, False))["input_ids"]
      assert (f" {colour}" in [tokenizer.decode([i]) for i in ids]) == whole


def test_pick_is_the_share_of_squares_in_the_targets_cell():
  # A model that finds both squares and picks one at random is right when it picks the target, or
  # the other square lies in the same column: 0.58 on average with one other square, 0.44 with two.
  for distractors, mean in ((1, 0.58), (2, 0.44)):
    rng = np.random.default_rng(0)
    draws = [lp.probe_example(rng, 56, 8, "column", distractors=distractors) for _ in range(3000)]
    assert {d.pick for d in draws} <= {k / (distractors + 1) for k in range(1, distractors + 2)}
    assert np.mean([d.pick for d in draws]) == pytest.approx(mean, abs=0.015)


def test_present_names_a_drawn_colour_half_the_time():
  rng = np.random.default_rng(0)
  answers = []
  for _ in range(400):
    example, answer, pick = lp.probe_example(rng, 56, 8, "present", distractors=1)
    colour = next(c for c in lp.COLOURS if f"a {c} square" in example.text)
    drawn = {c for c, rgb in lp.COLOURS.items() if (example.image == rgb).all(-1).any()}
    assert len(drawn) <= 2 and (colour in drawn) == (answer == 1) and example.answer == str(answer)
    assert example.text == lp.question("present", 0, colour) and pick == 0.5
    answers.append(answer)
  assert 0.45 < np.mean(answers) < 0.55
  with pytest.raises(ValueError, match="left over"):
    lp.probe_example(rng, 56, 8, "present", distractors=len(lp.COLOURS) - 1)


def test_short_present_run_reports_the_pick_chance():
  rows = lp.run_probe(_tiny_judge(batch_size=4), 2, axis="present", log_every=2, distractors=1)
  assert rows[0]["pick_most"] == 0.5 and rows[0]["chance_acc"] >= 0.5 and rows[0]["acc_most"] is not None


def test_naming_examples_answer_the_lone_squares_colour():
  rng = np.random.default_rng(2)
  for _ in range(20):
    example = lp.naming_example(rng, 56, 8)
    drawn = {c for c, rgb in lp.COLOURS.items() if (example.image == rgb).all(-1).any()}
    assert drawn == {example.answer} and example.text == lp.NAMING_QUESTION


def test_naming_aux_run_alternates_batches_and_reports_both():
  judge = _tiny_judge(batch_size=2)
  rows = lp.run_probe(judge, 5, axis="present", log_every=2, aux="naming")
  # steps 0, 2, 4 name a colour; 1, 3 ask the probe; the last row (step 5) holds a naming batch only
  assert [r["acc_aux"] is not None for r in rows] == [True, True, True]
  assert [r["acc"] is not None for r in rows] == [True, True, False] and rows[2]["chance_acc"] is None
  tokenizer = lp.probe_tokenizer("present", named=True, aux="naming")
  assert all(tokenizer.decode(tokenizer(c)["input_ids"]) == c for c in lp.COLOURS)
  with pytest.raises(ValueError, match="naming"):
    lp.run_probe(judge, 1, aux="captions")
