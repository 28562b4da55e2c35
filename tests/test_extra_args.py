"""Every public transformation and alias takes extra keyword arguments in ``update``
(optax's ``GradientTransformationExtraArgs`` interface), under ``jax.jit`` too, and
they change nothing: the result equals the same update without them."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from tests.test_nnx_optimizer import TRANSFORMATIONS


@pytest.mark.parametrize("name", sorted(TRANSFORMATIONS))
def test_update_takes_extra_args_and_ignores_them(name):
  tx = TRANSFORMATIONS[name]()
  assert isinstance(tx, optax.GradientTransformationExtraArgs)
  params = {"w": jnp.arange(6.0).reshape(3, 2) - 2.0, "b": jnp.ones(2)}
  grads = {"w": jnp.full((3, 2), 0.5), "b": jnp.array([1.0, -2.0])}
  state = tx.init(params)
  with_extra = jax.jit(lambda g, s, p: tx.update(
      g, s, p, value=jnp.asarray(3.0), unexpected_extra_args_your_optimizer_doesnt_expect=1))
  chex.assert_trees_all_close(with_extra(grads, state, params), tx.update(grads, state, params),
                              rtol=1e-6)
