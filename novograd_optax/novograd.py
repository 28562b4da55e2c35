r"""NovoGrad (Ginsburg et al., 2019, Algorithm 1) as a chain of optax pieces.

.. code-block:: text

    v_t = b2 * v_{t-1} + (1 - b2) * ||g_t||^2                  # per layer
    m_t = b1 * m_{t-1} + (g_t / (sqrt(v_t + eps_root) + eps) + wd * w_t)
    w_{t+1} = w_t - lr_t * m_t

with ``m_t = b1 m_{t-1} + (1 - b1)(...)`` under ``grad_averaging``. Only the
first line is new math (:func:`scale_by_layerwise_norm`); decoupled weight decay
inside the moment, momentum and the learning rate are optax's own transforms.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import optax

from novograd_optax import validation
from novograd_optax.layer_axes import LayerAxes
from novograd_optax.layerwise_norm import scale_by_layerwise_norm
from novograd_optax.update_clipping import clip_by_layerwise_trust_ratio


def add_decayed_weights_requiring_params(
    weight_decay: optax.ScalarOrSchedule,
    mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
) -> optax.GradientTransformation:
  """``optax.add_decayed_weights`` with an error that names ``weight_decay``.

  optax's message for a missing ``params`` does not say which option needs
  them; users of ``novograd(weight_decay=...)`` get told what to pass.
  """
  inner = optax.add_decayed_weights(weight_decay, mask)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
          "novograd: weight_decay needs the current parameters; call"
          " `optimizer.update(grads, opt_state, params)`.")
    return inner.update(updates, state, params)

  return optax.GradientTransformation(inner.init, update_fn)


def keep_dtypes(
    inner: optax.GradientTransformation, mu_dtype: Any = None
) -> optax.GradientTransformation:
  """Updates keep the gradients' dtype; a real ``mu_dtype`` refuses complex params.

  ``optax.trace`` adds the gradient to a momentum of ``accumulator_dtype``; with
  ``mu_dtype=bfloat16`` and float16 gradients jax promotes the sum to float32, and the
  updates would no longer have the params' dtype. A real ``mu_dtype`` for a complex
  leaf would silently drop the imaginary part of its momentum.
  """

  def init_fn(params):
    if mu_dtype is not None and not jnp.issubdtype(mu_dtype, jnp.complexfloating):
      for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if jnp.iscomplexobj(leaf):
          raise ValueError(
              f"mu_dtype={jnp.dtype(mu_dtype).name} is real, but the params leaf"
              f" {jax.tree_util.keystr(path)} is {leaf.dtype}: its momentum would"
              " lose the imaginary part; use mu_dtype=None or a complex dtype.")
    return inner.init(params)

  def update_fn(updates, state, params=None):
    new_updates, state = inner.update(updates, state, params)
    return jax.tree.map(lambda u, g: u.astype(g.dtype), new_updates, updates), state

  return optax.GradientTransformation(init_fn, update_fn)


def novograd(
    learning_rate: optax.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.25,
    eps: jax.typing.ArrayLike = 1e-6,
    eps_root: jax.typing.ArrayLike = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    weight_decay_mask: Optional[Union[Any, Callable[[optax.Params], Any]]] = None,
    grad_averaging: bool = False,
    amsgrad: bool = False,
    norm: str = "l2",
    init: str = "first",
    mu_dtype: Optional[Any] = None,
    layer_axes: LayerAxes = None,
    axis_name: Any = None,
    update_clip_trust: Optional[float] = None,
) -> optax.GradientTransformation:
  r"""The NovoGrad optimizer: SGD with momentum on layer-wise normalized gradients.

  .. math::
     v_t = \beta_2 v_{t-1} + (1-\beta_2)\|g_t\|^2,\quad
     m_t = \beta_1 m_{t-1} + c\Big(\frac{g_t}{\sqrt{v_t+\epsilon_{root}}+\epsilon}
     + d\,w_t\Big),\quad w_{t+1} = w_t - \lambda_t m_t

  with :math:`c = 1` (Algorithm 1) or :math:`c = 1-\beta_1`
  (``grad_averaging``). Ginsburg et al., *Stochastic Gradient Methods with
  Layer-wise Adaptive Moments for Training of Deep Networks*, 2019, §3.

  The defaults equal ``optax.novograd``'s, and with the same arguments the
  results are identical. Memory: the first moment plus 4 bytes per layer, half
  of Adam's.

  Args:
    learning_rate: a float >= 0 or an optax schedule.
    b1: momentum, in [0, 1). The paper uses [0.9, 0.95].
    b2: decay of the layer-wise second moment, in [0, 1); the paper uses
      [0.2, 0.5]; 0 gives layer-wise normalized gradient descent.
    eps: added to the root of the second moment (optax's placement), >= 0.
    eps_root: added inside the root (the paper's placement), >= 0.
    weight_decay: decoupled weight decay :math:`d`, added to the normalized
      gradient *inside* the moment (as in the paper); a float >= 0 or a
      schedule.
    weight_decay_mask: a pytree of bools (or a callable of the params returning
      one), ``True`` where decay applies, as ``optax.add_decayed_weights``.
    grad_averaging: accumulate ``(1 - b1) * (...)``, as in Adam, with an
      exponential moving average from zero (``optax.ema(b1, debias=False)``).
    amsgrad: normalize by the running maximum of the second moment.
    norm: ``"l2"`` (the paper) or ``"linf"``.
    init: ``"first"``: :math:`v_1 = \|g_1\|^2` (the paper); ``"zero"``.
    mu_dtype: dtype of the first moment (e.g. ``jnp.bfloat16``).
    layer_axes: axes of leaves that index stacked (scanned) layers; see
      :func:`scale_by_layerwise_norm`.
    axis_name: mesh axis name(s) over which leaves are split inside
      ``shard_map``/``pmap``.
    update_clip_trust: layer-wise update clipping (LUC) of the speech toolkit's
      NovoGrad, used for Jasper: each layer steps by
      :math:`\min(\eta\|w\|/(\|m\|+10^{-8}),\ \lambda_t)\, m` with
      :math:`\eta` = ``update_clip_trust`` > 0 (the toolkit uses 1e-3), so no
      step exceeds :math:`\eta\|w\|`; layers with :math:`\|w\| = 0` are not
      clipped. ``None`` (default): no clipping. Needs ``params``; see
      :func:`clip_by_layerwise_trust_ratio`.

  Under ``optax.inject_hyperparams`` every numeric hyperparameter can be
  injected; pass ``static_args=("layer_axes", "weight_decay_mask",
  "mu_dtype")`` for those of these options you set, since inject_hyperparams
  would otherwise take an int axis for a number and a callable for a schedule.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import novograd
    >>> opt = novograd(optax.cosine_decay_schedule(0.01, 1000), b1=0.95,
    ...                b2=0.5, weight_decay=1e-3)
    >>> params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
    >>> state = opt.init(params)
    >>> grads = {"w": jnp.ones((3, 2)), "b": jnp.ones(2)}
    >>> updates, state = opt.update(grads, state, params)
    >>> params = optax.apply_updates(params, updates)

  Returns:
    An :class:`optax.GradientTransformation`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("b1", b1)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("grad_averaging", grad_averaging)
  if update_clip_trust is not None:
    validation.check_scalar(
        "update_clip_trust", update_clip_trust, low=0.0, low_inclusive=False)

  if validation.is_static_zero(weight_decay):
    # Without decay params are not needed, unlike optax.novograd.
    weight_decay_step = optax.identity()
  else:
    weight_decay_step = add_decayed_weights_requiring_params(
        weight_decay, weight_decay_mask)
  if grad_averaging:
    momentum = optax.ema(b1, debias=False, accumulator_dtype=mu_dtype)
  else:
    momentum = optax.trace(b1, accumulator_dtype=mu_dtype)
  # LUC clips the moment against the learning rate it is about to be scaled by.
  update_clipping = () if update_clip_trust is None else (
      clip_by_layerwise_trust_ratio(
          update_clip_trust, learning_rate, eps=1e-8, layer_axes=layer_axes,
          axis_name=axis_name),)
  return keep_dtypes(optax.chain(
      scale_by_layerwise_norm(
          b2, eps, eps_root, norm=norm, init=init, amsgrad=amsgrad,
          layer_axes=layer_axes, axis_name=axis_name),
      weight_decay_step,
      momentum,
      *update_clipping,
      optax.scale_by_learning_rate(learning_rate),
  ), mu_dtype)
