"""rl/janus_rollout.py: the GRPO batch of GoT-R1 samples and the log-probs the loss optimises.

The layout is checked against each row's unpadded sequence [prompt | chain | codes]; the sampler's
log-probs (temperature 1, no CFG) must equal `janus_logps_fn`'s full-sequence forward at every
scored token; and the loss of a train step covers chain and image tokens alike.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from gotr1_jax.data.shapes_world.tokenizer import load_tokenizer
from gotr1_jax.rl import janus_rollout as jr
from gotr1_jax.rl.train_step import loss_fn
from gotr1_jax.sampling import janus_generate as jg
from tests.sampling.test_janus_generate import (CAP, PROMPTS, flax_from_hf, make_one_prompt_stop,
                                                tiny_hf_janus_for)

LOGP_ATOL = 1e-4  # fp32: the sampler's cached decode vs one full-sequence forward
RL = ConfigDict(dict(epsilon=0.2, epsilon_high=None, beta=0.0, kl="k3", aggregation="token-mean"))


@pytest.fixture(scope="module")
def setup():
  """Greedy chains (PROMPTS[0] stops on <begin_of_image>, PROMPTS[1] hits the cap), image codes
  sampled at temperature 1 without CFG, so every sampler log-prob is the policy's own."""
  tokenizer = load_tokenizer()
  ref = tiny_hf_janus_for(tokenizer)
  config = jg.JanusGenerationConfig(max_chain_tokens=CAP, cfg_weight=1.0, greedy_text=True,
                                    prompt_buckets=(32, 48), image_prompt_buckets=(48, 64), decode_batch_size=4)
  make_one_prompt_stop(ref, tokenizer, jg.prepare_tokenizer(tokenizer, config))
  gen, params, vq_params = flax_from_hf(ref, tokenizer, config)
  rollout = jr.make_janus_rollout(gen, vq_params)(params, [p for p in PROMPTS[:2] for _ in range(2)],
                                                   jax.random.key(1))
  return gen, params, vq_params, rollout


def test_layout_matches_each_rows_unpadded_sequence(setup):
  gen, _, _, rollout = setup
  b, samples = rollout.batch, rollout.extras["samples"]
  rows, total = b["tokens"].shape
  n = gen.num_image_tokens
  assert (rows, total) == (4, 48 + n) and b["loss_mask"].shape == b["sample_logps"].shape == (4, total - 1)
  assert [s.chain_capped for s in samples] == [False, False, True, True]
  for i, s in enumerate(samples):
    prompt = gen.tokenize(s.prompt)
    row = prompt + s.chain_ids + s.image_tokens.tolist()
    pad = total - len(row)
    np.testing.assert_array_equal(b["tokens"][i, pad:], row)
    np.testing.assert_array_equal(b["attention_mask"][i], [0] * pad + [1] * len(row))
    np.testing.assert_array_equal(b["is_image"][i], [False] * (total - n) + [True] * n)
    # Scored targets: the sampled chain (an appended <begin_of_image> is not), then every code.
    scored = b["tokens"][i, 1:][b["loss_mask"][i] == 1]
    sampled_chain = s.chain_ids[:-1] if s.chain_capped else s.chain_ids
    np.testing.assert_array_equal(scored, sampled_chain + s.image_tokens.tolist())
    assert rollout.completions[i] == sampled_chain + s.image_tokens.tolist()
    np.testing.assert_array_equal(b["sample_logps"][i][b["loss_mask"][i] == 1],
                                  np.concatenate([s.chain_logps[:len(sampled_chain)], s.image_logps]))
    assert np.all(b["sample_logps"][i][b["loss_mask"][i] == 0] == 0)


def test_policy_logps_equal_the_sampler_logps_without_cfg(setup):
  gen, params, _, rollout = setup
  b = rollout.batch
  logps = np.asarray(jax.jit(jr.janus_logps_fn(gen.policy))(params, b))
  scored = b["loss_mask"] == 1
  assert np.all(b["sample_logps"][scored] < 0)  # temperature-1 codes are not all certain
  np.testing.assert_allclose(logps[scored], b["sample_logps"][scored], atol=LOGP_ATOL, rtol=0)


def test_with_cfg_chain_logps_still_match_and_image_logps_are_the_guided_ones(setup):
  gen, params, vq_params, _ = setup
  cfg_gen = jg.JanusGenerator(gen.policy, gen.vq_model, gen.tokenizer,
                              dataclasses.replace(gen.config, cfg_weight=5.0))
  b = jr.janus_rollout(cfg_gen, params, vq_params, PROMPTS[:2], jax.random.key(2)).batch
  logps = np.asarray(jr.janus_logps_fn(gen.policy)(params, b))
  chain = (b["loss_mask"] == 1) & ~b["is_image"][:, 1:]
  image = (b["loss_mask"] == 1) & b["is_image"][:, 1:]
  assert chain.sum() == 4 + CAP and image.sum() == 2 * gen.num_image_tokens
  np.testing.assert_allclose(logps[chain], b["sample_logps"][chain], atol=LOGP_ATOL, rtol=0)
  assert np.max(np.abs(logps[image] - b["sample_logps"][image])) > 0.1  # CFG is not the trained policy


def test_loss_covers_chain_and_image_tokens(setup):
  gen, params, _, rollout = setup
  advantages = jnp.asarray([1.0, -0.5, 0.25, -2.0])
  batch = {k: jnp.asarray(v) for k, v in rollout.batch.items() if k != "sample_logps"}
  batch["advantages"] = advantages
  logps_fn = jr.janus_logps_fn(gen.policy)
  grad = jax.jit(jax.value_and_grad(lambda p, bt: loss_fn(p, None, bt, logps_fn=logps_fn, lora=None, rl=RL)[0]))
  loss, grads = grad(params, batch)
  # Ratio 1 and beta 0: the token-mean of -A over every scored token.
  counts = np.asarray(batch["loss_mask"]).sum(1)
  np.testing.assert_allclose(loss, -np.sum(np.asarray(advantages) * counts) / counts.sum(), rtol=1e-6)
  norm = lambda tree: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)))
  assert norm(grads["params"]["gen_head"]) > 0 and norm(grads["params"]["language_model"]["lm_head"]) > 0
  text_only = dict(batch, loss_mask=batch["loss_mask"] * (1 - batch["is_image"][:, 1:].astype(jnp.int32)))
  _, text_grads = grad(params, text_only)
  assert norm(text_grads["params"]["gen_head"]) == 0.0  # image codes reach the loss only via gen_head


def test_loss_tokens_narrow_the_mask_to_one_part(setup):
  """config.task.loss_tokens (diagnosis): "chain" keeps exactly the sampled chain targets, "image"
  exactly the codes, and together they make GoT-R1's "all"; anything else is refused by name."""
  gen, params, vq_params, _ = setup
  rollouts = {part: jr.make_janus_rollout(gen, vq_params, part)(params, PROMPTS[:2], jax.random.key(3)).batch
              for part in jr.LOSS_TOKENS}
  full = rollouts["all"]["loss_mask"]
  image = rollouts["all"]["is_image"][:, 1:]
  np.testing.assert_array_equal(rollouts["chain"]["loss_mask"], full * ~image)
  np.testing.assert_array_equal(rollouts["image"]["loss_mask"], full * image)
  assert rollouts["chain"]["loss_mask"].sum() > 0 and rollouts["image"]["loss_mask"].sum() == 2 * gen.num_image_tokens
  np.testing.assert_array_equal(rollouts["chain"]["tokens"], rollouts["all"]["tokens"])  # same samples
  with pytest.raises(ValueError, match="loss_tokens='text'.*'chain'"):
    jr.make_janus_rollout(gen, vq_params, "text")


def test_a_rollout_without_images_is_the_chain_part_of_one_with_them(setup):
  """config.task.sample_images=False: the same chains from the same key, the batch cut at
  <begin_of_image> (no image columns), and the chain's loss, KL and gradient those of the full
  rollout with loss_tokens="chain" (fp32, 1e-6 relative); a loss over image tokens is refused."""
  gen, params, vq_params, _ = setup
  prompts, key = [p for p in PROMPTS[:2] for _ in range(2)], jax.random.key(4)
  full = jr.make_janus_rollout(gen, vq_params, "chain")(params, prompts, key)
  cut = jr.make_janus_rollout(gen, vq_params, "chain", images=False)(params, prompts, key)
  assert cut.extras["images"] is None and cut.extras["image_tokens"].shape == (4, 0)
  assert cut.extras["chains"] == full.extras["chains"]
  p2 = full.batch["tokens"].shape[1] - gen.num_image_tokens
  assert cut.batch["tokens"].shape == (4, p2) and not cut.batch["is_image"].any()
  for k in ("tokens", "attention_mask", "is_image"):
    np.testing.assert_array_equal(cut.batch[k], full.batch[k][:, :p2])
  for k in ("loss_mask", "sample_logps"):
    np.testing.assert_array_equal(cut.batch[k], full.batch[k][:, :p2 - 1])
  assert not full.batch["loss_mask"][:, p2 - 1:].any()  # the columns cut off are not trained
  assert cut.completions == [c[:len(c) - gen.num_image_tokens] for c in full.completions]

  logps_fn = jr.janus_logps_fn(gen.policy)
  ref = jax.tree.map(lambda x: x * 1.01, params)  # a reference the policy has moved away from
  rl = ConfigDict(dict(RL.to_dict(), beta=0.1))

  def loss_and_grad(rollout):
    batch = {k: jnp.asarray(v) for k, v in rollout.batch.items() if k != "sample_logps"}
    batch["advantages"] = jnp.asarray([1.0, -0.5, 0.25, -2.0])
    batch["ref_logps"] = logps_fn(ref, batch)
    return jax.value_and_grad(lambda p: loss_fn(p, None, batch, logps_fn=logps_fn, lora=None, rl=rl),
                              has_aux=True)(params)

  (loss_full, m_full), g_full = loss_and_grad(full)
  (loss_cut, m_cut), g_cut = loss_and_grad(cut)
  assert m_full["kl"] > 0
  np.testing.assert_allclose(loss_cut, loss_full, rtol=1e-6)
  np.testing.assert_allclose(m_cut["kl"], m_full["kl"], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_cut), jax.tree.leaves(g_full)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
  with pytest.raises(ValueError, match="sample_images=False.*loss_tokens='chain'"):
    jr.make_janus_rollout(gen, vq_params, "all", images=False)
