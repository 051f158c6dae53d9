"""The GRPO training loop: rollout -> rewards -> group advantages -> updates, with logging,
checkpoints, resume and Ctrl-C handling.

Reads top to bottom: build mesh -> build task and state -> restore -> for each step: prompts,
rollout, rewards, advantages, old/ref log-probs, `num_iterations` passes of minibatch updates,
log, maybe save. The maths lives in rl/grpo.py and rl/train_step.py; this file only orchestrates.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax import parallel
from gotr1_jax.checkpoint import Checkpointer
from gotr1_jax.config_lib import check_config
from gotr1_jax.metrics import MetricWriter
from gotr1_jax.rl.grpo import group_advantages
from gotr1_jax.rl.optimizer import make_optimizer
from gotr1_jax.rl.state import TrainSetup, build_train_setup
from gotr1_jax.rl.task import Task, build_task
from gotr1_jax.rl.train_step import make_train_step, policy_params

log = logging.getLogger(__name__)


def updates_per_step(config: ConfigDict) -> int:
  rows = config.rl.prompts_per_step * config.rl.group_size
  return int(config.rl.num_iterations) * (rows // int(config.rl.minibatch_size or rows))


def train(config: ConfigDict, workdir: str, task: Optional[Task] = None) -> dict[str, Any]:
  """Runs (or resumes) the GRPO job described by `config`; returns the last step's metrics."""
  check_config(config)
  parallel.maybe_initialize_distributed()
  mesh = parallel.make_mesh(config.mesh)
  rules = parallel.logical_rules(config.logical_axis_rules)
  task = task or build_task(config)
  tx = make_optimizer(config.optimizer, config.rl.steps * updates_per_step(config))
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(rules):
    setup = build_train_setup(task, config, mesh, rules, tx)
    ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=config.checkpoint.keep,
                        save_every=config.checkpoint.every, async_save=config.checkpoint.async_save)
    state = _maybe_restore(ckpt, setup, task)
    writer = MetricWriter(workdir)
    try:
      last = _loop(config, task, setup, state, ckpt, writer, mesh, rules, tx)
    finally:
      ckpt.close()
      writer.close()
  return last


def _maybe_restore(ckpt: Checkpointer, setup: TrainSetup, task: Task):
  step = ckpt.latest_step()
  if step is None:
    return setup.state
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          setup.state, setup.state_shardings)
  state, data_state = ckpt.restore(step, abstract)
  task.prompts.set_state(data_state["prompts"])
  log.info("Resumed from step %d in %s", step, ckpt.directory)
  return state


def _loop(config, task, setup: TrainSetup, state, ckpt, writer, mesh, rules, tx) -> dict[str, Any]:
  rl = config.rl
  train_step = make_train_step(task.logps_fn, tx, setup.lora, rl)
  batch_sh = parallel.batch_sharding(mesh, rules, ndim=1)
  step_fn = jax.jit(train_step, in_shardings=(setup.state_shardings, setup.frozen_shardings, batch_sh),
                    out_shardings=(setup.state_shardings, None), donate_argnums=(0,))
  merge = jax.jit(policy_params, static_argnums=(2,))
  logps_fn = jax.jit(task.logps_fn)
  start = int(state.step)
  last: dict[str, Any] = {}
  bar = tqdm(total=rl.steps, initial=start, desc="GRPO", unit="step", dynamic_ncols=True)
  data_state = task.prompts.get_state()  # the data position after the last completed step
  try:
    for step in range(start, rl.steps):
      t0 = time.perf_counter()
      prompts = task.prompts.next(rl.prompts_per_step)
      rows = [p for p in prompts for _ in range(rl.group_size)]  # groups contiguous
      rng = jax.random.fold_in(state.rng, step)
      policy = merge(state.params, setup.frozen, setup.lora)
      rollout = task.rollout(policy, rows, jax.random.fold_in(rng, 0))
      rewards = task.reward_fn(rows, rollout)
      batch = dict(rollout.batch)
      batch["advantages"] = group_advantages(jnp.asarray(rewards["reward"]), rl.group_size, rl.advantage)
      if rl.num_iterations > 1:
        batch["old_logps"] = logps_fn(policy, batch)
      if float(rl.beta) > 0:
        batch["ref_logps"] = logps_fn(setup.reference, batch)
      batch = jax.device_put({k: v for k, v in batch.items() if k != "sample_logps"}, batch_sh)
      state, update_metrics = _updates(step_fn, state, setup.frozen, batch, rl, jax.random.fold_in(rng, 1))
      state = state.replace(step=jnp.int32(step + 1))
      seconds = time.perf_counter() - t0
      last = _step_metrics(rewards, update_metrics, rollout, rl, seconds)
      writer.write(step + 1, last)
      bar.set_postfix(reward=f"{last['reward/mean']:.3f}", kl=f"{last['loss/kl']:.4f}")
      bar.update(1)
      log.info("step %d/%d: reward %.4f, kl %.4g, loss %.4g, grad_norm %.3g, %.0f tokens/s", step + 1,
               rl.steps, last["reward/mean"], last["loss/kl"], last["loss/loss"],
               last["train/grad_norm"], last["perf/tokens_per_s"])
      data_state = task.prompts.get_state()
      ckpt.save(step + 1, state, {"prompts": data_state}, force=step + 1 == rl.steps)
  except KeyboardInterrupt:
    done = int(state.step)
    log.warning("Interrupted: saving step %d to %s and exiting; re-run the same command to resume.",
                done, ckpt.directory)
    if done not in ckpt.all_steps():
      ckpt.save(done, state, {"prompts": data_state}, force=True)
  finally:
    bar.close()
    writer.flush()
  return last


def _updates(step_fn, state, frozen, batch, rl, rng):
  """`num_iterations` passes over the rollout in shuffled minibatches; returns mean metrics."""
  rows = batch["advantages"].shape[0]
  size = int(rl.minibatch_size or rows)
  collected = []
  for it in range(rl.num_iterations):
    order = np.asarray(jax.random.permutation(jax.random.fold_in(rng, it), rows)) if size < rows else np.arange(rows)
    for start in range(0, rows, size):
      idx = np.sort(order[start:start + size])
      mb = batch if size == rows else jax.tree.map(lambda x: x[idx], batch)
      state, m = step_fn(state, frozen, mb)
      collected.append(m)
  mean = jax.tree.map(lambda *xs: float(np.mean([float(x) for x in xs])), *collected)
  return state, mean


def _step_metrics(rewards, m, rollout, rl, seconds) -> dict[str, float]:
  out = {}
  for k, v in rewards.items():
    v = np.asarray(v, np.float64)
    if v.ndim == 0:
      out[f"reward/{k}"] = float(v)  # counters such as parse failures
      continue
    name = "mean" if k == "reward" else k
    out[f"reward/{name}"] = float(v.mean())
    out[f"reward/{name}_std"] = float(v.std())
  groups = np.asarray(rewards["reward"]).reshape(-1, rl.group_size)
  out["reward/zero_var_group_frac"] = float(np.mean(groups.max(1) == groups.min(1)))
  for k in ("loss", "pg_loss", "kl_loss"):
    out[f"loss/{k}"] = m[k]
  out["loss/kl"] = m["kl"]
  for k in ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean", "grad_norm", "skipped_nonfinite"):
    out[f"train/{k}"] = m[k]
  out["adv/mean"], out["adv/std"] = m["adv_mean"], m["adv_std"]
  out["perf/step_s"] = seconds
  out["perf/tokens_per_s"] = rollout.num_generated_tokens / max(seconds, 1e-9)
  out["rollout/mean_length"] = rollout.num_generated_tokens / max(len(rollout.completions), 1)
  return out
