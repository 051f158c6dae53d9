"""The optimizer: AdamW with warmup + cosine decay and global-norm clipping, built from config.

Owns only the optax chain and its schedule (and `frozen_for`, a part held still for the first
updates); the NaN/inf guard lives in the train step.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from gotr1_jax.models.lora import paths_of


def learning_rate_schedule(opt: ConfigDict, total_updates: int) -> optax.Schedule:
  """Linear warmup to `opt.lr`, then cosine decay to `opt.lr * opt.final_lr_ratio`."""
  warmup = min(int(opt.warmup_steps), max(total_updates - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else float(opt.lr), peak_value=float(opt.lr), warmup_steps=warmup,
      decay_steps=max(total_updates, warmup + 1), end_value=float(opt.lr) * float(opt.final_lr_ratio))


def make_optimizer(opt: ConfigDict, total_updates: int) -> optax.GradientTransformation:
  if opt.name != "adamw":
    raise ValueError(f"config.optimizer.name={opt.name!r} is not supported; use 'adamw'.")
  return optax.chain(
      optax.clip_by_global_norm(float(opt.max_grad_norm)),
      optax.adamw(learning_rate_schedule(opt, total_updates), b1=float(opt.b1), b2=float(opt.b2),
                  eps=float(opt.eps), weight_decay=float(opt.weight_decay)))


class FrozenForState(NamedTuple):
  count: jax.Array


def frozen_for(steps: int, frozen: Callable[[str], bool]) -> optax.GradientTransformation:
  """Chained after an optimizer: the updates of every leaf whose '/'-joined path `frozen(path)` is
  true are zero for the first `steps` updates (weight decay included), then pass unchanged. As a
  VLM's first stage trains its projector and LM on a vision tower held still."""
  def mask(tree: Any) -> Any:
    return jax.tree.unflatten(jax.tree.structure(tree), [frozen(path) for path in paths_of(tree)])

  def update(updates, state, params=None):
    del params
    held = state.count < steps
    updates = jax.tree.map(lambda u, m: jnp.where(held & m, jnp.zeros_like(u), u), updates, mask(updates))
    return updates, FrozenForState(state.count + 1)

  return optax.GradientTransformation(lambda params: FrozenForState(jnp.zeros([], jnp.int32)), update)
