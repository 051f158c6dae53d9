"""Tests for gotr1_jax/rl/grpo.py against a loop-based float64 NumPy reference written here.

Tolerances: fp32 inputs rtol 1e-5 / atol 1e-6 (fp32 exp/log rounding); bf16 inputs are compared to
the reference fed the same bf16-rounded values; x64 gradients rtol 1e-10.
"""
from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gotr1_jax.rl import grpo

RTOL, ATOL = 1e-5, 1e-6


# ----------------------------------------------------------------------------- numpy reference
def ref_advantages(rewards, group_size, mode, eps=1e-4):
  out = np.zeros(len(rewards))
  for start in range(0, len(rewards), group_size):
    g = [float(x) for x in rewards[start:start + group_size]]
    mean = sum(g) / len(g)
    std = math.sqrt(sum((x - mean) ** 2 for x in g) / len(g))
    for i, x in enumerate(g):
      if mode == "grpo":
        a = (x - mean) / (std + eps)
      elif mode == "drgrpo":
        a = x - mean
      else:
        a = x - (sum(g) - x) / (len(g) - 1)
      out[start + i] = 0.0 if max(g) == min(g) else a
  return out


def ref_kl(lp, rf, kl):
  if kl == "k1":
    return lp - rf
  if kl == "k2":
    return 0.5 * (lp - rf) ** 2
  return math.exp(rf - lp) - (rf - lp) - 1.0


def ref_aggregate(per_token, mask, aggregation):
  b, t = per_token.shape
  if aggregation == "sequence-mean-token-mean":
    rows = []
    for i in range(b):
      num = sum(per_token[i, j] * mask[i, j] for j in range(t))
      den = sum(mask[i, j] for j in range(t))
      rows.append(num / den if den > 0 else 0.0)
    return sum(rows) / b
  num = sum(per_token[i, j] * mask[i, j] for i in range(b) for j in range(t) if mask[i, j])
  den = sum(mask[i, j] for i in range(b) for j in range(t))
  if aggregation == "token-mean":
    return num / den if den > 0 else 0.0
  return num / (b * t)


def ref_loss(lp, old, rf, adv, mask, eps, eps_high, beta, kl, aggregation):
  """Returns (loss, pg_loss, kl_mean, clip_frac, ratio_mean, dloss/dlogps)."""
  lp, old, mask = (np.asarray(x, np.float64) for x in (lp, old, mask))
  rf = None if rf is None else np.asarray(rf, np.float64)
  b, t = lp.shape
  eps_high = eps if eps_high is None else eps_high
  pg, klt, clip, ratio_t = (np.zeros((b, t)) for _ in range(4))
  dpg, dkl = np.zeros((b, t)), np.zeros((b, t))
  for i in range(b):
    a = float(adv[i])
    for j in range(t):
      if not mask[i, j]:
        continue
      r = math.exp(lp[i, j] - old[i, j])
      rc = min(max(r, 1 - eps), 1 + eps_high)
      pg[i, j] = -min(r * a, rc * a)
      ratio_t[i, j] = r
      clipped_active = (r < 1 - eps and a < 0) or (r > 1 + eps_high and a > 0)
      clip[i, j] = float(clipped_active)
      dpg[i, j] = 0.0 if clipped_active else -r * a
      if beta:
        klt[i, j] = ref_kl(lp[i, j], rf[i, j], kl)
        dkl[i, j] = {"k1": 1.0, "k2": lp[i, j] - rf[i, j],
                     "k3": 1.0 - math.exp(rf[i, j] - lp[i, j])}[kl]
  loss = ref_aggregate(pg + beta * klt, mask, aggregation)
  # d(aggregate)/d(per_token) is a fixed weight per token.
  weights = np.zeros((b, t))
  for i in range(b):
    for j in range(t):
      if aggregation == "token-mean":
        weights[i, j] = mask[i, j] / max(mask.sum(), 1.0)
      elif aggregation == "sequence-mean-token-mean":
        weights[i, j] = mask[i, j] / max(mask[i].sum(), 1.0) / b
      else:
        weights[i, j] = mask[i, j] / (b * t)
  grad = weights * (dpg + beta * dkl)
  return (loss, ref_aggregate(pg, mask, aggregation), ref_aggregate(klt, mask, "token-mean"),
          ref_aggregate(clip, mask, "token-mean"), ref_aggregate(ratio_t, mask, "token-mean"), grad)


# ----------------------------------------------------------------------------- fixtures
def make_batch(seed=0, b=4, t=6, dtype=np.float32):
  rng = np.random.default_rng(seed)
  old = -rng.uniform(0.5, 3.0, (b, t))
  lp = old + rng.normal(0.0, 0.3, (b, t))  # ratios spread across both sides of the clip range
  rf = old + rng.normal(0.0, 0.2, (b, t))
  adv = rng.normal(0.0, 1.0, b)
  mask = (rng.uniform(size=(b, t)) > 0.25).astype(np.float64)
  mask[1] = 0.0  # a fully masked row
  mask[0, 0] = 1.0
  lp[1] = 1e4  # garbage in the masked row must not leak (exp would overflow)
  return tuple(x.astype(dtype) for x in (lp, old, rf, adv, mask))


# ----------------------------------------------------------------------------- advantages
@pytest.mark.parametrize("mode", grpo.ADVANTAGE_MODES)
def test_group_advantages_match_reference(mode):
  rng = np.random.default_rng(1)
  rewards = rng.uniform(0, 1, 12).astype(np.float32)
  rewards[4:8] = 0.7  # a zero-variance group
  got = np.asarray(jax.jit(grpo.group_advantages, static_argnums=(1, 2))(rewards, 4, mode))
  want = ref_advantages(rewards, 4, mode)
  np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
  assert np.all(got[4:8] == 0.0) and np.all(np.isfinite(got))


def test_group_advantages_constant_group_exactly_zero_even_if_mean_rounds():
  # 0.1 * 3 / 3 != 0.1 in float: the constant-group guard must still return exact zeros.
  rewards = np.full(6, 0.1, np.float32)
  for mode in grpo.ADVANTAGE_MODES:
    got = np.asarray(grpo.group_advantages(rewards, 3, mode))
    assert np.array_equal(got, np.zeros(6, np.float32)), mode


def test_group_advantages_bf16_in_fp32_out():
  rewards = jnp.asarray([0.0, 1.0, 0.5, 0.25], jnp.bfloat16)
  got = grpo.group_advantages(rewards, 4, "grpo")
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got), ref_advantages([0.0, 1.0, 0.5, 0.25], 4, "grpo"),
                             rtol=RTOL, atol=ATOL)


def test_group_advantages_errors():
  with pytest.raises(ValueError, match="divide"):
    grpo.group_advantages(jnp.zeros(10), 4)
  with pytest.raises(ValueError, match="grpo, drgrpo, rloo"):
    grpo.group_advantages(jnp.zeros(8), 4, mode="ppo")
  with pytest.raises(ValueError, match="group_size >= 2"):
    grpo.group_advantages(jnp.zeros(8), 1, mode="rloo")


# ----------------------------------------------------------------------------- loss
@pytest.mark.parametrize("kl,aggregation",
                         list(itertools.product(grpo.KL_MODES, grpo.AGGREGATIONS)))
def test_grpo_loss_matches_reference(kl, aggregation):
  lp, old, rf, adv, mask = make_batch()
  kw = dict(epsilon=0.2, epsilon_high=None, beta=0.04, kl=kl, aggregation=aggregation)
  fn = jax.jit(lambda *a: grpo.grpo_loss(*a, **kw))
  loss, metrics = fn(lp, old, rf, adv, mask)
  want_loss, want_pg, want_kl, want_clip, want_ratio, _ = ref_loss(lp, old, rf, adv, mask, 0.2,
                                                                   None, 0.04, kl, aggregation)
  np.testing.assert_allclose(float(loss), want_loss, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(metrics["pg_loss"]), want_pg, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(metrics["kl_loss"]), want_loss - want_pg, rtol=1e-4, atol=ATOL)
  np.testing.assert_allclose(float(metrics["kl"]), want_kl, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(metrics["clip_frac"]), want_clip, rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(metrics["ratio_mean"]), want_ratio, rtol=RTOL, atol=ATOL)
  assert 0.0 < want_clip < 1.0  # the batch exercises both clipped and unclipped tokens
  assert all(np.isfinite(float(v)) for v in metrics.values())


def test_per_token_beta_weighs_each_tokens_kl():
  """A [B, T] beta (a chain weight and an image weight) adds sum(beta_t * kl_t) over the valid
  tokens, token-mean aggregated; a constant array equals the scalar."""
  lp, old, rf, adv, mask = make_batch(seed=5)
  beta_t = np.where(np.arange(lp.shape[1]) >= 3, 0.5, 0.04)[None, :].repeat(lp.shape[0], 0).astype(np.float32)
  loss, metrics = grpo.grpo_loss(lp, old, rf, adv, mask, beta=jnp.asarray(beta_t))
  pg = float(grpo.grpo_loss(lp, old, None, adv, mask, beta=0)[0])
  klt = np.vectorize(ref_kl)(lp.astype(np.float64), rf.astype(np.float64), "k3")
  want_kl_loss = float(np.sum(beta_t * klt * mask) / mask.sum())
  np.testing.assert_allclose(float(metrics["kl_loss"]), want_kl_loss, rtol=1e-5)
  np.testing.assert_allclose(float(loss), pg + want_kl_loss, rtol=1e-5, atol=ATOL)
  np.testing.assert_allclose(float(metrics["kl"]), np.sum(klt * mask) / mask.sum(), rtol=1e-5)  # unweighted
  scalar, _ = grpo.grpo_loss(lp, old, rf, adv, mask, beta=0.04)
  constant, _ = grpo.grpo_loss(lp, old, rf, adv, mask, beta=jnp.full(lp.shape, 0.04, jnp.float32))
  np.testing.assert_allclose(float(constant), float(scalar), rtol=1e-6)
  assert want_kl_loss > 2 * float(grpo.grpo_loss(lp, old, rf, adv, mask, beta=0.04)[1]["kl_loss"])


def test_kl_parts_report_each_parts_unweighted_kl():
  lp, old, rf, adv, mask = make_batch(seed=6)
  late = np.arange(lp.shape[1])[None, :].repeat(lp.shape[0], 0) >= 3
  _, metrics = grpo.grpo_loss(lp, old, rf, adv, mask, beta=0.04, kl_parts={"early": ~late, "late": late})
  klt = np.vectorize(ref_kl)(lp.astype(np.float64), rf.astype(np.float64), "k3")
  for name, part in (("early", ~late), ("late", late)):
    np.testing.assert_allclose(float(metrics[f"kl_{name}"]), np.sum(klt * mask * part) / np.sum(mask * part),
                               rtol=1e-5)
  assert float(metrics["kl_early"]) != pytest.approx(float(metrics["kl_late"]), rel=1e-3)
  _, no_ref = grpo.grpo_loss(lp, old, None, adv, mask, beta=0, kl_parts={"late": late})
  assert float(no_ref["kl_late"]) == 0.0


def test_epsilon_high_asymmetric_clipping():
  lp, old, rf, adv, mask = make_batch(seed=3)
  loss, metrics = grpo.grpo_loss(lp, old, rf, adv, mask, epsilon=0.1, epsilon_high=0.3)
  want = ref_loss(lp, old, rf, adv, mask, 0.1, 0.3, 0.04, "k3", "token-mean")
  np.testing.assert_allclose(float(loss), want[0], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(metrics["clip_frac"]), want[3], rtol=RTOL, atol=ATOL)
  sym = grpo.grpo_loss(lp, old, rf, adv, mask, epsilon=0.1)[0]
  assert abs(float(sym) - float(loss)) > 1e-4  # the high side really changed the loss
  np.testing.assert_allclose(
      float(metrics["clip_frac_low"] + metrics["clip_frac_high"]), float(metrics["clip_frac"]),
      rtol=RTOL)


def test_beta_zero_needs_no_reference():
  lp, old, _, adv, mask = make_batch(seed=4)
  loss, metrics = grpo.grpo_loss(lp, old, None, adv, mask, beta=0.0)
  want = ref_loss(lp, old, None, adv, mask, 0.2, None, 0.0, "k3", "token-mean")
  np.testing.assert_allclose(float(loss), want[0], rtol=RTOL, atol=ATOL)
  assert float(metrics["kl_loss"]) == 0.0 and float(metrics["kl"]) == 0.0
  with pytest.raises(ValueError, match="ref_logps is None"):
    grpo.grpo_loss(lp, old, None, adv, mask, beta=0.04)


def test_all_masked_batch_is_finite_and_zero():
  lp, old, rf, adv, mask = make_batch(seed=5)
  for aggregation in grpo.AGGREGATIONS:
    loss, metrics = grpo.grpo_loss(lp, old, rf, adv, np.zeros_like(mask), aggregation=aggregation)
    assert float(loss) == 0.0
    assert all(np.isfinite(float(v)) for v in metrics.values())
    g = jax.grad(lambda x: grpo.grpo_loss(x, old, rf, adv, np.zeros_like(mask))[0])(jnp.asarray(lp))
    assert np.all(np.asarray(g) == 0.0)


def test_bf16_inputs_computed_in_fp32():
  lp, old, rf, adv, mask = make_batch(seed=6)
  as_bf16 = [jnp.asarray(x, jnp.bfloat16) for x in (lp, old, rf, adv)]
  loss, metrics = grpo.grpo_loss(*as_bf16, mask)
  assert loss.dtype == jnp.float32 and metrics["kl"].dtype == jnp.float32
  rounded = [np.asarray(x.astype(jnp.float32), np.float64) for x in as_bf16]
  want = ref_loss(*rounded, mask, 0.2, None, 0.04, "k3", "token-mean")
  np.testing.assert_allclose(float(loss), want[0], rtol=RTOL, atol=ATOL)


def test_invalid_strings_name_the_allowed_values():
  lp, old, rf, adv, mask = make_batch()
  with pytest.raises(ValueError, match="k1, k2, k3"):
    grpo.grpo_loss(lp, old, rf, adv, mask, kl="k4")
  with pytest.raises(ValueError, match="token-mean, sequence-mean-token-mean, token-sum-norm"):
    grpo.grpo_loss(lp, old, rf, adv, mask, aggregation="mean")


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kl,aggregation",
                         [("k3", "token-mean"), ("k2", "sequence-mean-token-mean"),
                          ("k1", "token-sum-norm")])
def test_gradient_matches_analytic_in_float64(kl, aggregation):
  lp, old, rf, adv, mask = make_batch(seed=7, dtype=np.float64)
  kw = dict(epsilon=0.2, epsilon_high=0.28, beta=0.1, kl=kl, aggregation=aggregation)
  want_grad = ref_loss(lp, old, rf, adv, mask, 0.2, 0.28, 0.1, kl, aggregation)[-1]
  with jax.enable_x64(True):
    loss_fn = lambda x: grpo.grpo_loss(x, old, rf, adv, mask, **kw)[0]  # noqa: E731
    x = jnp.asarray(lp, jnp.float64)
    g = np.asarray(jax.jit(jax.grad(loss_fn))(x))
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, want_grad, rtol=1e-10, atol=1e-14)
    # Independent central finite differences on a few valid, unclipped-or-clipped tokens.
    h = 1e-6
    for i, j in [(0, 0), (2, 1), (3, 4)]:
      if not mask[i, j]:
        continue
      e = np.zeros_like(lp)
      e[i, j] = h
      fd = (float(loss_fn(x + e)) - float(loss_fn(x - e))) / (2 * h)
      np.testing.assert_allclose(g[i, j], fd, rtol=1e-6, atol=1e-9)
  assert np.all(want_grad[mask == 0] == 0.0) and np.all(g[mask == 0] == 0.0)


def test_gradient_fp32_matches_analytic():
  lp, old, rf, adv, mask = make_batch(seed=8)
  g = jax.grad(lambda x: grpo.grpo_loss(x, old, rf, adv, mask)[0])(jnp.asarray(lp))
  want = ref_loss(lp, old, rf, adv, mask, 0.2, None, 0.04, "k3", "token-mean")[-1]
  np.testing.assert_allclose(np.asarray(g), want, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- token_logps
def test_token_logps_matches_numpy():
  rng = np.random.default_rng(9)
  logits = rng.normal(0, 3, (2, 5, 11)).astype(np.float32)
  targets = rng.integers(0, 11, (2, 5))
  for temperature in (1.0, 0.7):
    got = np.asarray(jax.jit(grpo.token_logps, static_argnames="temperature")(
        logits, targets, temperature=temperature))
    want = np.zeros((2, 5))
    for b in range(2):
      for t in range(5):
        z = logits[b, t].astype(np.float64) / temperature
        want[b, t] = z[targets[b, t]] - (z.max() + np.log(np.exp(z - z.max()).sum()))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
  bf = grpo.token_logps(jnp.asarray(logits, jnp.bfloat16), targets)
  assert bf.dtype == jnp.float32
