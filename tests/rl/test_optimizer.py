"""rl/optimizer.py: the schedule's ends, and frozen_for holding a part still for its first updates."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from gotr1_jax import config_lib
from gotr1_jax.rl.optimizer import frozen_for, learning_rate_schedule, make_optimizer


def test_schedule_warms_up_then_decays_to_the_floor():
  opt = config_lib.optimizer_defaults()
  opt.update(lr=1e-3, warmup_steps=10, final_lr_ratio=0.1)
  lr = learning_rate_schedule(opt, 100)
  assert float(lr(0)) == 0.0 and abs(float(lr(10)) - 1e-3) < 1e-9 and abs(float(lr(100)) - 1e-4) < 1e-9


def test_frozen_for_holds_the_named_leaves_then_lets_them_go():
  opt = ConfigDict(dict(config_lib.optimizer_defaults()))
  opt.update(lr=0.1, warmup_steps=0, weight_decay=0.5)  # weight decay too must not move a frozen leaf
  tx = optax.chain(make_optimizer(opt, 10), frozen_for(2, lambda path: path.startswith("params/visual/")))
  params = {"params": {"visual": {"w": jnp.ones(3)}, "lm": {"w": jnp.ones(3)}}}
  grads = {"params": {"visual": {"w": jnp.ones(3)}, "lm": {"w": jnp.ones(3)}}}
  state = tx.init(params)
  for step in range(3):
    before = params
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    lm_moved = not np.allclose(params["params"]["lm"]["w"], before["params"]["lm"]["w"])
    visual_moved = not np.allclose(params["params"]["visual"]["w"], before["params"]["visual"]["w"])
    assert lm_moved and visual_moved == (step >= 2), step
