"""Stacked layers (`layer_axes`) and leaves split over a named axis (`axis_name`)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import novograd, scale_by_layerwise_norm
from tests.reference.numpy_novograd import numpy_novograd, random_problem

NUM_STEPS = 8
OPTIONS = {
    "default": dict(weight_decay=0.05),
    "amsgrad_linf": dict(amsgrad=True, norm="linf", grad_averaging=True),
    "zero_init_paper_eps": dict(nu_init="zero", eps=0.0, eps_root=1e-6, b2=0.5),
}


def run(opt, params, grads, update=None):
  update = update or opt.update
  state = opt.init(params)
  for g in grads:
    updates, state = update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params, state


def unstack(x, axes):
  """The layers of a stacked leaf as a list, in row-major order of ``axes``."""
  moved = jnp.moveaxis(x, axes, tuple(range(len(axes))))
  return list(moved.reshape((-1,) + moved.shape[len(axes):]))


class LayerAxesTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*[(k, v) for k, v in OPTIONS.items()])
  def test_stacked_leaf_equals_separate_leaves(self, options):
    # (L, m, n) with layer_axes=0 must behave as L independent (m, n) layers.
    (stack,), grads = random_problem([(4, 3, 5)], NUM_STEPS, np.float32, seed=10)
    grads = [{"stack": jnp.asarray(g[0])} for g in grads]
    opt = novograd(0.05, layer_axes=0, **options)
    ours, state = run(opt, {"stack": jnp.asarray(stack)}, grads, self.variant(opt.update))
    self.assertEqual(state[0].nu.per_layer()["stack"].shape, (4,))

    separate = novograd(0.05, **options)
    expected, _ = run(separate, unstack(jnp.asarray(stack), (0,)),
                      [unstack(g["stack"], (0,)) for g in grads])
    chex.assert_trees_all_close(unstack(ours["stack"], (0,)), expected, rtol=1e-6, atol=1e-6)

  @parameterized.parameters(0, -3, (0,))
  def test_matches_numpy_reference(self, axes):
    (stack, kernel), grads = random_problem([(4, 3, 5), (2, 3)], NUM_STEPS, np.float32,
                                            seed=11)
    reference = numpy_novograd([stack, kernel], grads, learning_rate=0.05, weight_decay=0.1,
                               layer_axes=[axes, None])
    tree = lambda leaves: {"a_stack": jnp.asarray(leaves[0]), "b_kernel": jnp.asarray(leaves[1])}
    opt = novograd(0.05, weight_decay=0.1, layer_axes={"a_stack": axes, "b_kernel": None})
    ours, _ = run(opt, tree([stack, kernel]), [tree(g) for g in grads])
    for a, b in zip(jax.tree.leaves(ours), reference.params[-1], strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

  def test_tuple_of_axes(self):
    # (A, m, B, n) with layer_axes=(0, 2): A*B layers of shape (m, n).
    (stack,), grads = random_problem([(2, 3, 4, 5)], NUM_STEPS, np.float32, seed=12)
    grads = [jnp.asarray(g[0]) for g in grads]
    opt = scale_by_layerwise_norm(layer_axes=(2, 0))
    state = opt.init(jnp.asarray(stack))
    self.assertEqual(state.nu.per_layer().shape, (2, 4))
    separate = scale_by_layerwise_norm()
    separate_state = separate.init(unstack(jnp.asarray(stack), (0, 2)))
    for g in grads:
      out, state = opt.update(g, state)
      expected, separate_state = separate.update(unstack(g, (0, 2)), separate_state)
      chex.assert_trees_all_close(unstack(out, (0, 2)), expected, rtol=1e-6)
    chex.assert_trees_all_close(list(state.nu.per_layer().reshape(-1)),
                                separate_state.nu.per_layer(), rtol=1e-6)

  def test_pytree_prefix_and_callable(self):
    # In the order of jax.tree.leaves: blocks.kernel, head.bias, head.kernel.
    params, grads = random_problem([(3, 4, 2), (2,), (4, 2)], NUM_STEPS, np.float32, seed=13)
    tree = lambda leaves: {"blocks": {"kernel": jnp.asarray(leaves[0])},
                           "head": {"bias": jnp.asarray(leaves[1]),
                                    "kernel": jnp.asarray(leaves[2])}}
    reference = numpy_novograd(params, grads, learning_rate=0.05, layer_axes=[0, None, None])
    specs = {
        "prefix": {"blocks": 0, "head": None},
        "full_tree": {"blocks": {"kernel": (0,)}, "head": {"kernel": None, "bias": ()}},
        "callable": lambda p: {"blocks": 0, "head": None},
        "callable_per_leaf": lambda p: jax.tree.map(lambda x: 0 if x.ndim == 3 else (), p),
    }
    for name, layer_axes in specs.items():
      opt = novograd(0.05, layer_axes=layer_axes)
      ours, state = run(opt, tree(params), [tree(g) for g in grads])
      self.assertEqual(state[0].nu.per_layer()["blocks"]["kernel"].shape, (3,), name)
      self.assertEqual(state[0].nu.per_layer()["head"]["kernel"].shape, (), name)
      for a, b in zip(jax.tree.leaves(ours), reference.params[-1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)

  def test_under_inject_hyperparams(self):
    params = {"stack": jnp.ones((3, 2, 2))}
    grads = {"stack": jnp.arange(12.0).reshape(3, 2, 2)}
    injected = optax.inject_hyperparams(novograd, static_args=("layer_axes",))(
        learning_rate=0.1, b2=0.5, layer_axes=0)
    plain = novograd(0.1, b2=0.5, layer_axes=0)
    ours, _ = run(injected, params, [grads] * 3)
    expected, _ = run(plain, params, [grads] * 3)
    chex.assert_trees_all_close(ours, expected, rtol=1e-6)


class BadLayerAxesTest(parameterized.TestCase):

  @parameterized.parameters(
      (3, ValueError, "out of range"),
      (-4, ValueError, "out of range"),
      ((0, 0), ValueError, "repeated"),
      ((0, -3), ValueError, "repeated"),
      ({"a": 0, "c": 0}, ValueError, "the key 'c' (at ['c']) matches nothing in the params;"
       " the keys there are 'a', 'b'"),
      ({"a": 0}, ValueError, "no entry covers the params leaf ['b']"),
      (lambda p: "rows", TypeError, "layer_axes"),
      (lambda p: 7, ValueError, "out of range"),
  )
  def test_found_at_init(self, layer_axes, error, text):
    params = {"a": jnp.ones((2, 3, 4)), "b": jnp.ones((5,))}
    opt = scale_by_layerwise_norm(layer_axes=layer_axes) if not isinstance(
        layer_axes, int) else scale_by_layerwise_norm(layer_axes={"a": layer_axes, "b": None})
    with self.assertRaises(error) as info:
      opt.init(params)
    self.assertIn("layer_axes", str(info.exception))
    self.assertIn(text, str(info.exception))
    if text in ("out of range", "repeated"):
      # The message names the leaf, and a bad axis inside a prefix pytree is reported
      # as itself, not as a structure mismatch.
      self.assertIn("['a']", str(info.exception))
      self.assertNotIn("prefix", str(info.exception))

  # One-element tuples: parameterized would unpack a tuple, list or dict argument.
  @parameterized.parameters(("rows",), (1.0,), ((0, "a"),), ([0, None, True],), ({"a": "rows"},))
  def test_found_at_construction(self, layer_axes):
    with self.assertRaisesRegex(TypeError, "layer_axes"):
      novograd(0.1, layer_axes=layer_axes)


def split(x, axis, pieces):
  """(..., n, ...) -> (pieces, ..., n / pieces, ...) along ``axis``."""
  shape = x.shape[:axis] + (pieces, x.shape[axis] // pieces) + x.shape[axis + 1:]
  return jnp.moveaxis(x.reshape(shape), axis, 0)


def merge(x, axis):
  x = jnp.moveaxis(x, 0, axis)
  return x.reshape(x.shape[:axis] + (-1,) + x.shape[axis + 2:])


class AxisNameTest(chex.TestCase):
  """A leaf split over a named axis, here the axis of jax.vmap (collectives
  behave as over devices), must give the update of the whole leaf."""

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*[(k, v) for k, v in OPTIONS.items()])
  def test_split_leaf_equals_whole_leaf(self, options):
    pieces = 4
    (w, stack), grads = random_problem([(8, 6), (3, 4, 5)], NUM_STEPS, np.float32, seed=14)
    split_axis = {"stack": 1, "w": 0}
    whole = lambda leaves: {"stack": jnp.asarray(leaves[1]), "w": jnp.asarray(leaves[0])}
    split_tree = lambda t: {k: split(v, split_axis[k], pieces) for k, v in t.items()}
    layer_axes = {"stack": 0, "w": None}

    opt = novograd(0.05, layer_axes=layer_axes, **options)
    expected, expected_state = run(opt, whole([w, stack]), [whole(g) for g in grads])

    sharded = novograd(0.05, layer_axes=layer_axes, axis_name="i", **options)
    init = jax.vmap(sharded.init, axis_name="i")
    update = self.variant(jax.vmap(sharded.update, axis_name="i"))
    params = split_tree(whole([w, stack]))
    state = init(params)
    for g in grads:
      updates, state = update(split_tree(whole(g)), state, params)
      params = optax.apply_updates(params, updates)
    ours = {k: merge(v, split_axis[k]) for k, v in params.items()}
    chex.assert_trees_all_close(ours, expected, rtol=1e-5, atol=1e-6)
    # Every piece holds the moment of the whole layer.
    for piece in range(pieces):
      chex.assert_trees_all_close(
          jax.tree.map(lambda x, i=piece: x[i], state[0].nu), expected_state[0].nu, rtol=1e-5)


if __name__ == "__main__":
  absltest.main()
