"""Meshes and shardings: the one place that maps logical axis names to mesh axes.

Owns building the device mesh from `config.mesh`, the logical-axis rule table from
`config.logical_axis_rules`, deriving param / optimizer-state / batch shardings from logical
annotations, and multi-host start-up. Models never name a mesh axis; a layout change is a config
change (see configs/common.py for the presets `data`, `fsdp`, `fsdp+tensor`).
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")
Rules = tuple[tuple[str, Any], ...]


def maybe_initialize_distributed() -> None:
  """Starts jax.distributed on multi-host jobs (a coordinator address is set in the environment)."""
  if os.environ.get("JAX_COORDINATOR_ADDRESS") and jax.process_count() == 1:
    jax.distributed.initialize()


def mesh_shape(mesh_config: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves `{data, fsdp, tensor}` sizes; one axis may be -1 to take the remaining devices."""
  unknown = set(mesh_config) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"config.mesh has unknown axes {sorted(unknown)}; use only {MESH_AXES}.")
  sizes = [int(mesh_config.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError("config.mesh: at most one axis may be -1 (take the remaining devices).")
  if -1 in sizes:
    known = math.prod(s for s in sizes if s != -1)
    if num_devices % known:
      raise ValueError(f"config.mesh {dict(mesh_config)}: {num_devices} devices are not divisible by {known}.")
    sizes[sizes.index(-1)] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise ValueError(f"config.mesh {dict(zip(MESH_AXES, sizes))} uses {math.prod(sizes)} devices but "
                     f"{num_devices} are present; set one axis of config.mesh to -1 or fix the sizes.")
  return tuple(sizes)


def make_mesh(mesh_config: Mapping[str, int], devices: Sequence[Any] | None = None) -> Mesh:
  devices = list(devices) if devices is not None else jax.devices()
  shape = mesh_shape(mesh_config, len(devices))
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  if devices == jax.devices():
    return jax.make_mesh(shape, MESH_AXES, axis_types=auto)
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=auto)


def batch_mesh(rows: int, devices: Sequence[Any] | None = None) -> Mesh:
  """A data-parallel mesh on the most devices that divide `rows`: for sampling outside a training run
  (tools/evaluate.py), whose batch need not divide over every device the way a run's must."""
  devices = list(devices) if devices is not None else jax.devices()
  count = max(k for k in range(1, len(devices) + 1) if rows % k == 0)
  return make_mesh({"data": count}, devices[:count])


def logical_rules(rules: Sequence[Sequence[Any]]) -> Rules:
  """Validates a rule table [(logical name, mesh axis | tuple of axes | None), ...]."""
  out = []
  for rule in rules:
    if len(rule) != 2:
      raise ValueError(f"config.logical_axis_rules entry {rule!r} must be (logical_name, mesh_axes).")
    name, axes = rule[0], rule[1]
    axes_t = axes if isinstance(axes, (tuple, list)) else (axes,)
    bad = [a for a in axes_t if a is not None and a not in MESH_AXES]
    if bad:
      raise ValueError(f"config.logical_axis_rules maps {name!r} to unknown mesh axes {bad}; use {MESH_AXES}.")
    out.append((name, tuple(axes) if isinstance(axes, list) else axes))
  return tuple(out)


def logical_to_sharding(boxed_tree: Any, mesh: Mesh, rules: Rules) -> Any:
  """NamedShardings for a tree whose leaves may be `nn.Partitioned` (unannotated -> replicated)."""
  specs = nn.get_partition_spec(boxed_tree)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh, rules: Rules, ndim: int = 2) -> NamedSharding:
  """Shards the leading (batch) dim like the logical `batch` axis; the rest replicated."""
  spec = nn.logical_to_mesh_axes(("batch",) + (None,) * (ndim - 1), rules)
  return NamedSharding(mesh, spec)


def tree_batch_sharding(tree: Any, mesh: Mesh, rules: Rules) -> Any:
  return jax.tree.map(lambda x: batch_sharding(mesh, rules, np.ndim(x)) if np.ndim(x) else
                      NamedSharding(mesh, PartitionSpec()), tree)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())
