"""Parity of gotr1_jax.models.siglip with transformers' JanusVisionModel (fp32, tiny random tower)."""
import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
from transformers.models.janus import configuration_janus, modeling_janus

from gotr1_jax.models import siglip

RTOL = 1e-5  # max |ours - ref| / max |ref|


def max_rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def tiny_reference(seed=0):
  torch.manual_seed(seed)
  hf = configuration_janus.JanusVisionConfig(
      hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
      mlp_ratio=2.0, layer_norm_eps=1e-6)
  model = modeling_janus.JanusVisionModel(hf).eval().float()
  with torch.no_grad():  # non-trivial norms and biases so that parity checks them
    for name, p in model.named_parameters():
      if "norm" in name or name.endswith("bias"):
        p.add_(0.1 * torch.randn_like(p))
  cfg = siglip.SigLIPConfig.tiny(hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64, image_size=32,
                                 patch_size=8)
  return model, cfg


def params_from_reference(model, cfg):
  """An independent, hand-written key map (convert/janus.py has the real table)."""
  sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  stack = lambda fmt, f=lambda a: a: np.stack([f(sd[fmt.format(i)]) for i in range(cfg.num_layers)])
  layer = "encoder.layers.{}."
  dense = lambda name: {"kernel": stack(layer + name + ".weight", np.transpose),
                        "bias": stack(layer + name + ".bias")}
  norm = lambda name: {"scale": stack(layer + name + ".weight"), "bias": stack(layer + name + ".bias")}
  return {"params": {
      "patch_embed": {"kernel": sd["embeddings.patch_embedding.weight"].transpose(2, 3, 1, 0),
                      "bias": sd["embeddings.patch_embedding.bias"]},
      "pos_embed": sd["embeddings.position_embedding.weight"],
      "layers": {"norm1": norm("layer_norm1"), "norm2": norm("layer_norm2"),
                 "attn": {"query": dense("self_attn.q_proj"), "key": dense("self_attn.k_proj"),
                          "value": dense("self_attn.v_proj"), "out": dense("self_attn.projection_layer")},
                 "mlp": {"fc1": dense("mlp.fc1"), "fc2": dense("mlp.fc2")}},
      "post_norm": {"scale": sd["post_layernorm.weight"], "bias": sd["post_layernorm.bias"]}}}


def test_tower_matches_transformers():
  model, cfg = tiny_reference()
  pixels = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)  # NCHW
  with torch.no_grad():
    theirs = model(torch.tensor(pixels)).last_hidden_state.numpy()
  ours = siglip.SigLIPVisionTower(cfg).apply(params_from_reference(model, cfg), pixels.transpose(0, 2, 3, 1))
  assert ours.shape == (2, cfg.num_patches, cfg.hidden_size)
  assert max_rel_err(ours, theirs) <= RTOL


def test_params_have_reference_shapes_and_logical_axes():
  _, cfg = tiny_reference()
  boxed = siglip.SigLIPVisionTower(cfg).init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
  assert boxed["params"]["layers"]["attn"]["query"]["kernel"].names == ("layers", "embed", "heads")
  assert nn.unbox(boxed)["params"]["pos_embed"].shape == (16, 32)


def test_select_layer_depth_and_bad_input():
  assert siglip.depth_for_select_layer(24, -1) == 24
  assert siglip.depth_for_select_layer(24, -2) == 23
  assert siglip.depth_for_select_layer(24, 12) == 12
  with pytest.raises(ValueError, match="select_layer"):
    siglip.depth_for_select_layer(2, -3)
  _, cfg = tiny_reference()
  with pytest.raises(ValueError, match="NHWC"):
    siglip.SigLIPVisionTower(cfg).init(jax.random.key(0), np.zeros((1, 3, 32, 32), np.float32))
