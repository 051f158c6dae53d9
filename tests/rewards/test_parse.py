"""Tests for gotr1_jax/rewards/parse.py: messy judge answers against hand-worked expected values.

Scores are compared with abs tolerance 1e-9; boxes exactly (integers in the [0, 1000) frame,
worked by hand as round(v * 1000 / side) for pixels on a 448 x 336 image unless stated).
"""
from __future__ import annotations

import pytest

from gotr1_jax.rewards.parse import parse_box, parse_boxes, parse_labelled_boxes, parse_score

SIZE = (448, 336)  # (width, height) of the image the judge saw

# (answer, scale, minimum, expected score in [0, 1] or None = unreadable)
SCORES = [
    ('{"score": 7}', 10, 0, 0.7),
    ('```json\n{"score": 8}\n```', 10, 0, 0.8),
    ('```\n{"score": 3}\n```\nHope this helps!', 10, 0, 0.3),
    ("{'score': 6}", 10, 0, 0.6),
    ('{score: 9,}', 10, 0, 0.9),
    ('{"score": 7,}', 10, 0, 0.7),
    ('9', 10, 0, 0.9),
    ('  10\n', 10, 0, 1.0),
    ('7.5', 10, 0, 0.75),
    ('Score: 7/10', 10, 0, 0.7),
    ('Rating = 4 out of 5', 10, 0, 0.8),
    ('{"score": "8/10"}', 10, 0, 0.8),
    ('{"score": "6"}', 10, 0, 0.6),
    ('{"score": 7} The image shows 2 cats and 3 dogs.', 10, 0, 0.7),
    ('Sure! Here is my answer: {"score": 5}', 10, 0, 0.5),
    ('<think>first 3, or {"score": 2}?</think>\n{"score": 9}', 10, 0, 0.9),
    ('{"completeness": 8, "faithfulness": 9, "consistency": 10, "clarity": 9}', 10, 0, 0.9),
    ('{"result": {"score": 4}}', 10, 0, 0.4),
    ('{"Score": 6, "reason": "the dog is left, it\'s fine"}', 10, 0, 0.6),
    ('[{"score": 2}]', 10, 0, 0.2),
    ('The layout is mostly right. score: 8', 10, 1, 7 / 9),
    ('{"score": 1}', 10, 1, 0.0),
    ('{"score": 10}', 10, 1, 1.0),
    ('{"score": 0}', 10, 1, 0.0),  # 0 on a 1-10 scale is clipped to the bottom band
    ('The image shows 2 cats. {"score": 7', 10, 0, 0.7),  # truncated JSON, key pattern
    ('**8**', 10, 0, 0.8),
    ('80%', 10, 0, 0.8),
    ('{"score": true}', 10, 0, None),
    ('{"score": 85}', 10, 0, None),  # out of scale
    ('-3', 10, 0, None),
    ('garbage', 10, 0, None),
    ('', 10, 0, None),
    ('I see 2 cats and 3 dogs.', 10, 0, None),  # two numbers, no key: ambiguous
    ('{"answer": "yes"}', 10, 0, None),
    ('{"score": NaN}', 10, 0, None),
    ('<think>the score is 7', 10, 0, None),  # only an unfinished thought
    (None, 10, 0, None),
    ('{"score": 3}', 5, 0, 0.6),
]


@pytest.mark.parametrize("answer,scale,minimum,expected", SCORES)
def test_parse_score(answer, scale, minimum, expected):
  got = parse_score(answer, scale=scale, minimum=minimum)
  if expected is None:
    assert got is None
  else:
    assert got == pytest.approx(expected, abs=1e-9)


def test_parse_score_enough_cases_and_bad_scale():
  assert len(SCORES) >= 30
  with pytest.raises(ValueError, match="scale > minimum"):
    parse_score("5", scale=1, minimum=1)


# (answer, expected boxes in the [0, 1000) frame; [] = none found; None = unreadable)
BOXES = [
    ('```json\n[{"bbox_2d": [112, 84, 224, 168], "label": "cat"}]\n```', [(250, 250, 500, 500)]),
    ('[{"bbox_2d": [0, 0, 448, 336], "label": "sky"}]', [(0, 0, 999, 999)]),
    ('{"bbox_2d": [224, 168, 112, 84]}', [(250, 250, 500, 500)]),  # flipped corners
    ("[{'bbox_2d': [112, 84, 224, 168], 'label': 'cat'}, {'bbox_2d': [0, 0, 44.8, 33.6]}]",
     [(250, 250, 500, 500), (0, 0, 100, 100)]),
    ('{"x1": 112, "y1": 84, "x2": 224, "y2": 168}', [(250, 250, 500, 500)]),
    ('{"xmin": 112, "ymin": 84, "xmax": 224, "ymax": 168}', [(250, 250, 500, 500)]),
    ('{"x": 112, "y": 84, "width": 112, "height": 84}', [(250, 250, 500, 500)]),
    ('{"bbox": [[112, 84], [224, 168]]}', [(250, 250, 500, 500)]),
    ('{"objects": [{"box": [112, 84, 224, 168]}]}', [(250, 250, 500, 500)]),
    ('{"bbox": [0.25, 0.25, 0.5, 0.5]}', [(250, 250, 500, 500)]),  # normalised 0-1
    ('{"bbox": [500, 400, 900, 800]}', [(500, 400, 900, 800)]),  # beyond 448 x 336: 0-1000
    ('<|box_start|>(100,200),(300,400)<|box_end|>', [(100, 200, 300, 400)]),  # Qwen2-VL tokens
    ('The cat is at (112, 84), (224, 168).', [(250, 250, 500, 500)]),
    ('Found it: [112, 84, 224, 168] is the cat.', [(250, 250, 500, 500)]),
    ('x1=112, y1=84, x2=224, y2=168', [(250, 250, 500, 500)]),
    ('[{"bbox_2d": [112, 84, 224, 168]}, {"bbox_2d": [5', [(250, 250, 500, 500)]),  # truncated
    ('{"bbox_2d": [-10, -5, 224, 330]}', [(0, 0, 500, 982)]),  # clipped into the frame
    ('[]', []),
    ('```json\n[]\n```', []),
    ('None.', []),
    ('{"bbox_2d": null}', []),
    ('There is no cat in the image.', None),
    ('garbage', None),
    ('', None),
    (None, None),
]


@pytest.mark.parametrize("answer,expected", BOXES)
def test_parse_boxes(answer, expected):
  assert parse_boxes(answer, SIZE) == expected
  assert parse_box(answer, SIZE) == (expected[0] if expected else None)


def test_forced_frames_and_errors():
  assert parse_boxes('[100, 100, 200, 200]', SIZE, frame="norm1000") == [(100, 100, 200, 200)]
  assert parse_boxes('[100, 100, 200, 200]', SIZE, frame="pixels") == [(223, 298, 446, 595)]
  assert parse_boxes('[0, 0, 1, 1]', SIZE, frame="norm1") == [(0, 0, 999, 999)]
  # 400 > 336 would read as 0-1000 under "auto"; forced pixels clip it to the bottom edge.
  assert parse_boxes('[-10, -5, 224, 400]', SIZE, frame="pixels") == [(0, 0, 500, 999)]
  with pytest.raises(ValueError, match="box frame"):
    parse_boxes('[1, 2, 3, 4]', SIZE, frame="inches")
  with pytest.raises(ValueError, match="image_size"):
    parse_boxes('[1, 2, 3, 4]', (0, 10))


def test_random_text_never_raises_and_stays_in_range():
  """Seeded fuzz over bracket/quote/number soup: results are None or valid, never an exception."""
  import random
  rng = random.Random(0)
  pieces = list('{}[]()"\':,.-+/%0123456789 \n') + [
      "score", "bbox_2d", "x1", "<think>", "</think>", "```", "<|box_start|>", "<|box_end|>",
      "NaN", "true", "null", "out of", "1e999", "9" * 2000, "{" * 200]
  for _ in range(600):
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
    for minimum in (0, 1):
      s = parse_score(text, 10, minimum)
      assert s is None or 0.0 <= s <= 1.0
    boxes = parse_boxes(text, SIZE)
    assert boxes is None or all(0 <= b[0] <= b[2] < 1000 and 0 <= b[1] <= b[3] < 1000 for b in boxes)


def test_parse_labelled_boxes_reads_a_caption_answer():
  answer = ('```json\n[{"bbox_2d": [0, 0, 28, 14], "label": "red circle"}, {"label": "no box"},'
            ' {"bbox_2d": [28, 28, 56, 56], "label": "dotted blue star"}]\n```')
  assert parse_labelled_boxes(answer, (56, 56), frame="pixels") == [("red circle", (0, 0, 500, 250)),
                                                                    ("dotted blue star", (500, 500, 999, 999))]
  assert parse_labelled_boxes("[]", (56, 56)) == []
  assert parse_labelled_boxes("I see a red circle.", (56, 56)) is None
  assert parse_labelled_boxes(None, (56, 56)) is None
