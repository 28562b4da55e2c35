"""The optimizer state is a plain pytree of arrays: an orbax-checkpoint round trip in the
middle of training resumes bitwise-identically to the uninterrupted run."""

from __future__ import annotations

import chex
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from tests.optimizer_cases import ALL_CASES, make_grads, make_params

NUM_STEPS, SAVE_AT = 6, 3

# Wrappers whose states must survive the round trip as well.
WRAPPERS = {
    "plain": lambda opt: opt,
    "apply_if_finite": lambda opt: optax.apply_if_finite(opt, max_consecutive_errors=2),
    "multi_steps": lambda opt: optax.MultiSteps(opt, every_k_schedule=2),
}


def _step_fn(opt):
  @jax.jit
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _save_and_restore(directory, params, state, fresh_state):
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(directory, {"params": params, "opt_state": state})
  checkpointer.wait_until_finished()
  # A resumed job knows only the structure: it comes from a freshly initialized state.
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {"params": params, "opt_state": fresh_state})
  restored = checkpointer.restore(directory, target)
  checkpointer.close()
  return restored["params"], restored["opt_state"]


# Every optimizer plainly; the wrappers with one NovoGrad and one AdamP case (time).
COMBINATIONS = [(case, "plain") for case in ALL_CASES] + [
    (case, wrapper) for case in ALL_CASES if case.name in ("novograd", "adamp")
    for wrapper in WRAPPERS if wrapper != "plain"]


@pytest.mark.parametrize(
    "case,wrapper", COMBINATIONS, ids=[f"{c.name}-{w}" for c, w in COMBINATIONS])
def test_checkpoint_round_trip_resumes_bitwise(case, wrapper, tmp_path):
  opt = WRAPPERS[wrapper](case.build())
  step = _step_fn(opt)
  grads = make_grads(NUM_STEPS)
  init_params = make_params()

  params, state = init_params, opt.init(init_params)
  for t in range(NUM_STEPS):
    params, state = step(params, state, grads[t])
  uninterrupted = params

  params, state = init_params, opt.init(init_params)
  for t in range(SAVE_AT):
    params, state = step(params, state, grads[t])
  # The state is a pytree of arrays and nothing else (no Python numbers, no objects).
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
  params, state = _save_and_restore(
      tmp_path / "checkpoint", params, state, opt.init(init_params))
  assert jax.tree.structure(state) == jax.tree.structure(opt.init(init_params))
  for t in range(SAVE_AT, NUM_STEPS):
    params, state = step(params, state, grads[t])

  chex.assert_trees_all_equal(params, uninterrupted)
  assert all(np.all(np.isfinite(np.asarray(x, np.float64)))
             for x in jax.tree.leaves(params))
