"""jax_enable_x64 does not change float32 training: with x64 on, every computation of a
float32 or complex64 model stays in float32 (complex64), bit for bit the same program
as without it. A fall-back to the default float dtype (float64 under x64) would change
results by rounding only, which no tolerance-based comparison with a reference sees."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import novograd_optax
from tests.optimizer_cases import ALL_CASES, OptimizerCase, make_params, run


def _with_complex_leaf(seed: int) -> dict[str, jax.Array]:
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(2, 3)) + 1j * rng.normal(size=(2, 3))
  return {**make_params(seed), "c": jnp.asarray(z, jnp.complex64)}


def _before_sgd(transformation):
  """A case factory: ``transformation(**kwargs)`` chained with momentum SGD."""
  return lambda **kwargs: optax.chain(transformation(**kwargs), optax.sgd(0.1, 0.9))


# The optimizers whose float32 arithmetic is the same program with and without x64.
# Not here: adamp, whose optax.scale_by_adam computes its bias corrections in float64
# under x64 (optax.adamw changes by rounding too), and the trust ratio's clip mode,
# where XLA folds the learning rate's division differently when it arrives as a
# float64 constant (float32 arithmetic either way; see the reliability page).
X64_INVARIANT = [c for c in ALL_CASES if c.name != "adamp"] + [
    # b2 = 0.98: 1 - b2 in float32 and in float64 round to different float32 numbers.
    OptimizerCase("novograd_b2_098", novograd_optax.novograd, {
        "learning_rate": 0.1, "b2": 0.98}),
    OptimizerCase("sgdp", novograd_optax.sgdp, {
        "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 1e-3}),
    # delta = 10 exceeds sqrt(n) for every view of these kernels: the projection fires
    # on every step (random gradients are rarely close enough to orthogonal for it).
    OptimizerCase("sgdp_always_projecting", novograd_optax.sgdp, {
        "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 1e-3, "delta": 10.0}),
    OptimizerCase("norm_average_apex", _before_sgd(novograd_optax.normalize_by_norm_average),
                  {"b2": 0.9, "bias_correction": True}),
    OptimizerCase("norm_average_linf", _before_sgd(novograd_optax.normalize_by_norm_average),
                  {"norm": "linf"}),
    OptimizerCase("lars", _before_sgd(novograd_optax.clip_by_layerwise_trust_ratio),
                  {"trust_coefficient": 0.02, "mode": "scale", "weight_decay": 1e-3}),
]


@pytest.mark.parametrize("case, complex_leaf", [
    pytest.param(case, complex_leaf, id=f"{case.name}-{'complex' if complex_leaf else 'real'}")
    for case in X64_INVARIANT for complex_leaf in (False, True)
    # A real mu_dtype refuses complex params (test_low_precision_and_complex_params_...).
    if not (complex_leaf and case.kwargs.get("mu_dtype") is not None)])
def test_float32_training_is_bit_identical_with_and_without_x64(case, complex_leaf):
  # Turning on jax_enable_x64 (for some other part of a program) must not change a
  # float32/complex64 model's training: no computation may fall back to the default
  # float dtype, which is float64 then. Eight jitted steps (four let a float64 blend of
  # normalize_by_norm_average round like the float32 one), compared bit for bit.
  make = _with_complex_leaf if complex_leaf else make_params
  results = []
  for x64 in (False, True):
    with jax.enable_x64(x64):
      params, _ = run(case.build(), make(0), [make(1000 + t) for t in range(8)], jit=True)
      chex.assert_trees_all_equal_dtypes(params, make(0))
      results.append(jax.tree.map(np.asarray, params))
  chex.assert_trees_all_equal(*results)
