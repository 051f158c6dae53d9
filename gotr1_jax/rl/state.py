"""Building the sharded train state: trainable tree (LoRA or full), frozen base, reference policy.

Owns turning a task's boxed (logically annotated) params into arrays placed on the mesh, creating
adapters and optimizer state with matching shardings, and the abstract state used to restore a
checkpoint onto any mesh. With LoRA the frozen base is also the reference policy (no copy); full
fine-tuning keeps a frozen copy of the initial params as the reference when beta > 0.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.core import meta
from jax.sharding import Mesh, NamedSharding
from ml_collections import ConfigDict

from gotr1_jax import parallel
from gotr1_jax.models.lora import LoraConfig, init_lora
from gotr1_jax.rl.task import Task
from gotr1_jax.rl.train_step import TrainState, uses_reference

PyTree = Any


@dataclasses.dataclass
class TrainSetup:
  state: TrainState
  state_shardings: TrainState
  frozen: Optional[PyTree]  # the base params under LoRA (also the reference policy)
  frozen_shardings: Optional[PyTree]
  reference: Optional[PyTree]  # the reference policy's params (frozen base, or a copy for full FT)
  lora: Optional[LoraConfig]


def lora_config(config: ConfigDict) -> Optional[LoraConfig]:
  if not config.lora.enabled:
    return None
  return LoraConfig(rank=int(config.lora.rank), alpha=float(config.lora.alpha),
                    targets=tuple(config.lora.targets))


def _place(params: PyTree, abstract: PyTree, shardings: PyTree, mesh: Mesh) -> PyTree:
  """device_put of loaded params, after checking they have the model's structure and shapes."""
  try:
    jax.tree.map(lambda a, p: None, abstract, params)
  except ValueError as e:
    raise ValueError(f"The loaded checkpoint's parameter tree does not match the model config: {e}") from None
  bad = [(jax.tree_util.keystr(k), a.shape, p.shape) for (k, a), p in
         zip(jax.tree_util.tree_leaves_with_path(abstract), jax.tree.leaves(params)) if a.shape != p.shape]
  if bad:
    raise ValueError(f"The loaded checkpoint's shapes differ from the model config's: {bad[:5]}")
  put = lambda p, a, s: jax.device_put(np.asarray(p, a.dtype), NamedSharding(mesh, s.spec))
  return jax.tree.map(put, params, abstract, shardings)


def build_train_setup(task: Task, config: ConfigDict, mesh: Mesh, rules: parallel.Rules,
                      tx: optax.GradientTransformation) -> TrainSetup:
  """Initialises every array of the run directly in its sharded place (no host round trip)."""
  k_init, k_lora, k_train = jax.random.split(jax.random.PRNGKey(config.seed), 3)
  boxed = jax.eval_shape(task.init_params, k_init)
  base_sh = parallel.logical_to_sharding(boxed, mesh, rules)
  if task.load_params is None:
    base = jax.jit(lambda r: meta.unbox(task.init_params(r)), out_shardings=base_sh)(k_init)
  else:  # pretrained weights go straight to their shards (checked against init_params' shapes)
    abstract = jax.tree.map(lambda b: b.unbox(apply_constraint=False) if isinstance(b, meta.AxisMetadata) else b,
                            boxed, is_leaf=lambda b: isinstance(b, meta.AxisMetadata))
    base = _place(task.load_params(), abstract, base_sh, mesh)
  lora = lora_config(config)
  if lora is not None:
    boxed_trainable = jax.eval_shape(lambda r: init_lora(boxed, r, lora), k_lora)
    trainable_sh = parallel.logical_to_sharding(boxed_trainable, mesh, rules)
    trainable = jax.jit(lambda r: meta.unbox(init_lora(boxed, r, lora)), out_shardings=trainable_sh)(k_lora)
    frozen, frozen_sh, reference = base, base_sh, base
  else:
    boxed_trainable, trainable_sh, trainable = boxed, base_sh, base
    frozen, frozen_sh = None, None
    reference = jax.tree.map(jnp.copy, base) if uses_reference(config.rl) else None
  opt_sh = parallel.logical_to_sharding(jax.eval_shape(tx.init, boxed_trainable), mesh, rules)
  opt_state = jax.jit(tx.init, out_shardings=opt_sh)(trainable)
  rep = parallel.replicated(mesh)
  state_sh = TrainState(step=rep, params=trainable_sh, opt_state=opt_sh, rng=rep)
  state = TrainState(step=jax.device_put(jnp.int32(0), rep), params=trainable, opt_state=opt_state,
                     rng=jax.device_put(k_train, rep))
  return TrainSetup(state, state_sh, frozen, frozen_sh, reference, lora)
