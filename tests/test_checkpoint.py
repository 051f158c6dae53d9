"""Checkpoints: save on one mesh, restore onto another, with the data position."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from gotr1_jax import parallel
from gotr1_jax.checkpoint import Checkpointer


def test_restore_onto_a_different_mesh(tmp_path):
  mesh_a = parallel.make_mesh({"fsdp": 8})
  mesh_b = parallel.make_mesh({"data": 2, "tensor": 4})
  x = np.arange(8 * 16, dtype=np.float32).reshape(8, 16)
  state = {"w": jax.device_put(x, NamedSharding(mesh_a, P("fsdp", None))), "step": jnp.int32(7)}
  ckpt = Checkpointer(str(tmp_path), save_every=5, async_save=True)
  assert not ckpt.save(7, state, {"prompts": {"position": 3}})  # not on the interval
  assert ckpt.save(10, state, {"prompts": {"position": 3}})
  ckpt.wait()
  target = {"w": jax.ShapeDtypeStruct((8, 16), jnp.float32, sharding=NamedSharding(mesh_b, P(None, "tensor"))),
            "step": jax.ShapeDtypeStruct((), jnp.int32, sharding=parallel.replicated(mesh_b))}
  restored, data = ckpt.restore(ckpt.latest_step(), target)
  ckpt.close()
  np.testing.assert_array_equal(np.asarray(restored["w"]), x)
  assert restored["w"].sharding.spec == P(None, "tensor") and restored["w"].sharding.mesh.shape == mesh_b.shape
  assert int(restored["step"]) == 7 and data == {"prompts": {"position": 3}}


def test_keeps_only_the_newest(tmp_path):
  ckpt = Checkpointer(str(tmp_path), max_to_keep=2, save_every=1, async_save=False)
  for step in (1, 2, 3):
    ckpt.save(step, {"v": jnp.full((2,), step)}, {})
  ckpt.close()
  assert ckpt.all_steps() == [2, 3]
