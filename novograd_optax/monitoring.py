"""Per-layer statistics read out of an optimizer state, for logging.

The layer-wise second moment :math:`v_t` of NovoGrad is a running average of each
layer's squared gradient norm, so ``sqrt(v_t)`` is a smoothed per-layer gradient
norm (the exact last norm with ``b2=0``) that comes for free with every step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from novograd_optax._src.layerwise_norm import ScaleByLayerwiseNormState


class LayerwiseStatistics(NamedTuple):
  """Pytrees keyed like the params: ``second_moment`` is :math:`v_t`,
  ``gradient_norm`` is :math:`\\sqrt{v_t}`. With ``amsgrad`` this is still
  :math:`v_t`, not the running maximum the update is normalized by."""

  second_moment: Any
  gradient_norm: Any


def _is_layerwise_state(x: Any) -> bool:
  return isinstance(x, ScaleByLayerwiseNormState)


def layerwise_statistics(opt_state: Any) -> LayerwiseStatistics:
  """Finds the (first) :func:`scale_by_layerwise_norm` state inside ``opt_state``
  — also inside ``optax.chain``, ``inject_hyperparams``, ``MultiSteps`` or
  ``masked`` states — and returns its per-layer moments.

  Raises:
    ValueError: if ``opt_state`` holds no layer-wise norm state.
  """
  found = [s for s in jax.tree.leaves(opt_state, is_leaf=_is_layerwise_state)
           if _is_layerwise_state(s)]
  if not found:
    raise ValueError(
        "opt_state: no scale_by_layerwise_norm state found; pass the state of a"
        " novograd() (or a chain containing scale_by_layerwise_norm).")
  nu = found[0].nu
  return LayerwiseStatistics(second_moment=nu, gradient_norm=jax.tree.map(jnp.sqrt, nu))


def flatten_for_logging(tree: Any, prefix: str = "") -> dict[str, Any]:
  """``{"<prefix>['dense']['kernel']": value}`` for a metrics logger; stacked
  layers (non-scalar moments) are split into one entry per layer index."""
  flat = {}
  for path, value in jax.tree_util.tree_leaves_with_path(tree):
    name = prefix + jax.tree_util.keystr(path)
    value = jnp.asarray(value)
    if value.ndim == 0:
      flat[name] = value
    else:
      for index in np.ndindex(value.shape):
        flat[f"{name}{list(index)}"] = value[index]
  return flat
