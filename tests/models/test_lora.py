"""Tests for gotr1_jax/models/lora.py against NumPy (W + s * A @ B) on plain and boxed, stacked and
unstacked kernels. Tolerance: rtol 1e-6 / atol 1e-6 for fp32 merges; init equality is exact.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import meta

from gotr1_jax.models import lora

RTOL, ATOL = 1e-6, 1e-6
EMBED, MLP, LAYERS = 8, 12, 2


class _Proj(nn.Module):
  """Attention stand-in: q/k projections whose kernels carry logical names."""
  features: int
  axes: tuple[str, str]

  @nn.compact
  def __call__(self, x):
    init = nn.with_logical_partitioning(nn.initializers.normal(0.5), self.axes)
    q = nn.Dense(self.features, use_bias=True, kernel_init=init, name="q_proj")(x)
    k = nn.Dense(self.features, use_bias=True, kernel_init=init, name="k_proj")(x)
    return q + k


class _Layer(nn.Module):
  """Scan-shaped toy block: attn q/k projections and an mlp up projection, logically named."""

  @nn.compact
  def __call__(self, x, _):
    q = _Proj(EMBED, ("embed", "heads"), name="attn")(x)
    h = nn.Dense(MLP, use_bias=True, name="up_proj", kernel_init=nn.with_logical_partitioning(
        nn.initializers.normal(0.5), ("embed", "mlp")))(q)
    return x + nn.Dense(EMBED, use_bias=False, name="down")(h), None  # an unboxed kernel


class _Model(nn.Module):

  @nn.compact
  def __call__(self, x):
    layers = nn.scan(_Layer, variable_axes={"params": 0}, split_rngs={"params": True},
                     length=LAYERS, metadata_params={nn.PARTITION_NAME: "layers"})
    x, _ = layers(name="layers")(x, None)
    return nn.Dense(3, name="head", kernel_init=nn.with_logical_partitioning(
        nn.initializers.normal(0.5), ("embed", "vocab")))(x)


def _model_params():
  x = jnp.ones((2, EMBED))
  return _Model().init(jax.random.PRNGKey(0), x), x


def _plain_params():
  rng = np.random.default_rng(0)
  return {"params": {
      "attn": {"q_proj": {"kernel": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
                          "bias": jnp.zeros(4)}},
      "mlp": {"up_proj": {"kernel": jnp.asarray(rng.normal(size=(3, 6, 5)), jnp.float32)}},
      "head": {"kernel": jnp.asarray(rng.normal(size=(6, 7)), jnp.float32)},
  }}


def _np_merge(w, a, b, scale):
  w, a, b = (np.asarray(x, np.float64) for x in (w, a, b))
  out = np.empty_like(w)
  for idx in np.ndindex(*w.shape[:-2]):  # loop over stacked layers explicitly
    out[idx] = w[idx] + scale * a[idx] @ b[idx]
  return out


CFG = lora.LoraConfig(rank=3, alpha=6.0, targets=(r"attn/(q|k)_proj", r"up_proj"))


def test_plain_tree_init_is_exact_identity_and_shapes():
  params = _plain_params()
  lp = lora.init_lora(params, jax.random.PRNGKey(1), CFG)
  assert set(lp["params"]) == {"attn", "mlp"}  # head is not a target; bias is not a kernel
  up = lp["params"]["mlp"]["up_proj"]["kernel"]
  a, b = up["a"], up["b"]
  assert a.shape == (3, 6, 3) and b.shape == (3, 3, 5) and not np.any(np.asarray(b))
  assert np.max(np.abs(np.asarray(a))) <= 1 / np.sqrt(6) and np.std(np.asarray(a)) > 0.1
  merged = lora.merge_lora(params, lp, CFG)
  for (_, x), (_, y) in zip(jax.tree_util.tree_leaves_with_path(params),
                            jax.tree_util.tree_leaves_with_path(merged)):
    assert np.array_equal(np.asarray(x), np.asarray(y))
  assert lora.lora_param_count(lp) == (6 * 3 + 3 * 4) + 3 * (6 * 3 + 3 * 5)


def test_merge_matches_numpy_plain_and_stacked():
  params = _plain_params()
  lp = lora.init_lora(params, jax.random.PRNGKey(1), CFG)
  rng = np.random.default_rng(2)
  lp = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.asarray(rng.normal(size=v.shape), jnp.float32)
      if p[-1].key == "b" else v, lp)
  merged = jax.jit(lora.merge_lora, static_argnums=2)(params, lp, CFG)
  for path in (("attn", "q_proj"), ("mlp", "up_proj")):
    w = params["params"][path[0]][path[1]]["kernel"]
    ad = lp["params"][path[0]][path[1]]["kernel"]
    want = _np_merge(w, ad["a"], ad["b"], CFG.alpha / CFG.rank)
    got = merged["params"][path[0]][path[1]]["kernel"]
    assert got.dtype == w.dtype
    np.testing.assert_allclose(np.asarray(got), want, rtol=RTOL, atol=ATOL)
    assert np.max(np.abs(want - np.asarray(w))) > 1e-2  # the adapter really moved the weights
  np.testing.assert_array_equal(merged["params"]["head"]["kernel"],
                                params["params"]["head"]["kernel"])


def test_boxed_scanned_model_names_and_merge():
  variables, x = _model_params()
  cfg = lora.LoraConfig(rank=2, alpha=4.0, targets=(r"attn/(q|k)_proj", r"up_proj"))
  paths = lora.target_paths(variables, cfg)
  assert paths == ["params/layers/attn/k_proj/kernel", "params/layers/attn/q_proj/kernel",
                   "params/layers/up_proj/kernel"]
  lp = lora.init_lora(variables, jax.random.PRNGKey(3), cfg)
  q = lp["params"]["layers"]["attn"]["q_proj"]["kernel"]
  up = lp["params"]["layers"]["up_proj"]["kernel"]
  assert isinstance(q["a"], meta.Partitioned)
  assert q["a"].names == ("layers", "embed", lora.LORA_RANK_AXIS)
  assert q["b"].names == ("layers", lora.LORA_RANK_AXIS, "heads")
  assert up["b"].names == ("layers", lora.LORA_RANK_AXIS, "mlp")
  assert q["a"].value.shape == (LAYERS, EMBED, 2) and up["b"].value.shape == (LAYERS, 2, MLP)
  # Logical names resolve to partition specs like any other param.
  spec = nn.get_partition_spec(lp)["params"]["layers"]["attn"]["q_proj"]["kernel"]["a"]
  assert tuple(spec) == ("layers", "embed", lora.LORA_RANK_AXIS)

  merged0 = lora.merge_lora(variables, lp, cfg)
  assert jax.tree_util.tree_structure(merged0) == jax.tree_util.tree_structure(variables)
  y0 = _Model().apply(merged0, x)
  np.testing.assert_array_equal(np.asarray(y0), np.asarray(_Model().apply(variables, x)))

  rng = np.random.default_rng(4)
  lp = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.asarray(rng.normal(size=v.shape), jnp.float32)
      if p[-2].key == "b" else v, lp)
  merged = lora.merge_lora(variables, lp, cfg)
  box = merged["params"]["layers"]["up_proj"]["kernel"]
  base = variables["params"]["layers"]["up_proj"]["kernel"]
  assert isinstance(box, meta.Partitioned) and box.names == base.names == ("layers", "embed", "mlp")
  ad = lp["params"]["layers"]["up_proj"]["kernel"]
  want = _np_merge(base.value, ad["a"].value, ad["b"].value, 2.0)
  np.testing.assert_allclose(np.asarray(box.value), want, rtol=RTOL, atol=ATOL)
  head = merged["params"]["head"]["kernel"]
  np.testing.assert_array_equal(head.value, variables["params"]["head"]["kernel"].value)
  assert not np.allclose(np.asarray(_Model().apply(merged, x)), np.asarray(y0))


def test_gradient_flows_to_lora_only():
  variables, x = _model_params()
  cfg = lora.LoraConfig(rank=2, alpha=2.0, targets=(r"attn/q_proj",))
  lp = lora.init_lora(variables, jax.random.PRNGKey(5), cfg)
  base_before = jax.tree_util.tree_map(np.asarray, meta.unbox(variables))

  def loss(lora_params):
    return jnp.sum(_Model().apply(lora.merge_lora(variables, lora_params, cfg), x) ** 2)

  grads = jax.jit(jax.grad(loss))(lp)
  g = grads["params"]["layers"]["attn"]["q_proj"]["kernel"]
  # B starts at zero, so dL/dB = s * A^T dL/dW is nonzero while dL/dA = s * dL/dW B^T is zero.
  assert np.linalg.norm(np.asarray(g["b"].value)) > 1e-3
  assert np.all(np.asarray(g["a"].value) == 0.0)
  # Numeric check of dL/dB against the chain rule through W: dL/dB = s * A^T @ dL/dW.
  gw = jax.grad(lambda v: jnp.sum(_Model().apply(v, x) ** 2))(variables)
  gw_q = np.asarray(gw["params"]["layers"]["attn"]["q_proj"]["kernel"].value, np.float64)
  a = np.asarray(lp["params"]["layers"]["attn"]["q_proj"]["kernel"]["a"].value, np.float64)
  want = np.stack([a[i].T @ gw_q[i] for i in range(LAYERS)]) * cfg.scale
  np.testing.assert_allclose(np.asarray(g["b"].value), want, rtol=1e-5, atol=1e-6)
  jax.tree_util.tree_map(np.testing.assert_array_equal, base_before, meta.unbox(variables))


def test_empty_adapters_give_base_and_param_count():
  params = _plain_params()
  merged = lora.merge_lora(params, {}, CFG)
  assert merged["params"]["head"]["kernel"] is params["params"]["head"]["kernel"]
  assert lora.lora_param_count({}) == 0


def test_errors_are_clear():
  params = _plain_params()
  with pytest.raises(ValueError, match="params/attn/q_proj/kernel"):
    lora.init_lora(params, jax.random.PRNGKey(0), lora.LoraConfig(targets=(r"nothing_here",)))
  with pytest.raises(ValueError, match="non-empty tuple"):
    lora.LoraConfig(targets="attn")
  with pytest.raises(ValueError, match="rank must be >= 1"):
    lora.LoraConfig(rank=0)
  lp = lora.init_lora(params, jax.random.PRNGKey(0), CFG)
  del params["params"]["mlp"]
  with pytest.raises(ValueError, match="match no kernel"):
    lora.merge_lora(params, lp, CFG)
