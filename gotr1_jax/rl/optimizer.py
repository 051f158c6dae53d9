"""The optimizer: AdamW with warmup + cosine decay and global-norm clipping, built from config.

Owns only the optax chain and its schedule; the NaN/inf guard lives in the train step.
"""
from __future__ import annotations

import optax
from ml_collections import ConfigDict


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
