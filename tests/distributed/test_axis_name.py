"""Every transformation that takes ``axis_name``, run on leaves split over 8 devices
(``jax.shard_map`` and ``jax.pmap``), equals the same transformation on one device
holding the whole leaves; NovoGrad with update clipping also equals a NumPy
transcription of the speech toolkit's LUC, so a bug shared by both paths is caught.

With ``axis_name`` each device holds a slice of every layer, and every per-layer
quantity (a squared norm, a weight norm of a trust ratio, the global norm of
SNGM) must be reduced over the mesh axis: a reduction left out makes each device
use the norm of its slice, and the sharded run drifts from the one-device run.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import novograd_optax as ng
from tests.reference.numpy_novograd import numpy_novograd
from tests.test_update_clipping import numpy_novograd_luc

DEVICES = 8
AXIS = "shards"
STEPS = 3

# Skipped, with the reason, where fewer devices exist (tests/conftest.py).
pytestmark = pytest.mark.requires_devices(DEVICES)

# The axis of each leaf that is split over the devices. The stacked leaf (3 layers
# along axis 0, for layer_axes) is split along axis 1, so every layer is split.
SHAPES = {"kernel": (16, 8), "bias": (8,), "stack": (3, 16, 4)}
SPLIT_AXIS = {"kernel": 0, "bias": 0, "stack": 1}
STACKED = {"kernel": None, "bias": None, "stack": 0}


def problem(seed=0):
  rng = np.random.default_rng(seed)
  params = {k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()}
  grads = [{k: (rng.uniform(0.2, 5.0) * rng.normal(size=s)).astype(np.float32)
            for k, s in SHAPES.items()} for _ in range(STEPS)]
  return params, grads


def train(tx, params, grads):
  """STEPS updates; returns the final params and the last updates."""
  state = tx.init(params)
  updates = params
  for g in grads:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params, updates


def one_device(make_tx, params, grads):
  return jax.device_get(jax.jit(functools.partial(train, make_tx(None)))(params, grads))


def _mesh_and_specs():
  mesh = jax.make_mesh((DEVICES,), (AXIS,), devices=jax.devices()[:DEVICES],
                       axis_types=(jax.sharding.AxisType.Auto,))
  return mesh, {k: P(*([None] * a + [AXIS])) for k, a in SPLIT_AXIS.items()}


def with_shard_map(make_tx, params, grads, check_vma=True):
  mesh, specs = _mesh_and_specs()
  run = jax.shard_map(functools.partial(train, make_tx(AXIS)), mesh=mesh,
                      in_specs=(specs, [specs] * STEPS), out_specs=(specs, specs),
                      check_vma=check_vma)
  return jax.device_get(jax.jit(run)(params, grads))


def _split(x, axis):
  """(..., n, ...) -> (DEVICES, ..., n / DEVICES, ...): device d holds block d."""
  shape = x.shape[:axis] + (DEVICES, x.shape[axis] // DEVICES) + x.shape[axis + 1:]
  return np.moveaxis(x.reshape(shape), axis, 0)


def _unsplit(x, axis):
  x = np.moveaxis(np.asarray(x), 0, axis)
  return x.reshape(x.shape[:axis] + (-1,) + x.shape[axis + 2:])


def with_pmap(make_tx, params, grads):
  split = lambda tree: {k: _split(v, SPLIT_AXIS[k]) for k, v in tree.items()}
  run = jax.pmap(functools.partial(train, make_tx(AXIS)), axis_name=AXIS,
                 devices=jax.devices()[:DEVICES])
  out = run(split(params), [split(g) for g in grads])
  return tuple({k: _unsplit(v, SPLIT_AXIS[k]) for k, v in tree.items()} for tree in out)


RUNS = {"shard_map": with_shard_map, "pmap": with_pmap}

# Each factory takes the axis name (None on one device).
CASES = {
    "layerwise_norm_l2": lambda a: optax.chain(
        ng.scale_by_layerwise_norm(b2=0.5, axis_name=a), optax.scale(-0.1)),
    "layerwise_norm_linf_amsgrad_stacked": lambda a: optax.chain(
        ng.scale_by_layerwise_norm(b2=0.5, norm="linf", amsgrad=True, layer_axes=STACKED,
                                   axis_name=a), optax.scale(-0.1)),
    "novograd_l2_decay": lambda a: ng.novograd(0.05, b2=0.5, weight_decay=1e-2, axis_name=a),
    "novograd_linf_stacked": lambda a: ng.novograd(0.05, norm="linf", layer_axes=STACKED,
                                                   axis_name=a),
    "normalize_by_global_norm": lambda a: optax.chain(
        ng.normalize_by_global_norm(axis_name=a), optax.scale(-0.1)),
    "sngm_decay": lambda a: ng.sngm(0.1, weight_decay=1e-2, axis_name=a),
    "larc_clip": lambda a: optax.chain(
        ng.clip_by_layerwise_trust_ratio(0.02, learning_rate=0.5, weight_decay=1e-2,
                                         axis_name=a), optax.sgd(0.5, momentum=0.9)),
    "lars_scale_stacked": lambda a: optax.chain(
        ng.clip_by_layerwise_trust_ratio(0.02, mode="scale", weight_decay=1e-2,
                                         layer_axes=STACKED, axis_name=a),
        optax.sgd(0.5, momentum=0.9)),
    "novograd_luc_l2": lambda a: ng.novograd(0.1, weight_decay=1e-2, trust_coefficient=1e-2,
                                             axis_name=a),
    "novograd_luc_linf_stacked": lambda a: ng.novograd(
        0.1, norm="linf", trust_coefficient=1e-2, layer_axes=STACKED, axis_name=a),
    # apex's fused form: a running average of each layer's norm.
    "norm_average_l2_debiased": lambda a: optax.chain(
        ng.normalize_by_norm_average(0.9, inner=optax.ema(0.9), bias_correction=True,
                                     axis_name=a), optax.scale(-0.1)),
    "norm_average_linf_stacked": lambda a: optax.chain(
        ng.normalize_by_norm_average(0.9, norm="linf", layer_axes=STACKED, axis_name=a),
        optax.scale(-0.1)),
}


def assert_trees_close(actual, expected, rtol=2e-5, atol=2e-6):
  """Float tolerance: devices sum in another order than one device does."""
  for k in expected:
    np.testing.assert_allclose(np.asarray(actual[k]), np.asarray(expected[k]), rtol=rtol,
                               atol=atol, err_msg=k)


@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("case", list(CASES))
def test_sharded_equals_one_device(case, run):
  params, grads = problem()
  expected_params, expected_updates = one_device(CASES[case], params, grads)
  actual_params, actual_updates = RUNS[run](CASES[case], params, grads)
  assert_trees_close(actual_updates, expected_updates)
  assert_trees_close(actual_params, expected_params)


@pytest.mark.parametrize("case", ["layerwise_norm_l2", "normalize_by_global_norm",
                                  "larc_clip", "novograd_luc_l2",
                                  "norm_average_linf_stacked"])
def test_without_axis_name_the_sharded_run_differs(case):
  """The reductions matter for this problem: per-slice norms give other updates (so
  the comparison above would catch a reduction that is left out)."""
  params, grads = problem()
  expected, _ = one_device(CASES[case], params, grads)
  mesh, specs = _mesh_and_specs()
  run = jax.shard_map(functools.partial(train, CASES[case](None)), mesh=mesh,
                      in_specs=(specs, [specs] * STEPS), out_specs=(specs, specs),
                      check_vma=False)
  actual, _ = jax.device_get(jax.jit(run)(params, grads))
  assert not all(np.allclose(actual[k], expected[k], rtol=1e-3, atol=1e-4) for k in expected)


@pytest.mark.parametrize("run", list(RUNS))
@pytest.mark.parametrize("stacked", [False, True])
def test_sharded_novograd_update_clipping_equals_numpy_luc(run, stacked):
  """Sibling of the comparison with one device, against an independent reference:
  NovoGrad with the toolkit's LUC, step = min(trust ||w|| / (||m|| + 1e-8), lr) m per
  layer, transcribed in NumPy (tests/test_update_clipping.py)."""
  lr, b1, b2, eps, wd, trust = 0.1, 0.9, 0.25, 1e-6, 1e-2, 1e-2
  layer_axes = STACKED if stacked else None
  params, grads = problem(seed=1)
  # A large kernel is not clipped (trust ||w|| / ||m|| > lr), the other layers are.
  params["kernel"] *= 10.0
  make_tx = lambda a: ng.novograd(lr, b1=b1, b2=b2, eps=eps, weight_decay=wd,
                                  trust_coefficient=trust, layer_axes=layer_axes, axis_name=a)
  actual, _ = RUNS[run](make_tx, params, grads)
  steps = numpy_novograd_luc(params, grads, lr, b1, b2, eps, wd, trust,
                             stacked={"stack"} if stacked else set())
  final, clipped = steps[-1]
  assert any(clipped.values()) and not all(clipped.values()), "the case must clip some layers"
  for k in params:
    want = (np.stack([final[(k, i)] for i in range(SHAPES[k][0])])
            if stacked and k == "stack" else final[(k, None)])
    np.testing.assert_allclose(np.asarray(actual[k]), want, rtol=2e-5, atol=2e-6, err_msg=k)


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_sharded_novograd_equals_numpy_reference(norm):
  """Sibling against the paper's NovoGrad in NumPy (tests/reference), with stacked
  layers split over the devices."""
  params, grads = problem(seed=2)
  make_tx = lambda a: ng.novograd(0.05, b2=0.5, weight_decay=1e-2, norm=norm,
                                  layer_axes=STACKED, axis_name=a)
  actual, _ = with_shard_map(make_tx, params, grads)
  keys = list(params)
  reference = numpy_novograd([params[k] for k in keys], [[g[k] for k in keys] for g in grads],
                             learning_rate=0.05, b2=0.5, weight_decay=1e-2, norm=norm,
                             layer_axes=[STACKED[k] for k in keys])
  for k, want in zip(keys, reference.params[-1], strict=True):
    np.testing.assert_allclose(np.asarray(actual[k]), want, rtol=2e-5, atol=2e-6, err_msg=k)
