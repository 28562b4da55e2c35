"""``jax.jit`` over a ``Mesh`` with ``NamedSharding``: data parallel (params
replicated, batch split) and fully sharded (params and optimizer state split
over the devices, FSDP-style). Both must equal a one-device run, and under FSDP
every layer's norm must be that of the whole layer, not of a device's shard."""

import re

import jax
import numpy as np
import optax
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from novograd_optax import layerwise_statistics

from . import toy_problem

DEVICES = 8
pytestmark = pytest.mark.requires_devices(DEVICES)
AXIS_TYPES = [AxisType.Explicit, AxisType.Auto]

# FSDP: every weight split along its first axis, so each device holds 1/8 of
# every layer (and of its momentum).
FSDP_SPECS = {"dense1": {"kernel": P("data", None), "bias": P("data")},
              "dense2": {"kernel": P("data", None), "bias": P("data")}}


def make_mesh(axis_type):
  assert jax.device_count() >= DEVICES, "tests/conftest.py must request 8 CPU devices"
  return jax.make_mesh((DEVICES,), ("data",), axis_types=(axis_type,),
                       devices=jax.devices()[:DEVICES])


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
def test_data_parallel_equals_one_device(axis_type):
  inputs, targets = toy_problem.batches()
  expected = toy_problem.one_device_run(inputs, targets)
  replicated_specs = jax.tree.map(lambda _: P(), FSDP_SPECS, is_leaf=lambda x: isinstance(x, P))
  params, state = toy_problem.sharded_run(make_mesh(axis_type), replicated_specs, inputs, targets,
                              toy_problem.optimizer())
  assert params["dense1"]["kernel"].sharding.is_fully_replicated
  toy_problem.assert_trees_close(jax.device_get((params, state)), expected)


@pytest.mark.parametrize("axis_type", AXIS_TYPES, ids=str)
def test_fully_sharded_equals_one_device(axis_type):
  inputs, targets = toy_problem.batches()
  expected = toy_problem.one_device_run(inputs, targets)
  params, state = toy_problem.sharded_run(make_mesh(axis_type), FSDP_SPECS, inputs, targets,
                              toy_problem.optimizer())
  toy_problem.assert_trees_close(jax.device_get((params, state)), expected)
  # The state lives where the helper put it: momentum split like its weight,
  # the per-layer second moments replicated.
  kernel = params["dense1"]["kernel"]
  assert kernel.addressable_shards[0].data.shape == (1, toy_problem.HIDDEN)
  momentum = state[2].trace["dense1"]["kernel"]
  assert momentum.sharding.is_equivalent_to(NamedSharding(kernel.sharding.mesh, P("data")), 2)
  assert momentum.addressable_shards[0].data.shape == (1, toy_problem.HIDDEN)
  for nu in jax.tree.leaves(state[0].nu):
    assert nu.sharding.is_fully_replicated


def test_fully_sharded_layer_norms_are_of_whole_layers():
  """After one step (init="first"), v = ||g||^2 of each layer. A per-shard norm
  (what a device would compute from its slice alone) is about 8 times smaller."""
  inputs, targets = toy_problem.batches(steps=1)
  params, state = toy_problem.sharded_run(make_mesh(AxisType.Explicit), FSDP_SPECS, inputs, targets,
                              toy_problem.optimizer())
  grads = jax.device_get(jax.grad(toy_problem.loss_fn)(
      toy_problem.initial_params(), inputs[0], targets[0]))
  whole_layer = jax.tree.map(lambda g: np.sum(np.square(g, dtype=np.float64)), grads)
  first_shard = jax.tree.map(
      lambda g: np.sum(np.square(g[: g.shape[0] // DEVICES], dtype=np.float64)), grads)
  second_moments = jax.device_get(layerwise_statistics(state).second_moment)
  toy_problem.assert_trees_close(second_moments, whole_layer, rtol=1e-5, atol=0)
  assert not toy_problem.trees_close(second_moments, first_shard, rtol=0.1, atol=0)


def test_fully_sharded_step_gathers_no_weights():
  """The per-layer norms of all leaves are batched into one vector: only those
  scalars may be gathered across devices, never a weight, gradient or moment."""
  from novograd_optax import optimizer_state_shardings

  mesh = make_mesh(AxisType.Auto)
  tx = toy_problem.optimizer()
  params = toy_problem.initial_params()
  shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), FSDP_SPECS,
                           is_leaf=lambda x: isinstance(x, P))
  params = jax.tree.map(toy_problem.global_array, params, shardings)
  state_shardings = optimizer_state_shardings(tx, params, shardings)
  state = jax.jit(tx.init, out_shardings=state_shardings)(params)

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  hlo = jax.jit(step, out_shardings=(shardings, state_shardings)).lower(
      params, state, params).compile().as_text()
  gathered = [int(np.prod([int(d) for d in re.findall(r"\d+", dims)] or [1]))
              for dims in re.findall(r"= \w+\[([\d,]*)\][^ ]* all-gather", hlo)]
  layers = len(jax.tree.leaves(params))
  assert all(size <= layers for size in gathered), gathered
  assert " all-reduce" in hlo  # the norms of whole layers are summed over devices
