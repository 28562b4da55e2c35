"""``optimizer_state_shardings``: moments get their weight's sharding, per-layer
scalars and counters are replicated, for every state layout of the library."""

import jax
import jax.numpy as jnp
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import novograd_optax
from novograd_optax import optimizer_state_shardings

DEVICES = 8


@pytest.fixture(name="mesh")
def fixture_mesh():
  assert jax.device_count() >= DEVICES, "tests/conftest.py must request 8 CPU devices"
  return jax.make_mesh((DEVICES,), ("fsdp",), devices=jax.devices()[:DEVICES])


def sharded_params(mesh):
  """A plain weight, a bias, and 3 stacked (scanned) layers split on a
  non-layer axis."""
  specs = {"w": P("fsdp", None), "b": P("fsdp"), "stack": P(None, "fsdp", None)}
  params = {"w": jnp.ones((8, 3)), "b": jnp.ones(8), "stack": jnp.ones((3, 8, 4))}
  shardings = {k: NamedSharding(mesh, s) for k, s in specs.items()}
  return jax.device_put(params, shardings), shardings


def spec_of(sharding):
  return sharding.spec


@pytest.mark.requires_devices(DEVICES)
@pytest.mark.parametrize("wrap_in_multisteps", [False, True])
def test_moments_follow_weights_and_per_layer_scalars_are_replicated(mesh, wrap_in_multisteps):
  params, shardings = sharded_params(mesh)
  tx = novograd_optax.novograd(
      0.1, weight_decay=1e-3, amsgrad=True,
      weight_decay_mask={"w": True, "b": False, "stack": True},
      layer_axes={"w": None, "b": None, "stack": 0})
  if wrap_in_multisteps:
    tx = optax.MultiSteps(tx, every_k_schedule=2)
  state_shardings = optimizer_state_shardings(tx, params)
  inner = state_shardings.inner_opt_state if wrap_in_multisteps else state_shardings
  param_specs = {k: s.spec for k, s in shardings.items()}
  # The per-layer moments of all three leaves: one replicated float32 vector each.
  assert [spec_of(s) for s in jax.tree.leaves(inner[0].nu)] == [P()]
  assert [spec_of(s) for s in jax.tree.leaves(inner[0].nu_max)] == [P()]
  assert inner[0].count.spec == P()
  assert jax.tree.map(spec_of, inner[2].trace) == param_specs
  if wrap_in_multisteps:
    assert jax.tree.map(spec_of, state_shardings.acc_grads) == param_specs
    assert state_shardings.mini_step.spec == P()

  # The shardings are usable: a jitted init and one update keep them.
  state = jax.jit(tx.init, out_shardings=state_shardings)(params)
  grads = jax.tree.map(jnp.ones_like, params)
  _, new_state = jax.jit(tx.update, out_shardings=(shardings, state_shardings))(
      grads, state, params)
  got = jax.tree.map(lambda x: x.sharding, new_state)
  assert jax.tree.structure(got) == jax.tree.structure(state_shardings)
  assert jax.tree.leaves(got) == jax.tree.leaves(state_shardings)
  # Each device stores one eighth of every momentum.
  assert new_state_momentum_shard_shape(new_state, wrap_in_multisteps) == (1, 3)


def new_state_momentum_shard_shape(state, wrap_in_multisteps):
  inner = state.inner_opt_state if wrap_in_multisteps else state
  return inner[2].trace["w"].addressable_shards[0].data.shape


@pytest.mark.requires_devices(DEVICES)
def test_explicit_param_shardings_and_abstract_params(mesh):
  """Params as ShapeDtypeStructs (no memory) with shardings passed in."""
  abstract = {"w": jax.ShapeDtypeStruct((8, 3), jnp.float32)}
  shardings = {"w": NamedSharding(mesh, P(None, None))}
  sharded = {"w": NamedSharding(mesh, P("fsdp", None))}
  tx = novograd_optax.novograd(0.1)
  assert optimizer_state_shardings(tx, abstract, sharded)[2].trace["w"].spec == P("fsdp", None)
  assert optimizer_state_shardings(tx, abstract, shardings)[2].trace["w"].spec == P(None, None)


def test_rejects_a_tree_without_shardings():
  with pytest.raises(ValueError, match="param_shardings"):
    optimizer_state_shardings(novograd_optax.novograd(0.1), {}, {})
