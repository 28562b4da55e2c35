"""Siblings of the tests that compare the library with itself.

Determinism (a run twice), checkpoint resume (interrupted vs uninterrupted) and
optax's wrappers (masked, inject_hyperparams, MultiSteps vs the plain optimizer)
compare two runs of our own code, so a bug both runs share passes them. Each
family gets here a sibling that checks the same run against the NumPy
transcription of the paper (tests/reference/numpy_novograd.py) or an SNGM
transcription written below. (Sharded vs one device: tests/distributed/test_axis_name.py;
stacked vs separate layers: tests/test_layer_axes.py, test_matches_numpy_reference.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from novograd_optax import novograd, sngm
from tests.optimizer_cases import NOVOGRAD_CASES, case_params, make_grads, make_params
from tests.reference.numpy_novograd import numpy_novograd

NUM_STEPS = 5
KEYS = ("b", "s", "w")  # the order of jax.tree.leaves of make_params' dict


def leaves(tree):
  return [np.asarray(tree[k]) for k in KEYS]


def reference_kwargs(case):
  """numpy_novograd's arguments for an optimizer case of tests/optimizer_cases.py."""
  kwargs = {k: v for k, v in case.kwargs.items() if k not in ("layer_axes", "mu_dtype")}
  if "layer_axes" in case.kwargs:
    # leading_axis_of_matrices: each row of the matrix w is a layer.
    kwargs["layer_axes"] = [None, None, 0]
  return kwargs


def assert_matches(tree, reference_leaves, rtol):
  for k, want in zip(KEYS, reference_leaves, strict=True):
    np.testing.assert_allclose(np.asarray(tree[k], np.float64), want, rtol=rtol,
                               atol=rtol / 10, err_msg=k)


def jit_run(opt, params, grads, state=None):
  @jax.jit
  def step(params, state, g):
    updates, state = opt.update(g, state, params)
    return optax.apply_updates(params, updates), state

  state = opt.init(params) if state is None else state
  for g in grads:
    params, state = step(params, state, g)
  return params, state


@pytest.mark.parametrize("case", **case_params(NOVOGRAD_CASES))
def test_repeated_jitted_runs_are_equal_and_match_numpy(case):
  """Determinism's sibling: both runs are also the paper's NovoGrad."""
  params, grads = make_params(), make_grads(NUM_STEPS)
  first, _ = jit_run(case.build(), params, grads)
  second, _ = jit_run(case.build(), params, grads)
  jax.tree.map(np.testing.assert_array_equal, first, second)
  reference = numpy_novograd(leaves(params), [leaves(g) for g in grads],
                             **reference_kwargs(case))
  assert_matches(first, reference.params[-1], rtol=max(case.rtol, 2e-5))


def test_resumed_checkpoint_matches_numpy(tmp_path):
  """Checkpoint resume's sibling: the run interrupted by an orbax round trip is the
  paper's NovoGrad, not only equal to the uninterrupted run."""
  kwargs = {"learning_rate": 0.05, "b1": 0.95, "b2": 0.5, "weight_decay": 1e-2,
            "grad_averaging": True, "amsgrad": True}
  opt = optax.apply_if_finite(novograd(**kwargs), max_consecutive_errors=2)
  params, grads = make_params(), make_grads(NUM_STEPS)
  p, state = jit_run(opt, params, grads[:2])
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "checkpoint", {"params": p, "opt_state": state})
  checkpointer.wait_until_finished()
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {"params": p, "opt_state": opt.init(params)})
  restored = checkpointer.restore(tmp_path / "checkpoint", target)
  checkpointer.close()
  p, _ = jit_run(opt, restored["params"], grads[2:], restored["opt_state"])
  reference = numpy_novograd(leaves(params), [leaves(g) for g in grads], **kwargs)
  assert_matches(p, reference.params[-1], rtol=2e-5)


def test_masked_novograd_matches_numpy():
  """optax.masked's sibling: masked-out leaves get their raw gradient as the update
  (optax passes it through); the rest is NovoGrad on those leaves alone."""
  params, grads = make_params(), make_grads(NUM_STEPS)
  mask = {"b": False, "s": True, "w": True}
  p, _ = jit_run(optax.masked(novograd(0.1, weight_decay=1e-2), mask), params, grads)
  reference = numpy_novograd([np.asarray(params["s"]), np.asarray(params["w"])],
                             [[np.asarray(g["s"]), np.asarray(g["w"])] for g in grads],
                             learning_rate=0.1, weight_decay=1e-2)
  passed_through = np.float64(params["b"]) + sum(np.float64(g["b"]) for g in grads)
  assert_matches(p, [passed_through] + reference.params[-1], rtol=2e-5)


def test_weight_decay_mask_matches_numpy():
  params, grads = make_params(), make_grads(NUM_STEPS)
  mask = {"b": False, "s": False, "w": True}
  p, _ = jit_run(novograd(0.1, weight_decay=0.1, weight_decay_mask=mask), params, grads)
  reference = numpy_novograd(leaves(params), [leaves(g) for g in grads], learning_rate=0.1,
                             weight_decay=0.1, weight_decay_mask=[False, False, True])
  assert_matches(p, reference.params[-1], rtol=2e-5)


def test_injected_hyperparameters_changed_mid_run_match_numpy():
  """inject_hyperparams' sibling: learning rate and weight decay changed between
  steps equal the paper's update with those values as schedules."""
  opt = optax.inject_hyperparams(novograd)(learning_rate=0.1, b2=0.5, weight_decay=1e-2)
  params, grads = make_params(), make_grads(NUM_STEPS)
  state = opt.init(params)
  p = params
  for t, g in enumerate(grads):
    if t == 2:
      state.hyperparams["learning_rate"] = jnp.asarray(0.02)
      state.hyperparams["weight_decay"] = jnp.asarray(0.1)
    updates, state = opt.update(g, state, p)
    p = optax.apply_updates(p, updates)
  reference = numpy_novograd(
      leaves(params), [leaves(g) for g in grads], b2=0.5,
      learning_rate=lambda t: 0.1 if t < 2 else 0.02,
      weight_decay=lambda t: 1e-2 if t < 2 else 0.1)
  assert_matches(p, reference.params[-1], rtol=2e-5)


def test_multisteps_matches_numpy_on_averaged_gradients():
  k = 2
  params, micro = make_params(), make_grads(2 * k)
  p, _ = jit_run(optax.MultiSteps(novograd(0.1, b2=0.5), every_k_schedule=k), params, micro)
  averaged = [[(np.float64(a) + np.float64(b)) / 2 for a, b in
               zip(leaves(micro[i]), leaves(micro[i + 1]), strict=True)] for i in (0, k)]
  reference = numpy_novograd(leaves(params), averaged, learning_rate=0.1, b2=0.5)
  assert_matches(p, reference.params[-1], rtol=2e-5)


def numpy_sngm(params, grads_per_step, lr, momentum, weight_decay, eps):
  """Zhao et al. (2020): g~ = g + d w; u = beta u + g~ / (||g~|| + eps) with the norm
  over all leaves; w -= lr u."""
  w = [np.float64(p) for p in params]
  u = [np.zeros_like(x) for x in w]
  for grads in grads_per_step:
    decayed = [np.float64(g) + weight_decay * x for g, x in zip(grads, w, strict=True)]
    norm = np.sqrt(sum(np.sum(d * d) for d in decayed))
    u = [momentum * ui + d / (norm + eps) for ui, d in zip(u, decayed, strict=True)]
    w = [x - lr * ui for x, ui in zip(w, u, strict=True)]
  return w


def test_sngm_repeated_runs_and_checkpointed_state_match_numpy():
  """The same siblings for SNGM: two jitted runs, the second resumed from a
  state copied through NumPy, both equal the transcription."""
  params, grads = make_params(), make_grads(NUM_STEPS)
  opt = sngm(0.1, momentum=0.9, weight_decay=1e-3)
  first, _ = jit_run(opt, params, grads)
  p, state = jit_run(opt, params, grads[:2])
  p, state = jax.tree.map(np.asarray, (p, state))
  second, _ = jit_run(opt, p, grads[2:], state)
  want = numpy_sngm(leaves(params), [leaves(g) for g in grads], 0.1, 0.9, 1e-3, 1e-8)
  assert_matches(first, want, rtol=2e-5)
  assert_matches(second, want, rtol=2e-5)
