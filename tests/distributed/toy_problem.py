"""A tiny two-layer MLP regression shared by the distributed tests.

Plain NumPy initial values and data, so that every mode (and every process of
the multi-process run) starts from exactly the same numbers, and a one-device
reference loop that each mode is compared with. Imported by the tests and, as
a top-level module, by ``multiprocess_worker.py``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import novograd_optax
from novograd_optax import optimizer_state_shardings

# Every dimension is a multiple of 8, so params and batches split evenly over
# the 8 fake devices (and the 4 devices of the two-process run).
IN, HIDDEN, OUT, BATCH, STEPS = 8, 16, 8, 32, 4


def initial_params(seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  params = {
      "dense1": {"kernel": rng.normal(size=(IN, HIDDEN)) / np.sqrt(IN),
                 "bias": np.zeros(HIDDEN)},
      "dense2": {"kernel": rng.normal(size=(HIDDEN, OUT)) / np.sqrt(HIDDEN),
                 "bias": np.full(OUT, 0.1)},
  }
  return jax.tree.map(lambda x: x.astype(np.float32), params)


def batches(seed: int = 1, steps: int = STEPS, batch: int = BATCH) -> tuple[np.ndarray, ...]:
  """``(inputs, targets)`` of shape ``(steps, batch, features)``."""
  rng = np.random.default_rng(seed)
  inputs = rng.normal(size=(steps, batch, IN)).astype(np.float32)
  targets = np.sin(inputs @ rng.normal(size=(IN, OUT))).astype(np.float32)
  return inputs, targets


def loss_fn(params, inputs, targets):
  """Mean squared error: a mean over the batch, so data-parallel gradients are
  the mean of the per-shard gradients."""
  hidden = jnp.tanh(inputs @ params["dense1"]["kernel"] + params["dense1"]["bias"])
  outputs = hidden @ params["dense2"]["kernel"] + params["dense2"]["bias"]
  return jnp.mean(jnp.square(outputs - targets))


def optimizer(**kwargs) -> optax.GradientTransformation:
  """NovoGrad with weight decay, so the update also reads the params."""
  return novograd_optax.novograd(0.05, b1=0.9, b2=0.5, weight_decay=1e-2, **kwargs)


def one_device_run(steps_inputs, steps_targets, tx=None):
  """The reference: a plain jitted loop on the first device. Returns the final
  params and optimizer state as NumPy."""
  tx = tx or optimizer()
  device = jax.devices()[0]
  params = jax.device_put(initial_params(), device)
  state = tx.init(params)

  @jax.jit
  def step(params, state, inputs, targets):
    grads = jax.grad(loss_fn)(params, inputs, targets)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for inputs, targets in zip(steps_inputs, steps_targets, strict=True):
    params, state = step(params, state, jax.device_put(inputs, device),
                         jax.device_put(targets, device))
  return jax.device_get((params, state))


def global_array(value: np.ndarray, sharding) -> jax.Array:
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def sharded_run(mesh, param_specs, steps_inputs, steps_targets, tx):
  """Trains under jit with the given param specs (the batch is always split)."""
  param_shardings = jax.tree.map(lambda spec: NamedSharding(mesh, spec), param_specs,
                                 is_leaf=lambda x: isinstance(x, P))
  replicated = NamedSharding(mesh, P())
  # make_array_from_callback builds global arrays in one process or many: each
  # process fills only the shards of its own devices.
  params = jax.tree.map(global_array, initial_params(), param_shardings)
  state_shardings = optimizer_state_shardings(tx, params)
  state = jax.jit(tx.init, out_shardings=state_shardings)(params)
  batch_sharding = NamedSharding(mesh, P("data", None))

  def loss_of_shards(params, inputs, targets):
    # FSDP gathers each weight for the forward pass; its gradient comes back
    # reduce-scattered to the weight's sharding.
    whole = jax.tree.map(lambda p: jax.sharding.reshard(p, replicated), params)
    return loss_fn(whole, inputs, targets)

  def step(params, state, inputs, targets):
    grads = jax.grad(loss_of_shards)(params, inputs, targets)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  # Pinning the outputs keeps params and state where they are, step after step.
  step = jax.jit(step, out_shardings=(param_shardings, state_shardings))

  for inputs, targets in zip(steps_inputs, steps_targets, strict=True):
    params, state = step(params, state, global_array(inputs, batch_sharding),
                         global_array(targets, batch_sharding))
    # One step in flight at a time: fake CPU devices share a thread pool that
    # queued steps waiting in each other's all-reduces could exhaust.
    jax.block_until_ready(params)
  return params, state


def assert_trees_close(actual, expected, rtol=2e-5, atol=2e-6):
  """Float tolerance: devices sum in another order than one device does."""
  jax.tree.map(
      lambda a, e: np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol,
                                              atol=atol),
      actual, expected)


def trees_close(actual, expected, rtol=2e-5, atol=2e-6) -> bool:
  return all(jax.tree.leaves(jax.tree.map(
      lambda a, e: bool(np.allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol)),
      actual, expected)))
