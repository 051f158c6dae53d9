"""Tests for gotr1_jax/rewards/config.py: defaults validate, each wrong field names itself."""
from __future__ import annotations

import pytest

from gotr1_jax.rewards.config import check_reward_config, reward_defaults


def test_defaults_are_valid():
  cfg = reward_defaults()
  check_reward_config(cfg)
  assert (cfg.canvas.width % cfg.judge_size_multiple, cfg.canvas.height % cfg.judge_size_multiple) == (0, 0)


@pytest.mark.parametrize("field,value,match", [
    ("kind", "clip", "reward.kind"),
    ("combine", "sum", "reward.combine"),
    ("box_frame", "cm", "reward.box_frame"),
    ("max_answer_tokens.r_ri", 0, "max_answer_tokens.r_ri"),
    ("judge_size_multiple", 0, "judge_size_multiple"),
    ("canvas.width", -1, "canvas.width"),
    ("canvas.background", (0, 0, 256), "canvas.background"),
    ("canvas.palette", (), "canvas.palette"),
    ("canvas.palette", ((1, 2),), r"canvas.palette\[0\]"),
    ("canvas.text_margin", -1, "canvas.text_margin"),
    ("canvas.box_colours", "rainbow", "canvas.box_colours"),
    ("canvas.style", "dotted", "canvas.style"),
    ("monitor.window", 1, "monitor.window"),
    ("monitor.rise", -0.1, "monitor.rise"),
    ("monitor.sigmas", -1.0, "monitor.sigmas"),
])
def test_bad_fields(field, value, match):
  cfg = reward_defaults()
  node, *path = field.split(".")
  if path:
    cfg[node][path[0]] = value
  else:
    cfg[node] = value
  with pytest.raises(ValueError, match=match):
    check_reward_config(cfg)


def test_weighted_sum_weights_and_missing_fields():
  cfg = reward_defaults()
  cfg.combine = "weighted_sum"
  cfg.weights = dict(r_sem=0.0, r_spa=0.0, r_ri=0.0, r_pi=0.0)
  with pytest.raises(ValueError, match="weights"):
    check_reward_config(cfg)
  cfg = reward_defaults()
  del cfg["canvas"]
  with pytest.raises(ValueError, match="reward_defaults"):
    check_reward_config(cfg)
