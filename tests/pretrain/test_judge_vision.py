"""pretrain/judge_vision.py at a toy size: names become the right labels, a tower learns something
of lone objects within a few dozen steps, and judge_train puts the pre-trained tower in the judge."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from configs.models import qwen2_5_vl_tiny
from gotr1_jax.data.shapes_world.world import WorldConfig
from gotr1_jax.metrics import read_metrics
from gotr1_jax.models.qwen_vl import init_qwen_vl, qwen_vl_config_from_dict
from gotr1_jax.pretrain import judge_train as jt
from gotr1_jax.pretrain import judge_vision as jv
from tests.pretrain.test_judge_train import toy_judge_config


def vision_config():
  return qwen_vl_config_from_dict(qwen2_5_vl_tiny.get_config("hidden=32,layers=1").to_dict()).vision


def pretrain_config(steps: int, **kw) -> ConfigDict:
  return ConfigDict(dict(dict(steps=steps, batch_size=16, lr=3e-3, place_schedule=(steps, 1), log_every=10,
                              eval_objects=64), **kw))


def test_attribute_labels_read_names():
  w = WorldConfig()
  labels = jv.attribute_labels(["red circle", "dotted blue star", "striped cyan cross"], w)
  assert labels.tolist() == [[0, 0, 0], [4, 4, 2], [7, 5, 1]]
  assert [w.color_names[7], w.shapes[5], w.textures[1]] == ["cyan", "cross", "striped"]


def test_the_tower_learns_lone_objects(tmp_path):
  vision = vision_config()
  steps = 40
  params, final = jv.pretrain_vision(vision, pretrain_config(steps, lr=1e-2), (56, 56), 0, str(tmp_path))
  rows = read_metrics(str(tmp_path / "metrics.csv"))
  losses = [float(r["vision/loss"]) for r in rows if r.get("vision/loss")]
  assert len(losses) == steps // 10 and losses[-1] < losses[0]
  assert all(float(r["vision/spread"]) == 0.0 for r in rows if r.get("vision/spread"))  # held centred throughout
  # Held-out objects anywhere: a tower that tells nothing apart scores ln(8 * 6 * 3) = 4.970 (measured after
  # 40 steps of 16: 4.54; the toy tower learns slowly, the judge's is in the README).
  assert final["vision/heldout_loss"] < 4.8
  assert set(final) == {f"vision/heldout_{a}_acc" for a in jv.ATTRIBUTES} | {"vision/heldout_loss"}
  # The tree is the judge's `visual` subtree, leaf for leaf.
  judge = qwen2_5_vl_tiny.get_config("hidden=32,layers=1")
  visual = nn.unbox(init_qwen_vl(qwen_vl_config_from_dict(judge.to_dict()), jax.random.key(0)))["params"]["visual"]
  assert jax.tree.structure(params) == jax.tree.structure(visual)
  assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(visual)))


def test_a_bad_place_schedule_names_the_setting(tmp_path):
  with pytest.raises(ValueError, match="vision_pretrain.place_schedule"):
    jv.pretrain_vision(vision_config(), pretrain_config(2, place_schedule=(5,)), (56, 56), 0, str(tmp_path))


def test_the_judge_starts_from_the_pretrained_tower(tmp_path):
  c = toy_judge_config(steps=1)
  c.vision_pretrain = pretrain_config(4)
  config = ConfigDict(dict(seed=0, judge=c))
  c.fidelity_samples = 0
  c.optimizer.lr = 0.0  # the judge's one step leaves its params where they started
  _, params, _, _, final = jt.train_judge(config, str(tmp_path))
  tower, _ = jv.pretrain_vision(vision_config(), pretrain_config(4), (56, 56), 0, str(tmp_path / "again"))
  for a, b in zip(jax.tree.leaves(params["params"]["visual"]), jax.tree.leaves(tower)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
  assert "vision/heldout_shape_acc" in final and (tmp_path / "vision" / "metrics.csv").exists()
