"""Tests for gotr1_jax/rewards/monitor.py: statistics against NumPy loops, the divergence rule on
hand-built trajectories (tolerance 1e-12)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from ml_collections import ConfigDict

from gotr1_jax.rewards.monitor import RewardMonitor


def monitor(window=4, rise=0.1, fall=0.1):
  return RewardMonitor(ConfigDict(dict(window=window, rise=rise, fall=fall)))


def test_step_statistics():
  r = np.array([0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.6, 0.8], np.float32)
  sem = np.array([1, 1, 0, 1, 0, 0, 0, 0], np.float32)
  m = monitor().update({"reward": r, "r_sem": sem, "parse_fail/r_sem": 3}, group_size=4)
  groups = r.astype(np.float64).reshape(2, 4)
  assert m["reward/mean"] == pytest.approx(groups.mean(), abs=1e-7)
  assert m["reward/std"] == pytest.approx(r.astype(np.float64).std(), abs=1e-7)
  assert m["reward/zero_var_group_frac"] == 0.5  # the first group is constant
  assert m["reward/r_sem"] == pytest.approx(3 / 8) and m["reward/r_sem_zero_var_group_frac"] == 0.5
  assert m["reward/r_sem_std"] == pytest.approx(np.std([1, 1, 0, 1, 0, 0, 0, 0]), abs=1e-12)
  assert m["reward/hacking_warning"] == 0.0
  assert not any("parse_fail" in k for k in m)  # scalar counters are not statistics
  with pytest.raises(ValueError, match="group_size"):
    monitor().update({"reward": r}, group_size=3)


def test_warns_when_one_component_rises_while_another_falls(caplog):
  mon = monitor(window=4, rise=0.1, fall=0.1)
  flags = []
  with caplog.at_level(logging.WARNING, logger="gotr1_jax.rewards.monitor"):
    for t in range(8):
      aes = np.full(4, min(0.2 + 0.1 * t, 1.0))  # rises 0.1 per step
      spa = np.full(4, max(0.8 - 0.1 * t, 0.0))  # falls 0.1 per step
      sem = np.full(4, 0.5)  # flat
      flags.append(mon.update({"r_aes": aes, "r_spa": spa, "r_sem": sem, "reward": aes}, 4)["reward/hacking_warning"])
  # Window 4, halves of 2 steps: late - early = 0.2 > 0.1 once 4 steps exist.
  assert flags == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
  t = mon.trends()
  assert t["r_aes"] == pytest.approx(0.2, abs=1e-12) and t["r_spa"] == pytest.approx(-0.2, abs=1e-12)
  assert t["r_sem"] == pytest.approx(0.0, abs=1e-12) and "reward" not in t
  assert list(mon.diverging()) == [("r_aes", "r_spa")]
  warnings = [r for r in caplog.records if "reward hacking" in r.getMessage()]
  assert len(warnings) == 1 and "r_aes rose by +0.200 while r_spa fell by -0.200" in warnings[0].getMessage()


def test_no_warning_when_all_rise_and_state_round_trip():
  mon = monitor(window=4)
  for t in range(6):
    m = mon.update({"r_sem": np.full(2, 0.1 * t), "r_pi": np.full(2, 0.1 * t)}, 2)
  assert m["reward/hacking_warning"] == 0.0
  other = monitor(window=4)
  other.set_state(mon.get_state())
  assert other.history == mon.history and len(other.history["r_sem"]) == 4
  with pytest.raises(ValueError, match="window"):
    monitor(window=1)
