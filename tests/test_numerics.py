"""Edge numerics: zero, tiny, huge and non-finite gradients; low-precision and complex
params. Expectations are written from the update rule, not taken from our output."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from novograd_optax import novograd, presets
from tests.optimizer_cases import (
  ALL_CASES,
  NOVOGRAD_CASES,
  OptimizerCase,
  assert_close,
  case_params,
  make_params,
  run,
)


def _all_finite(tree) -> bool:
  return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_zero_gradient_on_first_step_gives_finite_state(case):
  params = make_params()
  opt = case.build()
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, state = opt.update(zeros, opt.init(params), params)
  assert _all_finite(updates)
  assert _all_finite(state)
  if case.kwargs.get("weight_decay", 0.0) == 0.0:
    # Nothing to move along: a zero gradient must not become a step.
    chex.assert_trees_all_equal(updates, zeros)


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_zero_gradient_after_training_gives_finite_updates(case):
  params = make_params()
  opt = case.build()
  grads = [make_params(seed) for seed in range(1, 4)]
  params, state = run(opt, params, grads)
  zeros = jax.tree.map(jnp.zeros_like, params)
  for _ in range(3):
    updates, state = opt.update(zeros, state, params)
    assert _all_finite(updates)
    params = optax.apply_updates(params, updates)
  assert _all_finite(state)


def test_zero_gradient_later_only_decays_momentum_and_moment():
  # With g = 0: v_t = b2 v_{t-1}, the normalized gradient is 0, m_t = b1 m_{t-1}.
  b1, b2, lr = 0.9, 0.25, 0.1
  opt = novograd(lr, b1=b1, b2=b2)
  params = make_params()
  _, state = run(opt, params, [make_params(7)])
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, new_state = opt.update(zeros, state, params)
  chex.assert_trees_all_close(new_state[0].nu, jax.tree.map(lambda v: b2 * v, state[0].nu))
  chex.assert_trees_all_close(updates, jax.tree.map(lambda m: -lr * b1 * m, state[2].trace))


@pytest.mark.parametrize("magnitude", [1e-30, 1e-3, 1.0, 1e15])
@pytest.mark.parametrize("eps,eps_root", [(1e-6, 0.0), (0.0, 1e-8)])
def test_update_is_normalized_where_eps_allows(magnitude, eps, eps_root):
  # b1 = 0 and lr = 1: the update is -g / (sqrt(||g||^2 + eps_root) + eps), in float64.
  rng = np.random.default_rng(0)
  g = (rng.uniform(0.5, 2.0, size=(5, 3)) * magnitude).astype(np.float32)
  opt = novograd(1.0, b1=0.0, eps=eps, eps_root=eps_root)
  params = {"w": jnp.zeros((5, 3), jnp.float32)}
  updates, _ = opt.update({"w": jnp.asarray(g)}, opt.init(params), params)
  wide = g.astype(np.float64)
  expected = -wide / (np.sqrt(np.sum(wide**2) + eps_root) + eps)
  assert updates["w"].dtype == jnp.float32
  assert _all_finite(updates)
  np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=2e-5, atol=0)
  # Normalized: the step of a layer is never longer than lr.
  assert float(jnp.linalg.norm(updates["w"])) <= 1.0 + 1e-6


@pytest.mark.parametrize("magnitude", [1e30, 3e38])
@pytest.mark.parametrize("case", **case_params(NOVOGRAD_CASES))
def test_huge_gradient_never_gives_nan(case, magnitude):
  # ||g||^2 overflows float32 here; the moment becomes inf and the update is g/inf = 0
  # (documented in the README, "Reliability"), but never NaN and never a step longer than lr.
  params = make_params()
  opt = case.build()
  huge = jax.tree.map(lambda p: jnp.full_like(p, magnitude), params)
  state = opt.init(params)
  for g in (huge, make_params(5), huge):
    updates, state = opt.update(g, state, params)
    assert not any(bool(jnp.any(jnp.isnan(u))) for u in jax.tree.leaves(updates))
    params = optax.apply_updates(params, updates)
  assert not any(bool(jnp.any(jnp.isnan(p))) for p in jax.tree.leaves(params))


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("b2", [0.0, 0.25])
def test_overflowing_gradient_does_not_stall_the_layer(b2, amsgrad):
  # ||g||^2 of a float32 gradient of 1e30 is inf, and g / inf = 0: that step is lost.
  # The next gradient must be normalized again: with m_1 = 0 the second update is
  # -lr * g_2 / (||g_2|| + eps), as if training started there; later steps stay
  # normalized instead of being divided by an inf moment forever.
  lr, eps = 0.1, 1e-6
  opt = novograd(lr, b2=b2, eps=eps, amsgrad=amsgrad)
  params = {"w": jnp.zeros((4, 3), jnp.float32)}
  state = opt.init(params)
  updates, state = opt.update({"w": jnp.full((4, 3), 1e30, jnp.float32)}, state, params)
  assert bool(jnp.all(updates["w"] == 0))
  g2 = make_params(2)["w"]
  updates, state = opt.update({"w": g2}, state, params)
  wide = np.asarray(g2, np.float64)
  expected = -lr * wide / (np.linalg.norm(wide) + eps)
  np.testing.assert_allclose(np.asarray(updates["w"]), expected, rtol=1e-5)
  for _ in range(3):
    updates, state = opt.update({"w": g2}, state, params)
  assert float(jnp.linalg.norm(updates["w"])) > lr  # momentum builds up, no stall


@pytest.mark.parametrize("magnitude", [1e-30, 1e-3, 1e15, 1e30])
@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_every_optimizer_survives_extreme_gradients(case, magnitude):
  params = make_params()
  opt = case.build()
  grads = [jax.tree.map(lambda p, s=s: (p * 0 + s * magnitude).astype(p.dtype), params)
           for s in (1.0, -0.5, 2.0)]
  new_params, state = run(opt, params, grads)
  leaves = jax.tree.leaves((new_params, state))
  assert not any(bool(jnp.any(jnp.isnan(x))) for x in leaves)
  if magnitude < 1e30:
    assert _all_finite((new_params, state))


def _quadratic_problem(dtype):
  """Params shaped like make_params() (all zeros) and a loss sum |p - target|^2."""
  rng = np.random.default_rng(3)
  is_complex = jnp.issubdtype(dtype, jnp.complexfloating)

  def draw(p):
    x = rng.normal(size=p.shape)
    return jnp.asarray(x + 1j * rng.normal(size=p.shape) if is_complex else x, dtype)

  params = jax.tree.map(lambda p: jnp.zeros(p.shape, dtype), make_params())
  target = jax.tree.map(draw, params)

  def loss(p):
    return sum(jnp.sum(jnp.abs(p[k].astype(jnp.complex64) - target[k]) ** 2) for k in p)

  return params, loss


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.complex64])
@pytest.mark.parametrize("case", **case_params(NOVOGRAD_CASES))
def test_low_precision_and_complex_params_train_and_keep_dtype(case, dtype):
  params, loss = _quadratic_problem(dtype)
  # Gradient averaging scales the momentum by (1 - b1); compensate so all cases take
  # steps of the same length.
  scale = 1 - case.kwargs["b1"] if case.kwargs.get("grad_averaging") else 1.0
  opt = case.build(learning_rate=0.05 / scale)
  mu_dtype = case.kwargs.get("mu_dtype")
  if dtype == jnp.complex64 and mu_dtype is not None:
    # A real momentum would drop the imaginary part: refused, naming mu_dtype.
    with pytest.raises(ValueError, match="mu_dtype"):
      opt.init(params)
    return
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    # For a real loss of complex params, jax returns the conjugate of the descent
    # direction; optax expects the gradient itself (optax's documented convention).
    grads = jax.tree.map(jnp.conj, jax.grad(loss)(params))
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state, updates

  initial = float(loss(params))
  for _ in range(60):
    params, state, updates = step(params, state)
    chex.assert_trees_all_equal_dtypes(updates, params)
  chex.assert_trees_all_equal_dtypes(params, _quadratic_problem(dtype)[0])
  assert _all_finite(params)
  assert float(loss(params)) < 0.1 * initial


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_apply_if_finite_leaves_params_and_state_unchanged(case):
  opt = optax.apply_if_finite(case.build(), max_consecutive_errors=3)

  @jax.jit
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params, state = make_params(), opt.init(make_params())
  for t in (1, 2):
    params, state = step(params, state, make_params(t))
  for bad in (np.nan, np.inf, -np.inf):
    poisoned = make_params(3)
    poisoned["w"] = poisoned["w"].at[1, 2].set(bad)
    new_params, new_state = step(params, state, poisoned)
    chex.assert_trees_all_equal(new_params, params)
    chex.assert_trees_all_equal(new_state.inner_state, state.inner_state)
    assert int(new_state.notfinite_count) == 1
    assert int(new_state.total_notfinite) == 1
  # A finite gradient afterwards continues as if the bad step never happened (up to
  # XLA fusing the wrapped update differently).
  after, _ = step(new_params, new_state, make_params(4))
  expected, _ = run(case.build(), make_params(), [make_params(t) for t in (1, 2, 4)], jit=True)
  assert_close(case, after, expected, rtol=1e-5)


def test_nan_gradient_without_wrapper_poisons_only_its_layer_forever():
  # What the README ("Reliability") states: a NaN in one leaf makes that leaf's moment NaN,
  # hence all of its later updates; other leaves are independent layers and go on
  # exactly as without the poisoned leaf.
  opt = novograd(0.1)
  params = make_params()
  grads = [make_params(t) for t in range(1, 5)]
  grads[1] = {**grads[1], "w": grads[1]["w"].at[0, 0].set(jnp.nan)}
  new_params, state = run(opt, params, grads)
  assert bool(jnp.all(jnp.isnan(new_params["w"])))
  assert bool(jnp.isnan(state[0].nu.per_layer()["w"]))
  others = lambda tree: {k: v for k, v in tree.items() if k != "w"}
  expected, _ = run(opt, others(params), [others(g) for g in grads])
  chex.assert_trees_all_close(others(new_params), expected, rtol=1e-6)


PRESET_CASES = [
    OptimizerCase(f"presets.{peer.preset.__name__}", peer.preset, {"learning_rate": 0.01}
                  if peer.preset is presets.optax else {})
    for peer in presets.PEERS
] + [OptimizerCase("presets.nemo_luc", presets.nemo, {"luc": True, "weight_decay": 0.01}),
     OptimizerCase("presets.openseq2seq_larc", presets.openseq2seq, {"larc_eta": 1e-3})]


@pytest.mark.parametrize("case", **case_params(PRESET_CASES))
def test_apply_if_finite_restores_every_preset(case):
  test_apply_if_finite_leaves_params_and_state_unchanged(case)


# Where one non-finite element of the gradient of leaf "w" goes, from each update rule:
# "element": only that element's update (and moment) is non-finite; "layer": every
# element of leaf "w"; "tree": every leaf (a norm over the whole tree).
NON_FINITE_SPREAD = {
    # g / sqrt(v): a NaN makes the layer's v NaN; an inf makes v inf, so the other
    # elements of the layer are divided by inf (a zero normalized gradient) and only
    # inf / inf = NaN is non-finite.
    "novograd": ("layer", "element"),
    "novograd_averaging_decay": ("layer", "element"),
    "novograd_amsgrad_linf_zero_init": ("layer", "element"),
    "novograd_layer_axes_mu_bf16": ("layer", "element"),  # each row of w is a layer
    "sngm": ("tree", "element"),  # the global norm is NaN, or inf
    "adamp": ("element", "element"),  # per-element moments; the projection is not
    "sgdp_nesterov": ("element", "element"),  # taken for a NaN or inf cosine
    "presets.optax": ("layer", "element"),
    "presets.torch_optimizer": ("layer", "element"),
    "presets.timm": ("layer", "element"),
    "presets.nemo": ("layer", "element"),
    "presets.apex": ("layer", "element"),
    "presets.tf_addons": ("layer", "element"),
    "presets.openseq2seq": ("layer", "element"),
    # LUC's ratio ||w|| / ||m|| is NaN for an inf ||m||: the whole layer.
    "presets.nemo_luc": ("layer", "layer"),
    # LARC's ratio ||w|| / ||g|| is 0 for an inf ||g||: min_update scales the layer,
    # then NovoGrad as above.
    "presets.openseq2seq_larc": ("layer", "element"),
}


def _spread(updates, row_layers=False):
  bad = {k: ~np.isfinite(np.asarray(v, np.float64)) for k, v in updates.items()}
  if all(b.all() for b in bad.values()):
    return "tree"
  if bad["b"].any() or bad["s"].any():
    return "other"
  w = bad["w"]
  if row_layers:
    w = w[1]  # the poisoned row (a layer of its own)
  return "layer" if w.all() else "element" if w.sum() == 1 else f"{w.sum()} elements"


@pytest.mark.parametrize("case", **case_params(ALL_CASES + PRESET_CASES))
def test_where_a_non_finite_gradient_goes(case):
  """What the reliability page's table states, for the step with the bad gradient
  and for the next (finite) step: the poisoned momentum keeps it."""
  for bad, expected in zip((np.nan, np.inf), NON_FINITE_SPREAD[case.name], strict=True):
    opt = case.build()
    params = make_params()
    state = opt.init(params)
    for t in (1, 2):
      _, state = opt.update(make_params(t), state, params)
    poisoned = make_params(3)
    poisoned["w"] = poisoned["w"].at[1, 2].set(bad)
    rows = case.name == "novograd_layer_axes_mu_bf16"
    updates, state = opt.update(poisoned, state, params)
    assert _spread(updates, rows) == expected, (bad, "step")
    updates, state = opt.update(make_params(4), state, params)
    assert _spread(updates, rows) == expected, (bad, "next step")
