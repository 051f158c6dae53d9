"""The train step: loss_fn equals grpo_loss on the policy's log-probs; image codes can have their own KL
weight; non-finite updates are skipped."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from gotr1_jax.models import llm
from gotr1_jax.rl.grpo import grpo_loss
from gotr1_jax.rl.rollout import lm_logps_fn
from gotr1_jax.rl.train_step import TrainState, loss_fn, make_train_step, token_beta, uses_reference

RL = ConfigDict(dict(epsilon=0.2, epsilon_high=None, beta=0.04, kl="k3", aggregation="token-mean"))


def _setup():
  cfg = llm.LMConfig(vocab_size=32, hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
  model = llm.DecoderLM(cfg)
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 32, (4, 7)), jnp.int32)
  mask = jnp.ones_like(tokens)
  params = nn.meta.unbox(model.init(jax.random.PRNGKey(0), tokens, mask, method=llm.DecoderLM.forward))
  logps_fn = lm_logps_fn(model)
  batch = {"tokens": tokens, "attention_mask": mask,
           "loss_mask": jnp.zeros((4, 6), jnp.int32).at[:, 3:].set(1),
           "advantages": jnp.asarray([1.0, -1.0, 0.5, -0.5])}
  batch["ref_logps"] = logps_fn(params, batch) - 0.1
  return params, logps_fn, batch


def test_loss_fn_is_grpo_loss_of_the_forward_logps():
  params, logps_fn, batch = _setup()
  loss, metrics = loss_fn(params, None, batch, logps_fn=logps_fn, lora=None, rl=RL)
  logps = logps_fn(params, batch)
  ref, _ = grpo_loss(logps, logps, batch["ref_logps"], batch["advantages"], batch["loss_mask"])
  np.testing.assert_allclose(loss, ref, rtol=1e-6)
  assert float(metrics["ratio_mean"]) == 1.0  # without old_logps the old policy is the current one


def test_image_beta_weighs_the_image_codes_kl_apart_from_the_chains():
  params, logps_fn, batch = _setup()
  batch["is_image"] = jnp.zeros((4, 7), bool).at[:, 5:].set(True)  # the last two tokens are image codes
  rl = ConfigDict(dict(RL, image_beta=0.5))
  beta = token_beta(rl, batch)
  np.testing.assert_array_equal(np.asarray(beta)[0], np.float32([0.04, 0.04, 0.04, 0.04, 0.5, 0.5]))
  loss, metrics = loss_fn(params, None, batch, logps_fn=logps_fn, lora=None, rl=rl)
  logps = logps_fn(params, batch)
  want, _ = grpo_loss(logps, logps, batch["ref_logps"], batch["advantages"], batch["loss_mask"], beta=beta)
  np.testing.assert_allclose(loss, want, rtol=1e-6)
  # ref_logps = logps - 0.1 everywhere: k3 = e^-0.1 + 0.1 - 1 per token; 2 of the 3 trained tokens are image codes.
  k3 = np.exp(-0.1) + 0.1 - 1
  np.testing.assert_allclose(float(metrics["kl_loss"]), k3 * (0.04 + 2 * 0.5) / 3, rtol=1e-4)
  # The KL over the chain and over the image codes, unweighted: both k3 here.
  np.testing.assert_allclose([float(metrics["kl_chain"]), float(metrics["kl_image"])], [k3, k3], rtol=1e-4)
  same, _ = loss_fn(params, None, batch, logps_fn=logps_fn, lora=None, rl=ConfigDict(dict(RL, image_beta=0.04)))
  unset, _ = loss_fn(params, None, batch, logps_fn=logps_fn, lora=None, rl=ConfigDict(dict(RL, image_beta=None)))
  np.testing.assert_allclose(same, unset, rtol=1e-6)


def test_image_beta_needs_image_tokens_and_a_reference():
  params, logps_fn, batch = _setup()  # a text-only batch: no is_image
  with pytest.raises(ValueError, match="leave config.rl.image_beta unset"):
    loss_fn(params, None, batch, logps_fn=logps_fn, lora=None, rl=ConfigDict(dict(RL, image_beta=0.5)))
  assert uses_reference(ConfigDict(dict(RL, beta=0.0, image_beta=0.1)))
  assert not uses_reference(ConfigDict(dict(RL, beta=0.0, image_beta=None)))
  assert not uses_reference(ConfigDict(dict(RL, beta=0.0)))


def test_nonfinite_update_is_skipped_and_reported():
  params, logps_fn, batch = _setup()
  tx = optax.adamw(1e-2)
  step = jax.jit(make_train_step(logps_fn, tx, None, RL))
  state = TrainState(jnp.int32(0), params, tx.init(params), jax.random.PRNGKey(0))
  good, m_good = step(state, None, batch)
  assert float(m_good["skipped_nonfinite"]) == 0.0
  assert any(np.any(np.asarray(a) != np.asarray(b))
             for a, b in zip(jax.tree.leaves(good.params), jax.tree.leaves(params)))
  bad_batch = dict(batch, advantages=batch["advantages"].at[0].set(jnp.nan))
  bad, m_bad = step(state, None, bad_batch)
  assert float(m_bad["skipped_nonfinite"]) == 1.0
  for a, b in zip(jax.tree.leaves(bad.params), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for a, b in zip(jax.tree.leaves(bad.opt_state), jax.tree.leaves(state.opt_state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
