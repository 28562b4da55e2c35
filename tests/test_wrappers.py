"""Every optimizer of the package inside optax's wrappers, each checked against an
independent expectation (a run on fewer leaves, pre-averaged or pre-clipped
gradients, a schedule)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.optimizer_cases import ALL_CASES, assert_close, case_params, make_params, run

TRAINED = ("w", "s")  # the leaves the wrappers below let through; "b" is held out


def _subset(tree, keys=TRAINED):
  return {k: tree[k] for k in keys}


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_masked_leaves_equal_a_run_on_only_those_leaves(case):
  params = make_params()
  grads = [make_params(t) for t in range(1, 4)]
  mask = {"w": True, "b": False, "s": True}
  opt = optax.masked(case.build(), mask)
  state = opt.init(params)
  current = params
  for g in grads:
    updates, state = opt.update(g, state, current)
    # optax.masked passes the other leaves' updates through untouched.
    chex.assert_trees_all_equal(updates["b"], g["b"])
    current = optax.apply_updates(current, updates)
  expected, _ = run(case.build(), _subset(params), [_subset(g) for g in grads])
  assert_close(case, _subset(current), expected)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_multi_transform_freezes_leaves_and_trains_the_rest_alone(case):
  params = make_params()
  grads = [make_params(t) for t in range(1, 4)]
  labels = {"w": "train", "b": "frozen", "s": "train"}
  opt = optax.multi_transform({"train": case.build(), "frozen": optax.set_to_zero()}, labels)
  new_params, _ = run(opt, params, grads)
  chex.assert_trees_all_equal(new_params["b"], params["b"])
  expected, _ = run(case.build(), _subset(params), [_subset(g) for g in grads])
  assert_close(case, _subset(new_params), expected)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_inject_hyperparams_matches_plain_and_a_learning_rate_schedule(case):
  lr, new_lr = case.kwargs["learning_rate"], case.kwargs["learning_rate"] / 4
  opt = optax.inject_hyperparams(case.factory, static_args=case.static_args)(**case.kwargs)
  params = make_params()
  grads = [make_params(t) for t in range(1, 5)]
  state = opt.init(params)
  assert float(state.hyperparams["learning_rate"]) == pytest.approx(lr)
  current = params
  for t, g in enumerate(grads):
    if t == 2:
      state.hyperparams["learning_rate"] = jnp.asarray(new_lr)
    updates, state = opt.update(g, state, current)
    current = optax.apply_updates(current, updates)
    if t == 1:
      plain, _ = run(case.build(), params, grads[:2])
      assert_close(case, current, plain)
  # The same change of learning rate, written as a schedule of the plain optimizer.
  schedule = lambda count: jnp.where(count < 2, lr, new_lr)
  expected, _ = run(case.build(learning_rate=schedule), params, grads)
  assert_close(case, current, expected)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_multisteps_equals_the_optimizer_on_averaged_gradients(case):
  k = 3
  params = make_params()
  micro = [make_params(t) for t in range(1, 2 * k + 1)]
  opt = optax.MultiSteps(case.build(), every_k_schedule=k)
  state = opt.init(params)
  current = params
  update = jax.jit(opt.update)  # MultiSteps' lax.cond is slow to trace op by op
  for t, g in enumerate(micro):
    updates, state = update(g, state, current)
    if (t + 1) % k:
      # Accumulating: params must not move.
      chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
    current = optax.apply_updates(current, updates)
  averaged = [jax.tree.map(lambda *gs: sum(gs) / k, *micro[i:i + k]) for i in (0, k)]
  expected, _ = run(case.build(), params, averaged)
  assert_close(case, current, expected, rtol=1e-5)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_apply_if_finite_skips_exactly_the_bad_steps(case):
  grads = [make_params(t) for t in range(1, 6)]
  bad = {**grads[2], "b": grads[2]["b"].at[0].set(jnp.inf)}
  opt = optax.apply_if_finite(case.build(), max_consecutive_errors=2)
  new_params, state = run(opt, make_params(), grads[:2] + [bad] + grads[3:], jit=True)
  expected, _ = run(case.build(), make_params(), grads[:2] + grads[3:], jit=True)
  assert_close(case, new_params, expected)
  assert int(state.total_notfinite) == 1


def _clip_by_global_norm_np(tree, max_norm):
  norm = np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree)))
  scale = min(1.0, max_norm / norm)
  return jax.tree.map(lambda x: jnp.asarray(np.asarray(x, np.float64) * scale, x.dtype), tree)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_chain_with_gradient_clipping_equals_pre_clipped_gradients(case):
  params = make_params()
  grads = [jax.tree.map(lambda x: 3.0 * x, make_params(t)) for t in range(1, 4)]
  for clip, clip_np in [
      (optax.clip_by_global_norm(0.5), lambda g: _clip_by_global_norm_np(g, 0.5)),
      (optax.clip(0.2), lambda g: jax.tree.map(lambda x: jnp.clip(x, -0.2, 0.2), g)),
  ]:
    new_params, _ = run(optax.chain(clip, case.build()), params, grads)
    expected, _ = run(case.build(), params, [clip_np(g) for g in grads])
    assert_close(case, new_params, expected, rtol=1e-5)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_chain_with_update_clipping_bounds_every_step(case):
  max_norm = 1e-3
  opt = optax.chain(case.build(), optax.clip_by_global_norm(max_norm))
  params = make_params()
  state = opt.init(params)
  for t in range(1, 4):
    updates, state = opt.update(make_params(t), state, params)
    assert float(optax.tree.norm(updates)) <= max_norm * (1 + 1e-5)
    params = optax.apply_updates(params, updates)
