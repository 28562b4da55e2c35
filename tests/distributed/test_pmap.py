"""``jax.pmap`` data parallelism: each device takes a slice of the batch, the
gradients are averaged with ``lax.pmean``, and NovoGrad then sees the global
gradient, so its per-layer norms need no ``axis_name``."""

import jax
import numpy as np
import optax
import pytest
from jax import lax

import novograd_optax

from . import toy_problem

DEVICES = 8
pytestmark = pytest.mark.requires_devices(DEVICES)


def pmap_run(steps_inputs, steps_targets, tx):
  assert jax.device_count() >= DEVICES, "tests/conftest.py must request 8 CPU devices"
  devices = jax.devices()[:DEVICES]
  # pmap takes a leading device axis; every replica starts from the same params.
  replicate = lambda tree: jax.tree.map(lambda x: np.stack([x] * DEVICES), tree)
  params = replicate(toy_problem.initial_params())
  state = jax.pmap(tx.init, devices=devices)(params)

  def step(params, state, inputs, targets):
    grads = jax.grad(toy_problem.loss_fn)(params, inputs, targets)
    grads = lax.pmean(grads, axis_name="batch")
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  parallel_step = jax.pmap(step, axis_name="batch", devices=devices)
  split = lambda x: x.reshape(DEVICES, x.shape[0] // DEVICES, *x.shape[1:])
  for inputs, targets in zip(steps_inputs, steps_targets, strict=True):
    params, state = parallel_step(params, state, split(inputs), split(targets))
    jax.block_until_ready(params)  # see toy_problem.sharded_run
  return jax.device_get((params, state))


@pytest.mark.parametrize("options", [{}, {"amsgrad": True, "grad_averaging": True}])
def test_pmap_data_parallel_equals_one_device(options):
  inputs, targets = toy_problem.batches()
  expected_params, expected_state = toy_problem.one_device_run(
      inputs, targets, toy_problem.optimizer(**options))
  params, state = pmap_run(inputs, targets, toy_problem.optimizer(**options))
  for replica in range(DEVICES):
    replica_params, replica_state = jax.tree.map(lambda x, r=replica: x[r], (params, state))
    toy_problem.assert_trees_close(replica_params, expected_params)
    toy_problem.assert_trees_close(replica_state, expected_state)
  # The run moved the params, so the comparison is not one of untouched inits.
  assert not np.allclose(params["dense1"]["kernel"][0],
                         toy_problem.initial_params()["dense1"]["kernel"])


def test_axis_name_on_replicated_gradients_sums_identical_norms():
  """Documents the rule of the README, "Scaling out": after pmean every device holds the
  whole gradient, so axis_name must stay None; with it, the per-layer norms of
  all replicas would be summed, DEVICES times the true squared norm."""
  grads = {"w": np.arange(6.0, dtype=np.float32).reshape(2, 3)}
  tx = novograd_optax.scale_by_layerwise_norm(axis_name="batch")
  stacked = jax.tree.map(lambda x: np.stack([x] * DEVICES), grads)

  def first_moment(g):
    _, state = tx.update(g, tx.init(g))
    return state.nu.per_layer()

  nu = jax.pmap(first_moment, axis_name="batch", devices=jax.devices()[:DEVICES])(stacked)
  np.testing.assert_allclose(nu["w"], np.full(DEVICES, DEVICES * np.sum(grads["w"] ** 2)),
                             rtol=1e-6)
