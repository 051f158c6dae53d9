"""Reward-hacking monitor: per-step reward statistics and a warning when components diverge.

Owns the per-component history and the divergence rule (config.reward.monitor). Training on one
score alone can reward-hack (GOT_R1_FACTS.md §4: an aesthetic reward rose while 2D-spatial fell),
so a component rising while another collapses is logged. It writes no files (metrics.py does).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping

import numpy as np
from ml_collections import ConfigDict

logger = logging.getLogger(__name__)


class RewardMonitor:
  """Keeps the last `window` per-step means of each [B] reward array and checks for divergence.

  Divergence: with early / late = the mean of the older / newer half of the window, some component
  has late - early > rise while another has late - early < -fall; or a component k whose exact
  version `oracle_k` is logged beside it (a judge run on ShapesWorld) has a trend above oracle_k's
  by more than `gap` (the judge's score pulls away from the truth, whichever way each moves). Each
  of those changes must also exceed `sigmas` times its standard error, sqrt(var(early) / half +
  var(late) / half) over the per-step means of each half (of the difference k - oracle_k for the
  gap): a step's mean over a few dozen samples is noisy, and without this test the ShapesWorld demo
  warned 4 to 19 steps a run on noise alone (the gap statistic's spread over windows was 0.07-0.10
  against a `gap` of 0.1), with no drift in the judge's gap over the run. The combined 'reward' is
  reported but not part of the rule (it is a function of the components). A warning is logged when
  the set of diverging pairs changes, and 'reward/hacking_warning' is 1.0 on every step the rule
  holds.
  """

  def __init__(self, config: ConfigDict):
    if int(config.window) < 2:
      raise ValueError(f"config.reward.monitor.window={config.window!r} must be >= 2.")
    self.window, self.rise, self.fall = int(config.window), float(config.rise), float(config.fall)
    self.gap = float(config.get("gap", float("inf")))
    self.sigmas = float(config.get("sigmas", 0.0))
    self.history: dict[str, list[float]] = {}
    self._last_pairs: tuple[tuple[str, str], ...] = ()

  def update(self, components: Mapping[str, Any], group_size: int) -> dict[str, float]:
    """Metrics of one step from the reward model's output (scalar counters are skipped).

    'reward/<k>' and 'reward/<k>_std' per component k ('reward/mean' and 'reward/std' for the
    combined reward), 'reward/zero_var_group_frac' (groups of the combined reward whose samples
    are all equal: they give zero advantage) and 'reward/<k>_zero_var_group_frac' per component.
    """
    metrics: dict[str, float] = {}
    for key, value in components.items():
      if np.ndim(value) != 1:
        continue
      a = np.asarray(value, np.float64)
      if group_size < 1 or a.shape[0] % group_size:
        raise ValueError(f"group_size={group_size} must divide the {a.shape[0]} rewards of {key!r}.")
      groups = a.reshape(-1, group_size)
      zero_var = float(np.mean(groups.max(1) == groups.min(1)))
      name = "mean" if key == "reward" else key
      metrics[f"reward/{name}"] = float(a.mean())
      metrics[f"reward/{'std' if key == 'reward' else key + '_std'}"] = float(a.std())
      metrics["reward/zero_var_group_frac" if key == "reward" else f"reward/{key}_zero_var_group_frac"] = zero_var
      self.history[key] = (self.history.get(key, []) + [float(a.mean())])[-self.window:]
    pairs = self.diverging()
    if pairs and tuple(pairs) != self._last_pairs:
      logger.warning("Possible reward hacking over the last %d steps: %s.", self.window,
                     "; ".join(f"{up} moved {d_up:+.3f} while {down} moved {d_down:+.3f}"
                               for (up, down), (d_up, d_down) in pairs.items()))
    self._last_pairs = tuple(pairs)
    metrics["reward/hacking_warning"] = float(bool(pairs))
    return metrics

  def _full(self) -> dict[str, np.ndarray]:
    return {k: np.asarray(h) for k, h in self.history.items() if k != "reward" and len(h) >= self.window}

  def _trend(self, h: np.ndarray) -> tuple[float, float]:
    """(late - early, its standard error) of one full window of per-step means."""
    half = self.window // 2
    early, late = h[:half], h[-half:]
    var = (np.var(early, ddof=1) + np.var(late, ddof=1)) / half if half > 1 else 0.0
    return float(late.mean() - early.mean()), float(np.sqrt(var))

  def trends(self) -> dict[str, float]:
    """late - early per component with a full window of history (see the class docstring)."""
    return {k: self._trend(h)[0] for k, h in self._full().items()}

  def diverging(self) -> dict[tuple[str, str], tuple[float, float]]:
    """{(rising, falling): (rise, fall)} for every pair that breaks the rule now."""
    full = self._full()
    t = {k: self._trend(h) for k, h in full.items()}
    up = [k for k in sorted(t) if t[k][0] > max(self.rise, self.sigmas * t[k][1])]
    down = [k for k in sorted(t) if -t[k][0] > max(self.fall, self.sigmas * t[k][1])]
    pairs = {(u, d): (t[u][0], t[d][0]) for u in up for d in down if u != d}
    for k in sorted(t):
      if f"oracle_{k}" in t:
        gap, se = self._trend(full[k] - full[f"oracle_{k}"])
        if gap > max(self.gap, self.sigmas * se):
          pairs[(k, f"oracle_{k}")] = (t[k][0], t[f"oracle_{k}"][0])
    return pairs

  def get_state(self) -> dict:
    return {"history": {k: list(h) for k, h in self.history.items()}}

  def set_state(self, state: dict) -> None:
    self.history = {k: [float(v) for v in h][-self.window:] for k, h in state["history"].items()}
    self._last_pairs = tuple(self.diverging())
