"""Janus decode phases through the compiled sampler vs a step-by-step transformers loop (greedy)."""
from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from gotr1_jax.sampling import autoregressive as ar
from gotr1_jax.sampling.janus import janus_decode_fns
from tests.models.test_janus import IMAGE_TOKEN_ID, left_padded, ours_from_hf, tiny_hf_janus


def reference_greedy(ref, tokens, mask, steps, phase, cfg_weight=None, pixels=None):
  """Full-sequence transformers forwards, one per new token (no cache): the independent reference."""
  with torch.no_grad():
    ids = torch.tensor(tokens, dtype=torch.long)
    embeds = ref.get_input_embeddings()(ids)
    if pixels is not None:  # JanusModel.forward's placement of image features
      features = ref.model.get_image_features(torch.tensor(pixels)).pooler_output.reshape(-1, embeds.shape[-1])
      embeds = embeds.masked_scatter((ids == IMAGE_TOKEN_ID)[..., None].expand_as(embeds), features)
    mask = torch.tensor(mask)
    out = []
    for _ in range(steps):
      positions = (mask.cumsum(-1) - 1).clamp(min=0)
      hidden = ref.model.language_model(inputs_embeds=embeds, attention_mask=mask,
                                        position_ids=positions).last_hidden_state[:, -1:]
      logits = (ref.model.generation_head if phase == "image" else ref.lm_head)(hidden)[:, 0]
      if cfg_weight is not None:
        cond, uncond = logits.chunk(2)
        logits = uncond + cfg_weight * (cond - uncond)
      token = logits.argmax(-1)
      out.append(token.numpy())
      feed = torch.cat([token, token]) if cfg_weight is not None else token
      step = (ref.prepare_embeddings_for_image_generation(feed[:, None]) if phase == "image"
              else ref.get_input_embeddings()(feed[:, None]))
      embeds = torch.cat([embeds, step], 1)
      mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
  return np.stack(out, 1)


@pytest.fixture(scope="module")
def setup():
  ref = tiny_hf_janus(seed=5)
  return (ref, *ours_from_hf(ref))


def test_text_phase_greedy_matches(setup):
  ref, cfg, policy, params = setup
  tokens, mask = left_padded([[1, 20, 31, 44, 8], [1, 60, 7]], 6)
  out = ar.Sampler(janus_decode_fns(policy, "text"), ar.SamplingConfig(max_new_tokens=5, greedy=True))(
      params, tokens, mask, jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(out.tokens), reference_greedy(ref, tokens, mask, 5, "text"))


def test_image_phase_with_cfg_greedy_matches(setup):
  ref, cfg, policy, params = setup
  prompts = [[1, 20, 31, 44, 8, 3], [1, 60, 7, 3]]  # 3 stands for <begin_of_image>
  uncond = [[p[0]] + [0] * (len(p) - 2) + [p[-1]] for p in prompts]  # pad all but the first and last
  tokens, mask = left_padded(prompts + uncond, 6)
  n = cfg.num_image_tokens
  out = ar.Sampler(janus_decode_fns(policy, "image"),
                   ar.SamplingConfig(max_new_tokens=n, greedy=True, cfg_weight=5.0))(
      params, tokens, mask, jax.random.key(0))
  expected = reference_greedy(ref, tokens, mask, n, "image", cfg_weight=5.0)
  np.testing.assert_array_equal(np.asarray(out.tokens), expected)
  assert np.asarray(out.tokens).max() < cfg.image_vocab_size


def test_text_phase_reads_an_understanding_image(setup):
  ref, cfg, policy, params = setup
  n = cfg.vision.num_patches
  rows = [[1, 9] + [IMAGE_TOKEN_ID] * n + [12], [1] + [IMAGE_TOKEN_ID] * n + [40, 41]]
  tokens, mask = left_padded(rows, n + 3)
  pixels = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
  extra = {"pixels": pixels.transpose(0, 2, 3, 1), "image_slots": tokens == IMAGE_TOKEN_ID}
  out = ar.Sampler(janus_decode_fns(policy, "text"), ar.SamplingConfig(max_new_tokens=4, greedy=True))(
      params, tokens, mask, jax.random.key(0), embed_extra=extra)
  expected = reference_greedy(ref, tokens, mask, 4, "text", pixels=pixels)
  np.testing.assert_array_equal(np.asarray(out.tokens), expected)


def test_unknown_phase_is_refused(setup):
  _, _, policy, _ = setup
  with pytest.raises(ValueError, match="phase"):
    janus_decode_fns(policy, "audio")
