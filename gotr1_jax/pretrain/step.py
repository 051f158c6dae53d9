"""The one supervised optimizer step every pre-training stage (VQ, SFT policy, judge) compiles.

Owns turning a pure `loss_fn(params, batch) -> (loss, metrics)` into `step(state, batch) ->
(state, metrics)` on a flax TrainState, with the gradient's global norm logged. The losses live in
their stages' modules.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import optax
from flax.training.train_state import TrainState


def supervised_step(loss_fn: Callable[[Any, Any], tuple[jax.Array, dict]]):
  def step(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch)
    metrics["train/grad_norm"] = optax.tree.norm(grads)
    return state.apply_gradients(grads=grads), metrics

  return step
