"""Qwen2.5-VL's chat format (data/qwen_chat.py): the Python rendering equals the jinja template as
transformers' processor applies it, placeholder expansion equals the processor's, and the small
tokenizer carries Qwen's special tokens."""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data import qwen_chat as qc
from gotr1_jax.models.qwen_image_processing import image_token_counts
from tests.models.qwen_vl_reference import hf_processor, random_images, tiny_config, tiny_tokenizer

TEXT = 'Where is the red cube? Answer with JSON only: {"bbox_2d": [x1, y1, x2, y2]}'


@pytest.mark.parametrize("num_images", [0, 1, 2])
def test_chat_prompt_equals_the_template_through_transformers(num_images):
  cfg = tiny_config()
  proc = hf_processor(cfg)
  rendered = proc.apply_chat_template(qc.user_messages(TEXT, num_images), add_generation_prompt=True,
                                      tokenize=False)
  assert qc.chat_prompt(TEXT, num_images) == rendered == qc.render_chat(proc.tokenizer, TEXT, num_images)
  if num_images == 1:
    assert rendered == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                        f"<|vision_start|><|image_pad|><|vision_end|>{TEXT}<|im_end|>\n<|im_start|>assistant\n")
  if num_images:  # the processor's token ids: pads expanded to each image's merged tokens
    images = random_images(1, [(24, 40), (16, 8)][:num_images])
    out = proc(text=[rendered], images=images, return_tensors="np")
    counts = image_token_counts(out["image_grid_thw"], cfg.vision)
    assert counts.tolist() == [15, 2][:num_images]
    ids = proc.tokenizer(qc.expand_image_pads(rendered, counts))["input_ids"]
    np.testing.assert_array_equal(out["input_ids"][0], ids)


@pytest.mark.parametrize("num_images", [1, 2])
def test_text_before_the_images_equals_the_template_through_transformers(num_images):
  proc = hf_processor(tiny_config())
  messages = qc.user_messages(TEXT, num_images, images_first=False)
  assert [c["type"] for c in messages[0]["content"]] == ["text"] + ["image"] * num_images
  rendered = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
  assert rendered == qc.chat_prompt(TEXT, num_images, False) == qc.render_chat(proc.tokenizer, TEXT, num_images, False)
  vision = "<|vision_start|><|image_pad|><|vision_end|>" * num_images
  assert f"<|im_start|>user\n{TEXT}{vision}<|im_end|>\n<|im_start|>assistant\n" in rendered


def test_render_chat_without_a_tokenizer_template():
  class Bare:
    chat_template = None

  assert qc.render_chat(Bare(), "hi", 1) == qc.chat_prompt("hi", 1)
  assert qc.expand_image_pads(qc.chat_prompt("x", 2), [3, 1]).count(qc.IMAGE_PAD) == 4
  with pytest.raises(ValueError, match="2 <\\|image_pad\\|> placeholders for 1 images"):
    qc.expand_image_pads(qc.chat_prompt("x", 2), [3])


def test_tokenizer_has_qwen_special_tokens():
  tok = tiny_tokenizer()
  assert len(tok) == 512
  assert [tok.convert_tokens_to_ids(t) for t in qc.SPECIAL_TOKENS] == list(range(14))
  assert (tok.eos_token, tok.pad_token, tok.chat_template) == (qc.IM_END, qc.ENDOFTEXT, qc.CHAT_TEMPLATE)
  ids = tok("<|box_start|>(120,340)<|box_end|> 2025<|im_end|>")["input_ids"]
  assert ids[0] == 5 and ids[-1] == 2  # <|box_start|> and <|im_end|> are single tokens
  digits = [t.lstrip("Ġ") for t in tok.convert_ids_to_tokens(ids) if t.lstrip("Ġ").isdigit()]
  assert digits == list("1203402025")  # one digit per token, as Qwen2.5 splits them
  assert tok.decode(ids, skip_special_tokens=True) == "(120,340) 2025"
  text = qc.chat_prompt(TEXT, 0)
  assert tok.decode(tok(text)["input_ids"]) == text
  with pytest.raises(ValueError, match="at least 300"):
    qc.build_qwen_tokenizer(["a"], vocab_size=200)
