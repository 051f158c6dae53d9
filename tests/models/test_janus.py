"""Parity of models/janus.py with transformers' JanusForConditionalGeneration (fp32, tiny, random).

Text logits (lm_head), image-token logits (gen_embed -> gen_aligner in, gen_head out) and
image-understanding logits (SigLIP -> aligner at the placeholder positions) are compared with the
torch model built from the same tiny config; weights travel through convert/janus.py.
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
import transformers

from gotr1_jax import config_lib, parallel
from gotr1_jax.convert import janus as convert
from gotr1_jax.models import janus, llm
from gotr1_jax.models.vq import VQConfig

RTOL = 1e-5  # max |ours - ref| / max |ref| over valid positions, fp32
IMAGE_TOKEN_ID = 5  # <image_placeholder> in the tiny vocabulary


def max_rel_err(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def tiny_hf_janus(seed: int = 0, tie: bool = False) -> transformers.JanusForConditionalGeneration:
  """A tiny random JanusForConditionalGeneration with non-trivial norms and biases."""
  vq = VQConfig.tiny()
  config = transformers.JanusConfig(
      tie_word_embeddings=tie, image_token_id=IMAGE_TOKEN_ID,
      text_config=dict(model_type="llama", vocab_size=97, hidden_size=32, intermediate_size=48,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       rms_norm_eps=1e-6, rope_theta=10000.0, max_position_embeddings=128,
                       tie_word_embeddings=tie, pad_token_id=0),
      vision_config=dict(hidden_size=24, num_hidden_layers=2, num_attention_heads=4, image_size=16,
                         patch_size=4, mlp_ratio=2.0, projection_dim=32, depth=2),
      vq_config=dict(embed_dim=vq.embed_dim, num_embeddings=vq.num_embeddings,
                     latent_channels=vq.latent_channels, base_channels=vq.base_channels,
                     channel_multiplier=list(vq.channel_multiplier), num_res_blocks=vq.num_res_blocks,
                     projection_dim=32, image_token_embed_dim=32, num_hidden_layers=2))
  torch.manual_seed(seed)
  model = transformers.JanusForConditionalGeneration(config).eval().float()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn_like(p))
  return model


def state_numpy(model) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def ours_from_hf(model):
  cfg = convert.config_from_json(model.config.to_dict())
  params, vq_params = convert.state_to_params(state_numpy(model), cfg, convert.TRANSFORMERS)
  return cfg, janus.JanusPolicy(cfg), params


def left_padded(rows: list[list[int]], T: int) -> tuple[np.ndarray, np.ndarray]:
  tokens, mask = np.zeros((len(rows), T), np.int32), np.zeros((len(rows), T), np.int32)
  for i, r in enumerate(rows):
    tokens[i, T - len(r):], mask[i, T - len(r):] = r, 1
  return tokens, mask


def jitted(policy, method):
  return jax.jit(functools.partial(policy.apply, method=method))


@pytest.fixture(scope="module")
def setup():
  """(torch reference, our config, our jitted forward_mixed, our params)."""
  ref = tiny_hf_janus()
  cfg, policy, params = ours_from_hf(ref)
  return ref, cfg, jitted(policy, janus.JanusPolicy.forward_mixed), params


def test_config_is_read_from_transformers(setup):
  _, cfg, _, _ = setup
  lm = cfg.lm
  assert (lm.hidden_size, lm.num_layers, lm.num_kv_heads, lm.tie_embeddings) == (32, 2, 2, False)
  assert (cfg.vision.hidden_size, cfg.vision.mlp_dim, cfg.vision.num_patches) == (24, 48, 16)
  assert (cfg.image_vocab_size, cfg.image_embed_dim, cfg.image_grid, cfg.num_image_tokens) == (64, 4, 4, 16)


def test_text_logits_match(setup):
  ref, cfg, forward, params = setup
  rng = np.random.default_rng(0)
  tokens, mask = left_padded([rng.integers(6, 97, 11).tolist(), rng.integers(6, 97, 5).tolist()], 11)
  positions = np.asarray(llm.positions_from_mask(mask))
  text, _ = forward(params, tokens, np.zeros_like(mask, bool), mask)
  with torch.no_grad():
    theirs = ref(input_ids=torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(mask),
                 position_ids=torch.tensor(positions)).logits.numpy()
  valid = mask.astype(bool)
  assert max_rel_err(text[valid], theirs[valid]) <= RTOL


def mixed_batch(seed=1):
  """Rows of [text prompt | image tokens], left-padded; the second row is shorter."""
  rng = np.random.default_rng(seed)
  texts = [rng.integers(6, 97, 6), rng.integers(6, 97, 3)]
  codes = [rng.integers(0, 64, 5), rng.integers(0, 64, 5)]
  T = 11
  tokens, is_image, mask = (np.zeros((2, T), np.int32), np.zeros((2, T), bool), np.zeros((2, T), np.int32))
  for i, (t, c) in enumerate(zip(texts, codes)):
    row = np.concatenate([t, c])
    tokens[i, T - len(row):], mask[i, T - len(row):] = row, 1
    is_image[i, T - len(c):] = True
  return tokens, is_image, mask


def hf_mixed_logits(ref, tokens, is_image, mask):
  """transformers' generation path, run over a whole sequence: text embeds, then
  prepare_embeddings_for_image_generation for image codes; lm_head and generation_head on top."""
  ids = torch.tensor(tokens, dtype=torch.long)
  with torch.no_grad():
    text = ref.get_input_embeddings()(ids.clamp(max=ref.config.text_config.vocab_size - 1))
    image = ref.prepare_embeddings_for_image_generation(ids.clamp(max=ref.config.vq_config.num_embeddings - 1))
    embeds = torch.where(torch.tensor(is_image)[..., None], image, text)
    positions = torch.tensor(np.asarray(llm.positions_from_mask(mask)))
    hidden = ref.model.language_model(inputs_embeds=embeds, attention_mask=torch.tensor(mask),
                                      position_ids=positions).last_hidden_state
    return ref.lm_head(hidden).numpy(), ref.model.generation_head(hidden).numpy()


def test_image_token_logits_match(setup):
  ref, cfg, forward, params = setup
  tokens, is_image, mask = mixed_batch()
  text, image = forward(params, tokens, is_image, mask)
  theirs_text, theirs_image = hf_mixed_logits(ref, tokens, is_image, mask)
  valid = mask.astype(bool)
  assert image.shape == (2, 11, 64)
  assert max_rel_err(image[valid], theirs_image[valid]) <= RTOL
  assert max_rel_err(text[valid], theirs_text[valid]) <= RTOL


def test_mixed_logps_pick_the_target_modality_head(setup):
  ref, cfg, _, params = setup
  tokens, is_image, mask = mixed_batch(seed=2)
  logps = jitted(janus.JanusPolicy(cfg), janus.JanusPolicy.mixed_logps)(params, tokens, is_image, mask)
  theirs_text, theirs_image = hf_mixed_logits(ref, tokens, is_image, mask)
  log_softmax = lambda x: x - x.max() - np.log(np.sum(np.exp(x - x.max())))
  expected = np.zeros(logps.shape)
  for b in range(2):
    for t in range(tokens.shape[1] - 1):
      table = theirs_image if is_image[b, t + 1] else theirs_text
      expected[b, t] = log_softmax(table[b, t].astype(np.float64))[tokens[b, t + 1]]
  valid = mask[:, :-1].astype(bool) & mask[:, 1:].astype(bool)
  np.testing.assert_allclose(np.asarray(logps)[valid], expected[valid], rtol=1e-5, atol=1e-5)


def test_understanding_logits_match(setup):
  ref, cfg, forward, params = setup
  rng = np.random.default_rng(3)
  n = cfg.vision.num_patches  # one placeholder per image feature
  rows = [[1, 7, 8] + [IMAGE_TOKEN_ID] * n + [9, 10], [1] + [IMAGE_TOKEN_ID] * n + [11]]
  tokens, mask = left_padded(rows, n + 5)
  pixels = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)  # NCHW for torch
  positions = np.asarray(llm.positions_from_mask(mask))
  text, _ = forward(params, tokens, np.zeros_like(mask, bool), mask, positions, pixels.transpose(0, 2, 3, 1),
                    tokens == IMAGE_TOKEN_ID)
  with torch.no_grad():
    theirs = ref(input_ids=torch.tensor(tokens, dtype=torch.long), attention_mask=torch.tensor(mask),
                 position_ids=torch.tensor(positions), pixel_values=torch.tensor(pixels)).logits.numpy()
  valid = mask.astype(bool)
  assert max_rel_err(text[valid], theirs[valid]) <= RTOL


def test_fsdp_sharded_forward_equals_unsharded(setup):
  _, cfg, forward, params = setup
  tokens, is_image, mask = (np.tile(a, (4, 1)) for a in mixed_batch())  # 8 rows for 8 devices
  expected = forward(params, tokens, is_image, mask)
  mesh = parallel.make_mesh({"fsdp": 8})
  rules = parallel.logical_rules(config_lib.LOGICAL_AXIS_RULES)
  boxed = jax.eval_shape(functools.partial(janus.init_janus, cfg), jax.random.key(0))
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(rules):
    sharded = jax.device_put(params, parallel.logical_to_sharding(boxed, mesh, rules))
    kernel = sharded["params"]["language_model"]["layers"]["mlp"]["gate_proj"]["kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")
    got = jitted(janus.JanusPolicy(cfg), janus.JanusPolicy.forward_mixed)(sharded, tokens, is_image, mask)
  for ours, ref in zip(got, expected):
    assert max_rel_err(ours, ref) <= RTOL


def test_tied_head_uses_the_embedding():
  ref = tiny_hf_janus(seed=4, tie=True)
  cfg, policy, params = ours_from_hf(ref)
  assert cfg.lm.tie_embeddings and "lm_head" not in params["params"]["language_model"]
  tokens, mask = left_padded([[3, 14, 15, 92, 65]], 5)
  text, _ = jitted(policy, janus.JanusPolicy.forward_mixed)(params, tokens, np.zeros_like(mask, bool), mask)
  with torch.no_grad():
    theirs = ref(input_ids=torch.tensor(tokens, dtype=torch.long)).logits.numpy()
  assert max_rel_err(text, theirs) <= RTOL


def test_config_dict_round_trip_and_errors():
  cd = dict(family="janus", lm=dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_layers=2,
                                    num_heads=4, num_kv_heads=2),
            vq=dataclasses.asdict(VQConfig.tiny()), vision=None, gen_aligner_depth=2, aligner_depth=2)
  cd["vq"]["channel_multiplier"] = list(cd["vq"]["channel_multiplier"])
  cfg = janus.janus_config_from_dict(cd)
  assert cfg.vision is None and cfg.vq == VQConfig.tiny() and cfg.resolved_gen_head_dim == 32
  with pytest.raises(ValueError, match="unknown fields.*hidden"):
    janus.janus_config_from_dict(dict(cd, lm=dict(cd["lm"], hidden=3)))
  with pytest.raises(ValueError, match="vision=None"):  # raised before any param is read
    janus.JanusPolicy(cfg).apply({"params": {}}, np.zeros((1, 16, 16, 3), np.float32),
                                 method=janus.JanusPolicy.embed_understanding_image)
