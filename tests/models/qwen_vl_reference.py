"""Shared Qwen2.5-VL test fixtures: the tiny config, transformers' model built from it with seeded
random weights, a tokenizer with Qwen's chat tokens, and transformers' processor for that tokenizer."""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch
import transformers
from transformers import Qwen2_5_VLProcessor

from configs.models import qwen2_5_vl_tiny
from gotr1_jax.convert import qwen_vl as convert
from gotr1_jax.data.qwen_chat import CHAT_TEMPLATE, build_qwen_tokenizer
from gotr1_jax.models.qwen_image_processing import QwenImageConfig, image_processor
from gotr1_jax.models.qwen_vl import QwenVLConfig, qwen_vl_config_from_dict
from gotr1_jax.rewards.prompts import get_prompts

# The tiny tower has patch 4 and merge 2: images are resized to multiples of 8 px; these bounds keep
# the test images (multiples of 8, at most 48 x 48) at their own size.
IMAGE_CONFIG = QwenImageConfig(min_pixels=8 * 8, max_pixels=64 * 64)


def tiny_config(**lm_overrides) -> QwenVLConfig:
  cfg = qwen_vl_config_from_dict(qwen2_5_vl_tiny.get_config())
  return dataclasses.replace(cfg, lm=dataclasses.replace(cfg.lm, **lm_overrides))


def tiny_hf_qwen_vl(cfg: QwenVLConfig | None = None,
                    seed: int = 0) -> transformers.Qwen2_5_VLForConditionalGeneration:
  """transformers' model of `cfg` (default: the tiny config) with seeded weights large enough that
  greedy decoding does not collapse: norms near 1, every other tensor (biases too) 0.2 * N(0, 1)."""
  cfg = cfg or tiny_config()
  torch.manual_seed(seed)
  model = transformers.Qwen2_5_VLForConditionalGeneration(convert.config_to_hf(cfg)).eval().float()
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=gen)
      p.copy_(1 + 0.1 * noise if ("norm" in name or "ln_q" in name) else 0.2 * noise)
  return model


def state_numpy(model) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
  """A 512-token byte-level BPE with Qwen's special tokens at 0..13 (the tiny config's ids),
  trained on the judge's questions."""
  p = get_prompts("v1")
  chain = "<|obj_start|>red cube<|obj_end|> <|box_start|>(120,340),(560,780)<|box_end|>"
  prompts = ["a red cube left of a blue ball", "two green cats above a dog", "a striped star"]
  texts = [f(q) for q in prompts for f in (p.spa, p.pi, p.ri)] + [p.sem(q, chain) for q in prompts]
  texts += ['{"score": 7}', '[{"bbox_2d": [12, 30, 200, 310], "label": "cat"}]']
  return build_qwen_tokenizer(texts * 2)


class ImageOnlyProcessor(Qwen2_5_VLProcessor):
  """transformers' Qwen2_5_VLProcessor without its video half (whose class needs torchvision)."""

  def check_argument_for_proper_class(self, argument_name, argument):
    return None if argument is None else super().check_argument_for_proper_class(argument_name, argument)


def hf_processor(cfg: QwenVLConfig, tokenizer=None, image_config: QwenImageConfig = IMAGE_CONFIG):
  return ImageOnlyProcessor(image_processor=image_processor(image_config, cfg.vision),
                            tokenizer=tokenizer or tiny_tokenizer(), video_processor=None,
                            chat_template=CHAT_TEMPLATE)


def random_images(seed: int, sizes) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
