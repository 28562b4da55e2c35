"""Every non-numeric argument of every public function under ``optax.inject_hyperparams``.

inject_hyperparams turns every int and float into an array and calls every
callable as a schedule of the step count, passing the result on. For an option
that must be known when the optimizer is built (an axis, a mask, a dtype, a switch)
that is either harmless (strings, bools, ``None``, tuples and pytrees pass through
unchanged) or must be refused: a mask function called with the step count returns
one bool, and ``novograd`` used to apply no weight decay at all, silently.

Each case either runs under ``jax.jit`` and equals the same optimizer built
without inject_hyperparams (an independent build of the same arguments), or
raises a ``TypeError`` that names the argument and ``static_args``; and each
refused case works once ``static_args`` names the argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import novograd_optax
from novograd_optax import (
    adamp,
    clip_by_layerwise_trust_ratio,
    normalize_by_global_norm,
    normalize_by_norm_average,
    novograd,
    project_scale_invariant,
    scale_by_layerwise_norm,
    sgdp,
    sngm,
)

NUM_STEPS = 3


def kernels_only(params):
  """A mask function: decay on matrices and stacks, not on biases."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def stacked_leading_axis(params):
  """A ``layer_axes`` function: the leading axis of the 3-D leaf indexes layers."""
  return jax.tree.map(lambda p: 0 if p.ndim == 3 else None, params)


class Case(NamedTuple):
  name: str
  factory: Callable[..., Any]
  kwargs: dict[str, Any]
  # The argument under test; None where the case needs no static_args.
  must_be_static: str | None = None
  # Hyperparameters arrive as float32 arrays instead of Python floats, which
  # rounds a few operations differently (e.g. the bias correction 1 - b2**t).
  rtol: float = 1e-5


def lr(**kwargs):
  return {"learning_rate": 0.05, **kwargs}


# Arguments that pass through inject_hyperparams unchanged: each must give the
# same trajectory with and without it.
WORKS = [
    Case("novograd-grad_averaging", novograd, lr(grad_averaging=True, weight_decay=0.01)),
    Case("novograd-amsgrad", novograd, lr(amsgrad=True)),
    Case("novograd-norm", novograd, lr(norm="linf")),
    Case("novograd-nu_init", novograd, lr(nu_init="zero")),
    Case("novograd-mu_dtype-name", novograd, lr(mu_dtype="bfloat16")),
    Case("novograd-mu_dtype-numpy_dtype", novograd, lr(mu_dtype=np.dtype("float32"))),
    Case("novograd-weight_decay_mask-pytree", novograd,
         lr(weight_decay=0.1, weight_decay_mask={"b": False, "stack": True, "w": True})),
    Case("novograd-layer_axes-tuple", novograd, lr(layer_axes=(0,))),
    Case("novograd-layer_axes-pytree", novograd,
         lr(layer_axes={"b": None, "stack": 0, "w": None})),
    Case("novograd-trust_coefficient", novograd, lr(trust_coefficient=1e-3)),
    Case("sngm-weight_decay_mask-pytree", sngm,
         lr(weight_decay=0.1, weight_decay_mask={"b": False, "stack": True, "w": True})),
    Case("adamp-nesterov", adamp, lr(nesterov=True, weight_decay=0.1)),
    Case("adamp-nesterov_debias", adamp, lr(nesterov=True, nesterov_debias="nadam")),
    Case("adamp-channel_axis-default", adamp, lr(weight_decay=0.1)),
    Case("adamp-mu_dtype-name", adamp, lr(mu_dtype="bfloat16")),
    Case("adamp-weight_decay_mask-pytree", adamp,
         lr(weight_decay=0.1, weight_decay_mask={"b": False, "stack": True, "w": True})),
    Case("sgdp-nesterov", sgdp, lr(nesterov=True, weight_decay=0.1)),
    Case("sgdp-project_momentum", sgdp, lr(project_momentum=False, weight_decay=0.1)),
    Case("sgdp-channel_axis-default", sgdp, lr(weight_decay=0.1, dampening=0.1)),
    Case("scale_by_layerwise_norm-norm-nu_init-amsgrad", scale_by_layerwise_norm,
         {"norm": "linf", "nu_init": "zero", "amsgrad": True}),
    Case("scale_by_layerwise_norm-layer_axes-pytree", scale_by_layerwise_norm,
         {"layer_axes": {"b": None, "stack": 0, "w": None}}),
    Case("clip_by_layerwise_trust_ratio-mode", clip_by_layerwise_trust_ratio,
         {"trust_coefficient": 0.02, "learning_rate": 0.1, "mode": "scale"}),
    Case("normalize_by_global_norm-eps", normalize_by_global_norm, {"eps": 1e-3}),
    Case("normalize_by_norm_average-norm-nu_init-bias_correction", normalize_by_norm_average,
         {"norm": "linf", "nu_init": "zero", "bias_correction": True}, rtol=1e-4),
    Case("normalize_by_norm_average-inner-layer_axes-pytree", normalize_by_norm_average,
         {"inner": optax.ema(0.9), "layer_axes": {"b": None, "stack": 0, "w": None}}),
    Case("project_scale_invariant-inner", project_scale_invariant,
         {"inner": optax.scale_by_adam(), "weight_decay": 0.1}),
]

# Arguments inject_hyperparams would change (an int made an array, a callable
# called as a schedule): refused without static_args, exact with it.
NEEDS_STATIC = [
    Case("novograd-weight_decay_mask-callable", novograd,
         lr(weight_decay=0.1, weight_decay_mask=kernels_only), "weight_decay_mask"),
    Case("novograd-layer_axes-callable", novograd, lr(layer_axes=stacked_leading_axis),
         "layer_axes"),
    Case("novograd-layer_axes-int", novograd, lr(layer_axes=0), "layer_axes"),
    Case("novograd-mu_dtype-type", novograd, lr(mu_dtype=jnp.bfloat16), "mu_dtype"),
    Case("sngm-weight_decay_mask-callable", sngm,
         lr(weight_decay=0.1, weight_decay_mask=kernels_only), "weight_decay_mask"),
    Case("adamp-weight_decay_mask-callable", adamp,
         lr(weight_decay=0.1, weight_decay_mask=kernels_only), "weight_decay_mask"),
    Case("adamp-channel_axis-int", adamp, lr(channel_axis=0, weight_decay=0.1), "channel_axis"),
    Case("adamp-mu_dtype-type", adamp, lr(mu_dtype=jnp.bfloat16), "mu_dtype"),
    Case("sgdp-weight_decay_mask-callable", sgdp,
         lr(weight_decay=0.1, weight_decay_mask=kernels_only), "weight_decay_mask"),
    Case("sgdp-channel_axis-int", sgdp, lr(channel_axis=0, weight_decay=0.1), "channel_axis"),
    Case("scale_by_layerwise_norm-layer_axes-callable", scale_by_layerwise_norm,
         {"layer_axes": stacked_leading_axis}, "layer_axes"),
    Case("scale_by_layerwise_norm-layer_axes-int", scale_by_layerwise_norm,
         {"layer_axes": 0}, "layer_axes"),
    Case("clip_by_layerwise_trust_ratio-layer_axes-callable", clip_by_layerwise_trust_ratio,
         {"trust_coefficient": 0.02, "learning_rate": 0.1, "layer_axes": stacked_leading_axis},
         "layer_axes"),
    Case("clip_by_layerwise_trust_ratio-layer_axes-int", clip_by_layerwise_trust_ratio,
         {"trust_coefficient": 0.02, "learning_rate": 0.1, "layer_axes": 0}, "layer_axes"),
    Case("normalize_by_norm_average-layer_axes-callable", normalize_by_norm_average,
         {"layer_axes": stacked_leading_axis}, "layer_axes"),
    Case("normalize_by_norm_average-layer_axes-int", normalize_by_norm_average,
         {"layer_axes": 0}, "layer_axes"),
    Case("project_scale_invariant-weight_decay_mask-callable", project_scale_invariant,
         {"inner": optax.scale_by_adam(), "weight_decay": 0.1,
          "weight_decay_mask": kernels_only}, "weight_decay_mask"),
    Case("project_scale_invariant-channel_axis-int", project_scale_invariant,
         {"inner": optax.scale_by_adam(), "channel_axis": 0}, "channel_axis"),
]


def ids(cases):
  return {"argvalues": cases, "ids": [c.name for c in cases]}


def make_params():
  rng = np.random.default_rng(0)
  return {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
          "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32),
          "stack": jnp.asarray(rng.normal(size=(2, 3, 3)), jnp.float32)}


def trajectory(opt):
  """Params after each of NUM_STEPS jitted steps on fixed random gradients."""
  params = make_params()
  state = jax.jit(opt.init)(params)
  update = jax.jit(opt.update)
  out = []
  for t in range(NUM_STEPS):
    rng = np.random.default_rng(100 + t)
    grads = jax.tree.map(lambda p, rng=rng: jnp.asarray(rng.normal(size=p.shape), p.dtype),
                         params)
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    out.append(params)
  return out


def assert_same(injected, plain, rtol):
  for a, b in zip(injected, plain, strict=True):
    chex.assert_trees_all_close(a, b, rtol=rtol, atol=rtol / 10)


def tolerance(case):
  # A bfloat16 momentum rounds differently when b1 arrives as a float32 array.
  return 1e-2 if case.kwargs.get("mu_dtype") is not None else case.rtol


def test_every_public_factory_is_covered():
  covered = {c.factory for c in WORKS + NEEDS_STATIC}
  public = {getattr(novograd_optax, name) for name in novograd_optax.__all__}
  factories = {f for f in public if callable(f) and not isinstance(f, type)
               and f.__name__ not in ("decay_mask", "flatten_for_logging",
                                      "layer_axes_from_flax", "layerwise_statistics",
                                      "optimizer_state_shardings")}
  assert factories <= covered, factories - covered


@pytest.mark.parametrize("case", **ids(WORKS))
def test_passes_through_unchanged(case):
  plain = trajectory(case.factory(**case.kwargs))
  injected = trajectory(optax.inject_hyperparams(case.factory)(**case.kwargs))
  assert_same(injected, plain, tolerance(case))


@pytest.mark.parametrize("case", **ids(NEEDS_STATIC))
def test_refused_without_static_args(case):
  opt = optax.inject_hyperparams(case.factory)(**case.kwargs)
  fix = rf"static_args=\('{case.must_be_static}',\)"
  with pytest.raises(TypeError, match=rf"{case.must_be_static}.*{fix}"):
    trajectory(opt)


@pytest.mark.parametrize("case", **ids(NEEDS_STATIC))
def test_exact_with_static_args(case):
  plain = trajectory(case.factory(**case.kwargs))
  injected = trajectory(optax.inject_hyperparams(
      case.factory, static_args=(case.must_be_static,))(**case.kwargs))
  assert_same(injected, plain, tolerance(case))


def test_callable_mask_decays_the_kernels_as_numpy_says():
  """The reported failure, against NumPy: with zero gradients NovoGrad's moment is
  m_t = b1 m_{t-1} + wd w_t and w_{t+1} = w_t - lr m_t on the masked leaves only."""
  learning_rate, b1, wd, steps = 0.1, 0.9, 0.5, 5
  opt = optax.inject_hyperparams(novograd, static_args=("weight_decay_mask",))(
      learning_rate=learning_rate, b1=b1, weight_decay=wd, weight_decay_mask=kernels_only)
  params = {"w": jnp.ones((2, 2)), "b": jnp.ones(2)}
  state = opt.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  for _ in range(steps):
    updates, state = opt.update(zeros, state, params)
    params = optax.apply_updates(params, updates)
  w, m = 1.0, 0.0
  for _ in range(steps):
    m = b1 * m + wd * w
    w = w - learning_rate * m
  np.testing.assert_allclose(params["w"], np.full((2, 2), w), rtol=1e-6)
  np.testing.assert_allclose(params["b"], np.ones(2), rtol=0)
  assert w < 0.8  # the decay is large enough that "no decay" could not pass


def test_axis_name_passes_through_unchanged():
  """``axis_name`` is a string: injected or not, the same psum over a vmapped axis."""
  params = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), make_params())
  grads = jax.tree.map(lambda x: 0.5 - x, params)
  results = []
  for opt in (novograd(0.1, axis_name="batch"),
              optax.inject_hyperparams(novograd)(learning_rate=0.1, axis_name="batch")):
    state = jax.vmap(opt.init)(params)
    updates, _ = jax.jit(jax.vmap(opt.update, axis_name="batch"))(grads, state, params)
    results.append(updates)
  chex.assert_trees_all_close(results[0], results[1], rtol=1e-6)
  # The norms were summed over both members: not what each alone would get.
  alone = novograd(0.1)
  first = jax.tree.map(lambda x: x[0], (grads, params))
  single, _ = alone.update(first[0], alone.init(first[1]), first[1])
  assert not np.allclose(results[0]["w"][0], single["w"], rtol=1e-3)
