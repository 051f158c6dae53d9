"""Janus rollouts for GRPO: GoT-R1 samples laid out as one batch, and the log-probs the loss optimises.

Owns the layout [left pad | prompt | chain | <begin_of_image> | image codes] with its masks
(`layout_janus_batch`), the `Rollout` built from a `JanusGenerator` (`make_janus_rollout`) and
`janus_logps_fn`. It does not sample (sampling/janus_generate.py), score or own GRPO's maths.

The batch follows rl/rollout.py's conventions (see train_step.py), plus `is_image`:
  tokens [B, T] int32: text ids, then VQ code ids where is_image is True (T = P2 + num_image_tokens,
    P2 the phase-2 bucket: the image codes start at the same column in every row)
  is_image [B, T] bool; attention_mask [B, T] int32
  loss_mask [B, T-1]: 1 where target t+1 was sampled by the policy: the chain (with a sampled
    <begin_of_image>; one appended at the cap is not) and every image code
  sample_logps [B, T-1]: the sampler's log-probs of those targets (chain: tempered; image: the CFG,
    tempered distribution the codes were drawn from), 0 elsewhere. Logging only: the loss recomputes.

`loss_tokens` narrows the loss mask for diagnosis: "all" (GoT-R1: chain and image tokens), "chain"
or "image" (the other part is still sampled and rewarded, but not trained). With loss_tokens
"chain", `images=False` samples no images at all (a run whose reward reads the chain alone): the
batch then ends at <begin_of_image> (T = P2, no image columns) and the chains, their loss and KL
are those of the same rollout with images.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np

from gotr1_jax.models.janus import JanusPolicy
from gotr1_jax.rl.rollout import Rollout
from gotr1_jax.rl.train_step import LogpsFn
from gotr1_jax.sampling.janus_generate import JanusBatch, JanusGenerator


LOSS_TOKENS = ("all", "chain", "image")


def check_loss_tokens(loss_tokens: str) -> str:
  if loss_tokens not in LOSS_TOKENS:
    raise ValueError(f"config.task.loss_tokens={loss_tokens!r} must be one of {LOSS_TOKENS} "
                     "('all' is GoT-R1's loss over chain and image tokens).")
  return loss_tokens


def layout_janus_batch(b: JanusBatch, loss_tokens: str = "all") -> dict[str, np.ndarray]:
  """The GRPO batch of a generated JanusBatch (host arrays; see the module docstring)."""
  check_loss_tokens(loss_tokens)
  rows, prompt_len = b.image_prompt_tokens.shape
  n = b.image_tokens.shape[1]
  total = prompt_len + n
  loss_mask = np.zeros((rows, total - 1), np.int32)
  sample_logps = np.zeros((rows, total - 1), np.float32)
  for i, (chain, logps, capped) in enumerate(zip(b.chain_ids, b.chain_logps, b.chain_capped)):
    sampled = len(chain) - int(capped)
    first = prompt_len - len(chain) - 1  # entry t scores token t + 1: the chain's first token
    loss_mask[i, first:first + sampled] = 1
    sample_logps[i, first:first + sampled] = logps[:sampled]
  loss_mask[:, prompt_len - 1:] = 1  # the image codes, scored from <begin_of_image> on
  sample_logps[:, prompt_len - 1:] = b.image_logps
  if loss_tokens == "chain":
    loss_mask[:, prompt_len - 1:] = 0
  elif loss_tokens == "image":
    loss_mask[:, :prompt_len - 1] = 0
  return {
      "tokens": np.concatenate([b.image_prompt_tokens, b.image_tokens], axis=1).astype(np.int32),
      "is_image": np.concatenate([np.zeros((rows, prompt_len), bool), np.ones((rows, n), bool)], axis=1),
      "attention_mask": np.concatenate([b.image_prompt_mask, np.ones((rows, n), np.int32)], axis=1),
      "loss_mask": loss_mask,
      "sample_logps": sample_logps,
  }


def janus_logps_fn(policy: JanusPolicy) -> LogpsFn:
  """(params, batch) -> [B, T-1] log pi_theta(tokens[t+1] | tokens[:t+1]), the log-prob GRPO optimises.

  It is the *conditional, CFG-free* policy at temperature 1: chain tokens scored by lm_head, image
  codes by gen_head, one forward over [prompt | chain | <begin_of_image> | codes] with the real
  prompt (never the padded unconditional row). Why this one and not the CFG distribution the codes
  were sampled from: it is the distribution the parameters define for the sequence being rewarded,
  so the ratio to the old policy and the KL to the reference compare like with like; the guided
  logits u + w (c - u) mix in a second forward on a prompt whose text is padded out, which is an
  inference-time device, not a policy over this sequence, and would double the training forward.
  With the unconditional branch held fixed, raising the conditional logit of a rewarded code by d
  raises its guided logit by w * d (w > 0), so training the conditional policy moves CFG sampling
  the same way; and GoT-R1's loss covers the whole generated sequence, chain and image tokens
  alike. With one update per rollout the old log-probs are the current ones under stop_gradient
  (train_step.loss_fn), so the ratio is exactly 1; with more passes the trainer recomputes old
  log-probs with this same function, never the sampler's.
  """

  def logps_fn(params: Any, batch: dict) -> jax.Array:
    return policy.apply(params, batch["tokens"], batch["is_image"], batch["attention_mask"],
                        method=JanusPolicy.mixed_logps)

  return logps_fn


def janus_rollout(generator: JanusGenerator, params: Any, vq_params: Any, prompts: Sequence[str],
                  rng: jax.Array, loss_tokens: str = "all", images: bool = True) -> Rollout:
  """One sample per row of `prompts` (the trainer repeats each prompt group_size times); with
  images=False, chains only (extras["images"] is None)."""
  b = generator.generate_batch(params, vq_params, prompts, rng, num_samples=1, images=images)
  completions = [list(c[:len(c) - int(cap)]) + t.tolist()  # sampled chain ids, then image code ids
                 for c, cap, t in zip(b.chain_ids, b.chain_capped, b.image_tokens)]
  extras = dict(prompts=b.prompts, chains=b.chains, samples=b.samples(), images=b.images,
                image_tokens=b.image_tokens, chain_capped=b.chain_capped)
  return Rollout(batch=layout_janus_batch(b, loss_tokens), completions=completions, extras=extras)


def make_janus_rollout(generator: JanusGenerator, vq_params: Any, loss_tokens: str = "all",
                       images: bool = True) -> Callable[[Any, Sequence[str], jax.Array], Rollout]:
  """Task.rollout for a Janus policy: (policy params, prompts, rng) -> Rollout; the VQ is frozen."""
  check_loss_tokens(loss_tokens)
  if not images and loss_tokens != "chain":
    raise ValueError(f"config.task.sample_images=False leaves no image tokens for loss_tokens={loss_tokens!r} "
                     "to train; set config.task.loss_tokens='chain' or sample_images=True.")
  return lambda params, prompts, rng: janus_rollout(generator, params, vq_params, prompts, rng, loss_tokens, images)
