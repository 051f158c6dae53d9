"""The pre-training pipeline: run a stage from the config, save its checkpoint, report its metrics.

Owns the order of the stages (vq -> policy -> judge), where each reads its inputs (the policy reads
the VQ checkpoint from out_dir) and the wall time of each, and the chaining of the judge's phases
(each continues from the judge the one before saved; a saved phase is not run again). The stages'
maths live in vq_train.py, sft_policy.py and judge_train.py; the on-disk format in shipped.py.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

from ml_collections import ConfigDict
from tqdm import tqdm

from gotr1_jax.pretrain import shipped

STAGES: tuple[str, ...] = ("vq", "policy", "judge")


def _load_vq(out_dir: str, stage: str):
  """The VQ checkpoint at out_dir/vq that `stage` reads, or an error naming both ways to put one there."""
  path = shipped.checkpoint_dir("vq", out_dir)
  if not (path / "config.json").exists():
    raise FileNotFoundError(
        f"The {stage} stage reads the VQ tokenizer from {path}, which has none. Copy the shipped one there "
        f"(`mkdir -p {out_dir} && cp -r {shipped.checkpoint_dir('vq')} {path}`) or train it first: "
        f"`python tools/pretrain_shapes.py --config configs/shapes_pretrain.py --only vq --out_dir {out_dir}`.")
  return shipped.load_vq(path)


def _run_vq(config: ConfigDict, workdir: str, out_dir: str) -> dict[str, float]:
  from gotr1_jax.pretrain.vq_train import train_vq
  vq_config, params, metrics = train_vq(config, workdir)
  shipped.save_vq(shipped.checkpoint_dir("vq", out_dir), vq_config, params)
  return metrics


def _run_policy(config: ConfigDict, workdir: str, out_dir: str) -> dict[str, float]:
  """`policy.rounds` rounds of SFT, each saved to out_dir/policy and evaluated under
  workdir/round<k>; round k > 0 continues from the one before (see configs/shapes_pretrain.py)."""
  from gotr1_jax.pretrain.sft_policy import train_policy
  vq_config, vq_params = _load_vq(out_dir, "policy")
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
  """The judge, in `judge.phases` if it has them (judge_train.phase_configs): phase k's metrics under
  workdir/phase<k>, its judge saved to workdir/phase<k>/judge for the next phase, the last one's to
  out_dir/judge. A phase whose judge is already saved is not run again, so a stopped run resumes."""
  from gotr1_jax.models.vq import VQModel
  from gotr1_jax.pretrain.judge_train import phase_configs, train_judge, usage_of
  from gotr1_jax.pretrain.vq_train import image_roundtrip
  transform = None
  if config.judge.vq_fraction > 0:  # the policy's images are VQ decodes: show the judge some
    vq_config, vq_params = _load_vq(out_dir, "judge")
    model = VQModel(vq_config)
    transform = image_roundtrip(model, vq_params)
  phases = phase_configs(config)
  metrics, previous = {}, None
  for k, phase in enumerate(phases):
    last = k == len(phases) - 1
    phase_dir = workdir if len(phases) == 1 else os.path.join(workdir, f"phase{k}")
    dest = shipped.checkpoint_dir("judge", out_dir) if last else Path(phase_dir) / "judge"
    if previous is not None:
      phase.judge.init_checkpoint = str(previous)
    previous = dest
    if not last and (dest / "preprocessor_config.json").exists():  # save_judge writes it last
      tqdm.write(f"judge phase {k + 1} of {len(phases)}: already saved at {dest}, not run again")
      continue
    model_config, params, tokenizer, _, metrics = train_judge(phase, phase_dir, transform)
    shipped.save_judge(dest, model_config, params, tokenizer, int(phase.judge.image_size), usage_of(phase.judge))
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
