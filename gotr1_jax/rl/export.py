"""A ShapesWorld GRPO run's policy as a Janus checkpoint: its newest LoRA merged into its start.

Owns reading a run back as a policy (`trained_janus`: what tools/evaluate.py --workdir samples) and
writing that policy as a Janus directory (`export_policy`: DeepSeek's layout with the VQ and the
tokenizer, as the shipped SFT policy is written), which tools/generate.py, tools/evaluate.py
--checkpoint and a later run's `task.policy_checkpoint` read, so that one run can start where
another ended (tools/export_policy.py).
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from ml_collections import ConfigDict

from gotr1_jax.pretrain.shipped import save_policy
from gotr1_jax.rl import trainer
from gotr1_jax.rl.shapes_world import shipped_checkpoint
from gotr1_jax.sampling.janus_generate import JanusGenerator, generator_from_checkpoint


def trained_janus(run_config: ConfigDict, workdir: str, generation: Optional[Mapping[str, Any]] = None,
                  ) -> tuple[JanusGenerator, Any, Any, int]:
  """(generator, policy params, VQ params, step) of the newest checkpoint in `workdir`, a run of
  `run_config` (the config it was trained with), LoRA merged into the run's starting policy; the
  starting policy itself (step 0) when the run has no checkpoint. The generator samples with
  `generation` (default: the run's own `config.generation`). No judge is built."""
  config = ConfigDict(run_config.to_dict())
  config.reward.kind, config.task.reward_fn = "function", "oracle"  # only the policy is needed, not its judge
  _, params, step = trainer.trained_policy(config, workdir)
  start = config.task.policy_checkpoint or shipped_checkpoint("policy")
  generator, _, vq_params = generator_from_checkpoint(
      start, dict(generation=config.generation if generation is None else generation),
      config.task.get("tokenizer") or None)
  return generator, params, vq_params, step


def export_policy(run_config: ConfigDict, workdir: str, out: str) -> int:
  """Writes the run's newest policy (trained_janus) to the directory `out`; returns its step.
  Refuses a run without a checkpoint, which would only copy the starting policy."""
  generator, params, vq_params, step = trained_janus(run_config, workdir)
  if step == 0:
    raise ValueError(f"{workdir} holds no checkpoint of a run of this config; pass the --workdir the run "
                     "wrote (its checkpoints/ directory) and the --config it was trained with.")
  os.makedirs(out, exist_ok=True)
  save_policy(out, generator.policy.config, params, vq_params, generator.tokenizer)
  return step
