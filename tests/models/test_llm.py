"""Parity of gotr1_jax.models.llm with transformers LLaMA / Qwen2 / Qwen2.5-VL rotary (fp32)."""
import numpy as np
import pytest
import jax
import jax.numpy as jnp
import torch

from gotr1_jax.models import llm
from tests.models.lm_reference import lm_config_from_hf, params_from_hf, tiny_hf_model

RTOL = 1e-5  # max |ours - ref| / max |ref|, fp32


def max_rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def left_padded_batch(vocab, lengths, T, seed=0):
  rng = np.random.default_rng(seed)
  tokens = np.zeros((len(lengths), T), np.int32)
  mask = np.zeros((len(lengths), T), np.int32)
  for i, n in enumerate(lengths):
    tokens[i, T - n:] = rng.integers(3, vocab, n)
    mask[i, T - n:] = 1
  return tokens, mask


@pytest.mark.parametrize("family,tie", [("llama", False), ("qwen2", False), ("llama", True)])
def test_logits_match_transformers(family, tie):
  ref = tiny_hf_model(family, tie_word_embeddings=tie)
  cfg = lm_config_from_hf(ref.config)
  params = params_from_hf(ref, cfg)
  tokens, mask = left_padded_batch(cfg.vocab_size, [9, 6], 9)
  positions = llm.positions_from_mask(jnp.asarray(mask))
  ours = llm.DecoderLM(cfg).apply(params, tokens, mask, positions, method=llm.DecoderLM.forward)
  with torch.no_grad():
    theirs = ref(input_ids=torch.tensor(tokens, dtype=torch.long),
                 attention_mask=torch.tensor(mask), position_ids=torch.tensor(np.asarray(positions))).logits.numpy()
  valid = mask.astype(bool)
  assert max_rel_err(ours[valid], theirs[valid]) <= RTOL


def test_cached_decode_equals_full_forward():
  ref = tiny_hf_model("qwen2")
  cfg = lm_config_from_hf(ref.config)
  params = params_from_hf(ref, cfg)
  model = llm.DecoderLM(cfg)
  tokens, mask = left_padded_batch(cfg.vocab_size, [8, 5], 8, seed=1)
  full = model.apply(params, tokens, mask, method=llm.DecoderLM.forward)

  # Prefill the first 5 slots, then feed the last 3 tokens one at a time through the cache.
  P, T = 5, tokens.shape[1]
  positions = llm.positions_from_mask(jnp.asarray(mask))
  cache = llm.init_cache(cfg, 2, T)
  key_mask = jnp.zeros((2, T), jnp.int32).at[:, :P].set(mask[:, :P])
  embeds = model.apply(params, tokens[:, :P], method=llm.DecoderLM.embed)
  hidden, cache = model.apply(params, embeds, positions[:, :P], key_mask, cache, 0)
  step_logits = [model.apply(params, hidden, method=llm.DecoderLM.logits)]
  for t in range(P, T):
    key_mask = key_mask.at[:, t].set(mask[:, t])
    embeds = model.apply(params, tokens[:, t:t + 1], method=llm.DecoderLM.embed)
    hidden, cache = model.apply(params, embeds, positions[:, t:t + 1], key_mask, cache, t)
    step_logits.append(model.apply(params, hidden, method=llm.DecoderLM.logits))
  cached = jnp.concatenate(step_logits, axis=1)
  valid = mask.astype(bool)
  assert max_rel_err(cached[valid], full[valid]) <= RTOL


def test_mrope_angles_match_transformers():
  from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as q
  from transformers import Qwen2_5_VLTextConfig
  hf_cfg = Qwen2_5_VLTextConfig(hidden_size=64, num_attention_heads=2, rope_parameters={
      "rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]})
  rotary = q.Qwen2_5_VLRotaryEmbedding(hf_cfg)
  rng = np.random.default_rng(0)
  pos = rng.integers(0, 50, (3, 2, 7))
  cos_ref, sin_ref = rotary(torch.zeros(1, dtype=torch.float32), torch.tensor(pos))
  cos, sin = llm.rope_angles(jnp.asarray(pos), 32, 10000.0, (4, 6, 6))
  np.testing.assert_allclose(cos, cos_ref.numpy(), atol=1e-6)
  np.testing.assert_allclose(sin, sin_ref.numpy(), atol=1e-6)


def test_bfloat16_compute_stays_close_to_fp32():
  ref = tiny_hf_model("llama")
  cfg = lm_config_from_hf(ref.config)
  params = params_from_hf(ref, cfg)
  tokens, mask = left_padded_batch(cfg.vocab_size, [7, 7], 7, seed=2)
  f32 = llm.DecoderLM(cfg).apply(params, tokens, mask, method=llm.DecoderLM.forward)
  bf16_cfg = lm_config_from_hf(ref.config, dtype="bfloat16")
  bf16 = llm.DecoderLM(bf16_cfg).apply(params, tokens, mask, method=llm.DecoderLM.forward)
  assert bf16.dtype == jnp.float32  # logits are returned in fp32
  assert max_rel_err(bf16, f32) < 5e-2


def test_bad_config_names_the_field():
  with pytest.raises(ValueError, match="num_kv_heads"):
    llm.LMConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_layers=1, num_heads=3, num_kv_heads=2)
  with pytest.raises(ValueError, match="dtype"):
    llm.LMConfig(vocab_size=8, hidden_size=8, intermediate_size=8, num_layers=1, num_heads=2,
                 num_kv_heads=2, dtype="fp8")
