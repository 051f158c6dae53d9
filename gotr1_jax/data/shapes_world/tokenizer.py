"""The ShapesWorld text tokenizer: a small byte-level BPE trained with `tokenizers`.

Owns the corpus (prompts, the Janus prompt template, ground-truth chains), the special tokens
(Janus' BOS/EOS/pad/image tokens as special tokens, the four chain tokens as ordinary added
tokens, as Janus does) and loading as a `transformers.PreTrainedTokenizerFast`. Digits are split
one per token, so box coordinates always tokenize the same way and round-trip exactly.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Optional

import numpy as np
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from gotr1_jax.data.chain import SPECIAL_TOKENS as CHAIN_TOKENS
from gotr1_jax.data.shapes_world.chains import scene_chain
from gotr1_jax.data.shapes_world.layout import sample_scene
from gotr1_jax.data.shapes_world.prompts import PromptSpec
from gotr1_jax.data.shapes_world.world import ASSETS_DIR, WorldConfig
# The Janus prompt template belongs to the Janus procedure; the corpus uses it as is.
from gotr1_jax.sampling.janus_generate import format_prompt

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
PAD = "<pad>"
IMAGE_PLACEHOLDER = "<image_placeholder>"
IMAGE_START = "<begin_of_image>"
IMAGE_END = "<end_of_image>"
# Ids 0..5 in this order, then the BPE vocabulary, then the chain tokens.
JANUS_SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, IMAGE_PLACEHOLDER, IMAGE_START, IMAGE_END)
DEFAULT_TOKENIZER_PATH = os.path.join(ASSETS_DIR, "tokenizer.json")


@dataclasses.dataclass(frozen=True)
class TokenizerConfig:
  vocab_size: int = 512   # everything included: special, byte alphabet, merges, chain tokens
  min_frequency: int = 2  # a pair must occur this often to be merged


def tokenizer_corpus(prompts: Iterable[PromptSpec], world: WorldConfig = WorldConfig(),
                     seed: int = 0) -> list[str]:
  """Training text: each prompt in the template, followed by a ground-truth chain for it."""
  rng = np.random.default_rng(seed)
  return [format_prompt(spec.text) + " " + scene_chain(sample_scene(spec, rng, world), world)
          for spec in prompts]


def train_tokenizer(texts: Iterable[str], config: TokenizerConfig = TokenizerConfig()) -> Tokenizer:
  """Trains the byte-level BPE on `texts`; deterministic for the same texts in the same order."""
  bpe_size = config.vocab_size - len(CHAIN_TOKENS)
  if bpe_size <= len(JANUS_SPECIAL_TOKENS) + 256:
    raise ValueError(f"TokenizerConfig.vocab_size={config.vocab_size} leaves no room for merges "
                     f"after {len(JANUS_SPECIAL_TOKENS) + len(CHAIN_TOKENS)} special tokens and "
                     "256 bytes; use at least 300.")
  tok = Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.Sequence([
      pre_tokenizers.Digits(individual_digits=True),
      pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
  ])
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(
      vocab_size=bpe_size, min_frequency=config.min_frequency, show_progress=False,
      special_tokens=[AddedToken(t, special=True, normalized=False) for t in JANUS_SPECIAL_TOKENS],
      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(texts, trainer)
  # Janus adds the chain tokens as ordinary tokens: matched whole, kept when decoding.
  tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in CHAIN_TOKENS])
  tok.post_processor = processors.TemplateProcessing(
      single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
  return tok


def load_tokenizer(path: Optional[str] = None) -> PreTrainedTokenizerFast:
  """The tokenizer.json at `path` (default: the shipped one) as a transformers tokenizer."""
  path = path or DEFAULT_TOKENIZER_PATH
  if not os.path.exists(path):
    raise FileNotFoundError(f"No tokenizer at {path}; create it with "
                            "`python -m gotr1_jax.data.shapes_world.make_assets`.")
  return PreTrainedTokenizerFast(
      tokenizer_file=path, bos_token=BOS, eos_token=EOS, pad_token=PAD,
      extra_special_tokens=[IMAGE_PLACEHOLDER, IMAGE_START, IMAGE_END],
      clean_up_tokenization_spaces=False)
