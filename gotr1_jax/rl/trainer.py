"""The GRPO training loop: rollout -> rewards -> group advantages -> updates, with logging,
checkpoints, resume and Ctrl-C handling.

Reads top to bottom: build mesh -> build task and state -> restore -> for each step: prompts,
rollout, rewards, advantages, old/ref log-probs, `num_iterations` passes of minibatch updates,
log, maybe save. Tasks with an `evaluate` are evaluated before the first step, every
`task.eval_every` steps and after the last, which ends with `<workdir>/report.md` (rl/report.py).
The maths lives in rl/grpo.py and rl/train_step.py; this file only orchestrates.
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
from gotr1_jax.metrics import MetricWriter, logs_above_bar
from gotr1_jax.rewards.config import monitor_defaults
from gotr1_jax.rewards.monitor import RewardMonitor
from gotr1_jax.rl import report
from gotr1_jax.rl.grpo import group_advantages
from gotr1_jax.rl.optimizer import make_optimizer
from gotr1_jax.rl.state import TrainSetup, build_train_setup
from gotr1_jax.rl.task import Task, build_task
from gotr1_jax.rl.train_step import make_train_step, policy_params, uses_reference

log = logging.getLogger(__name__)


def updates_per_step(config: ConfigDict) -> int:
  rows = config.rl.prompts_per_step * config.rl.group_size
  return int(config.rl.num_iterations) * (rows // int(config.rl.minibatch_size or rows))


def train(config: ConfigDict, workdir: str, task: Optional[Task] = None) -> dict[str, Any]:
  """Runs (or resumes) the GRPO job described by `config`; returns the last step's metrics."""
  check_config(config)
  parallel.maybe_initialize_distributed()
  mesh, rules, task, tx = _build(config, task)
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(rules):
    setup = build_train_setup(task, config, mesh, rules, tx)
    ckpt = _checkpointer(config, workdir, config.checkpoint.async_save)
    monitor = RewardMonitor(config.reward.monitor if "reward" in config else monitor_defaults())
    state = _maybe_restore(ckpt, setup, task, monitor)
    writer = MetricWriter(workdir)
    writer.drop_after(int(state.step))  # rows of steps after the checkpoint are rewritten
    try:
      with logs_above_bar():  # each step's log line above the GRPO bar, not torn into it
        last = _loop(config, task, setup, state, ckpt, writer, monitor, workdir, mesh, rules, tx)
    finally:
      ckpt.close()
      writer.close()
  return last


def trained_policy(config: ConfigDict, workdir: str, task: Optional[Task] = None) -> tuple[Task, Any, int]:
  """(task, policy params, step) of the newest checkpoint in `workdir` (LoRA merged into the
  base), or of the starting policy when the run has none yet: what the run's policy samples now."""
  check_config(config)
  mesh, rules, task, tx = _build(config, task)
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(rules):
    setup = build_train_setup(task, config, mesh, rules, tx)
    ckpt = _checkpointer(config, workdir, async_save=False)
    try:
      state = _maybe_restore(ckpt, setup, task, RewardMonitor(monitor_defaults()))
    finally:
      ckpt.close()
    params = jax.jit(policy_params, static_argnums=(2,))(state.params, setup.frozen, setup.lora)
  return task, params, int(state.step)


def _build(config: ConfigDict, task: Optional[Task]):
  """The run's mesh, axis rules, task and optimizer."""
  mesh = parallel.make_mesh(config.mesh)
  rules = parallel.logical_rules(config.logical_axis_rules)
  task = task or build_task(config)
  return mesh, rules, task, make_optimizer(config.optimizer, config.rl.steps * updates_per_step(config))


def _checkpointer(config: ConfigDict, workdir: str, async_save: bool) -> Checkpointer:
  return Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=config.checkpoint.keep,
                      save_every=config.checkpoint.every, async_save=async_save)


def _maybe_restore(ckpt: Checkpointer, setup: TrainSetup, task: Task, monitor: RewardMonitor):
  step = ckpt.latest_step()
  if step is None:
    return setup.state
  abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          setup.state, setup.state_shardings)
  state, data_state = ckpt.restore(step, abstract)
  task.prompts.set_state(data_state["prompts"])
  if "monitor" in data_state:
    monitor.set_state(data_state["monitor"])
  log.info("Resumed from step %d in %s", step, ckpt.directory)
  return state


def _evaluate(config, task: Task, policy, step: int, tag: str, writer: MetricWriter, workdir: str) -> dict:
  """Runs the task's evaluation (same prompts and seeds every time), logs it and saves its files."""
  t0 = time.perf_counter()
  result = task.evaluate(policy, jax.random.key(int(config.seed) + 1))
  writer.write(step, {**result.scalars(), "perf/eval_s": time.perf_counter() - t0})
  summary = report.save_eval(workdir, tag, step, result, int(config.task.get("eval_samples", 1)))
  log.info("eval (%s, step %d): overall %.3f %s", tag, step, result.overall,
           ", ".join(f"{k} {v:.3f}" for k, v in result.per_category.items()))
  return summary


def _finish_report(config, task, policy, step, writer, workdir) -> None:
  after = _evaluate(config, task, policy, step, "after", writer, workdir)
  before = report.load_eval(workdir, "before")
  if before is None:
    log.warning("No 'before' evaluation in %s (the run started from a checkpoint written before "
                "evaluation existed); the report shows the end only.", workdir)
    before = after
  keys = ["reward/mean"] + [k for k in ("reward/oracle_t2i_score", "reward/t2i_score") if k in writer.columns]
  path = report.write_report(workdir, config.get("name", "run"), before, after, curve_keys=keys)
  tqdm.write(f"\nBefore / after GRPO ({path}):\n" + report.before_after_table(before, after))


def _loop(config, task, setup: TrainSetup, state, ckpt, writer, monitor, workdir, mesh, rules, tx) -> dict[str, Any]:
  rl = config.rl
  train_step = make_train_step(task.logps_fn, tx, setup.lora, rl)
  batch_sh = parallel.batch_sharding(mesh, rules, ndim=1)
  axes = batch_sh.spec[0] if batch_sh.spec else None
  shards = int(np.prod([mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes or ())]))
  rows = rl.prompts_per_step * rl.group_size
  if (int(rl.minibatch_size) or rows) % shards:
    raise ValueError(f"Each update's batch ({int(rl.minibatch_size) or rows} rows = rl.minibatch_size or "
                     f"prompts_per_step * group_size) must divide over the {shards} devices the batch is "
                     "sharded across; change rl.prompts_per_step / rl.group_size / rl.minibatch_size or the mesh "
                     "(on a CPU host, XLA_FLAGS=--xla_force_host_platform_device_count=1 runs on one device).")
  step_fn = jax.jit(train_step, in_shardings=(setup.state_shardings, setup.frozen_shardings, batch_sh),
                    out_shardings=(setup.state_shardings, None), donate_argnums=(0,))
  merge = jax.jit(policy_params, static_argnums=(2,))
  logps_fn = jax.jit(task.logps_fn)
  start = int(state.step)
  last: dict[str, Any] = {}
  bar = tqdm(total=rl.steps, initial=start, desc="GRPO", unit="step", dynamic_ncols=True)
  data_state = {"prompts": task.prompts.get_state(), "monitor": monitor.get_state()}  # after the last step
  eval_every = int(config.task.get("eval_every", 0) or 0) if task.evaluate else 0
  if task.evaluate and start == 0 and report.load_eval(workdir, "before") is None:
    _evaluate(config, task, merge(state.params, setup.frozen, setup.lora), 0, "before", writer, workdir)
  try:
    for step in range(start, rl.steps):
      t0 = time.perf_counter()
      prompts = task.prompts.next(rl.prompts_per_step)
      rows = [p for p in prompts for _ in range(rl.group_size)]  # groups contiguous
      rng = jax.random.fold_in(state.rng, step)
      policy = merge(state.params, setup.frozen, setup.lora)
      rollout = task.rollout(policy, rows, jax.random.fold_in(rng, 0))
      t_rollout = time.perf_counter()
      rewards = task.reward_fn(rows, rollout)
      t_reward = time.perf_counter()
      batch = dict(rollout.batch)
      batch["advantages"] = group_advantages(jnp.asarray(rewards["reward"]), rl.group_size, rl.advantage)
      if rl.num_iterations > 1:
        batch["old_logps"] = logps_fn(policy, batch)
      if uses_reference(rl):
        batch["ref_logps"] = logps_fn(setup.reference, batch)
      batch = jax.device_put({k: v for k, v in batch.items() if k != "sample_logps"}, batch_sh)
      state, update_metrics = _updates(step_fn, state, setup.frozen, batch, rl, jax.random.fold_in(rng, 1))
      state = state.replace(step=jnp.int32(step + 1))
      seconds = time.perf_counter() - t0
      last = _step_metrics(rewards, update_metrics, rollout, rl, seconds, monitor)
      # Where a step's time goes: sampling (text out), scoring, then log-probs + the update(s).
      last.update({"perf/rollout_s": t_rollout - t0, "perf/reward_s": t_reward - t_rollout,
                   "perf/update_s": t0 + seconds - t_reward})
      writer.write(step + 1, last)
      bar.set_postfix(reward=f"{last['reward/mean']:.3f}", kl=f"{last['loss/kl']:.4f}")
      bar.update(1)
      log.info("step %d/%d: reward %.4f, kl %.4g, loss %.4g, grad_norm %.3g, %.0f tokens/s", step + 1,
               rl.steps, last["reward/mean"], last["loss/kl"], last["loss/loss"],
               last["train/grad_norm"], last["perf/tokens_per_s"])
      data_state = {"prompts": task.prompts.get_state(), "monitor": monitor.get_state()}
      ckpt.save(step + 1, state, data_state, force=step + 1 == rl.steps)
      if eval_every and (step + 1) % eval_every == 0 and step + 1 < rl.steps:
        _evaluate(config, task, merge(state.params, setup.frozen, setup.lora), step + 1, f"step{step + 1:05d}",
                  writer, workdir)
    finished = int(state.step) == rl.steps
    if task.evaluate and finished and (start < rl.steps or report.load_eval(workdir, "after") is None):
      _finish_report(config, task, merge(state.params, setup.frozen, setup.lora), rl.steps, writer, workdir)
  except KeyboardInterrupt:
    done = int(state.step)
    log.warning("Interrupted: saving step %d to %s and exiting; re-run the same command to resume.",
                done, ckpt.directory)
    if done not in ckpt.all_steps():
      ckpt.save(done, state, data_state, force=True)
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


def _step_metrics(rewards, m, rollout, rl, seconds, monitor: RewardMonitor) -> dict[str, float]:
  # Reward means/stds, zero-variance group fractions and the hacking warning; scalars are counters.
  out = monitor.update(rewards, rl.group_size)
  out.update({f"reward/{k}": float(v) for k, v in rewards.items() if np.ndim(v) == 0})
  for k in ("loss", "pg_loss", "kl_loss"):
    out[f"loss/{k}"] = m[k]
  out["loss/kl"] = m["kl"]
  for k in ("kl_chain", "kl_image"):  # a Janus policy's KL over its chains and over its image codes
    if k in m:
      out[f"loss/{k}"] = m[k]
  for k in ("clip_frac", "clip_frac_low", "clip_frac_high", "ratio_mean", "grad_norm", "skipped_nonfinite"):
    out[f"train/{k}"] = m[k]
  out["adv/mean"], out["adv/std"] = m["adv_mean"], m["adv_std"]
  out["perf/step_s"] = seconds
  out["perf/tokens_per_s"] = rollout.num_generated_tokens / max(seconds, 1e-9)
  out["rollout/mean_length"] = rollout.num_generated_tokens / max(len(rollout.completions), 1)
  return out
