"""Shardings of an optimizer state, derived from the shardings of the params.

Under ``jax.jit`` with a :class:`jax.sharding.Mesh`, the optimizer state must be
placed as carefully as the params: a moment sharded differently from its weight
costs a reshard on every step, and a replicated moment of a fully sharded
(FSDP) model costs the memory that sharding was meant to save.

NovoGrad's state has two kinds of leaves:

* the first moment (``optax.trace``/``optax.ema``), ``MultiSteps``' accumulated
  gradients, ... have the shape of their weight: they get the weight's sharding;
* the per-layer second moment ``nu`` (a :class:`~novograd_optax.LayerMoments`:
  one vector per dtype holding a value per layer) and the step counts are tiny:
  they are replicated, so that every device divides its shard of a layer by the
  norm of the *whole* layer.

The state is computed abstractly (``jax.eval_shape`` of ``init``, no memory
used); its subtrees with the params' tree structure are the per-param ones, and
within them leaf shapes tell a moment from a smaller per-layer statistic (as other
libraries' optimizers keep one per leaf). (``optax.tree_map_params`` is not used:
it calls ``init`` on a placeholder, which fails once ``layer_axes`` or a mask is a
pytree.)
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import optax
from jax.sharding import NamedSharding, PartitionSpec

__all__ = ["optimizer_state_shardings"]


def _replicated_like(sharding: jax.sharding.Sharding) -> jax.sharding.Sharding:
  """The replicated sharding over the same devices as ``sharding``."""
  if isinstance(sharding, NamedSharding):
    return NamedSharding(sharding.mesh, PartitionSpec())
  if sharding.is_fully_replicated:
    return sharding
  raise TypeError(
      "param_shardings: expected jax.sharding.NamedSharding (or fully replicated)"
      f" shardings, got {sharding!r}; build them with NamedSharding(mesh, spec).")


def optimizer_state_shardings(
    optimizer: optax.GradientTransformation,
    params: optax.Params,
    param_shardings: Optional[Any] = None,
) -> Any:
  """Shardings for ``optimizer.init(params)``: moments next to their weights,
  per-layer scalars and counters replicated.

  Args:
    optimizer: any optax ``GradientTransformation`` (or an object with an
      ``init``, such as ``optax.MultiSteps``), e.g. :func:`novograd`.
    params: the params, as arrays or as ``jax.ShapeDtypeStruct``; only their
      shapes and dtypes are read (through ``jax.eval_shape``).
    param_shardings: a pytree like ``params`` of ``jax.sharding.Sharding``
      (``NamedSharding``); by default each param's own ``.sharding``.

  Returns:
    A pytree shaped like the optimizer state, with a ``Sharding`` per array
    leaf: the sharding of the corresponding param for leaves of the param's
    shape, the replicated ``NamedSharding(mesh, PartitionSpec())`` otherwise.
    Use it as ``out_shardings`` of a jitted ``init`` and as in/out shardings
    of the train step.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> from jax.sharding import NamedSharding, PartitionSpec as P
    >>> from novograd_optax import novograd, optimizer_state_shardings
    >>> mesh = jax.make_mesh((1,), ("fsdp",))
    >>> params = {"w": jnp.ones((4, 3))}
    >>> shardings = {"w": NamedSharding(mesh, P("fsdp", None))}
    >>> opt = novograd(0.1)
    >>> state_shardings = optimizer_state_shardings(opt, params, shardings)
    >>> state = jax.jit(opt.init, out_shardings=state_shardings)(params)
  """
  if param_shardings is None:
    param_shardings = jax.tree.map(lambda p: p.sharding, params)
  abstract_params = jax.eval_shape(lambda p: p, params)
  abstract_state = jax.eval_shape(optimizer.init, abstract_params)
  sharding_leaves = jax.tree.leaves(
      param_shardings, is_leaf=lambda x: isinstance(x, jax.sharding.Sharding))
  if not sharding_leaves:
    raise ValueError("param_shardings: the params tree holds no sharding.")
  replicated = _replicated_like(sharding_leaves[0])

  params_structure = jax.tree.structure(abstract_params)

  def is_per_param(node):
    return jax.tree.structure(node) == params_structure

  def place_per_param(state_leaf, param_sharding, param):
    if state_leaf.shape == param.shape:
      return param_sharding
    # A per-layer statistic of this weight: every shard needs all of it.
    return _replicated_like(param_sharding)

  def place(node):
    if is_per_param(node):
      return jax.tree.map(place_per_param, node, param_shardings, abstract_params)
    return replicated  # Counters and other leaves that belong to no param.

  return jax.tree.map(place, abstract_state, is_leaf=is_per_param)


def __dir__() -> list[str]:
  # dir() and interactive completion show this module's API, not what it imports.
  return sorted(__all__)
