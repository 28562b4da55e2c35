"""The per-layer squared norms of a dtype group, by every strategy
(``_src/layer_norms.py``): one multi-operand reduction per group of leaves of one shape
(GPU), with stacked leaves reduced alone (CPU, TPU), in groups of any size.

Each is checked against the NumPy transcription of the norms
(``tests/reference/numpy_novograd.py``) on leaves of many shapes, stacked layers, a
complex leaf, zero-size leaves and both norms, under explicit sharding too; a whole
step forced onto each accelerator strategy against the transcription of the paper; and
the choice itself, from the lowered step for each platform (``jax.export``, no device
needed). What the strategies compile to is checked in
``tests/test_compiled_for_accelerators.py``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from novograd_optax import novograd, scale_by_layerwise_norm
from novograd_optax._src import layer_norms
from novograd_optax._src import layers as layers_lib
from tests.reference.numpy_novograd import layer_squared_norm, numpy_novograd, random_problem

# (shape, layer axes): whole leaves, stacked layers (leading, middle and last axis), a
# conv-like kernel, repeated shapes (one bucket), and zero-size leaves and layers.
LEAVES = [((3, 4), None), ((4,), None), ((2, 3, 5), 0), ((), None), ((7,), None),
          ((3, 4), None), ((3, 3, 4, 6), None), ((4, 2), 1), ((2, 5, 3), 1),
          ((0, 3), None), ((2, 0, 3), 0), ((5, 1), None), ((3, 2, 4), (0, 1))]
# Large groups are split: a small maximum here exercises the split.
GROUPED_IN_TWOS = functools.partial(layer_norms.grouped, max_group=2)
STRATEGIES = [layer_norms.grouped, layer_norms.grouped_stacked_alone, GROUPED_IN_TWOS]
STRATEGY_IDS = ["grouped", "grouped_stacked_alone", "grouped_in_twos"]


def _leaves(dtype=np.float32, seed=0):
  rng = np.random.default_rng(seed)
  grads = [rng.normal(size=shape).astype(dtype) * 10.0 ** rng.integers(-3, 3)
           for shape, _ in LEAVES]
  if np.issubdtype(dtype, np.complexfloating):
    grads = [g + 1j * rng.normal(size=g.shape).astype(dtype) for g in grads]
  lays = layers_lib.resolve_layer_axes([axes for _, axes in LEAVES], grads)
  return grads, lays


def _numpy_norms(grads, norm):
  out = []
  for g, (_, axes) in zip(grads, LEAVES, strict=True):
    layer = () if axes is None else ((axes,) if isinstance(axes, int) else axes)
    reduce = tuple(a for a in range(g.ndim) if a not in layer)
    out.append(np.ravel(layer_squared_norm(g, reduce, norm)))
  return np.concatenate(out)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=STRATEGY_IDS)
@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_every_strategy_gives_the_transcribed_norms(strategy, norm, dtype):
  grads, lays = _leaves(dtype)
  got = jax.jit(lambda gs: strategy(gs, lays, norm, jnp.float32))(
      [jnp.asarray(g) for g in grads])
  want = _numpy_norms(grads, norm)
  assert got.shape == want.shape and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-6, atol=0)


@pytest.mark.parametrize("strategy", STRATEGIES, ids=STRATEGY_IDS)
@pytest.mark.parametrize("options", [dict(), dict(amsgrad=True, norm="linf", b2=0.5)],
                         ids=["defaults", "amsgrad-linf"])
def test_a_step_on_every_strategy_follows_the_paper(monkeypatch, strategy, options):
  """The whole step with the norms of each strategy (forced here, on a CPU) against
  the NumPy transcription of the paper: same results up to float round-off."""
  monkeypatch.setattr(layer_norms, "group_squared_norms",
                      lambda grads, lays, norm, dtype: strategy(grads, lays, norm, dtype))
  shapes = [shape for shape, _ in LEAVES]
  axes = [a for _, a in LEAVES]
  params, grads = random_problem(shapes, 4, np.float32, seed=5)
  opt = novograd(0.1, layer_axes=axes, **options)
  p = [jnp.asarray(x) for x in params]
  state = opt.init(p)
  for g in grads:
    updates, state = jax.jit(opt.update)([jnp.asarray(x) for x in g], state, p)
    p = jax.tree.map(lambda a, u: a + u, p, updates)
  f64 = lambda xs: [np.asarray(x, np.float64) for x in xs]
  ref = numpy_novograd(f64(params), [f64(g) for g in grads], learning_rate=0.1,
                       layer_axes=axes, **options)
  for got, want in zip(p, ref.params[-1], strict=True):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=1e-6)


def _reduces_when_lowered_for(platform: str, layer_axes=None) -> int:
  """The reductions of a step on two matrices of one shape and a vector."""
  tx = scale_by_layerwise_norm(layer_axes=layer_axes)
  params = {"a": jnp.ones((4, 64, 32)), "b": jnp.ones((4, 64, 32)), "c": jnp.ones(8)}
  state = tx.init(params)
  exported = export.export(jax.jit(lambda g, s: tx.update(g, s)), platforms=[platform])(
      params, state)
  return exported.mlir_module().count("stablehlo.reduce")


def test_the_strategy_is_chosen_for_the_platform_the_step_is_lowered_for():
  """The two matrices in one reduction lowered for any platform, and still when they
  are stacked layers lowered for a GPU, but each on its own for a CPU or a TPU (chosen
  at lowering, not from the tracing machine's backend)."""
  stacked = {"a": 0, "b": 0, "c": None}
  for platform in ("cpu", "tpu", "cuda", "rocm"):
    assert _reduces_when_lowered_for(platform) == 2
  for gpu in ("cuda", "rocm"):
    assert _reduces_when_lowered_for(gpu, stacked) == 2
  assert _reduces_when_lowered_for("cpu", stacked) == 3
  assert _reduces_when_lowered_for("tpu", stacked) == 3


def test_a_multi_operand_reduction_reads_every_leaf_in_place():
  """Grouping never concatenates the gradients: the lowered GPU step has no
  concatenation of anything gradient-sized, only of per-layer values."""
  tx = scale_by_layerwise_norm()
  params = {f"w{i}": jnp.ones((64, 32)) for i in range(5)}
  exported = export.export(jax.jit(lambda g, s: tx.update(g, s)), platforms=["cuda"])(
      params, tx.init(params))
  text = exported.mlir_module()
  concatenated = [line for line in text.splitlines() if "stablehlo.concatenate" in line]
  assert concatenated and all("64x32" not in line for line in concatenated), concatenated


# (shape, layer axes, partition spec over a 4-device "data" axis): sharded along a
# reduced last axis, a reduced leading axis, the layer axis of a stacked leaf, a middle
# axis of a conv-like kernel, and a replicated vector.
SHARDED_LEAVES = [((8, 12), None, (None, "data")), ((8, 12), None, ("data", None)),
                  ((4, 3, 8), 0, ("data",)), ((8,), None, ("data",)),
                  ((3, 8, 4), None, (None, "data", None)), ((6,), None, ())]


@pytest.mark.requires_devices(4)
@pytest.mark.parametrize("strategy", STRATEGIES, ids=STRATEGY_IDS)
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_every_strategy_works_under_explicit_sharding(strategy, norm):
  """Under explicit sharding (``AxisType.Explicit``) leaves sharded differently, and a
  stacked leaf sharded along its layers, give the transcribed norms, replicated."""
  P = jax.sharding.PartitionSpec
  mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,),
                       devices=jax.devices()[:4])
  rng = np.random.default_rng(3)
  host = [rng.normal(size=shape).astype(np.float32) for shape, _, _ in SHARDED_LEAVES]
  want = []
  for g, (_, axes, _) in zip(host, SHARDED_LEAVES, strict=True):
    reduce = tuple(a for a in range(g.ndim) if a != axes)
    want.append(np.ravel(layer_squared_norm(g.astype(np.float64), reduce, norm)))
  with jax.set_mesh(mesh):
    grads = [jax.device_put(g, jax.sharding.NamedSharding(mesh, P(*spec)))
             for g, (_, _, spec) in zip(host, SHARDED_LEAVES, strict=True)]
    lays = layers_lib.resolve_layer_axes([axes for _, axes, _ in SHARDED_LEAVES], grads)
    got = jax.jit(lambda gs: strategy(gs, lays, norm, jnp.float32))(grads)
    assert all(s is None for s in jax.typeof(got).sharding.spec)
  np.testing.assert_allclose(np.asarray(got, np.float64), np.concatenate(want), rtol=2e-6)


@pytest.mark.requires_devices(4)
@pytest.mark.parametrize("strategy", STRATEGIES, ids=STRATEGY_IDS)
def test_a_step_under_explicit_sharding_equals_one_device(monkeypatch, strategy):
  """Three steps on weights sharded under an explicit mesh (one along a reduced axis, a
  stacked one along its layers) equal the same steps on one device, with each
  strategy; the updated weights keep their shardings."""
  monkeypatch.setattr(layer_norms, "group_squared_norms",
                      lambda grads, lays, norm, dtype: strategy(grads, lays, norm, dtype))
  P = jax.sharding.PartitionSpec
  mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,),
                       devices=jax.devices()[:4])
  specs = {"kernel": ((8, 12), P(None, "data")), "stacked": ((4, 3, 8), P("data")),
           "bias": ((8,), P("data"))}
  rng = np.random.default_rng(4)
  params = {k: rng.normal(size=shape).astype(np.float32) for k, (shape, _) in specs.items()}
  grads = [{k: rng.normal(size=shape).astype(np.float32) for k, (shape, _) in specs.items()}
           for _ in range(3)]
  opt = novograd(0.1, weight_decay=0.01,
                 layer_axes={"kernel": None, "stacked": 0, "bias": None})

  def train(put):
    p = put(params)
    state = opt.init(p)
    step = jax.jit(opt.update)
    for g in grads:
      updates, state = step(put(g), state, p)
      p = jax.tree.map(lambda a, u: a + u, p, updates)
    return p

  one_device = train(lambda tree: tree)
  with jax.set_mesh(mesh):
    sharded = train(lambda tree: {k: jax.device_put(v, jax.sharding.NamedSharding(
        mesh, specs[k][1])) for k, v in tree.items()})
    for k, (shape, spec) in specs.items():
      padded = tuple(spec) + (None,) * (len(shape) - len(spec))
      assert tuple(jax.typeof(sharded[k]).sharding.spec) == padded
  for k in specs:
    np.testing.assert_allclose(np.asarray(sharded[k]), np.asarray(one_device[k]),
                               rtol=1e-6, atol=1e-6)
