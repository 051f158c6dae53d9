"""Parity of models/vq.py with transformers' JanusVQVAE built from the same tiny config (fp32)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import JanusVQVAE, JanusVQVAEConfig

from gotr1_jax.convert import janus_vq, table
from gotr1_jax.models.vq import CONV_AXES, VQConfig, VQModel, from_uint8, to_uint8

DECODE_ATOL = 1e-4  # max abs pixel error vs the torch decoder (pixels are about [-1, 1])
LATENT_RTOL = 1e-5  # max abs error / max abs value of the encoder latents
BATCH, SIZE = 2, 16  # 16 px images -> 4 x 4 tokens with VQConfig.tiny()


def torch_config(cfg: VQConfig) -> JanusVQVAEConfig:
  return JanusVQVAEConfig(
      embed_dim=cfg.embed_dim, num_embeddings=cfg.num_embeddings, latent_channels=cfg.latent_channels,
      in_channels=cfg.in_channels, out_channels=cfg.out_channels, base_channels=cfg.base_channels,
      channel_multiplier=list(cfg.channel_multiplier), num_res_blocks=cfg.num_res_blocks,
      dropout=cfg.dropout, num_patches=cfg.num_patches)


def nchw(x: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def nhwc(x: torch.Tensor) -> np.ndarray:
  return x.detach().permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def setup():
  """A seeded tiny torch VQ with non-trivial norms/biases and a codebook spread like its latents."""
  cfg = VQConfig.tiny(encode_l2_norm=False)  # transformers' encode: raw euclidean nearest code
  torch.manual_seed(0)
  ref = JanusVQVAE(torch_config(cfg)).eval()
  images = np.random.default_rng(0).uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype(np.float32)
  with torch.no_grad():
    for name, p in ref.named_parameters():
      if "norm" in name and name.endswith("weight"):
        p.copy_(1 + 0.3 * torch.randn_like(p))
      elif name.endswith("bias"):
        p.copy_(0.3 * torch.randn_like(p))
    z = ref.quant_conv(ref.encoder(nchw(images))).permute(0, 2, 3, 1).reshape(-1, cfg.embed_dim)
    codebook = ref.quantize.embedding.weight
    codebook.copy_(z.mean(0) + z.std(0) * torch.randn_like(codebook))
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  rules = janus_vq.vq_rules(janus_vq.TRANSFORMERS.with_prefix(""))
  params = table.torch_to_flax(state, rules)
  model = VQModel(cfg)
  table.check_structure(params, jax.eval_shape(model.init, jax.random.key(0), images)["params"])
  return cfg, ref, model, params, images


def apply(model: VQModel, params, *arrays, method, **static):
  """Jitted `model.apply` (one compile instead of op-by-op dispatch); `static` kwargs are closed over."""
  run = jax.jit(lambda p, *a: model.apply({"params": p}, *a, method=method, **static))
  return np.asarray(run(params, *arrays))


def test_decoder_pixels_match(setup):
  cfg, ref, model, params, _ = setup
  ids = np.random.default_rng(1).integers(0, cfg.num_embeddings, (BATCH, 16))
  got = apply(model, params, jnp.asarray(ids), grid=(4, 4), method=VQModel.decode_tokens)
  with torch.no_grad():
    want = nhwc(ref.decode(torch.from_numpy(ids)))
  assert got.shape == (BATCH, SIZE, SIZE, 3)
  assert np.abs(got - want).max() <= DECODE_ATOL, np.abs(got - want).max()
  assert np.abs(want).max() > 0.1  # the comparison is not between two near-zero images


def test_encoder_latents_match(setup):
  _, ref, model, params, images = setup
  with torch.no_grad():
    want_h = ref.encoder(nchw(images))
    want_z = nhwc(ref.quant_conv(want_h))
  got_h = apply(model, params, images, method=lambda m, x: m.encoder(x))
  got_z = apply(model, params, images, method=VQModel.encode_latents)
  for got, want in ((got_h, nhwc(want_h)), (got_z, want_z)):
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert rel <= LATENT_RTOL, rel


def test_token_ids_match_exactly(setup):
  cfg, ref, model, params, images = setup
  got = apply(model, params, images, method=VQModel.encode)
  with torch.no_grad():
    out = ref.encode(nchw(images))
  want = out.image_tokens.view(BATCH, -1).numpy()
  assert got.shape == (BATCH, 16) and got.dtype == np.int32
  np.testing.assert_array_equal(got, want)
  assert len(np.unique(want)) >= 8  # many distinct codes, not one dominant entry
  # The nearest code wins by >10x the fp32 rounding of |z|^2 + |e|^2 - 2z.e, so equality is
  # not luck (no near-ties).
  z = nhwc(ref.quant_conv(ref.encoder(nchw(images))).detach()).reshape(-1, cfg.embed_dim)
  codes = state_codebook(ref)
  d = np.sort(((z[:, None] - codes[None]) ** 2).sum(-1), axis=1)
  rounding = np.finfo(np.float32).eps * ((z ** 2).sum(1).max() + (codes ** 2).sum(1).max())
  assert (d[:, 1] - d[:, 0]).min() > 10 * rounding


def state_codebook(ref: JanusVQVAE) -> np.ndarray:
  return ref.quantize.embedding.weight.detach().numpy()


def test_deepseek_cosine_ids(setup):
  """encode_l2_norm=True (DeepSeek's VectorQuantizer) = argmax cosine, checked against numpy."""
  cfg, ref, _, params, images = setup
  model = VQModel(VQConfig.tiny(encode_l2_norm=True))
  got = apply(model, params, images, method=VQModel.encode).reshape(-1)
  with torch.no_grad():
    z = nhwc(ref.quant_conv(ref.encoder(nchw(images)))).reshape(-1, cfg.embed_dim)
  codes = state_codebook(ref)
  cosine = (z / np.linalg.norm(z, axis=1, keepdims=True)) @ (
      codes / np.linalg.norm(codes, axis=1, keepdims=True)).T
  np.testing.assert_array_equal(got, cosine.argmax(1))


def test_round_trip_matches_forward(setup):
  """decode_tokens(encode(x)) == JanusVQVAE.forward(x).decoded_pixel_values."""
  _, ref, model, params, images = setup
  got = apply(model, params, images, method=VQModel.__call__)
  with torch.no_grad():
    want = nhwc(ref(nchw(images)).decoded_pixel_values)
  assert np.abs(got - want).max() <= DECODE_ATOL, np.abs(got - want).max()


def test_bfloat16_compute_close_to_float32(setup):
  cfg, ref, _, params, _ = setup
  ids = np.random.default_rng(2).integers(0, cfg.num_embeddings, (BATCH, 16))
  half = apply(VQModel(VQConfig.tiny(dtype="bfloat16")), params, jnp.asarray(ids), grid=(4, 4),
               method=VQModel.decode_tokens)
  with torch.no_grad():
    want = nhwc(ref.decode(torch.from_numpy(ids)))
  assert half.dtype == np.float32
  assert np.abs(half - want).max() <= 0.1, np.abs(half - want).max()  # bf16 keeps ~3 digits


def test_decode_rejects_wrong_token_count(setup):
  _, _, model, params, _ = setup
  with pytest.raises(ValueError, match="grid"):
    model.apply({"params": params}, jnp.zeros((1, 15), jnp.int32), (4, 4),
                method=VQModel.decode_tokens)


def test_uint8_conversions():
  x = np.array([-1.5, -1.0, -0.2, 0.0, 0.3, 0.999, 1.0, 2.0], np.float32)
  want = np.clip((x + 1) / 2 * 255, 0, 255).astype(np.uint8)  # Janus' generation script
  np.testing.assert_array_equal(np.asarray(to_uint8(jnp.asarray(x))), want)
  pixels = np.arange(256, dtype=np.uint8)
  np.testing.assert_allclose(np.asarray(from_uint8(jnp.asarray(pixels))), pixels / 255 * 2 - 1,
                             atol=1e-6)


def test_params_carry_logical_axes():
  cfg = VQConfig.tiny()
  boxed = jax.eval_shape(VQModel(cfg).init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
  leaves = jax.tree.leaves(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
  assert len(leaves) > 100 and all(isinstance(x, nn.Partitioned) for x in leaves)
  specs = nn.get_partition_spec(boxed)
  assert specs["encoder"]["conv_in"]["kernel"] == jax.sharding.PartitionSpec(*CONV_AXES)
  assert specs["decoder"]["mid"]["attn_1"]["norm"]["scale"] == jax.sharding.PartitionSpec("conv_out")
  assert specs["quantize"]["embedding"] == jax.sharding.PartitionSpec("vq_codes", "vq_dim")


def test_janus_config_shapes():
  cfg = VQConfig.janus()
  assert (cfg.num_embeddings, cfg.embed_dim, cfg.downsample_factor) == (16384, 8, 16)
  assert 384 // cfg.downsample_factor == cfg.num_patches == 24
  with pytest.raises(ValueError, match="norm_groups"):
    VQConfig.tiny(base_channels=24)
  assert hash(VQConfig.tiny(channel_multiplier=[1, 2])) == hash(VQConfig.tiny(channel_multiplier=(1, 2)))


def test_batch_sharded_decode_matches_reference(setup):
  """On 8 fake devices with `batch` -> 'data', sharded decoding still matches torch."""
  cfg, ref, model, params, _ = setup
  ids = np.random.default_rng(3).integers(0, cfg.num_embeddings, (8, 16))
  decode = jax.jit(lambda p, i: model.apply({"params": p}, i, (4, 4), method=VQModel.decode_tokens))
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:8]), ("data",))
  batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules((("batch", "data"),)):
    got = decode(params, jax.device_put(jnp.asarray(ids), batch))
  with torch.no_grad():
    want = nhwc(ref.decode(torch.from_numpy(ids)))
  assert got.sharding.spec[0] == "data"
  assert np.abs(np.asarray(got) - want).max() <= DECODE_ATOL
