"""Tests for gotr1_jax/rewards/judge.py: the judge backend end to end with a scripted generator that
answers messily, a 64-sample batch in one call per reward, and the function backend's checks.

Expected components are worked by hand from the scripted answers (tolerance 1e-6, float32 output);
the combined reward is recomputed here from GoT-R1's product formula.
"""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data.chain import Obj, format_chain, parse_chain
from gotr1_jax.rewards.canvas import draw_layout
from gotr1_jax.rewards.config import reward_defaults
from gotr1_jax.rewards.prompts import get_prompts, readable_chain
from gotr1_jax.rewards.judge import (FunctionRewardModel, JudgeRequest, JudgeRewardModel, RewardBatch,
                                     build_reward_model)

SIZE = (56, 56)  # judge image (width, height): a multiple of 28; 1 pixel = 1000/56 chain units
CUBE, BALL = Obj("red cube", (100, 100, 400, 400)), Obj("blue ball", (600, 100, 900, 400))
CAT, CAT2 = Obj("green cat", (100, 500, 400, 800)), Obj("Green Cat", (500, 500, 800, 800))
MALFORMED = "<|obj_start|>dog<|obj_end|> <|box_start|>(5,5),(1200,9)<|box_end|>"
CHAINS = [format_chain([CUBE, BALL]), format_chain([CUBE, BALL], "Cube then ball."), "A red cube and a blue ball.",
          MALFORMED + " " + format_chain([CUBE]), format_chain([CAT, CAT2]), format_chain([CAT]),
          format_chain([CAT]) + " <|obj_start|>hat", format_chain([CAT], "One cat.")]
PROMPTS = ["a red cube left of a blue ball"] * 4 + ["two green cats"] * 4


def px(box):  # [0, 1000) box -> judge pixels, as floats that convert back exactly
  return [v * SIZE[0] / 1000 for v in box]


# Scripted answers per sample (None: the kind is not asked for that sample) and what they parse to.
SEM = ['```json\n{"score": 8}\n```', "{'score': 6}", "Score: 3/10", "I cannot judge this.",
       '{"completeness": 10, "faithfulness": 8, "consistency": 9, "clarity": 9}', "7", '{"score": 11}',
       '{"score": 10} Great plan!']
SEM_WANT = [0.8, 0.6, 0.3, 0.0, 0.9, 0.7, 0.0, 1.0]
SPA = ['{"score": 10}', "score: 4", None, '{"score": 1}', '```\n{"score": 7}\n```', "garbage", "5",
       '{"score": "8/10"}']
SPA_WANT = [1.0, 3 / 9, 0.0, 0.0, 6 / 9, 0.0, 4 / 9, 7 / 9]
PI = ['{"score": 9}', "**6**", '{"score": 5}', "", '{"score": 10}', "4 out of 5", '{"rating": 2}', "n/a"]
PI_WANT = [0.9, 0.6, 0.5, 0.0, 1.0, 0.8, 0.2, 0.0]
RI = {  # (sample, object key) -> answer
    (0, "red cube"): f'[{{"bbox_2d": {px(CUBE.box)}, "label": "red cube"}}]',
    (0, "blue ball"): "[]",
    (1, "red cube"): '{"bbox": [0.1, 0.1, 0.4, 0.4]}',
    (1, "blue ball"): f'```json\n{{"bbox_2d": {px((750, 100, 900, 400))}}}\n```',  # IoU 0.5
    (3, "red cube"): "garbage",
    (4, "green cat"): f'[{{"bbox_2d": {px(CAT2.box)}}}, {{"bbox_2d": {px(CAT.box)}}}]',  # both, reversed
    (5, "green cat"): "<|box_start|>(100,500),(400,800)<|box_end|>",
    (6, "green cat"): f'```\n[{{"bbox_2d": {px(CAT.box)}}}]\n```',
    (7, "green cat"): f"The cat: {px(CAT.box)}",
}
RI_WANT = [0.5, 0.75, 0.0, 0.0, 1.0, 1.0, 0.5, 1.0]  # 6: the unfinished "hat" span scores 0


def make_batch(n=8, chains=CHAINS, prompts=PROMPTS, group_size=4):
  images = np.stack([np.full((48, 64, 3), 4 * i + 2, np.uint8) for i in range(n)])  # sample id in pixels
  return RewardBatch(prompts=list(prompts), chains=list(chains), images=images, group_size=group_size)


class ScriptedJudge:
  """Identifies each request's sample (text, canvas or image value) and answers from a script."""

  def __init__(self, batch, canvas_cfg):
    self.calls: list[list[JudgeRequest]] = []
    self.batch = batch
    # R_spa requests come in batch order over the samples that have boxes; each must carry the
    # layout of its own chain (canvases of different samples may coincide, so no lookup by image).
    self.boxed = [i for i, c in enumerate(batch.chains) if _objects(c)]
    self.canvas_cfg = canvas_cfg

  def sample_of_image(self, image):
    assert image.shape == (SIZE[1], SIZE[0], 3) and np.all(image == image[0, 0, 0])
    return (int(image[0, 0, 0]) - 2) // 4

  def __call__(self, requests):
    self.calls.append(list(requests))
    kind = requests[0].kind
    assert all(r.kind == kind for r in requests)  # one generate call per reward kind
    if kind == "r_spa":
      assert len(requests) == len(self.boxed)
      for r, i in zip(requests, self.boxed):
        np.testing.assert_array_equal(r.image, draw_layout(_objects(self.batch.chains[i]), self.canvas_cfg))
        assert f"Prompt: {self.batch.prompts[i]}\n" in r.text
      return [SPA[i] for i in self.boxed]
    return [self.answer(r) for r in requests]

  def answer(self, r):
    if r.kind == "r_sem":
      assert r.image is None
      return SEM[next(i for i, (p, c) in enumerate(zip(self.batch.prompts, self.batch.chains))
                      if f"Prompt: {p}\n" in r.text and f"Plan: {readable_chain(c)}\n" in r.text)]
    i = self.sample_of_image(r.image)
    if r.kind == "r_pi":
      return PI[i]
    return RI[(i, next(k for (j, k) in RI if j == i and f"every {k} " in r.text.lower()))]


def _objects(chain):
  return parse_chain(chain)


def test_judge_end_to_end_with_messy_answers():
  cfg = reward_defaults()
  batch = make_batch()
  judge = ScriptedJudge(batch, cfg.canvas)
  out = JudgeRewardModel(judge, SIZE, cfg).score(batch)
  assert [c[0].kind for c in judge.calls] == ["r_sem", "r_spa", "r_ri", "r_pi"]  # one call per kind
  assert [len(c) for c in judge.calls] == [8, 7, 9, 8]  # no R_spa for the boxless chain; R_RI per name
  for calls in judge.calls:
    assert all(r.max_new_tokens == cfg.max_answer_tokens[r.kind] for r in calls)
  assert all(r.image.shape == (448, 448, 3) for r in judge.calls[1])
  for key, want in (("r_sem", SEM_WANT), ("r_spa", SPA_WANT), ("r_ri", RI_WANT), ("r_pi", PI_WANT)):
    assert out[key].dtype == np.float32 and out[key].shape == (8,)
    np.testing.assert_allclose(out[key], want, atol=1e-6, err_msg=key)
  want = np.array(PI_WANT) * (np.array(SEM_WANT) + np.array(SPA_WANT)) * np.array(RI_WANT)
  np.testing.assert_allclose(out["reward"], want, atol=1e-6)
  counters = {k: v for k, v in out.items() if np.ndim(v) == 0}
  assert counters == {"parse_fail/r_sem": 2, "parse_fail/r_spa": 1, "parse_fail/r_ri": 1, "parse_fail/r_pi": 2,
                      "ri/missing_objects": 1, "chain/no_boxes": 1, "chain/malformed_spans": 2}


def test_batch_of_64_in_one_call_per_reward():
  rng = np.random.default_rng(0)
  chains, planned = [], []
  for i in range(64):
    corners = [sorted(int(v) for v in rng.choice(999, 2, replace=False)) for _ in range(rng.integers(1, 4))]
    objs = [Obj(f"thing{k}", (a, a, b, b)) for k, (a, b) in enumerate(corners)]
    planned.append({o.name: o.box for o in objs})
    chains.append(format_chain(objs))
  images = np.stack([np.full((32, 32, 3), 4 * i + 2, np.uint8) for i in range(64)])
  batch = RewardBatch(prompts=[f"prompt {i // 16}" for i in range(64)], chains=chains, images=images, group_size=16)
  calls = []

  def generate(requests):
    calls.append(len(requests))
    answers = []
    for r in requests:
      if r.kind != "r_ri":
        answers.append('{"score": 10}')
        continue
      i = (int(r.image[0, 0, 0]) - 2) // 4
      name = next(n for n in planned[i] if f"every {n} " in r.text)
      answers.append(f'[{{"bbox_2d": {[v * 56 / 1000 for v in planned[i][name]]}}}]')
    return answers

  out = JudgeRewardModel(generate, SIZE, reward_defaults()).score(batch)
  assert len(calls) == 4 and calls[0] == calls[1] == calls[3] == 64
  assert calls[2] == sum(len(p) for p in planned)
  for key in ("r_sem", "r_spa", "r_ri", "r_pi", "reward"):
    assert out[key].shape == (64,) and out[key].dtype == np.float32
  np.testing.assert_allclose(out["r_ri"], 1.0, atol=1e-6)  # exact grounding of square boxes
  np.testing.assert_allclose(out["reward"], 2.0, atol=1e-6)


def test_aesthetic_factor_and_judge_errors():
  cfg = reward_defaults()
  cfg.combine, cfg.use_aesthetic = "product_mean", True
  batch = make_batch()
  with pytest.raises(ValueError, match="aesthetic_fn"):
    JudgeRewardModel(ScriptedJudge(batch, cfg.canvas), SIZE, cfg)
  aes = np.linspace(0, 1, 8)
  out = JudgeRewardModel(ScriptedJudge(batch, cfg.canvas), SIZE, cfg, aesthetic_fn=lambda im: aes).score(batch)
  want = np.array(PI_WANT) * (np.array(SEM_WANT) + np.array(SPA_WANT)) / 2 * np.array(RI_WANT) * aes
  np.testing.assert_allclose(out["reward"], want, atol=1e-6)
  np.testing.assert_allclose(out["r_aes"], aes, atol=1e-6)
  with pytest.raises(ValueError, match="multiples"):
    JudgeRewardModel(lambda r: [], (50, 56), reward_defaults())
  with pytest.raises(ValueError, match="one answer string per request"):
    JudgeRewardModel(lambda r: ["7"], SIZE, reward_defaults()).score(batch)
  no_images = RewardBatch(PROMPTS, CHAINS, None, 4)  # a chains-only rollout (task.sample_images=False)
  asked = []
  with pytest.raises(ValueError, match="read the generated images.*sample_images=True"):
    JudgeRewardModel(lambda r: asked.append(r) or ["7"] * len(r), SIZE, reward_defaults()).score(no_images)
  assert not asked  # refused before any question


def test_reward_batch_validation():
  with pytest.raises(ValueError, match="chains"):
    make_batch(chains=CHAINS[:7])
  with pytest.raises(ValueError, match="uint8"):
    RewardBatch(PROMPTS, CHAINS, np.zeros((8, 4, 4, 3), np.float32), 4)
  with pytest.raises(ValueError, match="group_size"):
    make_batch(group_size=3)


def test_function_backend():
  batch = make_batch()
  comps = {k: np.linspace(0, 1, 8) for k in ("r_sem", "r_spa", "r_ri", "r_pi")}
  model = build_reward_model(_function_cfg(), fn=lambda b: {**comps, "oracle/misses": 3})
  out = model.score(batch)
  np.testing.assert_allclose(out["reward"], comps["r_pi"] * 2 * comps["r_sem"] * comps["r_ri"], atol=1e-6)
  assert out["reward"].dtype == np.float32 and out["oracle/misses"] == 3.0
  direct = FunctionRewardModel(lambda b: {"reward": np.arange(8.0)}).score(batch)
  np.testing.assert_array_equal(direct["reward"], np.arange(8, dtype=np.float32))
  for bad, err, match in ((lambda b: [1.0] * 8, TypeError, "dict"),
                          (lambda b: {"reward": np.ones(7)}, ValueError, r"shape \[B\]"),
                          (lambda b: {"r_pi": np.full(8, 2.0), "reward": np.ones(8)}, ValueError, r"\[0, 1\]"),
                          (lambda b: {"reward": np.full(8, np.inf)}, ValueError, "finite"),
                          (lambda b: {"r_pi": np.ones(8)}, ValueError, "no 'reward'")):
    with pytest.raises(err, match=match):
      FunctionRewardModel(bad).score(batch)
  with pytest.raises(ValueError, match="needs fn"):
    build_reward_model(_function_cfg())
  with pytest.raises(ValueError, match="generate_fn"):
    build_reward_model(reward_defaults())


def _function_cfg():
  cfg = reward_defaults()
  cfg.kind = "function"
  return cfg


def test_caption_question_grounds_every_object_from_one_answer_per_image():
  cfg = reward_defaults()
  cfg.ri_question = "caption"
  batch = make_batch()
  caption = {  # sample -> the one caption answer about its image
      0: f'[{{"bbox_2d": {px(CUBE.box)}, "label": "Red cube"}}, {{"bbox_2d": {px(CAT.box)}, "label": "green cat"}}]',
      1: f'[{{"bbox_2d": {px((750, 100, 900, 400))}, "label": "blue ball"}}]',  # the cube is not answered
      3: "garbage",
      4: f'```json\n[{{"bbox_2d": {px(CAT2.box)}, "label": "green cat"}}, {{"bbox_2d": {px(CAT.box)}, '
         f'"label": "green cat"}}]\n```',
      5: f'[{{"bbox_2d": {px(CAT.box)}, "label": "green cat"}}, {{"label": "green cat"}}]',  # one without a box
      6: "[]",
      7: f'[{{"bbox_2d": {px(CAT.box)}, "label": "blue ball"}}]',  # a box under another name grounds nothing
  }
  texts, asked = [], []

  def generate(requests):
    if requests[0].kind != "r_ri":
      return ['{"score": 5}'] * len(requests)
    texts.extend(r.text for r in requests)
    asked.extend((int(r.image[0, 0, 0]) - 2) // 4 for r in requests)
    return [caption[(int(r.image[0, 0, 0]) - 2) // 4] for r in requests]

  out = JudgeRewardModel(generate, SIZE, cfg).score(batch)
  assert asked == [0, 1, 3, 4, 5, 6, 7]  # once per image with planned objects (sample 2 has none)
  assert set(texts) == {get_prompts(cfg.prompt_version).describe()}
  # 0: cube 1, ball 0 -> 0.5; 1: ball IoU 0.5 -> 0.25; 3: unreadable, plus the malformed span -> 0;
  # 4: both cats -> 1; 5: the cat -> 1; 6: nothing -> 0, over the cat and the unfinished span; 7: 0.
  np.testing.assert_allclose(out["r_ri"], [0.5, 0.25, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0], atol=1e-6)
  assert out["parse_fail/r_ri"] == 1 and out["ri/missing_objects"] == 4  # ball of 0, cube of 1, cats of 6 and 7


def test_an_unknown_ri_question_names_the_choices():
  cfg = reward_defaults()
  cfg.ri_question = "point"
  with pytest.raises(ValueError, match=r"ri_question='point' must be one of \('ground', 'caption'\)"):
    JudgeRewardModel(lambda r: [], SIZE, cfg)
