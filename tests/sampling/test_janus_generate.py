"""The compiled GoT-R1 procedure (sampling/janus_generate.py) against transformers' own procedure.

The reference runs GoT-R1's infer.py steps with transformers' JanusForConditionalGeneration built
from the same tiny random weights, one prompt at a time: `generate` in text mode (greedy, stop on
`<begin_of_image>`, capped, `<begin_of_image>` appended when capped), then `generate` in image mode
(greedy, CFG 5, the unconditional row padded except BOS and `<begin_of_image>`), then the VQ decode.
Ours runs every prompt and sample in one left-padded, bucketed batch.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
import transformers

from gotr1_jax import config_lib, parallel
from gotr1_jax.convert import janus as convert
from gotr1_jax.data.shapes_world.tokenizer import load_tokenizer
from gotr1_jax.models.janus import JanusPolicy
from gotr1_jax.models.vq import VQConfig, VQModel
from gotr1_jax.sampling import janus_generate as jg
from tests.models.test_janus import state_numpy

CAP = 10  # chain cap of the tests (GoT-R1: 600)
CFG = 5.0
PROMPTS = ["a red circle left of a blue square", "two green triangles",
           "a striped yellow star above a small purple circle next to a dotted orange square"]
PIXEL_ATOL = 2  # uint8 levels: fp32 decoders may round a value near a level boundary differently


def tiny_hf_janus_for(tokenizer, seed: int = 0) -> transformers.JanusForConditionalGeneration:
  """A tiny random JanusForConditionalGeneration whose vocabulary holds `tokenizer`; a 4x4 image
  grid over a 64-code VQ. Larger init than the default so greedy decoding does not collapse."""
  vq = VQConfig.tiny()
  grid = vq.num_patches
  config = transformers.JanusConfig(
      tie_word_embeddings=False,
      text_config=dict(model_type="llama", vocab_size=512, hidden_size=32, intermediate_size=64,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                       rope_theta=10000.0, max_position_embeddings=512, tie_word_embeddings=False,
                       initializer_range=0.2),
      vision_config=dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=grid * 4,
                         patch_size=4, mlp_ratio=2.0, projection_dim=32, depth=2, num_image_tokens=grid ** 2),
      vq_config=dict(embed_dim=vq.embed_dim, num_embeddings=vq.num_embeddings,
                     latent_channels=vq.latent_channels, base_channels=vq.base_channels,
                     channel_multiplier=list(vq.channel_multiplier), num_res_blocks=vq.num_res_blocks,
                     projection_dim=32, image_token_embed_dim=32, num_hidden_layers=2, initializer_range=0.2))
  assert len(tokenizer) <= config.text_config.vocab_size
  torch.manual_seed(seed)
  return transformers.JanusForConditionalGeneration(config).eval().float()


def write_tiny_policy(directory) -> convert.JanusConfig:
  """A tiny random policy (ShapesWorld tokenizer, 4x4 image grid) saved as a Flax directory with its
  tokenizer files, as tools/convert.py would leave it; returns its config."""
  tokenizer = load_tokenizer()
  ref = tiny_hf_janus_for(tokenizer)
  cfg = convert.config_from_json(ref.config.to_dict(), with_vision=False)
  params, vq_params = convert.state_to_params(state_numpy(ref), cfg, convert.TRANSFORMERS)
  convert.save_flax_janus(directory, cfg, params, vq_params)
  tokenizer.save_pretrained(directory)  # tokenizer.json + tokenizer_config.json (BOS, pad)
  return cfg


def flax_from_hf(ref, tokenizer, config: jg.JanusGenerationConfig):
  """Our policy, VQ and generator on the reference's weights (through convert/janus.py)."""
  cfg = convert.config_from_json(ref.config.to_dict(), with_vision=False)
  params, vq_params = convert.state_to_params(state_numpy(ref), cfg, convert.TRANSFORMERS)
  gen = jg.JanusGenerator(JanusPolicy(cfg), VQModel(cfg.vq), tokenizer, config)
  return gen, params, vq_params


def reference_procedure(ref, prompt_ids: list[int], ids: jg.SpecialIds, cap: int, cfg_weight: float):
  """GoT-R1's procedure with transformers' generate: (chain ids, image tokens, uint8 image)."""
  prompt = torch.tensor([prompt_ids])
  with torch.no_grad():
    out = ref.generate(prompt, attention_mask=torch.ones_like(prompt), generation_mode="text",
                       do_sample=False, max_new_tokens=cap, eos_token_id=ids.image_start, pad_token_id=ids.pad)
    chain = out[0, len(prompt_ids):].tolist()
    if chain[-1] != ids.image_start:
      chain.append(ids.image_start)
    full = torch.tensor([prompt_ids + chain])
    ref.generation_config.generation_kwargs = {"boi_token_id": ids.image_start}
    image = ref.generate(full, attention_mask=torch.ones_like(full), generation_mode="image",
                         do_sample=False, guidance_scale=cfg_weight, bos_token_id=ids.bos, pad_token_id=ids.pad)
    pixels = ref.decode_image_tokens(image).numpy()
  return chain, image[0].numpy(), np.clip((pixels[0] + 1) / 2 * 255, 0, 255).astype(np.uint8)


def make_one_prompt_stop(ref, tokenizer, ids: jg.SpecialIds) -> None:
  """Swaps two lm_head rows so that PROMPTS[0]'s greedy chain emits <begin_of_image> at step 3
  while PROMPTS[1]'s chain never sees either token (it hits the cap): both endings are tested."""
  config = jg.JanusGenerationConfig(max_chain_tokens=CAP, greedy_text=True)
  trajectories = []
  for p in PROMPTS[:2]:
    prompt = torch.tensor([tokenizer(jg.format_prompt(p, config.template))["input_ids"]])
    with torch.no_grad():
      out = ref.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=CAP,
                         eos_token_id=ids.image_start, pad_token_id=ids.pad)
    trajectories.append(out[0, prompt.shape[1]:].tolist())
  target = trajectories[0][3]
  assert target not in trajectories[0][:3] and target not in trajectories[1] and ids.image_start not in trajectories[1]
  with torch.no_grad():
    w = ref.lm_head.weight
    w[[target, ids.image_start]] = w[[ids.image_start, target]].clone()


@pytest.fixture(scope="module")
def setup():
  tokenizer = load_tokenizer()
  ref = tiny_hf_janus_for(tokenizer)
  config = jg.JanusGenerationConfig(max_chain_tokens=CAP, cfg_weight=CFG, greedy_text=True, greedy_image=True,
                                    prompt_buckets=(32, 48), image_prompt_buckets=(48, 64), decode_batch_size=4)
  make_one_prompt_stop(ref, tokenizer, jg.prepare_tokenizer(tokenizer, config))
  gen, params, vq_params = flax_from_hf(ref, tokenizer, config)
  return ref, gen, params, vq_params


def test_greedy_chain_and_cfg_image_equal_transformers_procedure(setup):
  ref, gen, params, vq_params = setup
  batch = gen.generate_batch(params, vq_params, PROMPTS, jax.random.key(0), num_samples=2)
  assert len(batch.prompts) == 6 and batch.prompts[:2] == [PROMPTS[0]] * 2
  assert batch.image_tokens.shape == (6, 16) and batch.images.shape == (6, 16, 16, 3)
  for row, prompt_ids in enumerate(batch.prompt_ids):
    chain, image_tokens, image = reference_procedure(ref, prompt_ids, gen.ids, CAP, CFG)
    assert batch.chain_ids[row] == chain, row
    np.testing.assert_array_equal(batch.image_tokens[row], image_tokens)
    assert np.max(np.abs(batch.images[row].astype(int) - image.astype(int))) <= PIXEL_ATOL
  # Prompt 0 stopped on a sampled <begin_of_image> at step 3; prompt 1 hit the cap.
  assert len(batch.chain_ids[0]) == 4 and not batch.chain_capped[0]
  assert len(batch.chain_ids[2]) == CAP + 1 and batch.chain_capped[2]
  assert batch.chain_logps[2][-1] == 0.0  # the appended <begin_of_image> was not sampled
  assert batch.chains[0] == gen.tokenizer.decode(batch.chain_ids[0][:-1])


def test_one_compile_per_bucket(setup):
  _, gen, params, vq_params = setup
  config = dataclasses.replace(gen.config, greedy_text=False, greedy_image=False, cfg_weight=CFG)
  fresh = jg.JanusGenerator(gen.policy, gen.vq_model, gen.tokenizer, config)
  short = ["a red circle", "a blue square", "two stars", "one big green triangle"]  # all in bucket 32
  for i in range(2):
    fresh.generate_batch(params, vq_params, short[2 * i:2 * i + 2], jax.random.key(i), num_samples=2)
  assert (fresh.text_sampler.num_traces, fresh.image_sampler.num_traces) == (1, 1)
  samples = fresh.generate(params, vq_params, [PROMPTS[2]], 4, jax.random.key(3))  # prompt bucket 48
  assert fresh.text_sampler.num_traces == 2
  assert len(samples) == 4 and all(s.image.dtype == np.uint8 for s in samples)
  assert all(s.image_tokens.max() < 64 and len(s.image_logps) == 16 for s in samples)


def test_sampling_over_a_data_mesh_draws_what_one_device_draws(setup):
  """tools/evaluate.py samples under parallel.batch_mesh (the batch spread over the devices that
  divide it): the same chains and image codes as on one device, the logps and pixels to fp32 noise."""
  _, gen, params, vq_params = setup
  config = dataclasses.replace(gen.config, greedy_text=False, greedy_image=False)
  prompts = ["a red circle", "a blue square", "two stars", "one big green triangle"]
  one = jg.JanusGenerator(gen.policy, gen.vq_model, gen.tokenizer, config).generate_batch(
      params, vq_params, prompts, jax.random.key(5), num_samples=3)
  mesh = parallel.batch_mesh(len(prompts) * 3)
  assert mesh.shape["data"] == 6  # 12 rows over 6 of the 8 test devices
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(parallel.logical_rules(config_lib.LOGICAL_AXIS_RULES)):
    spread = jg.JanusGenerator(gen.policy, gen.vq_model, gen.tokenizer, config).generate_batch(
        params, vq_params, prompts, jax.random.key(5), num_samples=3)
  assert spread.chain_ids == one.chain_ids
  np.testing.assert_array_equal(spread.image_tokens, one.image_tokens)
  np.testing.assert_allclose(spread.image_logps, one.image_logps, rtol=1e-5, atol=1e-5)
  assert np.max(np.abs(spread.images.astype(int) - one.images.astype(int))) <= PIXEL_ATOL


def test_unconditional_rows_keep_only_bos_and_image_start():
  assert jg.unconditional_rows([[1, 9, 8, 7, 4], [1, 4]], pad_id=0) == [[1, 0, 0, 0, 4], [1, 4]]


def test_config_errors_name_the_fix(setup):
  with pytest.raises(ValueError, match="add a bucket >= 291"):
    jg.JanusGenerationConfig(max_chain_tokens=34, prompt_buckets=(256,), image_prompt_buckets=(256,))
  with pytest.raises(ValueError, match="unknown fields.*cfg"):
    jg.JanusGenerationConfig.from_dict({"cfg": 3.0})
  tokenizer = load_tokenizer()
  with pytest.raises(ValueError, match="no pad token"):
    jg.prepare_tokenizer(tokenizer, jg.JanusGenerationConfig(pad_token="<nope>"))
  _, gen, _, _ = setup
  with pytest.raises(ValueError, match="longer than the largest bucket"):
    gen.sample_chains(None, [[1] * 100], jax.random.key(0))


def test_loading_a_deepseek_layout_tokenizer_prints_no_warning():
  # The shipped policy's config.json is DeepSeek's layout (model_type "multi_modality"), which
  # AutoTokenizer reads and transformers warns about; only the tokenizer files are used. transformers'
  # loggers do not propagate and their stream is bound at import, so listen on the logger itself.
  import logging
  from gotr1_jax.pretrain.shipped import checkpoint_dir
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  logger = logging.getLogger("transformers.configuration_utils")
  logger.addHandler(handler)
  try:
    tokenizer = jg.load_tokenizer(str(checkpoint_dir("policy")))
  finally:
    logger.removeHandler(handler)
  assert tokenizer.decode(tokenizer("a red circle").input_ids, skip_special_tokens=True) == "a red circle"
  assert not [r.getMessage() for r in records if "model of type" in r.getMessage()]
