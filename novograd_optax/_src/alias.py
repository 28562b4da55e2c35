r"""The aliases: the optimizers users call, each a short chain of optax pieces and
of this package's transformations.

* :func:`novograd` — Ginsburg et al., 2019, Algorithm 1;
* :func:`sngm` — Zhao, Shi, Xie and Li, 2020;
* :func:`adamp`, :func:`sgdp` — Heo et al., ICLR 2021, Algorithms 2 and 1.

The math of every option is written once, on the docs' algorithm page; the
docstrings state the update in one formula and the paper reference.
"""

from __future__ import annotations

import numbers
from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import validation
from novograd_optax._src.global_norm import normalize_by_global_norm
from novograd_optax._src.layers import LayerAxes
from novograd_optax._src.layerwise_norm import MomentInit, Norm, scale_by_layerwise_norm
from novograd_optax._src.projection import projected
from novograd_optax._src.trust_ratio import clip_by_layerwise_trust_ratio
from novograd_optax._src.wrappers import (
    add_decayed_weights_requiring_params,
    keep_dtypes,
    with_structure_check,
)


def novograd(
    learning_rate: optax.ScalarOrSchedule,
    b1: jax.typing.ArrayLike = 0.9,
    b2: jax.typing.ArrayLike = 0.25,
    eps: jax.typing.ArrayLike = 1e-6,
    eps_root: jax.typing.ArrayLike = 0.0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    weight_decay_mask: optax.MaskOrFn = None,
    grad_averaging: bool = False,
    amsgrad: bool = False,
    norm: Norm = "l2",
    nu_init: MomentInit = "first",
    mu_dtype: Optional[Any] = None,
    layer_axes: LayerAxes = None,
    axis_name: Any = None,
    trust_coefficient: Optional[float] = None,
    decay_inside_moment: bool = True,
) -> optax.GradientTransformationExtraArgs:
  r"""The NovoGrad optimizer: SGD with momentum on layer-wise normalized gradients.

  .. math::
     v_t = \beta_2 v_{t-1} + (1-\beta_2)\|g_t\|^2,\quad
     m_t = \beta_1 m_{t-1} + c\Big(\frac{g_t}{\sqrt{v_t+\epsilon_{root}}+\epsilon}
     + d\,w_t\Big),\quad w_{t+1} = w_t - \lambda_t m_t

  with :math:`c = 1` (Algorithm 1) or :math:`c = 1-\beta_1`
  (``grad_averaging``). Ginsburg et al., *Stochastic Gradient Methods with
  Layer-wise Adaptive Moments for Training of Deep Networks*, 2019, §3. The
  math of every option: :ref:`algorithms-novograd`.

  The defaults equal ``optax.novograd``'s, and with the same arguments the
  results are identical for float32 (and wider) params; for float16/bfloat16
  params this computes in float32 where optax rounds each stage to 16 bits.
  Memory: the first moment plus 4 bytes per layer, half of Adam's.

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
    nu_init: ``"first"``: :math:`v_1 = \|g_1\|^2` (the paper); ``"zero"``;
      ``"first_nonzero"`` (the PyTorch peers); see :func:`scale_by_layerwise_norm`.
    mu_dtype: dtype of the first moment (e.g. ``jnp.bfloat16``); ``None``: the
      params' dtype, float32 for float16/bfloat16 params (every step is computed in
      float32 and only the update is rounded to the params' dtype).
    layer_axes: axes of leaves that index stacked (scanned) layers; see
      :func:`scale_by_layerwise_norm`.
    axis_name: mesh axis name(s) over which leaves are split inside
      ``shard_map``/``pmap``.
    trust_coefficient: layer-wise update clipping (LUC) of the speech toolkit's
      NovoGrad, used for Jasper: each layer steps by
      :math:`\min(\eta\|w\|/(\|m\|+10^{-8}),\ \lambda_t)\, m` with
      :math:`\eta` = ``trust_coefficient`` > 0 (the toolkit uses 1e-3), so no
      step exceeds :math:`\eta\|w\|`; layers with :math:`\|w\| = 0` are not
      clipped. ``None`` (default): no clipping. Needs ``params``; see
      :func:`clip_by_layerwise_trust_ratio`.
    decay_inside_moment: ``True`` (default, the paper): the decay is added to
      the normalized gradient and accumulated by the momentum. ``False``:
      decoupled from the momentum, as in AdamW:
      :math:`w_{t+1} = w_t - \lambda_t (m_t + d\,w_t)` with
      :math:`m_t = \beta_1 m_{t-1} + c\,g_t/(\sqrt{v_t+\epsilon_{root}}+\epsilon)`
      (timm's ``NvNovoGrad(decoupled_decay=True)``).

  Under ``optax.inject_hyperparams`` every numeric hyperparameter can be
  injected; pass ``static_args=("layer_axes", "weight_decay_mask",
  "mu_dtype")`` for those of these options you set to an int or a callable,
  since inject_hyperparams would otherwise take an int axis for a number and a
  callable for a schedule (forgetting it raises a ``TypeError`` that says so).
  Strings, bools, ``None``, tuples and pytrees pass through unchanged.

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
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("b1", b1)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("grad_averaging", grad_averaging)
  validation.check_mask("weight_decay_mask", weight_decay_mask)
  validation.check_dtype("mu_dtype", mu_dtype)
  validation.check_not_injected_schedule(
      "novograd", ("weight_decay_mask", "layer_axes", "mu_dtype"))
  validation.check_bool("decay_inside_moment", decay_inside_moment)
  if trust_coefficient is not None:
    validation.check_scalar(
        "trust_coefficient", trust_coefficient, low=0.0, low_inclusive=False)

  if validation.is_static_zero(weight_decay):
    # Without decay params are not needed, unlike optax.novograd.
    weight_decay_step = optax.identity()
  else:
    weight_decay_step = add_decayed_weights_requiring_params(
        weight_decay, weight_decay_mask, who="novograd")
  if grad_averaging:
    momentum = optax.ema(b1, debias=False, accumulator_dtype=mu_dtype)
  else:
    momentum = optax.trace(b1, accumulator_dtype=mu_dtype)
  # LUC clips the moment against the learning rate it is about to be scaled by.
  update_clipping = () if trust_coefficient is None else (
      clip_by_layerwise_trust_ratio(
          trust_coefficient, learning_rate, eps=1e-8, layer_axes=layer_axes,
          axis_name=axis_name),)
  return keep_dtypes(optax.chain(
      scale_by_layerwise_norm(
          b2, eps, eps_root, norm=norm, nu_init=nu_init, amsgrad=amsgrad,
          layer_axes=layer_axes, axis_name=axis_name),
      *((weight_decay_step, momentum) if decay_inside_moment
        else (momentum, weight_decay_step)),
      *update_clipping,
      optax.scale_by_learning_rate(learning_rate),
  ), mu_dtype)


def sngm(
    learning_rate: optax.ScalarOrSchedule,
    momentum: jax.typing.ArrayLike = 0.9,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    *,
    eps: jax.typing.ArrayLike = 1e-8,
    weight_decay_mask: optax.MaskOrFn = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""SNGM: momentum SGD on the globally normalized gradient.

  .. math::
     \tilde g_t = g_t + d\,w_t, \qquad
     u_{t+1} = \beta u_t + \frac{\tilde g_t}{\|\tilde g_t\| + \epsilon}, \qquad
     w_{t+1} = w_t - \lambda_t u_{t+1}

  Zhao, Shi, Xie and Li, *Stochastic Normalized Gradient Descent with Momentum for
  Large-Batch Training*, 2020 (math: :ref:`algorithms-sngm`). The norm is taken
  over the whole gradient (all layers at once), so every step has length
  :math:`\le \lambda_t/(1-\beta)`; the paper shows this tolerates larger batches
  than momentum SGD for the same number of gradient computations.

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
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("momentum", momentum)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_mask("weight_decay_mask", weight_decay_mask)
  validation.check_not_injected_schedule("sngm", ("weight_decay_mask",))
  return keep_dtypes(with_structure_check(optax.chain(
      optax.identity() if validation.is_static_zero(weight_decay)
      else add_decayed_weights_requiring_params(weight_decay, weight_decay_mask, who="sngm"),
      normalize_by_global_norm(eps, axis_name=axis_name),
      optax.trace(momentum),
      optax.scale_by_learning_rate(learning_rate),
  )))


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
    nesterov_debias: Literal["reference", "nadam"] = "reference",
    channel_axis: Optional[int] = None,
    weight_decay_mask: optax.MaskOrFn = None,
    mu_dtype: Optional[Any] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""AdamP: Adam whose steps lose their radial part on scale-invariant weights.

  .. math::
     p_t = \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \quad
     p_t \leftarrow \Pi_{w_t}(p_t)\ \text{if}\ \max\cos(w_t, g_t) <
     \delta/\sqrt{n}, \quad
     w_{t+1} = w_t - \lambda_t (p_t + d\,r\,w_t)

  Heo et al., *AdamP: Slowing Down the Slowdown for Momentum Optimizers on
  Scale-invariant Weights*, ICLR 2021, Algorithm 2 (math: :ref:`algorithms-adamp`),
  and its PyTorch reference (Clova AI, ``adamp/adamp.py``), which this equals to
  float32 round-off. Where
  no leaf is projected and ``nesterov=False`` the result (float32 or wider params)
  is exactly
  ``optax.adamw(learning_rate, b1, b2, eps, weight_decay=weight_decay)`` (the
  reference's ``lr / bc1`` step size and ``sqrt(v) / sqrt(bc2) + eps``
  denominator are optax's bias corrections).

  ``nesterov=True`` takes the reference's Nesterov step
  :math:`p_t = \frac{(\beta_1 m_t + (1-\beta_1) g_t)/(1-\beta_1^t)}
  {\sqrt{v_t/(1-\beta_2^t)} + \epsilon}`: one bias correction for both terms.
  ``nesterov_debias="nadam"`` instead uses ``optax.scale_by_adam(nesterov=True)``
  (NAdam, as ``optax.adamw(nesterov=True)``), which debiases the momentum term
  with :math:`1-\beta_1^{t+1}`; that is not the published AdamP (the two are
  up to 43% apart after 30 steps).

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
    nesterov_debias: ``"reference"`` (default, the AdamP reference) or
      ``"nadam"`` (optax's NAdam debiasing); only read with ``nesterov=True``.
    channel_axis: output-channel axis of kernels: ``None`` (default) or ``-1``,
      the last axis, for Flax; ``0`` for PyTorch layouts. Leaves with
      ``ndim <= 1`` are never projected.
    weight_decay_mask: pytree of bools (or a callable), ``True`` where decay
      applies; the reference decays every parameter.
    mu_dtype: dtype of the first moment, as in ``optax.adam``; ``None``: the
      params' dtype, float32 for float16/bfloat16 params (both of Adam's moments
      are then float32, and the step is computed in float32).

  Under ``optax.inject_hyperparams`` pass ``static_args=("channel_axis",
  "weight_decay_mask", "mu_dtype")`` for those of these options you set to an
  int or a callable (an int would be injected as a number, a callable called as
  a schedule; forgetting it raises a ``TypeError`` that says so).

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
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("b1", b1)
  validation.check_decay_rate("b2", b2)
  validation.check_bool("nesterov", nesterov)
  validation.check_choice("nesterov_debias", nesterov_debias, ("reference", "nadam"))
  validation.check_dtype("mu_dtype", mu_dtype)
  validation.check_not_injected_schedule("adamp", ("weight_decay_mask", "mu_dtype"))
  # eps, weight_decay, delta, wd_ratio, channel_axis: checked by the projection.
  if nesterov and nesterov_debias == "reference":
    adam = _scale_by_adam_reference_nesterov(b1, b2, eps, mu_dtype)
  else:
    adam = optax.scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype, nesterov=nesterov)
  return keep_dtypes(optax.chain(
      projected(
          adam, delta=delta, wd_ratio=wd_ratio, weight_decay=weight_decay,
          weight_decay_mask=weight_decay_mask, eps=eps, channel_axis=channel_axis),
      optax.scale_by_learning_rate(learning_rate),
  ), mu_dtype)


def _scale_by_adam_reference_nesterov(b1, b2, eps, mu_dtype) -> optax.GradientTransformation:
  r"""``optax.scale_by_adam`` (same state) with the Nesterov step of the AdamP
  reference: :math:`\frac{(\beta_1 m_t + (1-\beta_1) g_t)/(1-\beta_1^t)}
  {\sqrt{v_t/(1-\beta_2^t)} + \epsilon}`.

  optax's ``nesterov=True`` is NAdam's form, which debiases :math:`m_t` with
  :math:`1-\beta_1^{t+1}`; AdamP's reference applies its one step size
  ``lr / (1 - b1**t)`` to both terms, and that is what this computes.
  """
  # Only optax's state layout is borrowed (its init reads nothing but mu_dtype).
  init_fn = optax.scale_by_adam(mu_dtype=mu_dtype).init
  mu_dtype = None if mu_dtype is None else jax.dtypes.canonicalize_dtype(mu_dtype)

  def update_fn(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = optax.safe_increment(state.count)
    lookahead = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, mu, updates)
    mu_hat = optax.tree.bias_correction(lookahead, b1, count)
    nu_hat = optax.tree.bias_correction(nu, b2, count)
    steps = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu_hat, nu_hat)
    return steps, optax.ScaleByAdamState(
        count=count, mu=optax.tree.cast(mu, mu_dtype), nu=optax.tree.cast_like(nu, state.nu))

  return optax.GradientTransformation(init_fn, update_fn)


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
    project_momentum: bool = True,
    channel_axis: Optional[int] = None,
    weight_decay_mask: optax.MaskOrFn = None,
) -> optax.GradientTransformationExtraArgs:
  r"""SGDP: momentum SGD whose steps lose their radial part on scale-invariant
  weights.

  .. math::
     b_t = \mu b_{t-1} + (1-\tau) g_t, \quad p_t = b_t
     \ (\text{Nesterov: } g_t + \mu b_t), \quad
     p_t \leftarrow \Pi_{w_t}(p_t)\ \text{if}\ \max\cos(w_t, g_t) <
     \delta/\sqrt{n}, \quad
     w_{t+1} = w_t - \lambda_t\Big(p_t + \frac{d\,r}{1-\mu} w_t\Big)

  Heo et al., *AdamP: Slowing Down the Slowdown for Momentum Optimizers on
  Scale-invariant Weights*, ICLR 2021, Algorithm 1 (math: :ref:`algorithms-adamp`),
  and its PyTorch reference (Clova AI, ``adamp/sgdp.py``), which this equals to
  float32 round-off. Without Nesterov the reference's step and momentum buffer
  are one tensor, projected in place, so the buffer keeps the projected step:
  :math:`b_t \leftarrow p_t` after the projection (default,
  ``project_momentum=True``).
  ``project_momentum=False`` keeps the buffer unprojected, as the paper's
  Algorithm 1 is printed. With Nesterov the step is a new tensor and the buffer
  is never projected. Where no leaf is projected the result equals
  ``optax.sgd(learning_rate, momentum, nesterov)`` with decoupled decay
  :math:`d/(1-\mu)` (the reference's scaling, which keeps the decay's share of
  the steady-state step independent of :math:`\mu`).

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
    project_momentum: without Nesterov, store the projected step as the
      momentum buffer (the reference; default) or keep the buffer unprojected
      (``False``, the paper's Algorithm 1 as printed).
    channel_axis: output-channel axis of kernels: ``None`` (default) or ``-1``,
      the last axis, for Flax; ``0`` for PyTorch layouts. Leaves with
      ``ndim <= 1`` are never projected.
    weight_decay_mask: pytree of bools (or a callable), ``True`` where decay
      applies.

  Under ``optax.inject_hyperparams`` pass ``static_args=("channel_axis",
  "weight_decay_mask")`` for those of these options you set to an int or a
  callable (an int would be injected as a number, a callable called as a
  schedule; forgetting it raises a ``TypeError`` that says so).

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
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("momentum", momentum)
  validation.check_decay_rate("dampening", dampening)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("nesterov", nesterov)
  validation.check_bool("project_momentum", project_momentum)
  validation.check_not_injected_schedule("sgdp", ("weight_decay_mask",))
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

  def store_in_buffer(inner_state, steps):
    """The reference's ``d_p = buf`` is projected in place: buf <- projected step."""
    scale_state, trace_state = inner_state
    return scale_state, optax.TraceState(trace=jax.tree.map(
        lambda p, old: p.astype(old.dtype), steps, trace_state.trace))

  return keep_dtypes(optax.chain(
      projected(
          inner, delta=delta, wd_ratio=wd_ratio, weight_decay=decay,
          weight_decay_mask=weight_decay_mask, eps=eps, channel_axis=channel_axis,
          store_projected=store_in_buffer if project_momentum and not nesterov else None),
      optax.scale_by_learning_rate(learning_rate),
  ))
