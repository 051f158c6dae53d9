"""Combining the reward components (each already in [0, 1]) into the one GRPO reward per sample.

Owns the three formulas selected by `config.reward.combine` (GOT_R1_FACTS.md §4). It does not
compute components (judge.py) or advantages (rl/grpo.py).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
from ml_collections import ConfigDict

from gotr1_jax.rewards.config import COMBINES, COMPONENTS

AESTHETIC = "r_aes"  # optional aesthetic factor of product_mean (the paper uses HPS v2.1)


def check_components(components: Mapping[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
  """Stacks the named components to [len(names), B] float64; clear errors for missing/bad ones."""
  missing = [n for n in names if n not in components]
  if missing:
    raise ValueError(f"Reward components {missing} are missing; got {sorted(components)}. A reward "
                     "function must return every component the chosen combine uses, or 'reward'.")
  if not names:
    return np.zeros((0, 0), np.float64)
  stacked = np.stack([np.asarray(components[n], np.float64) for n in names])
  if stacked.ndim != 2:
    raise ValueError(f"Reward components must be flat [B] arrays; got shapes "
                     f"{[np.shape(components[n]) for n in names]}.")
  bad = [n for n, row in zip(names, stacked) if not np.all(np.isfinite(row) & (row >= 0) & (row <= 1))]
  if bad:
    raise ValueError(f"Reward components {bad} must be finite and in [0, 1]; rescale them first.")
  return stacked


def product(c: Mapping[str, np.ndarray]) -> np.ndarray:
  """GoT-R1 repo README: R = R_PI * (R_sem + R_spa) * R_RI, in [0, 2]."""
  sem, spa, ri, pi = check_components(c, COMPONENTS)
  return pi * (sem + spa) * ri


def product_mean(c: Mapping[str, np.ndarray], use_aesthetic: bool = False) -> np.ndarray:
  """Paper v2: R = R_PI * (R_sem + R_spa) / 2 * R_RI [* R_aes], in [0, 1]."""
  names = COMPONENTS + ((AESTHETIC,) if use_aesthetic else ())
  stacked = check_components(c, names)
  sem, spa, ri, pi = stacked[:4]
  r = pi * (sem + spa) / 2 * ri
  return r * stacked[4] if use_aesthetic else r


def weighted_sum(c: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
  """R = sum_k w_k R_k / sum_k w_k over the weighted components, in [0, 1].

  Components with weight 0 need not be present.
  """
  used = tuple(k for k, w in weights.items() if w)
  if not used or any(w < 0 for w in weights.values()):
    raise ValueError(f"weighted_sum needs non-negative weights with at least one > 0; got {dict(weights)}.")
  w = np.array([weights[k] for k in used], np.float64)
  return (w[:, None] * check_components(c, used)).sum(0) / w.sum()


def combine(components: Mapping[str, np.ndarray], config: ConfigDict) -> np.ndarray:
  """The combined reward [B] float32 by config.combine ("product" | "product_mean" | "weighted_sum")."""
  if config.combine == "product":
    r = product(components)
  elif config.combine == "product_mean":
    r = product_mean(components, bool(config.use_aesthetic))
  elif config.combine == "weighted_sum":
    r = weighted_sum(components, dict(config.weights))
  else:
    raise ValueError(f"config.reward.combine={config.combine!r} must be one of {COMBINES}.")
  return r.astype(np.float32)
