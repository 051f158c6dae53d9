"""GRPO maths as pure jit-able functions: group advantages, the clipped KL-regularised loss, and
per-token log-probs from logits. Owns no model, optimizer, sampler or reward: the trainer feeds
arrays in and gets a scalar loss plus a dict of metrics back.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

ADVANTAGE_MODES = ("grpo", "drgrpo", "rloo")
KL_MODES = ("k1", "k2", "k3")
AGGREGATIONS = ("token-mean", "sequence-mean-token-mean", "token-sum-norm")

Array = jax.Array


def _check_choice(value: str, allowed: tuple[str, ...], what: str) -> None:
  if value not in allowed:
    raise ValueError(f"Unknown {what} {value!r}; allowed values are {', '.join(allowed)}.")


def _maths_dtype(x: Array) -> jnp.dtype:
  """fp32 for bf16/fp16/fp32 inputs; fp64 stays fp64 (used by the x64 gradient tests)."""
  return jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)


def token_logps(logits: Array, targets: Array, *, temperature: float = 1.0) -> Array:
  """Log-probability of each target token under softmax(logits / temperature), in fp32.

  logits: [batch, length, vocab] (any float dtype); targets: [batch, length] int token ids that
  were produced at each position. Returns [batch, length]. Computed as the gathered logit minus
  logsumexp, so no second [batch, length, vocab] array is materialised. Positions that are padding
  must still carry a valid id (any in [0, vocab)); the loss masks them out.
  """
  logits = jnp.asarray(logits)
  logits = logits.astype(_maths_dtype(logits)) / temperature
  target_logits = jnp.take_along_axis(logits, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
  return target_logits - jax.nn.logsumexp(logits, axis=-1)


def group_advantages(rewards: Array, group_size: int, mode: str = "grpo",
                     eps: float = 1e-4) -> Array:
  """Per-sample advantages from rewards normalised within each group of `group_size` samples.

  rewards: [num_prompts * group_size], groups contiguous (sample i belongs to group i // G).
    "grpo":   (r - mean_g) / (std_g + eps), std with ddof=0 (GoT-R1, DeepSeekMath).
    "drgrpo": r - mean_g (Dr.GRPO: no std normalisation).
    "rloo":   r_i - mean of the other G-1 rewards in its group (needs G >= 2).
  A group whose rewards are all equal gets advantage exactly 0 in every mode.
  Returns an array shaped like `rewards` in fp32 (fp64 if rewards are fp64).
  """
  _check_choice(mode, ADVANTAGE_MODES, "advantage mode")
  rewards = jnp.asarray(rewards)
  if rewards.ndim != 1:
    raise ValueError(f"rewards must be flat [num_prompts * group_size], got shape {rewards.shape}.")
  if group_size < 1 or rewards.shape[0] % group_size != 0:
    raise ValueError(f"group_size={group_size} must be >= 1 and divide the number of rewards "
                     f"({rewards.shape[0]}); pass rewards for whole groups only.")
  if mode == "rloo" and group_size < 2:
    raise ValueError("rloo advantages need group_size >= 2 (a leave-one-out baseline).")
  r = rewards.astype(_maths_dtype(rewards)).reshape(-1, group_size)  # [groups, G]
  mean = jnp.mean(r, axis=-1, keepdims=True)
  if mode == "grpo":
    std = jnp.sqrt(jnp.mean(jnp.square(r - mean), axis=-1, keepdims=True))
    adv = (r - mean) / (std + eps)
  elif mode == "drgrpo":
    adv = r - mean
  else:  # rloo
    total = jnp.sum(r, axis=-1, keepdims=True)
    adv = r - (total - r) / (group_size - 1)
  # The float mean of equal values need not equal them exactly: pin constant groups to 0.
  constant = jnp.max(r, axis=-1, keepdims=True) == jnp.min(r, axis=-1, keepdims=True)
  adv = jnp.where(constant, jnp.zeros_like(adv), adv)
  return adv.reshape(rewards.shape)


def kl_per_token(logps: Array, ref_logps: Array, kl: str = "k3") -> Array:
  """Per-token estimator of KL(pi || pi_ref) from samples of pi (Schulman's k1/k2/k3).

  k1: logp - ref; k2: (logp - ref)^2 / 2;
  k3: exp(ref - logp) - (ref - logp) - 1 (always >= 0, low variance).
  """
  _check_choice(kl, KL_MODES, "kl estimator")
  if kl == "k1":
    return logps - ref_logps
  if kl == "k2":
    return 0.5 * jnp.square(logps - ref_logps)
  log_r = ref_logps - logps
  return jnp.exp(log_r) - log_r - 1.0


def aggregate(per_token: Array, mask: Array, aggregation: str = "token-mean") -> Array:
  """Reduce a [batch, length] per-token quantity to a scalar over the tokens where mask != 0.

  "token-mean": sum(l*m) / sum(m); "sequence-mean-token-mean": mean over all batch rows of
  sum_t(l*m) / sum_t(m) (fully masked rows count as 0); "token-sum-norm": sum(l*m) / (B*T)
  (Dr.GRPO's constant normaliser). Empty denominators are clamped to 1, so nothing is NaN.
  """
  _check_choice(aggregation, AGGREGATIONS, "loss aggregation")
  weighted = jnp.where(mask != 0, per_token * mask, jnp.zeros_like(per_token))
  if aggregation == "token-mean":
    return jnp.sum(weighted) / jnp.maximum(jnp.sum(mask), 1.0)
  if aggregation == "sequence-mean-token-mean":
    row = jnp.sum(weighted, axis=-1) / jnp.maximum(jnp.sum(mask, axis=-1), 1.0)
    return jnp.mean(row)
  return jnp.sum(weighted) / (per_token.shape[0] * per_token.shape[1])


def _masked_token_mean(x: Array, mask: Array) -> Array:
  return aggregate(x, mask, "token-mean")


def grpo_loss(logps: Array, old_logps: Array, ref_logps: Array | None, advantages: Array,
              mask: Array, *, epsilon: float = 0.2, epsilon_high: float | None = None,
              beta: float | Array = 0.04, kl: str = "k3", aggregation: str = "token-mean",
              kl_parts: dict[str, Array] | None = None) -> tuple[Array, dict[str, Array]]:
  """Clipped-ratio policy-gradient loss plus beta * KL to the reference policy.

  logps, old_logps, ref_logps, mask: [batch, length]; advantages: [batch].
  Per token: -min(ratio * A, clip(ratio, 1 - epsilon, 1 + epsilon_high) * A) + beta * kl_t with
  ratio = exp(logps - old_logps) and epsilon_high defaulting to epsilon (DAPO's clip-higher when
  larger). beta is one weight, or one per token ([batch, length], e.g. a chain weight and an image
  weight: train_step.token_beta). beta == 0 (a Python number) skips the reference entirely;
  ref_logps may then be None. kl_parts ({name: [batch, length] 0/1}, e.g. the chain's tokens and
  the image codes) adds metrics kl_<name>: the unweighted KL's token mean over each part.
  Masked positions (mask == 0) are zeroed before any exp, so padding never yields inf/NaN and
  gets zero gradient. Maths runs in fp32 whatever the input dtype (fp64 stays fp64).

  Returns (loss, metrics). Metrics (all scalars):
    loss; pg_loss and kl_loss (= aggregated beta * kl), aggregated like the loss, so
    loss == pg_loss + kl_loss; kl (unweighted), ratio_mean, clip_frac, clip_frac_low, clip_frac_high
    (token means over valid tokens; clip_frac counts tokens whose gradient the clip removes);
    adv_mean, adv_std (over rows with at least one valid token); num_tokens.
  """
  _check_choice(kl, KL_MODES, "kl estimator")
  _check_choice(aggregation, AGGREGATIONS, "loss aggregation")
  skip_kl = isinstance(beta, (int, float)) and beta == 0
  if ref_logps is None and not skip_kl:
    raise ValueError(f"ref_logps is None but beta={beta!r}; pass reference log-probs or beta=0.")
  logps = jnp.asarray(logps)
  dtype = _maths_dtype(logps)
  if logps.ndim != 2 or jnp.shape(old_logps) != logps.shape or jnp.shape(mask) != logps.shape:
    raise ValueError(f"logps, old_logps and mask must all be [batch, length]; got "
                     f"{logps.shape}, {jnp.shape(old_logps)}, {jnp.shape(mask)}.")
  if jnp.shape(advantages) != logps.shape[:1]:
    raise ValueError(f"advantages must be [batch]={logps.shape[:1]}, got {jnp.shape(advantages)}.")

  m = jnp.asarray(mask).astype(dtype)
  valid = m != 0

  def clean(x: Array) -> Array:  # zero padding so exp() never sees garbage
    return jnp.where(valid, jnp.asarray(x).astype(dtype), jnp.zeros((), dtype))

  logps, old_logps = clean(logps), clean(old_logps)
  adv = jnp.asarray(advantages).astype(dtype)[:, None]  # [batch, 1]
  eps_low = epsilon
  eps_high = epsilon if epsilon_high is None else epsilon_high

  ratio = jnp.exp(logps - old_logps)
  unclipped = ratio * adv
  clipped = jnp.clip(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
  pg_per_token = -jnp.minimum(unclipped, clipped)
  pg_loss = aggregate(pg_per_token, m, aggregation)

  if skip_kl:
    kl_t = jnp.zeros_like(logps)
    kl_mean = jnp.zeros((), dtype)
    kl_loss = jnp.zeros((), dtype)
    loss = pg_loss
  else:
    kl_t = kl_per_token(logps, clean(ref_logps), kl)
    kl_mean = _masked_token_mean(kl_t, m)
    loss = aggregate(pg_per_token + beta * kl_t, m, aggregation)
    kl_loss = aggregate(beta * kl_t, m, aggregation)

  low = jnp.logical_and(ratio < 1.0 - eps_low, adv < 0).astype(dtype)
  high = jnp.logical_and(ratio > 1.0 + eps_high, adv > 0).astype(dtype)
  row_valid = jnp.any(valid, axis=-1).astype(dtype)  # [batch]
  n_rows = jnp.maximum(jnp.sum(row_valid), 1.0)
  adv_mean = jnp.sum(adv[:, 0] * row_valid) / n_rows
  adv_var = jnp.sum(jnp.square(adv[:, 0] - adv_mean) * row_valid) / n_rows
  metrics: dict[str, Any] = {
      "loss": loss,
      "pg_loss": pg_loss,
      "kl_loss": kl_loss,
      "kl": kl_mean,
      "ratio_mean": _masked_token_mean(ratio, m),
      "clip_frac": _masked_token_mean(low + high, m),
      "clip_frac_low": _masked_token_mean(low, m),
      "clip_frac_high": _masked_token_mean(high, m),
      "adv_mean": adv_mean,
      "adv_std": jnp.sqrt(adv_var),
      "num_tokens": jnp.sum(m),
  }
  for name, part in (kl_parts or {}).items():
    metrics[f"kl_{name}"] = _masked_token_mean(kl_t, m * jnp.asarray(part).astype(dtype))
  metrics = jax.tree_util.tree_map(jax.lax.stop_gradient, metrics)
  return loss, metrics
