r"""SNGM: stochastic normalized gradient descent with momentum (Zhao, Shi, Xie and Li, 2020).

.. code-block:: text

    u_{t+1} = beta * u_t + g_t / ||g_t||       # ||.|| over the WHOLE gradient tree
    w_{t+1} = w_t - lr_t * u_{t+1}

The only new piece is :func:`normalize_by_global_norm`, the division of the whole
update tree by its global L2 norm; momentum and the learning rate are optax's
``trace`` and ``scale_by_learning_rate``. Weight decay enters as in the paper's
experiments: an L2 term ``wd * w`` added to the gradient *before* the
normalization.

``optax.normalize_by_update_norm`` computes the same quotient, but squares each
leaf in its own dtype: an fp16 tree with ``||g||^2 > 65504`` gets an infinite
norm and a zero update. The version here accumulates the squared norm in at
least float32 (as the layer-wise norms of :mod:`novograd_optax.layerwise_norm`
do), validates ``eps`` and can sum the norm over mesh axes inside ``shard_map``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import optax

from novograd_optax import validation
from novograd_optax.layer_axes import LeafLayers
from novograd_optax.layerwise_norm import layer_squared_norms


def global_squared_norm(updates: optax.Updates, axis_name: Any = None) -> jax.Array:
  """``sum_leaves ||g||^2`` accumulated in float32 or wider (no fp16 overflow).

  With ``axis_name``, every leaf is one shard of a leaf split over those mesh
  axes and the partial sums are ``psum``-ed.
  """
  total = jnp.zeros([], jnp.float32)
  for leaf in jax.tree.leaves(updates):
    whole_leaf = LeafLayers(layer_axes=(), reduce_axes=tuple(range(jnp.ndim(leaf))))
    total = total + layer_squared_norms(leaf, whole_leaf, "l2")
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
  return total


def normalize_by_global_norm(
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    axis_name: Any = None,
) -> optax.GradientTransformation:
  r"""Divides the whole update tree by its global L2 norm.

  .. math::
     u \leftarrow \frac{u}{\|u\|_2 + \epsilon}, \qquad
     \|u\|_2^2 = \sum_{\text{leaves}} \sum_i u_i^2

  The normalization step of SNGM (Zhao, Shi, Xie and Li, *Stochastic Normalized
  Gradient Descent with Momentum for Large-Batch Training*, 2020). Unlike
  ``optax.clip_by_global_norm`` it also scales small updates *up*: the output
  always has norm :math:`\|u\|/(\|u\|+\epsilon) \approx 1` (0 for a zero tree).

  Args:
    eps: added to the norm, >= 0; keeps a zero update finite.
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
    An :class:`optax.GradientTransformation`.
  """
  validation.check_non_negative("eps", eps)
  validation.check_axis_name("axis_name", axis_name)

  def update_fn(updates, state, params=None):
    del params
    norm = jnp.sqrt(global_squared_norm(updates, axis_name))

    def normalize(g):
      compute = jnp.promote_types(g.dtype, norm.dtype)
      return (g.astype(compute) / (norm.astype(compute) + eps)).astype(g.dtype)

    return jax.tree.map(normalize, updates), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def sngm(
    learning_rate: optax.ScalarOrSchedule,
    momentum: jax.typing.ArrayLike = 0.9,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    axis_name: Any = None,
) -> optax.GradientTransformation:
  r"""SNGM: momentum SGD on the globally normalized gradient.

  .. math::
     \tilde g_t = g_t + d\,w_t, \qquad
     u_{t+1} = \beta u_t + \frac{\tilde g_t}{\|\tilde g_t\| + \epsilon}, \qquad
     w_{t+1} = w_t - \lambda_t u_{t+1}

  Zhao, Shi, Xie and Li, *Stochastic Normalized Gradient Descent with Momentum for
  Large-Batch Training*, 2020. The norm is taken over the whole gradient (all
  layers at once), so every step has length :math:`\le \lambda_t/(1-\beta)`;
  the paper shows this tolerates larger batches than momentum SGD for the same
  number of gradient computations.

  ``optax.chain(optax.add_decayed_weights(d), normalize_by_global_norm(eps),
  optax.trace(momentum), optax.scale_by_learning_rate(learning_rate))``.

  Args:
    learning_rate: a float >= 0 or an optax schedule.
    momentum: :math:`\beta`, in [0, 1).
    weight_decay: :math:`d`, an L2 term added to the gradient *before* the
      normalization (as in the paper's experiments); a float >= 0 or a
      schedule. Needs ``params`` in ``update`` when non-zero.
    eps: added to the global norm, >= 0.
    weight_decay_mask: a pytree of bools (or a callable of the params), ``True``
      where decay applies, as in ``optax.add_decayed_weights``.
    axis_name: see :func:`normalize_by_global_norm`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import sngm
    >>> opt = sngm(optax.cosine_decay_schedule(0.1, 1000), momentum=0.9,
    ...            weight_decay=1e-4)
    >>> params = {"w": jnp.ones((3, 2))}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({"w": jnp.ones((3, 2))}, state, params)

  Returns:
    An :class:`optax.GradientTransformation`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("momentum", momentum)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  return validation.with_structure_check(optax.chain(
      optax.identity() if validation.is_static_zero(weight_decay)
      else optax.add_decayed_weights(weight_decay, weight_decay_mask),
      normalize_by_global_norm(eps, axis_name=axis_name),
      optax.trace(momentum),
      optax.scale_by_learning_rate(learning_rate),
  ))
