"""The optimizer state is a plain pytree of arrays: an orbax-checkpoint round trip in the
middle of training resumes bitwise-identically to the uninterrupted run."""

from __future__ import annotations

import chex
import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest

from tests.optimizer_cases import ALL_CASES, make_grads, make_params

NUM_STEPS, SAVE_AT = 6, 3

# Wrappers whose states must survive the round trip as well.
WRAPPERS = {
    "plain": lambda opt: opt,
    "apply_if_finite": lambda opt: optax.apply_if_finite(opt, max_consecutive_errors=2),
    "multi_steps": lambda opt: optax.MultiSteps(opt, every_k_schedule=2),
}


def _step_fn(opt):
  @jax.jit
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _save_and_restore(directory, params, state, fresh_state):
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(directory, {"params": params, "opt_state": state})
  checkpointer.wait_until_finished()
  # A resumed job knows only the structure: it comes from a freshly initialized state.
  target = jax.tree.map(ocp.utils.to_shape_dtype_struct,
                        {"params": params, "opt_state": fresh_state})
  restored = checkpointer.restore(directory, target)
  checkpointer.close()
  return restored["params"], restored["opt_state"]


# Every optimizer plainly; the wrappers with one NovoGrad and one AdamP case (time).
COMBINATIONS = [(case, "plain") for case in ALL_CASES] + [
    (case, wrapper) for case in ALL_CASES if case.name in ("novograd", "adamp")
    for wrapper in WRAPPERS if wrapper != "plain"]


@pytest.mark.parametrize(
    "case,wrapper", COMBINATIONS, ids=[f"{c.name}-{w}" for c, w in COMBINATIONS])
def test_checkpoint_round_trip_resumes_bitwise(case, wrapper, tmp_path):
  opt = WRAPPERS[wrapper](case.build())
  step = _step_fn(opt)
  grads = make_grads(NUM_STEPS)
  init_params = make_params()

  params, state = init_params, opt.init(init_params)
  for t in range(NUM_STEPS):
    params, state = step(params, state, grads[t])
  uninterrupted = params

  params, state = init_params, opt.init(init_params)
  for t in range(SAVE_AT):
    params, state = step(params, state, grads[t])
  # The state is a pytree of arrays and nothing else (no Python numbers, no objects).
  assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(state))
  params, state = _save_and_restore(
      tmp_path / "checkpoint", params, state, opt.init(init_params))
  assert jax.tree.structure(state) == jax.tree.structure(opt.init(init_params))
  for t in range(SAVE_AT, NUM_STEPS):
    params, state = step(params, state, grads[t])

  chex.assert_trees_all_equal(params, uninterrupted)
  assert all(np.all(np.isfinite(np.asarray(x, np.float64)))
             for x in jax.tree.leaves(params))


def test_nnx_optimizer_resumes_bitwise(tmp_path):
  """The NNX recipe of the checkpointing guide: ``nnx.state`` of a scanned model (with
  dropout, so its ``nnx.Rngs`` counters matter) and of its ``nnx.Optimizer`` (NovoGrad
  with ``layer_axes``) through orbax, restored into a model built from another seed."""
  nnx = pytest.importorskip("flax.nnx")
  import jax.numpy as jnp

  import novograd_optax as nvg

  class Model(nnx.Module):
    def __init__(self, seed):
      @nnx.vmap(in_axes=0, out_axes=0)
      def make_blocks(key):
        return nnx.Linear(4, 4, rngs=nnx.Rngs(key))

      self.blocks = make_blocks(jax.random.split(jax.random.key(seed), 3))
      self.dropout = nnx.Dropout(0.2, rngs=nnx.Rngs(dropout=seed))
      self.head = nnx.Linear(4, 2, rngs=nnx.Rngs(seed + 1))

    def __call__(self, x):
      @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
      def run(x, block):
        return jnp.tanh(block(x))

      return self.head(self.dropout(run(x, self.blocks)))

  def build(seed):
    model = Model(seed)
    tx = nvg.novograd(optax.cosine_decay_schedule(0.05, 20), b2=0.5, weight_decay=0.1,
                      layer_axes={"blocks": 0, "head": None},
                      weight_decay_mask=nvg.decay_mask({"blocks": 0, "head": None}))
    return model, nnx.Optimizer(model, tx, wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, x, y):
    optimizer.update(model, nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model))

  rng = np.random.default_rng(0)
  data = [(jnp.asarray(rng.normal(size=(8, 4)), jnp.float32),
           jnp.asarray(rng.normal(size=(8, 2)), jnp.float32)) for _ in range(NUM_STEPS)]
  pure = lambda *objects: [nnx.to_pure_dict(nnx.state(o)) for o in objects]

  model, optimizer = build(0)
  for x, y in data:
    train_step(model, optimizer, x, y)
  uninterrupted = pure(model, optimizer)

  model, optimizer = build(0)
  for x, y in data[:SAVE_AT]:
    train_step(model, optimizer, x, y)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(tmp_path / "step", {"model": nnx.state(model),
                                          "optimizer": nnx.state(optimizer)})
  abstract_model, abstract_optimizer = nnx.eval_shape(lambda: build(1))
  with ocp.StandardCheckpointer() as checkpointer:
    restored = checkpointer.restore(tmp_path / "step", {
        "model": nnx.state(abstract_model), "optimizer": nnx.state(abstract_optimizer)})

  def resume(parts):
    model, optimizer = build(1)
    for name, target in (("model", model), ("optimizer", optimizer)):
      if name in parts:
        nnx.update(target, restored[name])
    for x, y in data[SAVE_AT:]:
      train_step(model, optimizer, x, y)
    return pure(model, optimizer)

  chex.assert_trees_all_equal(resume({"model", "optimizer"}), uninterrupted)
  # The comparison can fail: without the optimizer's state the run differs.
  with pytest.raises(AssertionError):
    chex.assert_trees_all_equal(resume({"model"}), uninterrupted)
