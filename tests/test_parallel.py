"""Meshes from configs, and the sharded GRPO step equal to the single-device step for each layout."""
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gotr1_jax import parallel
from gotr1_jax.models.lora import merge_lora
from gotr1_jax.rl.optimizer import make_optimizer
from gotr1_jax.rl.state import build_train_setup
from gotr1_jax.rl.task import build_task
from gotr1_jax.rl.train_step import make_train_step
from tests.rl.toy_config import toy_config


def test_mesh_shape_resolution_and_errors():
  assert parallel.mesh_shape({"data": -1}, 8) == (8, 1, 1)
  assert parallel.mesh_shape({"data": 1, "fsdp": -1, "tensor": 4}, 8) == (1, 2, 4)
  with pytest.raises(ValueError, match="config.mesh"):
    parallel.mesh_shape({"data": 3}, 8)
  with pytest.raises(ValueError, match="unknown axes"):
    parallel.mesh_shape({"model": 8}, 8)
  with pytest.raises(ValueError, match="logical_axis_rules"):
    parallel.logical_rules([("embed", "model")])


def _one_step(config, mesh_config, devices):
  """One GRPO update on a fixed rollout; returns (metrics, params, shardings of the params)."""
  task = build_task(config)
  mesh = parallel.make_mesh(mesh_config, devices)
  rules = parallel.logical_rules(config.logical_axis_rules)
  tx = make_optimizer(config.optimizer, 10)
  with jax.sharding.set_mesh(mesh), nn.logical_axis_rules(rules):
    setup = build_train_setup(task, config, mesh, rules, tx)
    policy = merge_lora(setup.frozen, setup.state.params, setup.lora) if setup.lora else setup.state.params
    prompts = [p for p in task.prompts.next(2) for _ in range(4)]
    batch = dict(task.rollout(policy, prompts, jax.random.PRNGKey(7)).batch)
    batch.pop("sample_logps")
    batch["advantages"] = jnp.asarray(np.linspace(-1.5, 1.5, 8), jnp.float32)
    batch["ref_logps"] = jax.jit(task.logps_fn)(setup.reference, batch) + 0.01
    batch_sh = parallel.batch_sharding(mesh, rules, ndim=1)
    step = jax.jit(make_train_step(task.logps_fn, tx, setup.lora, config.rl),
                   in_shardings=(setup.state_shardings, setup.frozen_shardings, batch_sh),
                   out_shardings=(setup.state_shardings, None), donate_argnums=(0,))
    state, metrics = step(setup.state, setup.frozen, jax.device_put(batch, batch_sh))
    return (jax.tree.map(np.asarray, metrics), jax.tree.map(np.asarray, state.params),
            jax.tree.map(lambda x: x.sharding.spec, state.params), jax.tree.map(np.asarray, batch["tokens"]))


@functools.lru_cache(maxsize=None)
def _single_device_step(lora):
  return _one_step(toy_config(f"lora={lora}"), {"data": 1}, jax.devices()[:1])


@pytest.mark.parametrize("lora", [True, False])
@pytest.mark.parametrize("layout", [{"data": 8}, {"fsdp": 8}, {"fsdp": 2, "tensor": 4}])
def test_sharded_step_equals_single_device_step(layout, lora):
  config = toy_config(f"lora={lora}")
  ref_m, ref_p, _, ref_tokens = _single_device_step(lora)
  m, p, specs, tokens = _one_step(config, layout, jax.devices())
  np.testing.assert_array_equal(tokens, ref_tokens)  # the same rollout on every layout
  for k in ("loss", "pg_loss", "kl", "grad_norm"):
    np.testing.assert_allclose(m[k], ref_m[k], rtol=2e-5, atol=1e-6, err_msg=k)
  # Adam divides by sqrt(v): float reassociation noise in tiny gradients moves a parameter by at
  # most ~1e-3 of one step (lr 3e-3), hence atol 1e-5.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), p, ref_p)
  if not lora and "tensor" in layout:  # the layout is real: MLP kernels are split over 'tensor'
    assert specs["params"]["layers"]["mlp"]["up_proj"]["kernel"] == jax.sharding.PartitionSpec(None, "fsdp", "tensor")


def test_batch_mesh_uses_the_most_devices_that_divide_the_batch():
  devices = jax.devices()[:8]
  for rows, count in [(32, 8), (12, 6), (9, 3), (7, 7), (5, 5), (1, 1)]:
    mesh = parallel.batch_mesh(rows, devices)
    assert dict(mesh.shape) == {"data": count, "fsdp": 1, "tensor": 1}, rows
    assert list(mesh.devices.flat) == devices[:count]
