"""Per-layer statistics read out of optimizer states."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from novograd_optax import (
    flatten_for_logging,
    layerwise_statistics,
    novograd,
    scale_by_layerwise_norm,
)
from tests.reference.numpy_novograd import numpy_novograd, random_problem

NUM_STEPS = 5


def problem(dtype=np.float32, seed=20):
  # In the order of jax.tree.leaves: dense.b, dense.w, stack.
  params, grads = random_problem([(3,), (4, 3), (2, 3, 3)], NUM_STEPS, dtype, seed=seed)
  tree = lambda leaves: {"dense": {"b": jnp.asarray(leaves[0]), "w": jnp.asarray(leaves[1])},
                         "stack": jnp.asarray(leaves[2])}
  return params, grads, tree


def run(opt, params, grads, tree):
  p = tree(params)
  state = opt.init(p)
  for g in grads:
    updates, state = opt.update(tree(g), state, p)
    p = optax.apply_updates(p, updates)
  return state


def test_statistics_match_reference_and_are_keyed_like_params():
  params, grads, tree = problem()
  layer_axes = {"dense": None, "stack": 0}
  state = run(novograd(0.1, b2=0.5, layer_axes=layer_axes), params, grads, tree)
  stats = layerwise_statistics(state)
  reference = numpy_novograd(params, grads, b2=0.5, layer_axes=[None, None, 0])
  expected_nu = tree(reference.nu[-1])
  chex.assert_trees_all_equal_structs(stats.second_moment, tree(params))
  chex.assert_trees_all_close(stats.second_moment, expected_nu, rtol=1e-5)
  chex.assert_trees_all_close(stats.gradient_norm, jax.tree.map(np.sqrt, expected_nu), rtol=1e-5)
  assert stats.second_moment["stack"].shape == (2,)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_b2_zero_gives_the_true_gradient_norm(dtype):
  params, grads, tree = problem(dtype)
  layer_axes = {"dense": None, "stack": 0}
  state = run(novograd(0.1, b2=0.0, layer_axes=layer_axes), params, grads, tree)
  norms = layerwise_statistics(state).gradient_norm
  last = tree(grads[-1])
  np.testing.assert_allclose(norms["dense"]["w"], np.linalg.norm(last["dense"]["w"]), rtol=1e-5)
  np.testing.assert_allclose(norms["dense"]["b"], np.linalg.norm(last["dense"]["b"]), rtol=1e-5)
  for i in range(2):
    np.testing.assert_allclose(norms["stack"][i], np.linalg.norm(last["stack"][i]), rtol=1e-5)


def test_found_inside_wrappers():
  params, grads, tree = problem()
  plain = layerwise_statistics(run(novograd(0.1), params, grads, tree)).second_moment
  wrapped = {
      "chain": optax.chain(optax.clip_by_global_norm(1e9), novograd(0.1)),
      "inject_hyperparams": optax.inject_hyperparams(novograd)(learning_rate=0.1),
      "custom_chain": optax.chain(optax.clip(1e9), scale_by_layerwise_norm(), optax.trace(0.9),
                                  optax.scale_by_learning_rate(0.1)),
  }
  for name, opt in wrapped.items():
    stats = layerwise_statistics(run(opt, params, grads, tree))
    chex.assert_trees_all_close(stats.second_moment, plain, rtol=1e-6, custom_message=name)
  # MultiSteps: the moments only move every k steps, on the mean of the k
  # accumulated gradients.
  k = 2
  multi = optax.MultiSteps(novograd(0.1), every_k_schedule=k)
  state = run(multi, params, grads[:4], tree)
  means = [[(a + b) / 2 for a, b in zip(grads[2 * i], grads[2 * i + 1], strict=True)]
           for i in range(2)]
  expected = layerwise_statistics(run(novograd(0.1), params, means, tree)).second_moment
  chex.assert_trees_all_close(layerwise_statistics(state).second_moment, expected, rtol=1e-5)


def test_no_layerwise_state_is_an_error():
  params = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match="scale_by_layerwise_norm"):
    layerwise_statistics(optax.adam(0.1).init(params))


def test_flatten_for_logging():
  tree = {"dense": {"w": jnp.asarray(2.0)}, "stack": jnp.asarray([1.0, 3.0]),
          "grid": jnp.arange(4.0).reshape(2, 2)}
  flat = flatten_for_logging(tree, prefix="nu")
  assert set(flat) == {"nu['dense']['w']", "nu['stack'][0]", "nu['stack'][1]",
                       "nu['grid'][0, 0]", "nu['grid'][0, 1]", "nu['grid'][1, 0]",
                       "nu['grid'][1, 1]"}
  assert float(flat["nu['dense']['w']"]) == 2.0
  assert float(flat["nu['stack'][1]"]) == 3.0
  assert float(flat["nu['grid'][1, 0]"]) == 2.0
  assert all(np.ndim(v) == 0 for v in flat.values())


def test_flatten_statistics_of_a_run():
  params, grads, tree = problem()
  state = run(novograd(0.1, layer_axes={"dense": None, "stack": 0}), params, grads, tree)
  flat = flatten_for_logging(layerwise_statistics(state).gradient_norm)
  assert sorted(flat) == ["['dense']['b']", "['dense']['w']", "['stack'][0]", "['stack'][1]"]
  # Eq. (1) of the paper in NumPy, per layer: v_1 = ||g_1||^2, then
  # v_t = b2 v_{t-1} + (1 - b2) ||g_t||^2 with the default b2 = 0.25; the logged value
  # is sqrt(v_T). Each stacked slice is a layer of its own.
  b2 = 0.25
  layers = {"['dense']['b']": lambda g: g[0], "['dense']['w']": lambda g: g[1],
            "['stack'][0]": lambda g: g[2][0], "['stack'][1]": lambda g: g[2][1]}
  for key, layer in layers.items():
    nu = 0.0
    for t, g in enumerate(grads):
      squared = np.sum(np.float64(layer(g)) ** 2)
      nu = squared if t == 0 else b2 * nu + (1 - b2) * squared
    np.testing.assert_allclose(float(flat[key]), np.sqrt(nu), rtol=1e-5, err_msg=key)


class _TwoLayers:
  """Built lazily so that the module imports without Flax."""

  @staticmethod
  def make():
    from flax import nnx

    class TwoLayers(nnx.Module):
      def __init__(self, rngs):
        self.hidden = nnx.Linear(3, 4, rngs=rngs)
        self.out = nnx.Linear(4, 2, rngs=rngs)

      def __call__(self, x):
        return self.out(jax.nn.tanh(self.hidden(x)))

    return TwoLayers(nnx.Rngs(0))


def test_flax_nnx_optimizer_and_its_states():
  nnx = pytest.importorskip("flax.nnx")
  model = _TwoLayers.make()
  optimizer = nnx.Optimizer(model, novograd(0.05, b2=0.5), wrt=nnx.Param)
  rng = np.random.default_rng(3)
  squared_norms = []
  for _ in range(3):
    x = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    grads = nnx.grad(lambda m, x=x: jnp.mean(m(x) ** 2))(model)
    plain = nnx.to_pure_dict(grads)
    squared_norms.append(jax.tree.map(lambda g: np.sum(np.square(np.asarray(g, np.float64))),
                                      plain))
    optimizer.update(model, grads)
  # v_1 = ||g_1||^2, v_t = b2 v_{t-1} + (1 - b2) ||g_t||^2, from the gradients alone.
  expected = squared_norms[0]
  for later in squared_norms[1:]:
    expected = jax.tree.map(lambda v, s: 0.5 * v + 0.5 * s, expected, later)
  expected_keys = {jax.tree_util.keystr(path) for path, _ in
                   jax.tree_util.tree_leaves_with_path(expected)}
  assert expected_keys == {"['hidden']['bias']", "['hidden']['kernel']",
                           "['out']['bias']", "['out']['kernel']"}
  with pytest.raises(ValueError, match=r"lost their layout.*optimizer\.opt_state"):
    layerwise_statistics(nnx.state(optimizer))
  for name, state in {"optimizer": optimizer, "opt_state": optimizer.opt_state}.items():
    stats = layerwise_statistics(state)
    flat = flatten_for_logging(stats.gradient_norm)
    assert set(flat) == expected_keys, name
    for path, value in jax.tree_util.tree_leaves_with_path(expected):
      np.testing.assert_allclose(float(flat[jax.tree_util.keystr(path)]), np.sqrt(value),
                                 rtol=1e-5, err_msg=name)
    flat_moment = flatten_for_logging(stats.second_moment, prefix="nu")
    assert set(flat_moment) == {"nu" + k for k in expected_keys}, name


def test_flatten_for_logging_unwraps_nnx_variables():
  nnx = pytest.importorskip("flax.nnx")
  model = _TwoLayers.make()
  flat = flatten_for_logging(nnx.state(model, nnx.Param))
  assert len(flat) == 4 + 3 * 4 + 4 * 2 + 2
  assert not any(".value" in k or "['value']" in k for k in flat), sorted(flat)
  np.testing.assert_allclose(float(flat["['out']['bias'][1]"]), 0.0)


def _decreasing_gradients():
  """Gradients whose norms fall step by step, so that the AMSGrad maximum (the
  first, largest moment) and the moment itself differ."""
  g = {"w": np.arange(1.0, 7.0, dtype=np.float32).reshape(2, 3), "b": np.ones(3, np.float32)}
  return [{k: v * 0.5 ** t for k, v in g.items()} for t in range(4)]


def _numpy_moment(grads, b2):
  """v_1 = ||g_1||^2, v_t = b2 v_{t-1} + (1 - b2) ||g_t||^2, per leaf, in float64."""
  nu = {}
  for t, g in enumerate(grads):
    for k, x in g.items():
      squared = np.sum(np.float64(x) ** 2)
      nu[k] = squared if t == 0 else b2 * nu[k] + (1 - b2) * squared
  return nu


def test_amsgrad_statistics_report_the_moment_not_the_running_maximum():
  b2 = 0.5
  grads = _decreasing_gradients()
  opt = novograd(0.1, b2=b2, amsgrad=True)
  params = jax.tree.map(jnp.zeros_like, grads[0])
  state = opt.init(params)
  for g in grads:
    _, state = opt.update(g, state, params)
  expected = _numpy_moment(grads, b2)
  maximum = _numpy_moment(grads[:1], b2)
  assert all(expected[k] < 0.5 * maximum[k] for k in expected)  # the two differ
  chex.assert_trees_all_close(layerwise_statistics(state).second_moment, expected, rtol=1e-5)
  # The same through a flattened state, as nnx.state(optimizer) gives it.
  inner = state[0]
  flattened = {"count": inner.count, "nu": inner.nu, "nu_max": inner.nu_max}
  chex.assert_trees_all_close(
      layerwise_statistics([flattened]).second_moment, expected, rtol=1e-5)


def test_chain_with_two_layerwise_states_reports_the_first():
  """The first layer-wise state sees the raw gradient; a second one sees normalized
  gradients (moment ~1 per layer). The documented choice is the first."""
  grads = _decreasing_gradients()
  opt = optax.chain(scale_by_layerwise_norm(b2=0.25), scale_by_layerwise_norm(b2=0.0),
                    optax.scale_by_learning_rate(0.1))
  params = jax.tree.map(jnp.zeros_like, grads[0])
  state = opt.init(params)
  for g in grads:
    _, state = opt.update(g, state, params)
  expected = _numpy_moment(grads, 0.25)
  chex.assert_trees_all_close(layerwise_statistics(state).second_moment, expected, rtol=1e-5)
  second = layerwise_statistics((state[1],)).second_moment
  assert not np.allclose(second["w"], expected["w"], rtol=0.1)
