"""The Qwen2.5-VL generator (sampling/qwen_vl.py) against transformers' processor + `generate` (greedy) on
the same tiny weights: prompts, answers token for token on a batch with images, buckets and chunks,
the rewards Generator protocol end to end, and loading from a converted checkpoint."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gotr1_jax.convert import qwen_vl as convert
from gotr1_jax.data.chain import Obj, format_chain
from gotr1_jax.data.qwen_chat import ENDOFTEXT, IM_END, user_messages
from gotr1_jax.models.qwen_image_processing import image_processor
from gotr1_jax.models.qwen_vl import QwenVL
from gotr1_jax.rewards.config import reward_defaults
from gotr1_jax.rewards.judge import JudgeRequest, JudgeRewardModel, RewardBatch
from gotr1_jax.sampling.qwen_vl import QwenVLGenerationConfig, QwenVLGenerator, generator_from_checkpoint
from tests.models.qwen_vl_reference import (IMAGE_CONFIG, hf_processor, random_images, state_numpy, tiny_config,
                                            tiny_hf_qwen_vl, tiny_tokenizer)

CAP = 10
GENERATION = QwenVLGenerationConfig(prompt_buckets=(64, 128), row_buckets=(2, 4), patch_buckets=(64, 128, 256))
IMAGES = random_images(0, [(24, 40), (40, 16), (32, 32), (16, 48), (48, 48)])
# Five user turns, so that they run as a chunk of 4 rows and a chunk of 1 (filled to 2): two images
# of different sizes, text only, one image, one image, text only.
QUESTIONS = [("Where is the red cube? Answer with JSON only.", [IMAGES[0], IMAGES[1]]),
             ("Rate the plan from 0 to 10.", None),
             ("Rate the image from 0 to 10.", IMAGES[2]),
             ("Locate the cat.", IMAGES[3]),
             ('Answer {"score": 7}.', None)]


def as_list(images) -> list:
  return [] if images is None else images if isinstance(images, list) else [images]


def reference_generate(ref, tokenizer, questions, max_new_tokens, stop_ids, pad_id, images_first=True):
  """transformers' processor (chat template, left padding) + greedy generate, batched: new ids per row."""
  proc = hf_processor(tiny_config(), tokenizer)
  texts = [proc.apply_chat_template(user_messages(q, len(as_list(im)), images_first), add_generation_prompt=True,
                                    tokenize=False)
           for q, im in questions]
  images = [x for _, im in questions for x in as_list(im)]
  inputs = proc(text=texts, images=images, padding=True, padding_side="left", return_tensors="pt")
  with torch.no_grad():
    out = ref.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=list(stop_ids),
                       pad_token_id=pad_id)
  prompts = [row[mask.bool()].tolist() for row, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
  new = []
  for row in out[:, inputs["input_ids"].shape[1]:].tolist():
    stop = next((i for i, t in enumerate(row) if t in stop_ids), None)
    new.append(row if stop is None else row[:stop + 1])
  return prompts, new


def make_row_zero_stop(ref, tokenizer, stop_ids, pad_id):
  """Swaps two lm_head rows so that row 0's greedy answer emits <|im_end|> at step 3, while row 1
  never meets either token and runs to the cap: both endings are tested."""
  _, answers = reference_generate(ref, tokenizer, QUESTIONS, CAP, stop_ids, pad_id)
  target, im_end = answers[0][3], tokenizer.convert_tokens_to_ids(IM_END)
  assert target not in answers[0][:3] and target not in answers[1] and all(len(a) == CAP for a in answers)
  with torch.no_grad():
    w = ref.lm_head.weight
    w[[target, im_end]] = w[[im_end, target]].clone()


@pytest.fixture(scope="module")
def setup():
  cfg, tokenizer = tiny_config(), tiny_tokenizer()
  ref = tiny_hf_qwen_vl(cfg, seed=0)
  stop_ids = tuple(tokenizer.convert_tokens_to_ids(t) for t in (IM_END, ENDOFTEXT))
  make_row_zero_stop(ref, tokenizer, stop_ids, tokenizer.pad_token_id)
  params = convert.state_to_params(state_numpy(ref), cfg)
  gen = QwenVLGenerator(QwenVL(cfg), params, tokenizer, GENERATION, IMAGE_CONFIG)
  return ref, gen


def test_greedy_answers_equal_transformers_generate(setup):
  ref, gen = setup
  rows = [gen.prompt_row(q, im) for q, im in QUESTIONS]
  prompts, want = reference_generate(ref, gen.tokenizer, QUESTIONS, CAP, gen.stop_ids, gen.pad_id)
  # The same prompts as the processor: chat template through the tokenizer, one pad per merged token.
  assert [r.ids for r in rows] == prompts
  assert [len(r.grid_thw) for r in rows] == [2, 0, 1, 1, 0]
  got = gen.generate_ids(rows, CAP)
  assert got == want
  assert len(got[0]) == 4 and got[0][-1] == gen.stop_ids[0]  # stopped on <|im_end|> at step 3
  assert len(got[1]) == CAP  # ran to the cap
  texts = gen.generate([q for q, _ in QUESTIONS], [im for _, im in QUESTIONS], CAP)
  # Answers are cut before the stop token; other special tokens stay (Qwen2-VL's box format needs them).
  assert texts == [gen.tokenizer.decode([t for t in w if t not in gen.stop_ids]) for w in want]
  assert gen.decode(gen.tokenizer("<|box_start|>(1,2),(3,4)<|box_end|><|im_end|>junk")["input_ids"]) == \
      "<|box_start|>(1,2),(3,4)<|box_end|>"
  # 5 rows in chunks of at most 4: [4 rows] and [1 row + its copy], both in prompt bucket 128.
  assert gen.num_traces == 2


def test_text_before_the_image_equals_transformers_generate(setup):
  ref, gen = setup
  config = dataclasses.replace(GENERATION, images_first=False)
  text_first = QwenVLGenerator(gen.model, gen.params, gen.tokenizer, config, IMAGE_CONFIG)
  questions = QUESTIONS[:4]
  rows = [text_first.prompt_row(q, im) for q, im in questions]
  prompts, want = reference_generate(ref, gen.tokenizer, questions, CAP, gen.stop_ids, gen.pad_id, images_first=False)
  assert [r.ids for r in rows] == prompts
  assert rows[2].ids != gen.prompt_row(*questions[2]).ids and rows[1].ids == gen.prompt_row(*questions[1]).ids
  assert text_first.generate_ids(rows, CAP) == want


def test_one_compile_per_bucket(setup):
  _, gen = setup
  fresh = QwenVLGenerator(gen.model, gen.params, gen.tokenizer, GENERATION, IMAGE_CONFIG)
  more = random_images(5, [(32, 24), (16, 16), (40, 40)])
  fresh.generate(["Describe it.", "Is it red?", "Count the shapes."], more, 4)
  fresh.generate(["A longer question about the picture?", "Why?", "What colour?"], more[::-1], 4)
  assert fresh.num_traces == 1  # same row bucket (4), prompt bucket (128) and patch bucket (128)
  fresh.generate(["No image here.", "Nor here."], None, 4)
  assert fresh.num_traces == 2  # text only: no tower, its own trace


def test_generator_protocol_and_judge_rewards(setup):
  _, gen = setup
  requests = [JudgeRequest("Rate the plan.", None, 3, "r_sem"), JudgeRequest("Rate it.", IMAGES[2], 5, "r_pi"),
              JudgeRequest("Locate the cat.", IMAGES[3], 3, "r_ri"),
              JudgeRequest("Rate it.", IMAGES[4], 5, "r_pi")]
  answers = gen(requests)
  assert len(answers) == 4 and all(isinstance(a, str) for a in answers)
  assert {3, 5} <= set(gen.samplers)  # one sampler per answer bound
  assert [answers[0], answers[2]] == gen.generate(["Rate the plan.", "Locate the cat."], [None, IMAGES[3]], 3)
  assert [answers[1], answers[3]] == gen.generate(["Rate it.", "Rate it."], [IMAGES[2], IMAGES[4]], 5)
  # GoT-R1's judge rewards with this generator: the random judge's answers are unreadable, so every
  # component scores 0 and each failure is counted (nothing crashes).
  config = reward_defaults()
  config.judge_size_multiple = 8  # the tiny tower's patch 4 x merge 2
  config.max_answer_tokens = dict(r_sem=4, r_spa=4, r_ri=4, r_pi=4)
  config.canvas.width = config.canvas.height = 32
  long_prompts = dataclasses.replace(GENERATION, prompt_buckets=(128, 512))  # R_sem's question is ~320 tokens
  judge = JudgeRewardModel(QwenVLGenerator(gen.model, gen.params, gen.tokenizer, long_prompts, IMAGE_CONFIG),
                           (32, 32), config)
  chains = [format_chain([Obj("red cube", (100, 100, 400, 400))]), "no boxes"]
  batch = RewardBatch(prompts=["a red cube", "a red cube"], chains=chains,
                      images=np.stack(random_images(3, [(40, 40), (40, 40)])), group_size=2)
  out = judge.score(batch)
  assert out["reward"].shape == (2,) and np.all(out["reward"] == 0)
  assert out["parse_fail/r_sem"] == 2 and out["parse_fail/r_pi"] == 2 and out["chain/no_boxes"] == 1


def test_overlong_reward_requests_score_zero_and_are_counted(setup):
  # A drifted policy can write a chain whose judge question outgrows every prompt bucket; the
  # rewards' entry points answer it as unreadable instead of stopping the run (generate raises:
  # test_errors_name_the_fix).
  _, gen = setup
  fresh = QwenVLGenerator(gen.model, gen.params, gen.tokenizer, GENERATION, IMAGE_CONFIG)
  long_text = "word " * 200  # > 128 tokens, the largest bucket
  answers = fresh([JudgeRequest("Rate it.", IMAGES[2], 5, "r_pi"), JudgeRequest(long_text, None, 5, "r_sem"),
                   JudgeRequest("Rate the plan.", None, 5, "r_sem")])
  assert answers[1] is None and fresh.num_overlong == 1
  assert [answers[0], answers[2]] == gen.generate(["Rate it.", "Rate the plan."], [IMAGES[2], None], 5)
  probs = fresh.next_token_probs(["Rate it.", long_text], [IMAGES[2], None], ['{"score": ', '{"score": '],
                                 tuple("0123456789"))
  assert fresh.num_overlong == 2 and np.all(probs[1] == 0) and probs[0].sum() > 0
  np.testing.assert_array_equal(probs[0], fresh.next_token_probs(["Rate it."], [IMAGES[2]], ['{"score": '],
                                                                 tuple("0123456789"))[0])
  # Through the judge rewards: at GoT-R1's wording all four questions outgrow 128 tokens here; each
  # scores 0 and is counted as unreadable.
  config = reward_defaults()
  config.judge_size_multiple = 8
  config.max_answer_tokens = dict(r_sem=4, r_spa=4, r_ri=4, r_pi=4)
  config.canvas.width = config.canvas.height = 32
  judge = JudgeRewardModel(fresh, (32, 32), config)
  batch = RewardBatch(prompts=["a red cube"], chains=[format_chain([Obj("red cube", (100, 100, 400, 400))])],
                      images=np.stack(random_images(3, [(40, 40)])), group_size=1)
  out = judge.score(batch)
  assert fresh.num_overlong == 2 + 4 and out["reward"][0] == 0
  assert out["parse_fail/r_sem"] == out["parse_fail/r_spa"] == out["parse_fail/r_ri"] == out["parse_fail/r_pi"] == 1


def test_next_token_probs_equal_transformers_softmax(setup):
  ref, gen = setup
  questions, prefixes = QUESTIONS[:4], ['{"score": ', '{"score": 1', "", '{"score": ']
  candidates = tuple("0123456789}")
  got = gen.next_token_probs([q for q, _ in questions], [im for _, im in questions], prefixes, candidates)
  proc = hf_processor(tiny_config(), gen.tokenizer)
  ids = [gen.tokenizer.convert_tokens_to_ids(c) for c in candidates]
  for (q, im), prefix, row in zip(questions, prefixes, got):
    text = proc.apply_chat_template(user_messages(q, len(as_list(im))), add_generation_prompt=True,
                                    tokenize=False) + prefix
    inputs = proc(text=[text], images=as_list(im) or None, return_tensors="pt")
    with torch.no_grad():
      logits = ref(**inputs).logits[0, -1].double()
    want = torch.softmax(logits, -1)[ids].numpy()
    np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-6)  # fp32 forward, same weights
  assert got.shape == (4, 11) and np.all(got.sum(-1) <= 1 + 1e-6)
  with pytest.raises(ValueError, match="single tokens only"):
    gen.next_token_probs(["hi"], [None], [""], ["score 10"])


def test_generator_from_a_converted_checkpoint(setup, tmp_path):
  ref, gen = setup
  ref.save_pretrained(tmp_path / "hf")
  gen.tokenizer.save_pretrained(tmp_path / "hf")
  image_processor(IMAGE_CONFIG, gen.model.config.vision).save_pretrained(tmp_path / "hf")
  convert.to_flax(tmp_path / "hf", tmp_path / "flax")
  fields = dict(prompt_buckets=[64, 128], row_buckets=[2, 4], patch_buckets=[64, 128, 256])
  from_hf = generator_from_checkpoint(tmp_path / "hf", fields)
  loaded = generator_from_checkpoint(tmp_path / "flax", fields)
  for g in (from_hf, loaded):
    assert (g.image_config.min_pixels, g.image_config.max_pixels) == (64, 64 * 64)  # preprocessor_config.json
    assert g.tokenizer.chat_template == gen.tokenizer.chat_template and g.stop_ids == gen.stop_ids
  assert from_hf.model.config == loaded.model.config == gen.model.config
  questions, images = [q for q, _ in QUESTIONS[:3]], [im for _, im in QUESTIONS[:3]]
  assert loaded.generate(questions, images, CAP) == gen.generate(questions, images, CAP)


def test_errors_name_the_fix(setup):
  _, gen = setup
  with pytest.raises(ValueError, match="uint8"):
    gen.generate(["hi"], [IMAGES[0].astype(np.float32)], 4)
  with pytest.raises(ValueError, match="one entry"):
    gen.generate(["hi", "there"], [None], 4)
  with pytest.raises(ValueError, match="longer than the largest bucket"):
    gen.generate(["word " * 200], None, 4)
  one_bucket = dataclasses.replace(GENERATION, patch_buckets=(64,))
  small = QwenVLGenerator(gen.model, gen.params, gen.tokenizer, one_bucket, IMAGE_CONFIG)
  with pytest.raises(ValueError, match="100 patches, more than the largest bucket"):
    small.generate(["big"], [IMAGES[4][:40, :40]], 4)  # 10 x 10 patches
  cfg = dataclasses.replace(gen.model.config, image_token_id=11)  # <|vision_pad|> in this tokenizer
  with pytest.raises(ValueError, match="tokenizer's <\\|image_pad\\|> is id 12 but the model expects 11"):
    QwenVLGenerator(QwenVL(cfg), gen.params, gen.tokenizer, GENERATION, IMAGE_CONFIG)
  with pytest.raises(ValueError, match="unknown fields.*max_tokens"):
    QwenVLGenerationConfig.from_dict({"max_tokens": 3})
