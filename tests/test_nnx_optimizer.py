"""Every public transformation and alias inside Flax NNX's ``nnx.Optimizer``, which
forwards keyword arguments of ``update(model, grads, **kwargs)`` to the optax
``update`` (e.g. ``value=loss`` for ``optax.contrib.reduce_on_plateau``).

The expected model is the optax API used directly on plain dicts: the same
transformation's ``init``/``update`` and ``optax.apply_updates``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import novograd_optax

nnx = pytest.importorskip("flax.nnx")

TRANSFORMATIONS = {
    "novograd": lambda: novograd_optax.novograd(0.05, weight_decay=1e-2),
    "sngm": lambda: novograd_optax.sngm(0.05, weight_decay=1e-2),
    "adamp": lambda: novograd_optax.adamp(0.01, weight_decay=1e-2, nesterov=True),
    "sgdp": lambda: novograd_optax.sgdp(0.05, weight_decay=1e-2),
    "scale_by_layerwise_norm": lambda: novograd_optax.scale_by_layerwise_norm(amsgrad=True),
    "normalize_by_global_norm": novograd_optax.normalize_by_global_norm,
    "normalize_by_norm_average": novograd_optax.normalize_by_norm_average,
    "clip_by_layerwise_trust_ratio": lambda: novograd_optax.clip_by_layerwise_trust_ratio(
        0.02, learning_rate=0.1),
    "project_scale_invariant": lambda: novograd_optax.project_scale_invariant(
        optax.scale_by_adam(), weight_decay=1e-2),
}
STEPS = 3


class Mlp(nnx.Module):
  def __init__(self, rngs):
    self.hidden = nnx.Linear(3, 4, rngs=rngs)
    self.out = nnx.Linear(4, 2, rngs=rngs)

  def __call__(self, x):
    return self.out(jax.nn.relu(self.hidden(x)))


def loss_fn(model, x, y):
  return jnp.mean((model(x) - y) ** 2)


def batches():
  rng = np.random.default_rng(0)
  return [(jnp.asarray(rng.normal(size=(8, 3)), jnp.float32),
           jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)) for _ in range(STEPS)]


def expected_params(tx):
  """The optax API on plain dicts, with the same loss and value."""
  model = Mlp(nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  plain = nnx.to_pure_dict(params)
  state = tx.init(plain)

  def loss_of(plain, x, y):
    replaced = nnx.State(params)
    nnx.replace_by_pure_dict(replaced, plain)
    return loss_fn(nnx.merge(graphdef, replaced), x, y)

  for x, y in batches():
    loss, grads = jax.value_and_grad(loss_of)(plain, x, y)
    updates, state = tx.update(grads, state, plain, value=loss)
    plain = optax.apply_updates(plain, updates)
  return plain


def nnx_params(tx, jit):
  model = Mlp(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  def train_step(model, optimizer, x, y):
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    optimizer.update(model, grads, value=loss)

  if jit:
    train_step = nnx.jit(train_step)
  for x, y in batches():
    train_step(model, optimizer, x, y)
  return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def test_every_public_transformation_is_covered():
  public = {name for name in novograd_optax.__all__
            if callable(getattr(novograd_optax, name))
            and not isinstance(getattr(novograd_optax, name), type)}
  assert public - set(TRANSFORMATIONS) == {
      "decay_mask", "flatten_for_logging", "layer_axes_from_flax", "layerwise_statistics",
      "optimizer_state_shardings"}


@pytest.mark.parametrize("name", sorted(TRANSFORMATIONS))
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "nnx_jit"])
def test_update_with_value_equals_optax(name, jit):
  make = TRANSFORMATIONS[name]
  chex.assert_trees_all_close(nnx_params(make(), jit), expected_params(make()),
                              rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["novograd", "sngm", "adamp", "sgdp"])
def test_chain_with_reduce_on_plateau_reads_the_value(name):
  """``value=`` reaches a link of the chain that needs it; a loss that never
  improves must cut the learning rate (the scale of reduce_on_plateau's state)."""
  tx = optax.chain(TRANSFORMATIONS[name](),
                   optax.contrib.reduce_on_plateau(factor=0.5, patience=1, cooldown=0))
  model = Mlp(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  x, y = batches()[0]
  grads = nnx.grad(loss_fn)(model, x, y)
  for _ in range(4):
    optimizer.update(model, grads, value=jnp.asarray(1.0))
  plateau = optimizer.opt_state[-1]
  scale = plateau.scale.get_value() if hasattr(plateau.scale, "get_value") else plateau.scale
  assert float(scale) < 1.0
