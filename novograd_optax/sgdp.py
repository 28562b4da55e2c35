r"""SGDP (Heo et al., ICLR 2021, Algorithm 1) as a chain of optax pieces.

.. code-block:: text

    buf_t = momentum buf_{t-1} + (1 - dampening) g_t        # never projected
    p_t = buf_t            (Nesterov: g_t + momentum buf_t)
    p_t, r = project(p_t, w_t, g_t)                         # r = wd_ratio or 1
    w_{t+1} = w_t - lr_t (p_t + wd r / (1 - momentum) w_t)

The momentum buffer keeps the *unprojected* sum, as in the paper's Algorithm 1.
The PyTorch reference without Nesterov projects the buffer tensor in place, so
there the projection also enters every later step. We follow the paper: the
projection acts on the step only, which lets the wrapper take any inner
optimizer without reaching into its state.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional, Union

import jax
import optax

from novograd_optax import validation
from novograd_optax.scale_invariant_projection import project_scale_invariant


def sgdp(
    learning_rate: optax.ScalarOrSchedule,
    momentum: jax.typing.ArrayLike = 0.9,
    dampening: jax.typing.ArrayLike = 0.0,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    nesterov: bool = False,
    channel_axis: int = -1,
    weight_decay_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
) -> optax.GradientTransformation:
  r"""SGDP: momentum SGD whose steps lose their radial part on scale-invariant
  weights.

  .. math::
     b_t = \mu b_{t-1} + (1-\tau) g_t, \quad p_t = b_t
     \ (\text{Nesterov: } g_t + \mu b_t), \quad
     p_t \leftarrow \Pi_{w_t}(p_t)\ \text{if}\ \max\cos(w_t, g_t) <
     \delta/\sqrt{n}, \quad
     w_{t+1} = w_t - \lambda_t\Big(p_t + \frac{d\,r}{1-\mu} w_t\Big)

  Heo et al., *AdamP: Slowing Down the Slowdown for Momentum Optimizers on
  Scale-invariant Weights*, ICLR 2021. **The momentum buffer is not
  projected** (the paper's Algorithm 1); the PyTorch reference without
  Nesterov writes the projected step into its buffer. Where no leaf is
  projected the result equals ``optax.sgd(learning_rate, momentum,
  nesterov)`` with decoupled decay :math:`d/(1-\mu)` (the reference's scaling,
  which keeps the decay's share of the steady-state step independent of
  :math:`\mu`).

  Args:
    learning_rate: a float >= 0 or an optax schedule.
    momentum: :math:`\mu`, in [0, 1).
    dampening: :math:`\tau`, in [0, 1); must be 0 with ``nesterov`` (as in
      ``torch.optim.SGD``).
    eps: in the projection, >= 0.
    weight_decay: :math:`d`, a float >= 0 or a schedule; multiplied by
      ``wd_ratio`` on projected leaves and divided by ``1 - momentum``.
    delta: cosine threshold of the scale-invariance test, >= 0.
    wd_ratio: decay factor :math:`r` on projected leaves, >= 0.
    nesterov: Nesterov momentum, ``g + momentum * buf``.
    channel_axis: output-channel axis of kernels: ``-1`` for Flax (default),
      ``0`` for PyTorch layouts. Leaves with ``ndim <= 1`` are never projected.
    weight_decay_mask: pytree of bools (or a callable), ``True`` where decay
      applies.

  Under ``optax.inject_hyperparams`` pass ``static_args=("channel_axis",
  "nesterov")`` for those of these options you set (an int would be injected as
  a number).

  ``update`` needs ``params``. Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import sgdp
    >>> opt = sgdp(optax.cosine_decay_schedule(0.1, 1000), momentum=0.9,
    ...            weight_decay=1e-4, nesterov=True)
    >>> params = {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}
    >>> state = opt.init(params)
    >>> grads = {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}
    >>> updates, state = opt.update(grads, state, params)

  Returns:
    An :class:`optax.GradientTransformation`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("momentum", momentum)
  validation.check_decay_rate("dampening", dampening)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("nesterov", nesterov)
  dampening_is_zero = validation.is_static_zero(dampening)
  # Arrays (e.g. under optax.inject_hyperparams) cannot be checked here.
  if nesterov and isinstance(dampening, numbers.Real) and not dampening_is_zero:
    raise ValueError(
        f"sgdp: nesterov=True needs dampening=0 (as torch.optim.SGD); got {dampening!r}.")

  if callable(weight_decay):
    def decay(count):
      return weight_decay(count) / (1.0 - momentum)
  else:
    decay = weight_decay / (1.0 - momentum)
  # trace(momentum) of (1 - dampening) g is the reference's buffer, zero-initialized.
  inner = optax.chain(
      optax.identity() if dampening_is_zero else optax.scale(1.0 - dampening),
      optax.trace(momentum, nesterov=nesterov))
  return optax.chain(
      project_scale_invariant(
          inner, delta=delta, wd_ratio=wd_ratio, weight_decay=decay,
          weight_decay_mask=weight_decay_mask, eps=eps, channel_axis=channel_axis),
      optax.scale_by_learning_rate(learning_rate),
  )
