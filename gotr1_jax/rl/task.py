"""What the trainer needs from a GRPO task, and the registry that builds one from a config.

A `Task` bundles a policy (init, rollout, log-probs), a prompt source with a resumable position,
and a reward function. The trainer owns the loop; tasks own everything specific to a world
(the toy token task here, ShapesWorld + Janus for the main job).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Optional, Protocol

import numpy as np
from ml_collections import ConfigDict

from gotr1_jax.rl.rollout import Rollout
from gotr1_jax.rl.train_step import LogpsFn


class PromptSource(Protocol):
  def next(self, n: int) -> list[Any]: ...
  def get_state(self) -> dict: ...
  def set_state(self, state: dict) -> None: ...


@dataclasses.dataclass
class Task:
  """init_params(rng) -> boxed params (its abstract shape also gives every parameter's logical
  axes); load_params() -> the same tree unboxed, from a checkpoint (None: start from init_params);
  rollout(params, prompts, rng) -> Rollout (prompts already repeated group_size times, groups
  contiguous); reward_fn(prompts, rollout) -> dict of [B] arrays with at least 'reward' (scalars
  are counters); evaluate(params, rng) -> an EvalResult (eval/shapes_eval.py) for the before /
  after report."""

  name: str
  init_params: Callable[[Any], Any]
  rollout: Callable[[Any, list[Any], Any], Rollout]
  logps_fn: LogpsFn
  prompts: PromptSource
  reward_fn: Callable[[list[Any], Rollout], dict[str, np.ndarray]]
  evaluate: Optional[Callable[[Any, Any], Any]] = None
  load_params: Optional[Callable[[], Any]] = None


_REGISTRY: dict[str, Callable[[ConfigDict], Task]] = {}
# The module that registers each built-in task; imported only when its task is built.
_MODULES = {"toy": "gotr1_jax.rl.toy", "shapes_world": "gotr1_jax.rl.shapes_world"}


def register(name: str):
  def wrap(builder):
    _REGISTRY[name] = builder
    return builder
  return wrap


def build_task(config: ConfigDict) -> Task:
  if config.task.name in _MODULES:
    importlib.import_module(_MODULES[config.task.name])  # registers its builder
  if config.task.name not in _REGISTRY:
    raise ValueError(f"config.task.name={config.task.name!r} is unknown; available: "
                     f"{sorted(set(_REGISTRY) | set(_MODULES))}.")
  return _REGISTRY[config.task.name](config)
