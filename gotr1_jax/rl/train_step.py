"""The GRPO update: TrainState, the pure loss over policy log-probs, and the jit-able step.

Owns `loss_fn` (policy forward -> per-token log-probs -> `grpo_loss`) and `train_step`
(value_and_grad -> optax update -> NaN/inf guard). It owns no maths of GRPO itself
(rl/grpo.py), no rollout and no sharding (the trainer jits it with shardings from parallel.py).

A batch is a dict of arrays, all [B, ...] with the same B:
  tokens [B, T] int32, attention_mask [B, T], loss_mask [B, T-1] (1 where target t+1 was generated
  by the policy), old_logps [B, T-1] (absent: the current policy, stop-gradient), ref_logps [B, T-1]
  (absent when no token has a KL weight), advantages [B]; is_image [B, T] (a Janus batch: True at
  image codes): rl.image_beta weighs the image codes' KL apart from the chain's, and the metrics
  kl_chain and kl_image report the two parts' KL.
Log-probs are aligned with targets: entry t is log p(tokens[t+1] | tokens[:t+1]).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import flax.struct
import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

from gotr1_jax.models.lora import LoraConfig, merge_lora
from gotr1_jax.rl.grpo import grpo_loss

PyTree = Any
LogpsFn = Callable[[PyTree, dict], jax.Array]  # (policy params, batch) -> [B, T-1]


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # GRPO steps completed
  params: PyTree  # the trainable tree: LoRA adapters, or the full policy params
  opt_state: PyTree
  rng: jax.Array  # raw key data (uint32), so it checkpoints as a plain array


def policy_params(trainable: PyTree, frozen: Optional[PyTree], lora: Optional[LoraConfig]) -> PyTree:
  """The policy's params: base + adapters for LoRA, the trainable tree itself otherwise."""
  return merge_lora(frozen, trainable, lora) if lora is not None else trainable


def grpo_kwargs(rl: ConfigDict) -> dict:
  return dict(epsilon=float(rl.epsilon), epsilon_high=rl.get("epsilon_high"), beta=float(rl.beta),
              kl=rl.kl, aggregation=rl.aggregation)


def uses_reference(rl: ConfigDict) -> bool:
  """Whether the loss has a KL term, i.e. needs the frozen reference policy's log-probs."""
  image_beta = rl.get("image_beta")
  return float(rl.beta) > 0 or (image_beta is not None and float(image_beta) > 0)


def token_beta(rl: ConfigDict, batch: dict) -> float | jax.Array:
  """The KL weight: rl.beta for every token, or, with rl.image_beta set, rl.beta on the chain's
  tokens and rl.image_beta on the image codes ([B, T-1], aligned with the targets)."""
  image_beta = rl.get("image_beta")
  if image_beta is None:
    return float(rl.beta)
  if "is_image" not in batch:
    raise ValueError("config.rl.image_beta weighs the KL of image codes apart from the chain's, but this "
                     "task's batches mark no image tokens (no 'is_image'); leave config.rl.image_beta unset "
                     "(None).")
  return jnp.where(batch["is_image"][:, 1:], jnp.float32(image_beta), jnp.float32(rl.beta))


def loss_fn(trainable: PyTree, frozen: Optional[PyTree], batch: dict, *, logps_fn: LogpsFn,
            lora: Optional[LoraConfig], rl: ConfigDict) -> tuple[jax.Array, dict]:
  """GRPO loss of the policy on a rollout batch (rewards already turned into advantages)."""
  logps = logps_fn(policy_params(trainable, frozen, lora), batch)
  # One update per rollout: the old policy is the current one, so ratio == 1 with its gradient.
  old_logps = batch["old_logps"] if "old_logps" in batch else jax.lax.stop_gradient(logps)
  kwargs = dict(grpo_kwargs(rl), beta=token_beta(rl, batch))
  if "is_image" in batch:  # where the policy moves away from the reference: its chain or its images
    image = batch["is_image"][:, 1:].astype(bool)
    kwargs["kl_parts"] = {"chain": ~image, "image": image}
  return grpo_loss(logps, old_logps, batch.get("ref_logps"), batch["advantages"], batch["loss_mask"],
                   **kwargs)


def make_train_step(logps_fn: LogpsFn, tx: optax.GradientTransformation,
                    lora: Optional[LoraConfig], rl: ConfigDict):
  """Returns train_step(state, frozen, batch) -> (state, metrics); pure, ready for jax.jit."""

  def train_step(state: TrainState, frozen: Optional[PyTree], batch: dict):
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (loss, metrics), grads = grad_fn(state.params, frozen, batch, logps_fn=logps_fn, lora=lora, rl=rl)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
    state = state.replace(params=keep(new_params, state.params), opt_state=keep(opt_state, state.opt_state))
    metrics = dict(metrics, grad_norm=grad_norm, skipped_nonfinite=1.0 - finite.astype(jnp.float32))
    return state, metrics

  return train_step
