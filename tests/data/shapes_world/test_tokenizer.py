"""Tokenizer: exact round trip on unseen prompts and chains, one token per digit, special ids."""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.data.chain import SPECIAL_TOKENS as CHAIN_TOKENS
from gotr1_jax.data.shapes_world import chains, layout, prompts, tokenizer
from gotr1_jax.data.shapes_world.world import WorldConfig


@pytest.fixture(scope="module")
def tok():
  return tokenizer.load_tokenizer()


def _val_texts(n=60):
  rng = np.random.default_rng(0)
  out = []
  for category in prompts.CATEGORIES:
    for spec in prompts.load_prompts(category, "val")[:n // 6]:
      chain = chains.scene_chain(layout.sample_scene(spec, rng))
      out.append(tokenizer.format_prompt(spec.text) + " " + chain)
  return out


def test_round_trip_on_val_prompts_and_chains(tok):
  for text in _val_texts():
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.bos_token_id not in ids[1:]
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    # A chain is ~4 characters a token: about 110 tokens for a 2-3 object chain and its prompt.
    assert len(text) / len(ids) > 3.2


def test_digits_are_one_token_each(tok):
  ids = tok("(202,482),(7,999)", add_special_tokens=False)["input_ids"]
  # Punctuation may merge ("),("), digits never do.
  assert tok.convert_ids_to_tokens(ids) == [
      "(", "2", "0", "2", ",", "4", "8", "2", "),(", "7", ",", "9", "9", "9", ")"]
  digit_ids = [tok.convert_tokens_to_ids(str(d)) for d in range(10)]
  assert len(set(digit_ids)) == 10


def test_special_and_chain_tokens(tok):
  assert [tok.convert_tokens_to_ids(t) for t in tokenizer.JANUS_SPECIAL_TOKENS] == list(range(6))
  assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
  chain_ids = [tok.convert_tokens_to_ids(t) for t in CHAIN_TOKENS]
  assert chain_ids == list(range(len(tok) - 4, len(tok)))
  text = "".join(CHAIN_TOKENS) + tokenizer.IMAGE_START + tokenizer.IMAGE_END
  ids = tok(text, add_special_tokens=False)["input_ids"]
  assert ids == chain_ids + [4, 5]
  # Chain tokens are ordinary text; the image tokens are special and dropped when asked.
  assert tok.decode(ids, skip_special_tokens=True) == "".join(CHAIN_TOKENS)
  assert len(tok) <= 512


def test_every_world_word_is_one_token(tok):
  world = WorldConfig()
  words = world.color_names + world.shapes + world.textures + ("left", "right", "above", "below")
  for word in words:
    assert len(tok(" " + word, add_special_tokens=False)["input_ids"]) == 1, word


def test_training_is_deterministic_and_validates_size():
  texts = _val_texts(12)
  a = tokenizer.train_tokenizer(texts, tokenizer.TokenizerConfig(vocab_size=320))
  b = tokenizer.train_tokenizer(texts, tokenizer.TokenizerConfig(vocab_size=320))
  assert a.to_str() == b.to_str() and a.get_vocab_size() <= 320
  assert a.decode(a.encode(texts[0]).ids, skip_special_tokens=False).startswith(tokenizer.BOS)
  with pytest.raises(ValueError, match="at least 300"):
    tokenizer.train_tokenizer(texts, tokenizer.TokenizerConfig(vocab_size=200))


def test_missing_tokenizer_file_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="make_assets"):
    tokenizer.load_tokenizer(str(tmp_path / "nope.json"))
