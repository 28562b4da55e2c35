"""Per-layer statistics read out of an optimizer state, for logging.

The layer-wise second moment :math:`v_t` of NovoGrad is a running average of each
layer's squared gradient norm, so ``sqrt(v_t)`` is a smoothed per-layer gradient
norm (the exact last norm with ``b2=0``) that comes for free with every step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from novograd_optax._src import flax_metadata
from novograd_optax._src.layer_moments import LayerMoments
from novograd_optax._src.layerwise_norm import ScaleByLayerwiseNormState

__all__ = ["LayerwiseStatistics", "flatten_for_logging", "layerwise_statistics"]


class LayerwiseStatistics(NamedTuple):
  """Pytrees keyed like the params: ``second_moment`` is :math:`v_t`,
  ``gradient_norm`` is :math:`\\sqrt{v_t}`. With ``amsgrad`` this is still
  :math:`v_t`, not the running maximum the update is normalized by."""

  second_moment: Any
  gradient_norm: Any


# ``nnx.state(optimizer)`` turns every NamedTuple of the optax state into a mapping
# of its field names (and drops ``None`` fields): a mapping with exactly these
# keys is a flattened ScaleByLayerwiseNormState.
_FLATTENED_FIELD_SETS = (
    frozenset({"count", "nu"}), frozenset(ScaleByLayerwiseNormState._fields))


def _layerwise_states(tree: Any) -> list[ScaleByLayerwiseNormState]:
  """Every layer-wise norm state in ``tree``, depth first in pytree order."""
  found: list[ScaleByLayerwiseNormState] = []

  def visit(node):
    if isinstance(node, ScaleByLayerwiseNormState):
      found.append(node)
      return
    if isinstance(node, Mapping) and frozenset(node.keys()) in _FLATTENED_FIELD_SETS:
      found.append(ScaleByLayerwiseNormState(
          count=node["count"], nu=node["nu"], nu_max=node.get("nu_max")))
      return
    children = jax.tree_util.tree_leaves(
        node, is_leaf=lambda x: x is not node and x is not None)
    if len(children) == 1 and children[0] is node:
      return  # an array: a leaf
    for child in children:
      visit(child)

  visit(tree)
  return found


def layerwise_statistics(opt_state: Any) -> LayerwiseStatistics:
  """Finds the (first) :func:`scale_by_layerwise_norm` state inside ``opt_state``
  and returns its per-layer moments, keyed like the params.

  ``opt_state`` may be an optax state (also inside ``optax.chain``,
  ``inject_hyperparams``, ``MultiSteps`` or ``masked`` states), a Flax
  ``nnx.Optimizer`` or its ``opt_state``; NNX variables are unwrapped to their
  arrays. (``nnx.state(optimizer)`` is refused: it stores the moments as
  vectors without the layout that says which value is which layer's.)

  Example:
    >>> import jax.numpy as jnp
    >>> from novograd_optax import novograd, layerwise_statistics
    >>> opt = novograd(0.1, b2=0.0)
    >>> params = {"w": jnp.zeros(2)}
    >>> _, state = opt.update({"w": jnp.array([3.0, 4.0])}, opt.init(params), params)
    >>> print(layerwise_statistics(state).gradient_norm["w"])
    5.0

  Raises:
    ValueError: if ``opt_state`` holds no layer-wise norm state, or only a
      flattened one (``nnx.state(optimizer)``).
  """
  if not isinstance(opt_state, (tuple, list, Mapping)) and hasattr(opt_state, "opt_state"):
    opt_state = opt_state.opt_state  # an nnx.Optimizer
  found = _layerwise_states(opt_state)
  if not found:
    raise ValueError(
        "opt_state: no scale_by_layerwise_norm state found; pass the state of a"
        " novograd() (or a chain containing scale_by_layerwise_norm), an"
        " nnx.Optimizer or nnx.state(optimizer).")
  nu = flax_metadata.unwrap_variables(found[0].nu)
  if not isinstance(nu, LayerMoments):
    # nnx.state(optimizer) keeps the moments' vectors but not which layer is where.
    raise ValueError(
        "opt_state: the layer-wise moments here have lost their layout (nnx.state"
        " flattens it away); pass the nnx.Optimizer itself or optimizer.opt_state.")
  nu = nu.per_layer()
  return LayerwiseStatistics(second_moment=nu, gradient_norm=jax.tree.map(jnp.sqrt, nu))


def flatten_for_logging(tree: Any, prefix: str = "") -> dict[str, Any]:
  """``{"<prefix>['dense']['kernel']": value}`` for a metrics logger; stacked
  layers (non-scalar moments) are split into one entry per layer index. Flax
  NNX variables are unwrapped, so no key ends in ``.value``."""
  flat = {}
  for path, value in jax.tree_util.tree_leaves_with_path(flax_metadata.unwrap_variables(tree)):
    name = prefix + jax.tree_util.keystr(path)
    value = jnp.asarray(value)
    if value.ndim == 0:
      flat[name] = value
    else:
      for index in np.ndindex(value.shape):
        flat[f"{name}{list(index)}"] = value[index]
  return flat


def __dir__() -> list[str]:
  # dir() and interactive completion show this module's API, not what it imports.
  return sorted(__all__)
