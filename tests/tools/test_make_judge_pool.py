"""tools/make_judge_pool.py: a pool sampled as GRPO samples (here from a tiny random policy with no
run yet), written, read back and joined with another."""
from __future__ import annotations

import numpy as np

from gotr1_jax.pretrain.judge_data import PolicyPool
from tests.rl.test_shapes_world import tiny_config
from tests.sampling.test_janus_generate import write_tiny_policy
from tools import make_judge_pool


def test_sample_and_merge_pools(tmp_path):
  write_tiny_policy(tmp_path / "policy")
  config = tiny_config(tmp_path / "policy", tmp_path / "data", 1)
  pool = make_judge_pool.sample_pool(config, str(tmp_path / "no_run"), num=6, batch=4, seed=0)
  assert len(pool) == 6 and pool.images.shape[0] == 6 and pool.images.dtype == np.uint8
  assert len(set(pool.prompts)) == 6  # consecutive prompts of the train stream
  pool.save(str(tmp_path / "a.npz"))
  pool.save(str(tmp_path / "b.npz"))
  both = make_judge_pool.merge_pools([str(tmp_path / "a.npz"), str(tmp_path / "b.npz")])
  assert len(both) == 12 and both.chains == pool.chains * 2
  assert isinstance(PolicyPool.load(str(tmp_path / "a.npz")), PolicyPool)
  groups = make_judge_pool.sample_pool(config, str(tmp_path / "no_run"), num=8, batch=4, seed=1, group=2)
  assert groups.prompts[0::2] == groups.prompts[1::2] and len(set(groups.prompts)) == 4
  assert groups.chains[0] != groups.chains[1] or not np.array_equal(groups.images[0], groups.images[1])
