r"""The normalization of SNGM (Zhao, Shi, Xie and Li, 2020): the whole update tree
divided by its global norm.

The update rule of SNGM is written once in the docs' algorithm page, section "SNGM".

The only new piece of SNGM is :func:`normalize_by_global_norm`, the division of the whole
update tree by its global L2 norm; momentum and the learning rate are optax's
``trace`` and ``scale_by_learning_rate``. Weight decay enters as in the paper's
experiments: an L2 term ``wd * w`` added to the gradient *before* the
normalization.

``optax.normalize_by_update_norm`` computes the same quotient, but squares each
leaf in its own dtype: an fp16 tree with ``||g||^2 > 65504`` gets an infinite
norm and a zero update. The version here accumulates the squared norm in at
least float32 (as the layer-wise norms do), validates ``eps`` and can sum the
norm over mesh axes inside ``shard_map``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import validation
from novograd_optax._src.layers import global_squared_norm


def normalize_by_global_norm(
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Divides the whole update tree by its global L2 norm.

  .. math::
     u \leftarrow \frac{u}{\|u\|_2 + \epsilon}, \qquad
     \|u\|_2^2 = \sum_{\text{leaves}} \sum_i u_i^2

  The normalization step of SNGM (Zhao, Shi, Xie and Li, *Stochastic Normalized
  Gradient Descent with Momentum for Large-Batch Training*, 2020); math:
  :ref:`algorithms-sngm`. Unlike ``optax.clip_by_global_norm`` it also scales
  small updates *up*: the output always has norm
  :math:`\|u\|/(\|u\|+\epsilon) \approx 1` (0 for a zero tree).

  Args:
    eps: added to the norm, >= 0. With ``eps=0`` a zero tree stays zero (it is
      divided by 1, not by its zero norm).
    axis_name: mesh axis name(s) over which every leaf is split inside
      ``shard_map``/``pmap``; the squared norm is ``psum``-ed over them. Not
      needed under ``jax.jit`` with sharded arrays.

  The norm is accumulated in float32 (float64 for float64 leaves); each output
  leaf keeps its dtype. Stateless.

  Example:
    >>> import jax.numpy as jnp
    >>> from novograd_optax import normalize_by_global_norm
    >>> tx = normalize_by_global_norm()
    >>> updates, _ = tx.update({"a": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])},
    ...                        tx.init(None))
    >>> print(updates["a"], updates["b"])
    [0.6 0. ] [0.8]

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_non_negative("eps", eps)
  validation.check_axis_name("axis_name", axis_name)

  def update_fn(updates, state, params=None, **extra_args):
    del params, extra_args
    # Stateless, so init may get None: the leaves are checked here (at trace time).
    validation.check_inexact_leaves("updates", updates)
    norm = jnp.sqrt(global_squared_norm(updates, axis_name))

    def normalize(g):
      compute = jnp.promote_types(g.dtype, norm.dtype)
      denominator = norm.astype(compute) + eps
      # With eps = 0 a zero tree would give 0/0 = NaN; it gets a zero update, as with
      # any eps > 0 (the limit eps -> 0 of g / (0 + eps) = 0). Dividing by 1 there
      # changes nothing else: the denominator is 0 only when every entry of the tree is
      # 0, or so small that its square underflows (then the update is the tiny g).
      return (g.astype(compute) / jnp.where(denominator == 0, 1, denominator)).astype(g.dtype)

    return jax.tree.map(normalize, updates), state

  return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)
