"""The per-layer squared norms of a dtype group, by either strategy
(``_src/layer_norms.py``): one reduction per leaf (CPU, TPU) or two stages with the
second finished across leaves (GPU).

Both are checked against the NumPy transcription of the norms
(``tests/reference/numpy_novograd.py``) on leaves of many shapes, stacked layers, a
complex leaf, zero-size leaves and both norms; a whole step forced onto the GPU
strategy against the transcription of the paper; and the choice itself, from the
lowered step for each platform (``jax.export``, no device needed). What the GPU strategy
compiles to is checked in ``tests/test_compiled_for_accelerators.py``.
"""

from __future__ import annotations

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
STRATEGIES = [layer_norms.one_pass, layer_norms.two_stages]


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


@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_both_strategies_give_the_transcribed_norms(strategy, norm, dtype):
  grads, lays = _leaves(dtype)
  got = jax.jit(lambda gs: strategy(gs, lays, norm, jnp.float32))(
      [jnp.asarray(g) for g in grads])
  want = _numpy_norms(grads, norm)
  assert got.shape == want.shape and got.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2e-6, atol=0)


@pytest.mark.parametrize("options", [dict(), dict(amsgrad=True, norm="linf", b2=0.5)],
                         ids=["defaults", "amsgrad-linf"])
def test_a_step_on_the_gpu_strategy_follows_the_paper(monkeypatch, options):
  """The whole step with the norms of the GPU strategy (forced here, on a CPU) against
  the NumPy transcription of the paper: same results up to float round-off."""
  monkeypatch.setattr(layer_norms, "group_squared_norms",
                      lambda grads, lays, norm, dtype: layer_norms.two_stages(
                          grads, lays, norm, dtype))
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


def _reduces_when_lowered_for(platform: str) -> int:
  tx = scale_by_layerwise_norm()
  params = {"w": jnp.ones((64, 32))}
  state = tx.init(params)
  exported = export.export(jax.jit(lambda g, s: tx.update(g, s)), platforms=[platform])(
      params, state)
  return exported.mlir_module().count("stablehlo.reduce")


def test_the_strategy_is_chosen_for_the_platform_the_step_is_lowered_for():
  """One reduction for a matrix lowered for a CPU or TPU; a row reduction and a finish
  when lowered for a GPU (chosen at lowering, not from the tracing machine's backend)."""
  assert _reduces_when_lowered_for("cpu") == 1
  assert _reduces_when_lowered_for("tpu") == 1
  assert _reduces_when_lowered_for("cuda") == 2
  assert _reduces_when_lowered_for("rocm") == 2


# (shape, layer axes, partition spec over a 4-device "data" axis): sharded along a
# reduced last axis, a reduced leading axis, the layer axis of a stacked leaf, a middle
# axis of a conv-like kernel, and a replicated vector.
SHARDED_LEAVES = [((8, 12), None, (None, "data")), ((8, 12), None, ("data", None)),
                  ((4, 3, 8), 0, ("data",)), ((8,), None, ("data",)),
                  ((3, 8, 4), None, (None, "data", None)), ((6,), None, ())]


@pytest.mark.requires_devices(4)
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.__name__)
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_both_strategies_work_under_explicit_sharding(strategy, norm):
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
@pytest.mark.parametrize("strategy", STRATEGIES, ids=lambda s: s.__name__)
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
