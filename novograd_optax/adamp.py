r"""AdamP (Heo et al., ICLR 2021, Algorithm 2) as a chain of optax pieces.

.. code-block:: text

    m_t = b1 m_{t-1} + (1 - b1) g_t,   v_t = b2 v_{t-1} + (1 - b2) g_t^2
    p_t = mhat_t / (sqrt(vhat_t) + eps)                     # optax.scale_by_adam
    p_t, r = project(p_t, w_t, g_t)                         # r = wd_ratio or 1
    w_{t+1} = w_t - lr_t (p_t + wd r w_t)

``optax.chain(project_scale_invariant(optax.scale_by_adam(...)),
optax.scale_by_learning_rate(lr))``; the projection is described in
:mod:`novograd_optax.scale_invariant_projection`.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import optax

from novograd_optax import validation
from novograd_optax.scale_invariant_projection import project_scale_invariant


def adamp(
    learning_rate: optax.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    nesterov: bool = False,
    channel_axis: int = -1,
    weight_decay_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformation:
  r"""AdamP: Adam whose steps lose their radial part on scale-invariant weights.

  .. math::
     p_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \quad
     p_t \leftarrow \Pi_{w_t}(p_t)\ \text{if}\ \max\cos(w_t, g_t) <
     \delta/\sqrt{n}, \quad
     w_{t+1} = w_t - \lambda_t (p_t + d\,r\,w_t)

  Heo et al., *AdamP: Slowing Down the Slowdown for Momentum Optimizers on
  Scale-invariant Weights*, ICLR 2021. Where no leaf is projected the result is
  exactly ``optax.adamw(learning_rate, b1, b2, eps, weight_decay=weight_decay,
  nesterov=nesterov)`` (the reference's ``lr / bc1`` step size and
  ``sqrt(v) / sqrt(bc2) + eps`` denominator are optax's bias corrections).

  ``nesterov=True`` uses ``optax.scale_by_adam(nesterov=True)`` (NAdam): its
  momentum term is debiased with :math:`1-\beta_1^{t+1}` where the PyTorch
  reference divides :math:`\beta_1 m_t + (1-\beta_1) g_t` by
  :math:`1-\beta_1^t`; the momentum terms differ by the factor
  :math:`(1-\beta_1^t)/(1-\beta_1^{t+1})`, within 2% of 1 from step 20 on for
  :math:`\beta_1 = 0.9`.

  Args:
    learning_rate: a float >= 0 or an optax schedule.
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: in Adam's denominator and in the projection, >= 0.
    weight_decay: decoupled decay :math:`d`, a float >= 0 or a schedule;
      multiplied by ``wd_ratio`` on projected leaves.
    delta: cosine threshold of the scale-invariance test, >= 0.
    wd_ratio: decay factor :math:`r` on projected leaves, >= 0.
    nesterov: Nesterov momentum (see above).
    channel_axis: output-channel axis of kernels: ``-1`` for Flax (default),
      ``0`` for PyTorch layouts. Leaves with ``ndim <= 1`` are never projected.
    weight_decay_mask: pytree of bools (or a callable), ``True`` where decay
      applies; the reference decays every parameter.
    mu_dtype: dtype of the first moment, as in ``optax.adam``.

  Under ``optax.inject_hyperparams`` pass ``static_args=("channel_axis",
  "nesterov")`` for those of these options you set (an int would be injected as
  a number).

  ``update`` needs ``params``. Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import adamp
    >>> opt = adamp(optax.warmup_cosine_decay_schedule(0.0, 1e-3, 100, 1000),
    ...             weight_decay=optax.linear_schedule(1e-2, 0.0, 1000))
    >>> params = {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}
    >>> state = opt.init(params)
    >>> grads = {"kernel": jnp.ones((4, 3)), "bias": jnp.ones(3)}
    >>> updates, state = opt.update(grads, state, params)

  Returns:
    An :class:`optax.GradientTransformation`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("b1", b1)
  validation.check_decay_rate("b2", b2)
  validation.check_bool("nesterov", nesterov)
  # eps, weight_decay, delta, wd_ratio, channel_axis: checked by the projection.
  return optax.chain(
      project_scale_invariant(
          optax.scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype, nesterov=nesterov),
          delta=delta, wd_ratio=wd_ratio, weight_decay=weight_decay,
          weight_decay_mask=weight_decay_mask, eps=eps, channel_axis=channel_axis),
      optax.scale_by_learning_rate(learning_rate),
  )
