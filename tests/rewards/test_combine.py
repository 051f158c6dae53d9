"""Tests for gotr1_jax/rewards/combine.py: each formula against a per-sample Python loop.

Tolerance rtol 1e-6 (the result is float32).
"""
from __future__ import annotations

import numpy as np
import pytest

from gotr1_jax.rewards.combine import combine, product, product_mean, weighted_sum
from gotr1_jax.rewards.config import reward_defaults


def components(b=16, seed=0, aesthetic=False):
  rng = np.random.default_rng(seed)
  names = ("r_sem", "r_spa", "r_ri", "r_pi") + (("r_aes",) if aesthetic else ())
  return {k: rng.uniform(0, 1, b).astype(np.float32) for k in names}


def test_product_and_product_mean():
  c = components(aesthetic=True)
  for i in range(16):
    sem, spa, ri, pi, aes = (float(c[k][i]) for k in ("r_sem", "r_spa", "r_ri", "r_pi", "r_aes"))
    assert product(c)[i] == pytest.approx(pi * (sem + spa) * ri, rel=1e-6)
    assert product_mean(c)[i] == pytest.approx(pi * (sem + spa) / 2 * ri, rel=1e-6)
    assert product_mean(c, use_aesthetic=True)[i] == pytest.approx(pi * (sem + spa) / 2 * ri * aes, rel=1e-6)
  ones = {k: np.ones(3) for k in c}
  np.testing.assert_allclose(product(ones), 2.0)  # product lives in [0, 2], product_mean in [0, 1]
  np.testing.assert_allclose(product_mean(ones, True), 1.0)


def test_weighted_sum_normalises_weights_and_skips_zero_weights():
  c = components()
  del c["r_ri"]
  w = {"r_sem": 2.0, "r_spa": 1.0, "r_ri": 0.0, "r_pi": 1.0}
  got = weighted_sum(c, w)
  for i in range(16):
    want = (2 * float(c["r_sem"][i]) + float(c["r_spa"][i]) + float(c["r_pi"][i])) / 4
    assert got[i] == pytest.approx(want, rel=1e-6)
  with pytest.raises(ValueError, match="non-negative"):
    weighted_sum(c, {"r_sem": 0.0})


def test_combine_selects_by_config_and_returns_float32():
  c = components(aesthetic=True)
  cfg = reward_defaults()
  for name, want in (("product", product(c)), ("product_mean", product_mean(c))):
    cfg.combine = name
    out = combine(c, cfg)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, want, rtol=1e-6)
  cfg.combine, cfg.use_aesthetic = "product_mean", True
  np.testing.assert_allclose(combine(c, cfg), product_mean(c, True), rtol=1e-6)
  cfg.combine = "weighted_sum"
  np.testing.assert_allclose(combine(c, cfg), np.mean([c[k] for k in ("r_sem", "r_spa", "r_ri", "r_pi")], 0),
                             rtol=1e-6)
  cfg.combine = "max"
  with pytest.raises(ValueError, match="combine"):
    combine(c, cfg)


@pytest.mark.parametrize("bad,match", [
    ({"r_sem": np.ones(4)}, "missing"),
    ({k: np.full(4, 1.5) for k in ("r_sem", "r_spa", "r_ri", "r_pi")}, r"\[0, 1\]"),
    ({k: np.full(4, np.nan) for k in ("r_sem", "r_spa", "r_ri", "r_pi")}, "finite"),
    ({k: np.ones((2, 2)) for k in ("r_sem", "r_spa", "r_ri", "r_pi")}, "flat"),
])
def test_bad_components_raise_clear_errors(bad, match):
  with pytest.raises(ValueError, match=match):
    product(bad)
