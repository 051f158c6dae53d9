"""The compiled sampler: greedy parity with transformers, one trace per bucket, logps, CFG, filters."""
import dataclasses

import numpy as np
import pytest
import jax
import jax.numpy as jnp
import torch

from gotr1_jax.models import llm
from gotr1_jax.sampling import autoregressive as ar
from gotr1_jax.sampling.buckets import pad_to_bucket
from gotr1_jax.sampling.text import lm_decode_fns
from tests.models.lm_reference import lm_config_from_hf, params_from_hf, tiny_hf_model


def _setup(family):
  ref = tiny_hf_model(family)
  cfg = lm_config_from_hf(ref.config)
  return ref, llm.DecoderLM(cfg), params_from_hf(ref, cfg)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_greedy_equals_transformers_generate(family):
  ref, model, params = _setup(family)
  prompts = [[5, 17, 33, 8, 61, 22], [40, 9, 71]]
  tokens, mask = pad_to_bucket(prompts, (8, 16), pad_id=0)
  sampler = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(max_new_tokens=12, greedy=True))
  out = sampler(params, tokens, mask, jax.random.PRNGKey(0))
  with torch.no_grad():
    hf = ref.generate(input_ids=torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(mask),
                      max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=0)
  np.testing.assert_array_equal(np.asarray(out.tokens), hf[:, tokens.shape[1]:].numpy())
  np.testing.assert_array_equal(np.asarray(out.lengths), [12, 12])


def test_one_trace_for_two_prompt_lengths_in_a_bucket():
  _, model, params = _setup("llama")
  sampler = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(max_new_tokens=4, temperature=1.0))
  for prompts in ([[5, 6, 7], [8, 9]], [[5, 6, 7, 10, 11, 12, 13], [1]]):
    tokens, mask = pad_to_bucket(prompts, (8,), pad_id=0)
    sampler(params, tokens, mask, jax.random.PRNGKey(1))
  assert sampler.num_traces == 1
  tokens, mask = pad_to_bucket([[1] * 12, [2]], (8, 16), pad_id=0)  # a new bucket compiles once more
  sampler(params, tokens, mask, jax.random.PRNGKey(1))
  assert sampler.num_traces == 2


def test_sampled_logps_equal_policy_logps_at_temperature_one():
  _, model, params = _setup("qwen2")
  tokens, mask = pad_to_bucket([[5, 6, 7, 3], [8, 9]], (4,), pad_id=0)
  out = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(max_new_tokens=6))(
      params, tokens, mask, jax.random.PRNGKey(3))
  full = jnp.concatenate([tokens, out.tokens], axis=1)
  full_mask = jnp.ones_like(full).at[:, :4].set(mask)
  logits = model.apply(params, full, full_mask, method=llm.DecoderLM.forward)
  logp = jax.nn.log_softmax(logits[:, 3:-1], axis=-1)
  ref = jnp.take_along_axis(logp, out.tokens[..., None], axis=-1)[..., 0]
  np.testing.assert_allclose(out.logps, ref, atol=2e-5)


def test_stop_tokens_finish_rows_and_pad_after():
  _, model, params = _setup("llama")
  tokens, mask = pad_to_bucket([[5, 6, 7], [8, 9, 10]], (4,), pad_id=0)
  greedy = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(max_new_tokens=8, greedy=True))
  free = greedy(params, tokens, mask, jax.random.PRNGKey(0))
  stop = int(free.tokens[0, 2])  # the third greedy token of row 0 becomes a stop token
  stopped = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(
      max_new_tokens=8, greedy=True, stop_tokens=(stop,), pad_id=0))(params, tokens, mask, jax.random.PRNGKey(0))
  first = int(np.argmax(np.asarray(free.tokens[0]) == stop))
  assert int(stopped.lengths[0]) == first + 1 and bool(stopped.finished[0])
  np.testing.assert_array_equal(stopped.tokens[0, :first + 1], free.tokens[0, :first + 1])
  assert np.all(np.asarray(stopped.tokens[0, first + 1:]) == 0)
  assert np.all(np.asarray(stopped.logps[0, first + 1:]) == 0)


def test_filters_match_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 20)).astype(np.float32)
  cfg = ar.SamplingConfig(max_new_tokens=1, temperature=0.7, top_k=5, top_p=0.8, allowed_vocab=(2, 18))
  ours = np.asarray(ar.filter_logits(jnp.asarray(logits), cfg))
  for row, got in zip(logits, ours):
    x = np.full(20, -np.inf); x[2:18] = row[2:18]
    x = x / 0.7
    x[x < np.sort(x)[-5]] = -np.inf
    order = np.argsort(-x); p = np.exp(x[order] - x[order][0]); p /= p.sum()
    keep = order[: int(np.searchsorted(np.cumsum(p), 0.8) + 1)]
    expect_kept = np.zeros(20, bool); expect_kept[keep] = True
    np.testing.assert_array_equal(got > -1e29, expect_kept)
    np.testing.assert_allclose(got[expect_kept], x[expect_kept], rtol=1e-6)


def test_classifier_free_guidance_formula_and_pairing():
  logits = jnp.asarray(np.random.default_rng(1).normal(size=(4, 10)), jnp.float32)
  cfg = ar.SamplingConfig(max_new_tokens=1, cfg_weight=5.0)
  np.testing.assert_allclose(ar.guided_logits(logits, cfg), logits[2:] + 5.0 * (logits[:2] - logits[2:]), rtol=1e-6)

  _, model, params = _setup("llama")
  cond, mask = pad_to_bucket([[5, 6, 7], [8, 9]], (4,), pad_id=0)
  uncond = np.where(mask > 0, 0, cond)
  sampler = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(max_new_tokens=3, greedy=True, cfg_weight=1.0))
  out = sampler(params, np.concatenate([cond, uncond]), np.concatenate([mask, mask]), jax.random.PRNGKey(0))
  plain = ar.Sampler(lm_decode_fns(model), ar.SamplingConfig(max_new_tokens=3, greedy=True))(
      params, cond, mask, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out.tokens, plain.tokens)  # w = 1 is the conditional model
  with pytest.raises(ValueError, match="even"):
    sampler(params, cond[:1], mask[:1], jax.random.PRNGKey(0))


def test_cache_windows():
  assert ar.cache_windows(160, 0) == (160,)
  assert ar.cache_windows(160, 48) == (48, 96, 144, 160)
  assert ar.cache_windows(64, 64) == (64,)
  with pytest.raises(ValueError, match="cache_block"):
    ar.SamplingConfig(max_new_tokens=4, cache_block=-1)


@pytest.mark.parametrize("cfg_weight", [None, 3.0])
def test_growing_cache_samples_what_one_full_cache_samples(cfg_weight):
  """Decoding in blocks of 3 slots draws the same tokens as one loop over the whole cache, with
  log-probs equal to 1e-6 (rows stop at different lengths, so later blocks run with finished rows)."""
  _, model, params = _setup("qwen2")
  prompts = [[5, 6, 7, 3], [8, 9], [11, 12, 13], [4]]
  tokens, mask = pad_to_bucket(prompts, (4,), pad_id=0)
  if cfg_weight:
    tokens, mask = np.concatenate([tokens, np.where(mask > 0, 0, tokens)]), np.concatenate([mask, mask])
  free = ar.SamplingConfig(max_new_tokens=10, cfg_weight=cfg_weight)
  drawn = np.asarray(ar.Sampler(lm_decode_fns(model), free)(params, tokens, mask, jax.random.PRNGKey(4)).tokens)
  # Two of the tokens drawn (row 0's second, row 2's fifth) become stop tokens.
  whole = dataclasses.replace(free, stop_tokens=(int(drawn[0, 1]), int(drawn[2, 4])), pad_id=0)
  outs = [ar.Sampler(lm_decode_fns(model), c)(params, tokens, mask, jax.random.PRNGKey(4))
          for c in (whole, dataclasses.replace(whole, cache_block=3))]
  assert len(set(np.asarray(outs[0].lengths).tolist())) > 1  # rows end at different steps
  for name in ("tokens", "lengths", "finished"):
    np.testing.assert_array_equal(getattr(outs[1], name), getattr(outs[0], name))
  np.testing.assert_allclose(outs[1].logps, outs[0].logps, rtol=0, atol=1e-6)
