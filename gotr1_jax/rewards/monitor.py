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
  by more than `gap` (the judge's score pulls away from the truth, whichever way each moves). The
  combined 'reward' is reported but not part of the rule (it is a function of the components). A
  warning is logged when the set of diverging pairs changes, and 'reward/hacking_warning' is 1.0 on
  every step the rule holds.
  """

  def __init__(self, config: ConfigDict):
    if int(config.window) < 2:
      raise ValueError(f"config.reward.monitor.window={config.window!r} must be >= 2.")
    self.window, self.rise, self.fall = int(config.window), float(config.rise), float(config.fall)
    self.gap = float(config.get("gap", float("inf")))
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

  def trends(self) -> dict[str, float]:
    """late - early per component with a full window of history (see the class docstring)."""
    half = self.window // 2
    return {k: float(np.mean(h[-half:]) - np.mean(h[:half]))
            for k, h in self.history.items() if k != "reward" and len(h) >= self.window}

  def diverging(self) -> dict[tuple[str, str], tuple[float, float]]:
    """{(rising, falling): (rise, fall)} for every pair that breaks the rule now."""
    t = self.trends()
    pairs = {(up, down): (t[up], t[down]) for up in sorted(t) for down in sorted(t)
             if up != down and t[up] > self.rise and t[down] < -self.fall}
    pairs.update({(k, f"oracle_{k}"): (t[k], t[f"oracle_{k}"]) for k in sorted(t)
                  if f"oracle_{k}" in t and t[k] - t[f"oracle_{k}"] > self.gap})
    return pairs

  def get_state(self) -> dict:
    return {"history": {k: list(h) for k, h in self.history.items()}}

  def set_state(self, state: dict) -> None:
    self.history = {k: [float(v) for v in h][-self.window:] for k, h in state["history"].items()}
    self._last_pairs = tuple(self.diverging())
