"""Tests for gotr1_jax/rewards/monitor.py: statistics against NumPy loops, the divergence rule on
hand-built trajectories (tolerance 1e-12)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from ml_collections import ConfigDict

from gotr1_jax.rewards.monitor import RewardMonitor


def monitor(window=4, rise=0.1, fall=0.1, gap=0.1, sigmas=0.0):
  return RewardMonitor(ConfigDict(dict(window=window, rise=rise, fall=fall, gap=gap, sigmas=sigmas)))


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
  assert len(warnings) == 1 and "r_aes moved +0.200 while r_spa moved -0.200" in warnings[0].getMessage()


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


def test_warns_when_a_judge_component_pulls_away_from_its_oracle_twin():
  # The judge's R_sem stays high while the oracle's falls on the same samples (a judge run that
  # breaks its chains): neither crosses rise/fall alone, the gap between them does.
  mon = monitor(window=4, rise=0.5, fall=0.5, gap=0.1)
  flags = []
  for t in range(6):
    flags.append(mon.update({"r_sem": np.full(2, 0.95 + 0.005 * t), "oracle_r_sem": np.full(2, 0.9 - 0.05 * t),
                             "r_pi": np.full(2, 0.5), "oracle_r_pi": np.full(2, 0.5)}, 2)["reward/hacking_warning"])
  # Halves of 2 steps: the judge's trend +0.01, the oracle's -0.10; the gap 0.11 > 0.1 from step 4.
  assert flags == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
  (pair, (up, down)), = mon.diverging().items()
  assert pair == ("r_sem", "oracle_r_sem")
  assert up == pytest.approx(0.01, abs=1e-12) and down == pytest.approx(-0.1, abs=1e-12)
  # Moving together is no gap, and an older config without `gap` keeps the pairs rule only.
  together = monitor(window=4, gap=0.1)
  old = RewardMonitor(ConfigDict(dict(window=4, rise=0.5, fall=0.5)))
  for t in range(6):
    x = {"r_ri": np.full(2, 0.1 * t), "oracle_r_ri": np.full(2, 0.1 * t)}
    assert together.update(x, 2)["reward/hacking_warning"] == 0.0
    assert old.update({"r_sem": np.full(2, 0.95), "oracle_r_sem": np.full(2, 0.9 - 0.05 * t)}, 2)[
        "reward/hacking_warning"] == 0.0


def test_noise_alone_does_not_warn_with_sigmas_and_a_real_pull_away_does():
  # A judge run's per-step means: the judge's R_PI sits 0.2 above the oracle's, each step's mean of
  # 32 samples off by noise of sd 0.15 (what the ShapesWorld demo logged), and nothing drifts.
  rng = np.random.default_rng(0)
  oracle = np.clip(0.4 + 0.1 * rng.standard_normal(100), 0, 1)
  judge = np.clip(oracle + 0.2 + 0.15 * rng.standard_normal(100), 0, 1)
  def flags(mon, judge):
    return [mon.update({"r_pi": np.full(2, j), "oracle_r_pi": np.full(2, o)}, 2)["reward/hacking_warning"]
            for j, o in zip(judge, oracle)]
  assert sum(flags(monitor(window=20, rise=1, fall=1, gap=0.1), judge)) > 0  # the fixed gap alone
  assert sum(flags(monitor(window=20, rise=1, fall=1, gap=0.1, sigmas=3.0), judge)) == 0
  # The judge's R_PI climbing 0.5 over 20 steps while the oracle's stays is still caught.
  pulled = judge + np.clip(np.arange(100) - 60, 0, 20) * 0.025
  caught = flags(monitor(window=20, rise=1, fall=1, gap=0.1, sigmas=3.0), pulled)
  assert not any(caught[:66]) and any(caught[66:85])
  # The standard error is the trend's: sqrt(var(early) / half + var(late) / half), ddof 1.
  mon = monitor(window=4, sigmas=3.0)
  for v in (0.0, 0.2, 0.5, 0.9):
    mon.update({"r_sem": np.full(2, v)}, 2)
  assert mon._trend(np.array(mon.history["r_sem"])) == pytest.approx(
      (0.6, np.sqrt((np.var([0.0, 0.2], ddof=1) + np.var([0.5, 0.9], ddof=1)) / 2)), abs=1e-12)
