"""The pre-training pipeline: run a stage from the config, save its checkpoint, report its metrics.

Owns the order of the stages (vq -> policy -> judge), where each reads its inputs (the policy reads
the VQ checkpoint from out_dir) and the wall time of each. The stages' maths live in vq_train.py,
sft_policy.py and judge_train.py; the on-disk format in shipped.py.
"""
from __future__ import annotations

import os
import time
from typing import Callable

from ml_collections import ConfigDict

from gotr1_jax.pretrain import shipped

STAGES: tuple[str, ...] = ("vq", "policy", "judge")


def _run_vq(config: ConfigDict, workdir: str, out_dir: str) -> dict[str, float]:
  from gotr1_jax.pretrain.vq_train import train_vq
  vq_config, params, metrics = train_vq(config, workdir)
  shipped.save_vq(shipped.checkpoint_dir("vq", out_dir), vq_config, params)
  return metrics


def _run_policy(config: ConfigDict, workdir: str, out_dir: str) -> dict[str, float]:
  """`policy.rounds` rounds of SFT, each saved to out_dir/policy and evaluated under
  workdir/round<k>; round k > 0 continues from the one before (see configs/shapes_pretrain.py)."""
  from gotr1_jax.pretrain.sft_policy import train_policy
  vq_config, vq_params = shipped.load_vq(shipped.checkpoint_dir("vq", out_dir))
  c, dest = config.policy, shipped.checkpoint_dir("policy", out_dir)
  first = c.init_step // c.steps
  if not 0 <= first < c.rounds or c.init_step % c.steps:
    raise ValueError(f"config.policy.init_step={c.init_step} must be k * policy.steps ({c.steps}) for a round "
                     f"k in [0, policy.rounds={c.rounds}); use 0 to train from scratch.")
  metrics = {}
  for k in range(first, c.rounds):
    round_config = ConfigDict(config.to_dict())
    rc = round_config.policy
    rc.init_step = k * c.steps
    # The first round run may start from a given policy; any later one from the round before it.
    given = c.init_checkpoint if k == first else ""
    rc.init_checkpoint = given or (str(dest) if k > 0 else "")
    if k > 0:
      rc.optimizer.lr = c.later_round_lr
    janus_config, params, metrics = train_policy(round_config, os.path.join(workdir, f"round{k}"), vq_config,
                                                 vq_params)
    shipped.save_policy(dest, janus_config, params, vq_params)
  return metrics


def _run_judge(config: ConfigDict, workdir: str, out_dir: str) -> dict[str, float]:
  from gotr1_jax.models.vq import VQModel
  from gotr1_jax.pretrain.judge_train import train_judge
  from gotr1_jax.pretrain.vq_train import image_roundtrip
  transform = None
  if config.judge.vq_fraction > 0:  # the policy's images are VQ decodes: show the judge some
    vq_config, vq_params = shipped.load_vq(shipped.checkpoint_dir("vq", out_dir))
    model = VQModel(vq_config)
    transform = image_roundtrip(model, vq_params)
  model_config, params, tokenizer, _, metrics = train_judge(config, workdir, transform)
  shipped.save_judge(shipped.checkpoint_dir("judge", out_dir), model_config, params, tokenizer,
                     int(config.judge.image_size))
  return metrics


_RUNNERS: dict[str, Callable[[ConfigDict, str, str], dict[str, float]]] = {
    "vq": _run_vq, "policy": _run_policy, "judge": _run_judge}


def run_stages(config: ConfigDict, stages: tuple[str, ...] = STAGES, workdir: str = "",
               out_dir: str = "") -> dict[str, dict[str, float]]:
  """Runs `stages` in pipeline order; returns {stage: final metrics + 'time/wall_s'}."""
  unknown = [s for s in stages if s not in STAGES]
  if unknown:
    raise ValueError(f"Unknown pre-training stages {unknown}; choose from {STAGES}.")
  missing = [s for s in stages if s not in _RUNNERS]
  if missing:
    raise ValueError(f"Stages {missing} cannot run in this checkout; available: {sorted(_RUNNERS)}.")
  workdir, out_dir = workdir or config.workdir, out_dir or config.out_dir
  results = {}
  for stage in (s for s in STAGES if s in stages):
    start = time.time()
    metrics = _RUNNERS[stage](config, os.path.join(workdir, stage), out_dir)
    results[stage] = {**metrics, "time/wall_s": time.time() - start}
  return results
