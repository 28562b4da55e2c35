"""Every public optimizer of the package, as cases the reliability tests iterate over.

A case is a name, the constructor and its keyword arguments, so a test can build the
optimizer directly, under ``optax.inject_hyperparams``, or with a schedule in place of
``learning_rate``. The params of :func:`make_params` (a matrix, a vector and a
scalar) fit every case; ``layer_axes`` is given per leaf for that tree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import novograd_optax


class OptimizerCase(NamedTuple):
  name: str
  factory: Callable[..., optax.GradientTransformation]
  kwargs: dict[str, Any]
  # Arguments inject_hyperparams must not treat as numbers or schedules.
  static_args: tuple[str, ...] = ()
  # Tolerance when the same computation runs through another wrapper (jit, cond):
  # a bfloat16 momentum is rounded at different points then.
  rtol: float = 1e-6

  def build(self, **overrides: Any) -> optax.GradientTransformation:
    return self.factory(**{**self.kwargs, **overrides})


def leading_axis_of_matrices(params: Any) -> Any:
  """A ``layer_axes`` callable: each row of a matrix is a layer (as if stacked by a
  scan); vectors and scalars are one layer each. Works for any tree."""
  return jax.tree.map(lambda p: 0 if np.ndim(p) >= 2 else None, params)


NOVOGRAD_CASES = [
    OptimizerCase("novograd", novograd_optax.novograd, {"learning_rate": 0.1}),
    OptimizerCase("novograd_averaging_decay", novograd_optax.novograd, {
        "learning_rate": 0.05, "b1": 0.95, "b2": 0.5, "weight_decay": 1e-2,
        "grad_averaging": True}),
    OptimizerCase("novograd_amsgrad_linf_zero_init", novograd_optax.novograd, {
        "learning_rate": 0.05, "amsgrad": True, "norm": "linf", "nu_init": "zero",
        "eps": 0.0, "eps_root": 1e-8}),
    OptimizerCase("novograd_layer_axes_mu_bf16", novograd_optax.novograd, {
        "learning_rate": 0.1, "b2": 0.0, "mu_dtype": jnp.bfloat16,
        "layer_axes": leading_axis_of_matrices},
        static_args=("layer_axes", "mu_dtype"), rtol=2e-2),
]

FAMILY_CASES = [
    OptimizerCase("sngm", novograd_optax.sngm, {
        "learning_rate": 0.1, "weight_decay": 1e-3}),
    OptimizerCase("adamp", novograd_optax.adamp, {
        "learning_rate": 0.01, "weight_decay": 1e-2}, static_args=("channel_axis",)),
    OptimizerCase("sgdp_nesterov", novograd_optax.sgdp, {
        "learning_rate": 0.1, "weight_decay": 1e-3, "nesterov": True},
        static_args=("channel_axis", "nesterov")),
]

ALL_CASES = NOVOGRAD_CASES + FAMILY_CASES


def case_params(cases: list[OptimizerCase]):
  """``pytest.mark.parametrize`` arguments with readable ids."""
  return {"argvalues": cases, "ids": [c.name for c in cases]}


def make_params(seed: int = 0, dtype: Any = jnp.float32) -> dict[str, jax.Array]:
  """A kernel (w), a bias (b) and a scalar (s): every case accepts this tree."""
  rng = np.random.default_rng(seed)
  return {
      "w": jnp.asarray(rng.normal(size=(4, 3)), dtype),
      "b": jnp.asarray(rng.normal(size=(3,)), dtype),
      "s": jnp.asarray(rng.normal(), dtype),
  }


def make_grads(num_steps: int, seed: int = 1, dtype: Any = jnp.float32) -> list[Any]:
  """``num_steps`` random gradient trees shaped like :func:`make_params`."""
  return [make_params(seed * 1000 + t, dtype) for t in range(num_steps)]


def run(opt: optax.GradientTransformation, params: Any, grads: list[Any], state: Any = None,
        jit: bool = False) -> tuple[Any, Any]:
  """Applies ``opt`` to the given gradients in turn; returns (params, opt_state)."""
  state = opt.init(params) if state is None else state

  def step(params, state, g):
    updates, state = opt.update(g, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  for g in grads:
    params, state = step(params, state, g)
  return params, state


def assert_close(case: OptimizerCase, actual: Any, expected: Any, rtol: float = 1e-6) -> None:
  """Trees equal up to ``rtol`` (or the case's looser tolerance)."""
  tol = max(case.rtol, rtol)
  chex.assert_trees_all_close(actual, expected, rtol=tol, atol=tol / 10)


def scale_by_extra_arg() -> optax.GradientTransformationExtraArgs:
  """A stateless transformation that multiplies the updates by the extra argument
  ``scale`` of ``update``: tests that a wrapper passes extra arguments on."""

  def update_fn(updates, state, params=None, *, scale, **extra_args):
    del params, extra_args
    return jax.tree.map(lambda u: scale * u, updates), state

  return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update_fn)
