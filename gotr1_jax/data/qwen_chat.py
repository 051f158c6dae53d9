"""Qwen2.5-VL's chat format: its special tokens, its chat template, and a small tokenizer that has them.

Owns the text side of one Qwen2-VL / Qwen2.5-VL user turn: the special token names, the chat
template (the jinja that ships with the Instruct checkpoints, and `chat_prompt`, the same rendering
in Python for a tokenizer without one), expanding each image's `<|image_pad|>` into one placeholder
per merged vision token (the processor's step), and `build_qwen_tokenizer`, a small byte-level BPE
with Qwen's special tokens (tests, ShapesWorld's tiny judge). It runs no model and does not touch
pixels (models/qwen_image_processing.py).
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from gotr1_jax.data.chain import BOX_END, BOX_START

ENDOFTEXT = "<|endoftext|>"  # Qwen's pad token (and EOS of its base models)
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # a turn; the Instruct models stop on <|im_end|>
VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"  # one per merged vision token
# Qwen2.5's special tokens in their vocabulary order (ids 151643..151656 in the real tokenizer).
SPECIAL_TOKENS: tuple[str, ...] = (
    ENDOFTEXT, IM_START, IM_END, "<|object_ref_start|>", "<|object_ref_end|>", BOX_START, BOX_END,
    "<|quad_start|>", "<|quad_end|>", VISION_START, VISION_END, "<|vision_pad|>", IMAGE_PAD, VIDEO_PAD)
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

# The chat template of Qwen2-VL-*-Instruct and Qwen2.5-VL-*-Instruct (tokenizer_config.json /
# chat_template.json), verbatim.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in "
    "messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful "
    "assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string "
    "%}{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}{% if "
    "content['type'] == 'image' or 'image' in content or 'image_url' in content %}{% set image_count.value = "
    "image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif "
    "%}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content "
    "%}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value "
    "}}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ "
    "content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt "
    "%}<|im_start|>assistant\n{% endif %}")


def user_messages(text: str, num_images: int = 0, images_first: bool = True) -> list[dict[str, Any]]:
  """One user turn with `num_images` images before the text (Qwen's usual order), or after it."""
  images, question = [{"type": "image"}] * num_images, [{"type": "text", "text": text}]
  return [{"role": "user", "content": images + question if images_first else question + images}]


def chat_prompt(text: str, num_images: int = 0, images_first: bool = True) -> str:
  """`CHAT_TEMPLATE` rendered for `user_messages(text, num_images, images_first)` with
  add_generation_prompt: the default system turn, the user turn (one
  `<|vision_start|><|image_pad|><|vision_end|>` per image, then the text, or the text first) and
  the assistant header. Placeholders are not yet expanded."""
  images = f"{VISION_START}{IMAGE_PAD}{VISION_END}" * num_images
  turn = images + text if images_first else text + images
  return (f"{IM_START}system\n{DEFAULT_SYSTEM_PROMPT}{IM_END}\n"
          f"{IM_START}user\n{turn}{IM_END}\n{IM_START}assistant\n")


def render_chat(tokenizer: Any, text: str, num_images: int = 0, images_first: bool = True) -> str:
  """The prompt through the tokenizer's own chat template (what the checkpoint ships), or through
  `chat_prompt` when the tokenizer has none."""
  if getattr(tokenizer, "chat_template", None):
    return tokenizer.apply_chat_template(user_messages(text, num_images, images_first), tokenize=False,
                                         add_generation_prompt=True)
  return chat_prompt(text, num_images, images_first)


def expand_image_pads(prompt: str, counts: Sequence[int]) -> str:
  """The i-th `<|image_pad|>` repeated counts[i] times (merged tokens of image i), as the
  processor does before tokenizing; the number of pads must equal the number of images."""
  parts = prompt.split(IMAGE_PAD)
  if len(parts) - 1 != len(counts):
    raise ValueError(f"the prompt has {len(parts) - 1} {IMAGE_PAD} placeholders for {len(counts)} images: "
                     "render it with one image entry per image.")
  return parts[0] + "".join(IMAGE_PAD * int(n) + rest for n, rest in zip(counts, parts[1:]))


def build_qwen_tokenizer(texts: Iterable[str], vocab_size: int = 512,
                         min_frequency: int = 2) -> PreTrainedTokenizerFast:
  """A small byte-level BPE trained on `texts` with Qwen's special tokens at ids 0..13 (in
  SPECIAL_TOKENS order, so `SPECIAL_TOKENS.index(token)` is its id), digits split one per token
  as Qwen2.5 does, `CHAT_TEMPLATE` as its chat template, `<|im_end|>` as EOS and `<|endoftext|>`
  as pad. Deterministic for the same texts in the same order."""
  if vocab_size <= len(SPECIAL_TOKENS) + 256:
    raise ValueError(f"vocab_size={vocab_size} leaves no room for merges after {len(SPECIAL_TOKENS)} special "
                     "tokens and 256 bytes; use at least 300.")
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
      special_tokens=[AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(texts, trainer)
  return PreTrainedTokenizerFast(
      tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, chat_template=CHAT_TEMPLATE,
      extra_special_tokens=[t for t in SPECIAL_TOKENS if t not in (IM_END, ENDOFTEXT)],
      clean_up_tokenization_spaces=False)
