"""The per-layer values of a step are laid out per platform (per leaf on a CPU, stacked
vectors on a GPU or TPU: ``_src/layer_layout.py``). Both layouts must give NovoGrad's
numbers, and the state must be the same pytree either way, so a checkpoint written by
an accelerator's step resumes on a CPU.

The accelerator layout runs here, on the CPU, by choosing it in place of
``for_platform``; both are checked against the NumPy transcription of the paper
(``tests/reference/numpy_novograd.py``) and against each other up to round-off. That the
layout really is chosen when the step is lowered for a GPU or TPU is checked in
``tests/test_compiled_for_accelerators.py``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from novograd_optax import novograd, scale_by_layerwise_norm
from novograd_optax._src import layer_layout
from tests.reference.numpy_novograd import numpy_novograd, random_problem

LAYOUTS = {"per_leaf_on_cpu": layer_layout.per_leaf_on_cpu, "stacked": layer_layout.stacked}

# Leaves of several shapes and two dtypes (two stacked groups), a stacked leaf with
# layer_axes, a scalar leaf, and more than 8 leaves of one dtype (several CPU groups).
SHAPES = [(3, 4), (4,), (2, 3, 5), (), (7,), (2, 2), (5, 1), (6,), (3,), (4, 2), (1,)]
LAYER_AXES = [None, None, 0, None, None, None, None, None, None, 1, None]
DTYPES = [jnp.float32] * 8 + [jnp.bfloat16] * 3

OPTIONS = [
    dict(),
    dict(amsgrad=True, b2=0.5),
    dict(nu_init="zero", eps=0.0, eps_root=1e-3),
    dict(norm="linf", grad_averaging=True, weight_decay=1e-2),
]


@pytest.fixture
def use_layout(monkeypatch):
  def choose(name):
    monkeypatch.setattr(layer_layout, "for_platform", LAYOUTS[name])
  return choose


def _problem(num_steps=4):
  params, grads = random_problem(SHAPES, num_steps, np.float32, seed=3)
  cast = lambda xs: [jnp.asarray(x, d) for x, d in zip(xs, DTYPES, strict=True)]
  return cast(params), [cast(g) for g in grads]


def _train(opt, params, grads_per_step, state=None):
  state = opt.init(params) if state is None else state
  step = jax.jit(lambda p, s, g: (lambda u, s: (optax.apply_updates(p, u), s))(
      *opt.update(g, s, p)))
  for grads in grads_per_step:
    params, state = step(params, state, grads)
  return params, state


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_each_layout_follows_the_paper(use_layout, layout, options):
  use_layout(layout)
  params, grads = _problem()
  opt_options = {k: v for k, v in options.items()}
  opt = novograd(0.1, layer_axes=LAYER_AXES, **opt_options)
  final, state = _train(opt, params, grads)
  f64 = lambda xs: [np.asarray(x, np.float64) for x in xs]
  ref = numpy_novograd(f64(params), [f64(g) for g in grads], learning_rate=0.1,
                       layer_axes=LAYER_AXES, **options)
  for got, want, dtype in zip(final, ref.params[-1], DTYPES, strict=True):
    tol = 2e-2 if dtype == jnp.bfloat16 else 1e-5
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=tol, atol=tol)
  for got, want in zip(state[0].nu, ref.nu[-1], strict=True):
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-2, atol=1e-6)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_layouts_agree_up_to_round_off_with_the_same_state_layout(use_layout, options):
  params, grads = _problem(num_steps=6)
  results = {}
  for layout in LAYOUTS:
    use_layout(layout)
    opt = novograd(0.1, layer_axes=LAYER_AXES, **options)
    results[layout] = _train(opt, params, grads)
  (p_cpu, s_cpu), (p_acc, s_acc) = results.values()
  chex.assert_trees_all_equal_structs(s_cpu, s_acc)
  chex.assert_trees_all_equal_shapes_and_dtypes(s_cpu, s_acc)
  # float32 leaves to a few ulps; bfloat16 weights to one bf16 rounding step.
  for a, b, dtype in zip(p_cpu, p_acc, DTYPES, strict=True):
    tol = 1e-2 if dtype == jnp.bfloat16 else 1e-6
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               rtol=tol, atol=tol)
  chex.assert_trees_all_close(s_cpu, s_acc, rtol=1e-6, atol=1e-7)


def test_moment_restart_and_zero_layers_in_the_stacked_layout(use_layout):
  """The per-layer special cases (an overflowed moment restarts; a zero layer with eps = 0
  gets a zero update, not NaN) hold elementwise on a stacked vector too."""
  use_layout("stacked")
  opt = scale_by_layerwise_norm(b2=0.5, eps=0.0)
  params = {"a": jnp.zeros(3), "b": jnp.zeros(2), "c": jnp.zeros(2)}
  state = opt.init(params)
  state = state._replace(nu={"a": jnp.float32(jnp.inf), "b": jnp.float32(4.0),
                             "c": jnp.float32(0.0)}, count=jnp.int32(1))
  grads = {"a": jnp.array([3.0, 4.0, 0.0]), "b": jnp.array([0.0, 2.0]), "c": jnp.zeros(2)}
  updates, new = jax.jit(opt.update)(grads, state, params)
  # a: restart, v = ||g||^2 = 25; b: 0.5 * 4 + 0.5 * 4 = 4; c: v = 0, divided by 1.
  np.testing.assert_allclose(new.nu["a"], 25.0)
  np.testing.assert_allclose(new.nu["b"], 4.0)
  np.testing.assert_allclose(updates["a"], np.array([3.0, 4.0, 0.0]) / 5.0, rtol=1e-6)
  np.testing.assert_allclose(updates["b"], np.array([0.0, 1.0]), rtol=1e-6)
  np.testing.assert_array_equal(updates["c"], np.zeros(2))


def test_checkpoint_of_the_accelerator_layout_resumes_with_the_cpu_layout(
    use_layout, tmp_path):
  """Train 3 steps with the accelerator's layout, save with orbax, restore into a fresh
  process's structure and train 3 more steps with the CPU's layout: the same as 6 steps
  with the CPU's layout, up to round-off."""
  params, grads = _problem(num_steps=6)
  opt = novograd(0.05, b2=0.5, amsgrad=True, layer_axes=LAYER_AXES)
  use_layout("stacked")
  mid_params, mid_state = _train(opt, params, grads[:3])
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "step_3", {"params": mid_params, "opt_state": mid_state})
  checkpointer.wait_until_finished()
  use_layout("per_leaf_on_cpu")
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {"params": params, "opt_state": opt.init(params)})
  restored = checkpointer.restore(tmp_path / "step_3", target)
  checkpointer.close()
  resumed, _ = _train(opt, restored["params"], grads[3:], restored["opt_state"])
  uninterrupted, _ = _train(opt, params, grads)
  for a, b, dtype in zip(resumed, uninterrupted, DTYPES, strict=True):
    tol = 1e-2 if dtype == jnp.bfloat16 else 1e-6
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                               rtol=tol, atol=tol)


def test_for_platform_is_the_cpu_layout_on_cpu():
  """On the CPU the lowered step is the per-leaf layout: the same numbers bit for bit."""
  params, grads = _problem(num_steps=3)
  opt = novograd(0.1, b2=0.5, layer_axes=LAYER_AXES)
  chosen = _train(opt, params, grads)
  original = layer_layout.for_platform
  try:
    layer_layout.for_platform = layer_layout.per_leaf_on_cpu
    per_leaf = _train(opt, params, grads)
  finally:
    layer_layout.for_platform = original
  chex.assert_trees_all_equal(chosen, per_leaf)
