"""The per-layer values of a step: the moments stored as one vector per dtype
(``_src/layer_moments.py``) and updated on the squared norms of every leaf stacked
(``_src/layer_layout.py``).

The step is checked against the NumPy transcription of the paper
(``tests/reference/numpy_novograd.py``) on leaves of many shapes, stacked layers and two
param dtypes; the stored vectors against the per-layer view users and monitoring read;
an orbax checkpoint round trip against uninterrupted training. What the layout compiles
to for a GPU or TPU is checked in ``tests/test_compiled_for_accelerators.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from novograd_optax import novograd, scale_by_layerwise_norm
from novograd_optax._src.layer_moments import LayerMoments
from tests.reference.numpy_novograd import numpy_novograd, random_problem

# Leaves of several shapes and two dtypes, a stacked leaf with layer_axes, a scalar leaf.
SHAPES = [(3, 4), (4,), (2, 3, 5), (), (7,), (2, 2), (5, 1), (6,), (3,), (4, 2), (1,)]
LAYER_AXES = [None, None, 0, None, None, None, None, None, None, 1, None]
DTYPES = [jnp.float32] * 8 + [jnp.bfloat16] * 3

OPTIONS = [
    dict(),
    dict(amsgrad=True, b2=0.5),
    dict(nu_init="zero", eps=0.0, eps_root=1e-3),
    dict(norm="linf", grad_averaging=True, weight_decay=1e-2),
]


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


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "defaults")
def test_the_stacked_step_follows_the_paper(options):
  params, grads = _problem()
  opt = novograd(0.1, layer_axes=LAYER_AXES, **options)
  final, state = _train(opt, params, grads)
  f64 = lambda xs: [np.asarray(x, np.float64) for x in xs]
  ref = numpy_novograd(f64(params), [f64(g) for g in grads], learning_rate=0.1,
                       layer_axes=LAYER_AXES, **options)
  for got, want, dtype in zip(final, ref.params[-1], DTYPES, strict=True):
    tol = 2e-2 if dtype == jnp.bfloat16 else 1e-5
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=tol, atol=tol)
  for got, want in zip(state[0].nu.per_leaf(), ref.nu[-1], strict=True):
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-2, atol=1e-6)


def test_moments_are_one_vector_per_dtype_viewed_per_layer():
  """The stored vectors hold each leaf's moments ravelled, in leaf order, grouped by
  the moment's dtype; the view gives them back keyed like the params."""
  moments = {"a": np.float32(1.0), "b": np.arange(2.0, 5.0, dtype=np.float32),
             "c": np.float64(7.0), "d": np.float32([[5.0, 6.0]])}
  with jax.enable_x64(True):
    stored = LayerMoments.from_per_layer(jax.tree.map(jnp.asarray, moments))
    assert stored.layout.dtypes == ("float32", "float64")
    np.testing.assert_array_equal(stored.vectors[0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    np.testing.assert_array_equal(stored.vectors[1], [7.0])
    view = stored.per_layer()
    assert jax.tree.structure(view) == jax.tree.structure(moments)
    for key, value in moments.items():
      assert view[key].dtype == value.dtype and view[key].shape == np.shape(value), key
      np.testing.assert_array_equal(view[key], value)
    # A pytree whose leaves are the vectors, named by dtype (checkpoint paths).
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(stored)]
    assert paths == ["['float32']", "['float64']"]


@pytest.mark.parametrize("amsgrad", [False, True])
def test_optax_tree_map_params_maps_the_moments_as_non_params(amsgrad):
  """optax.tree_map_params (e.g. to build partition specs) gives the params-shaped
  first moment the params' values and hands the per-layer moments, which are not
  params-shaped, to `transform_non_params` like the step count."""
  params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,))}
  specs = {"w": "spec-w", "b": "spec-b"}
  opt = novograd(0.1, amsgrad=amsgrad)
  state = opt.init(params)
  mapped = optax.tree_map_params(opt, lambda _, spec: spec, state, specs,
                                 transform_non_params=lambda _: "replicated")
  layerwise, *rest = mapped
  assert layerwise.count == "replicated" and layerwise.nu == "replicated"
  assert layerwise.nu_max == ("replicated" if amsgrad else None)
  assert [s.trace for s in rest if isinstance(s, optax.TraceState)] == [specs]
  # Without transform_non_params the state comes back unchanged.
  same = optax.tree_map_params(opt, lambda p: p, state)
  jax.tree.map(np.testing.assert_array_equal, same, state)


def test_a_stacked_leaf_with_another_number_of_layers_is_refused():
  opt = scale_by_layerwise_norm(layer_axes=0)
  state = opt.init({"stack": jnp.zeros((3, 2))})
  with pytest.raises(ValueError, match=r"updates\['stack'\].*\(4,\).*\(3,\)"):
    opt.update({"stack": jnp.ones((4, 2))}, state)


def test_a_checkpoint_of_per_leaf_moments_converts():
  """Releases up to 0.2.0 stored one array per leaf; from_per_layer converts such a
  state, and training continues as if it had never been stored."""
  params, grads = _problem(num_steps=4)
  opt = novograd(0.05, b2=0.5, layer_axes=LAYER_AXES)
  mid_params, mid_state = _train(opt, params, grads[:2])
  old_nu = mid_state[0].nu.per_layer()  # what 0.2.0 kept
  converted = (mid_state[0]._replace(nu=LayerMoments.from_per_layer(old_nu)),
               *mid_state[1:])
  resumed, _ = _train(opt, mid_params, grads[2:], converted)
  uninterrupted, _ = _train(opt, params, grads)
  jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)


def test_moment_restart_and_zero_layers_in_the_stacked_layout():
  """The per-layer special cases (an overflowed moment restarts; a zero layer with eps = 0
  gets a zero update, not NaN) hold elementwise on a stacked vector too."""
  opt = scale_by_layerwise_norm(b2=0.5, eps=0.0)
  params = {"a": jnp.zeros(3), "b": jnp.zeros(2), "c": jnp.zeros(2)}
  state = opt.init(params)
  state = state._replace(nu=LayerMoments.from_per_layer(
      {"a": jnp.float32(jnp.inf), "b": jnp.float32(4.0), "c": jnp.float32(0.0)}),
      count=jnp.int32(1))
  grads = {"a": jnp.array([3.0, 4.0, 0.0]), "b": jnp.array([0.0, 2.0]), "c": jnp.zeros(2)}
  updates, new = jax.jit(opt.update)(grads, state, params)
  # a: restart, v = ||g||^2 = 25; b: 0.5 * 4 + 0.5 * 4 = 4; c: v = 0, divided by 1.
  np.testing.assert_allclose(new.nu.per_layer()["a"], 25.0)
  np.testing.assert_allclose(new.nu.per_layer()["b"], 4.0)
  np.testing.assert_allclose(updates["a"], np.array([3.0, 4.0, 0.0]) / 5.0, rtol=1e-6)
  np.testing.assert_allclose(updates["b"], np.array([0.0, 1.0]), rtol=1e-6)
  np.testing.assert_array_equal(updates["c"], np.zeros(2))


def test_checkpoint_resumes(tmp_path):
  """Train 3 steps, save with orbax, restore into a fresh structure and train 3 more:
  the same as 6 steps uninterrupted (the state layout is the same on every platform,
  so a checkpoint written on a TPU restores like this on a CPU)."""
  params, grads = _problem(num_steps=6)
  opt = novograd(0.05, b2=0.5, amsgrad=True, layer_axes=LAYER_AXES)
  mid_params, mid_state = _train(opt, params, grads[:3])
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "step_3", {"params": mid_params, "opt_state": mid_state})
  checkpointer.wait_until_finished()
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {"params": params, "opt_state": opt.init(params)})
  restored = checkpointer.restore(tmp_path / "step_3", target)
  checkpointer.close()
  resumed, _ = _train(opt, restored["params"], grads[3:], restored["opt_state"])
  uninterrupted, _ = _train(opt, params, grads)
  jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)
