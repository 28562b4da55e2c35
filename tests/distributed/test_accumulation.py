"""Large batch by accumulation: ``optax.MultiSteps(novograd(...), k)`` fed ``k``
micro-batches must take the step that ``novograd`` takes on the ``k``-times
batch (the loss is a mean, so the mean of the micro-batch gradients is the
gradient of the big batch)."""

import jax
import numpy as np
import optax
import pytest

from . import toy_problem

MICRO_STEPS = 4
OUTER_STEPS = 2


def accumulated_run(big_inputs, big_targets, tx):
  accumulating = optax.MultiSteps(tx, every_k_schedule=MICRO_STEPS)
  params = toy_problem.initial_params()
  state = accumulating.init(params)

  @jax.jit
  def micro_step(params, state, inputs, targets):
    grads = jax.grad(toy_problem.loss_fn)(params, inputs, targets)
    updates, state = accumulating.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  history = []
  for inputs, targets in zip(big_inputs, big_targets, strict=True):
    micro_inputs = np.split(inputs, MICRO_STEPS)
    micro_targets = np.split(targets, MICRO_STEPS)
    for x, y in zip(micro_inputs, micro_targets, strict=True):
      params, state = micro_step(params, state, x, y)
      history.append(jax.device_get(params))
  return jax.device_get(params), state.inner_opt_state, history


@pytest.mark.parametrize("options", [{}, {"grad_averaging": True, "nu_init": "zero"}])
def test_multisteps_equals_one_step_on_the_big_batch(options):
  inputs, targets = toy_problem.batches(steps=OUTER_STEPS, batch=MICRO_STEPS * 8)
  expected_params, expected_state = toy_problem.one_device_run(
      inputs, targets, toy_problem.optimizer(**options))
  params, inner_state, history = accumulated_run(
      inputs, targets, toy_problem.optimizer(**options))
  toy_problem.assert_trees_close(params, expected_params)
  toy_problem.assert_trees_close(jax.device_get(inner_state), expected_state)
  # The params move only at the end of every k micro-batches.
  initial = toy_problem.initial_params()
  for micro in range(MICRO_STEPS - 1):
    toy_problem.assert_trees_close(history[micro], initial, rtol=0, atol=0)
  assert not toy_problem.trees_close(history[MICRO_STEPS - 1], initial)
