"""Scanned layers: a Flax NNX model whose ``L`` identical blocks are created with
``nnx.vmap`` and run with ``nnx.scan`` stores each weight as one leaf with a
leading layer axis. With ``layer_axes`` marking that axis, NovoGrad must give
every block exactly the update it gets in the unrolled twin (one leaf per layer
per weight); without it, the stack would share one norm and differ."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from novograd_optax import novograd

LAYERS, WIDTH, OUT, BATCH, STEPS = 3, 8, 4, 16, 3


class Block(nnx.Module):

  def __init__(self, rngs: nnx.Rngs):
    self.linear = nnx.Linear(WIDTH, WIDTH, rngs=rngs)

  def __call__(self, x):
    return jnp.tanh(self.linear(x))


class ScannedModel(nnx.Module):
  """``LAYERS`` blocks stacked into one module whose weights have a leading
  ``LAYERS`` axis, plus an ordinary head."""

  def __init__(self, rngs: nnx.Rngs):
    @nnx.split_rngs(splits=LAYERS)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
      return Block(rngs)

    self.blocks = make_blocks(rngs)
    self.head = nnx.Linear(WIDTH, OUT, rngs=rngs)

  def __call__(self, x):
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def run_block(x, block):
      return block(x)

    return self.head(run_block(x, self.blocks))


class UnrolledModel(nnx.Module):
  """The same network with one module (one leaf per weight) per block."""

  def __init__(self, rngs: nnx.Rngs):
    self.blocks = nnx.List([Block(rngs) for _ in range(LAYERS)])
    self.head = nnx.Linear(WIDTH, OUT, rngs=rngs)

  def __call__(self, x):
    for block in self.blocks:
      x = block(x)
    return self.head(x)


def unrolled_twin(scanned: ScannedModel) -> UnrolledModel:
  unrolled = UnrolledModel(nnx.Rngs(1))
  for index, block in enumerate(unrolled.blocks):
    block.linear.kernel[...] = scanned.blocks.linear.kernel[index]
    block.linear.bias[...] = scanned.blocks.linear.bias[index]
  unrolled.head.kernel[...] = scanned.head.kernel[...]
  unrolled.head.bias[...] = scanned.head.bias[...]
  return unrolled


def stacked_axis_of_blocks(params):
  """layer_axes as a callable: axis 0 of every leaf under ``blocks``."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: 0 if "blocks" in jax.tree_util.keystr(path) else None, params)


def train(model, tx, inputs, targets):
  graphdef, params = nnx.split(model, nnx.Param)

  def loss_fn(params, x, y):
    return jnp.mean(jnp.square(nnx.merge(graphdef, params)(x) - y))

  @jax.jit
  def step(params, state, x, y):
    grads = jax.grad(loss_fn)(params, x, y)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = tx.init(params)
  for x, y in zip(inputs, targets, strict=True):
    params, state = step(params, state, x, y)
  return nnx.merge(graphdef, params), state


# Weight decay reads the params and AMSGrad keeps a second per-layer state.
OPTIONS = {"learning_rate": 0.05, "amsgrad": True, "weight_decay": 1e-2}


@pytest.fixture(name="data", scope="module")
def fixture_data():
  rng = np.random.default_rng(0)
  inputs = rng.normal(size=(STEPS, BATCH, WIDTH)).astype(np.float32)
  targets = rng.normal(size=(STEPS, BATCH, OUT)).astype(np.float32)
  return inputs, targets


@pytest.fixture(name="unrolled_blocks", scope="module")
def fixture_unrolled_blocks(data):
  unrolled, _ = train(unrolled_twin(ScannedModel(nnx.Rngs(0))), novograd(**OPTIONS), *data)
  return [(np.asarray(k), np.asarray(b)) for k, b in blocks_of(unrolled, True)], unrolled


def blocks_of(model, unrolled: bool):
  if unrolled:
    return [(b.linear.kernel[...], b.linear.bias[...]) for b in model.blocks]
  return [(model.blocks.linear.kernel[i], model.blocks.linear.bias[i])
          for i in range(LAYERS)]


def test_scanned_with_layer_axes_equals_unrolled(data, unrolled_blocks):
  expected_blocks, unrolled = unrolled_blocks
  scanned, scanned_state = train(
      ScannedModel(nnx.Rngs(0)), novograd(layer_axes=stacked_axis_of_blocks, **OPTIONS), *data)
  for (k_s, b_s), (k_u, b_u) in zip(blocks_of(scanned, False), expected_blocks, strict=True):
    np.testing.assert_allclose(k_s, k_u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b_s, b_u, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(scanned.head.kernel[...], unrolled.head.kernel[...],
                             rtol=1e-5, atol=1e-6)
  # One second moment per stacked layer.
  assert scanned_state[0].nu.per_layer()["blocks"]["linear"]["kernel"].shape == (LAYERS,)


def test_scanned_without_layer_axes_differs(data, unrolled_blocks):
  expected_blocks, _ = unrolled_blocks
  scanned, _ = train(ScannedModel(nnx.Rngs(0)), novograd(**OPTIONS), *data)
  kernels_scanned = np.stack([k for k, _ in blocks_of(scanned, False)])
  kernels_unrolled = np.stack([k for k, _ in expected_blocks])
  assert not np.allclose(kernels_scanned, kernels_unrolled, rtol=1e-3, atol=1e-4)
