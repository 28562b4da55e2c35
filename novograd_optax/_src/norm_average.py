r"""Normalization by a running average of each layer's gradient *norm*: the form of
the fused CUDA NovoGrad (NVIDIA apex's ``FusedNovoGrad``).

:func:`scale_by_layerwise_norm` (the paper's form) averages squared norms and
divides by the root of the average. The fused kernel keeps the norm itself, one
float32 per layer, and blends it per norm type (``csrc/multi_tensor_l2norm_kernel.cu``,
``multi_tensor_norm_out_cuda``)::

    L2:    r_t = sqrt(b2 * r_{t-1}^2 + (1 - b2) * ||g_t||_2^2)    # the root of v_t
    L-inf: r_t = b2 * r_{t-1} + (1 - b2) * ||g_t||_inf           # an average of norms
    out_t = x_t / (r_t / c_t + eps),   c_t = sqrt(1 - b2^t) with bias correction, else 1

For L2 this is :func:`scale_by_layerwise_norm` with a debiased moment; for
L-infinity the average of the norms differs from the root of the average of their
squares whenever ``0 < b2 < 1``, which is why it is a transformation of its own.
``x_t`` is the gradient, or the output of ``inner`` applied to the gradient: the
kernel's decoupled mode normalizes a momentum of *raw* gradients by the norm
average of the current gradient.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import layers as layers_lib
from novograd_optax._src import validation
from novograd_optax._src.layerwise_norm import Norm

NormAverageInit = Literal["first", "zero"]


class NormalizeByNormAverageState(NamedTuple):
  """State of :func:`normalize_by_norm_average`.

  Attributes:
    count: number of updates applied so far (int32).
    norm_average: :math:`r_t`, one float32 (float64 for float64 grads) per layer.
    inner_state: the state of ``inner`` (``optax.EmptyState()`` without one).
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in optax
  norm_average: optax.Updates
  inner_state: Any


def normalize_by_norm_average(
    b2: jax.typing.ArrayLike = 0.999,
    eps: jax.typing.ArrayLike = 1e-8,
    *,
    norm: Norm = "l2",
    nu_init: NormAverageInit = "first",
    bias_correction: bool = False,
    inner: Optional[optax.GradientTransformation] = None,
    layer_axes: layers_lib.LayerAxes = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Divides each layer's update by a running average of its gradient's norm.

  .. math::
     r_t = \sqrt{\beta_2 r_{t-1}^2 + (1-\beta_2)\|g_t\|_2^2}\ \ (\text{L2}),\quad
     r_t = \beta_2 r_{t-1} + (1-\beta_2)\|g_t\|_\infty\ \ (\text{L-inf}),\quad
     u_t = \frac{x_t}{r_t / c_t + \epsilon}

  with :math:`x_t = g_t`, or :math:`x_t` = ``inner``'s output for :math:`g_t`,
  and :math:`c_t = \sqrt{1-\beta_2^t}` (``bias_correction``) or 1. The form of
  the fused CUDA NovoGrad (apex ``FusedNovoGrad``, ``csrc/multi_tensor_novograd.cu``);
  Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive
  Moments for Training of Deep Networks*, 2019, use the L2 form. Math:
  :ref:`algorithms-norm-average`.

  Args:
    b2: decay of the norm average, in [0, 1).
    eps: added to the (debiased) norm average, >= 0.
    norm: ``"l2"`` or ``"linf"`` (the average of the max-norms, as the kernel).
    nu_init: ``"first"``: :math:`r_1 = \|g_1\|`; ``"zero"``: :math:`r_0 = 0`.
    bias_correction: divide :math:`r_t` by :math:`\sqrt{1-\beta_2^t}`, for both
      norms and both inits (the kernel does so even after a first-gradient init).
    inner: a transformation of the gradient whose output is normalized instead
      of the gradient, e.g. ``optax.ema(b1)``: momentum over raw gradients
      (the kernel's decoupled-decay mode). It gets ``params`` and extra args.
    layer_axes: axes of leaves that index stacked layers (see
      :func:`scale_by_layerwise_norm`).
    axis_name: mesh axis name(s) over which leaves are split inside
      ``shard_map``/``pmap``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import normalize_by_norm_average
    >>> tx = optax.chain(
    ...     normalize_by_norm_average(0.98, inner=optax.ema(0.9, debias=True),
    ...                               bias_correction=True),
    ...     optax.scale_by_learning_rate(0.01))
    >>> params = {"w": jnp.ones((3, 2))}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.ones((3, 2))}, state, params)

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_decay_rate("b2", b2)
  validation.check_non_negative("eps", eps)
  validation.check_choice("norm", norm, ("l2", "linf"))
  validation.check_choice("nu_init", nu_init, ("first", "zero"))
  validation.check_bool("bias_correction", bias_correction)
  validation.check_axis_name("axis_name", axis_name)
  layers_lib.check_layer_axes(layer_axes)
  validation.check_not_injected_schedule("normalize_by_norm_average", ("layer_axes",))
  if inner is not None and not isinstance(inner, optax.GradientTransformation):
    raise TypeError(f"inner must be None or an optax.GradientTransformation; got {inner!r}.")
  inner_tx = optax.with_extra_args_support(inner if inner is not None else optax.identity())

  def init_fn(params):
    validation.check_inexact_leaves("params", params)
    layers = layers_lib.resolve_layer_axes(layer_axes, params)
    norm_average = jax.tree.map(
        lambda p, lay: jnp.zeros(lay.moment_shape(p.shape), layers_lib.moment_dtype(p.dtype)),
        params, layers)
    return NormalizeByNormAverageState(
        count=jnp.zeros([], jnp.int32), norm_average=norm_average,
        inner_state=inner_tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    validation.check_same_structure(
        "updates", updates, "the optimizer state", state.norm_average)
    layers = layers_lib.resolve_layer_axes(layer_axes, updates)
    count = optax.safe_increment(state.count)
    decay = jnp.where(state.count == 0, 0.0, b2) if nu_init == "first" else b2
    if bias_correction:
      # 1 - b2^t in float32 is 0 for b2 close to 1 only when t is huge; the kernel
      # computes it the same way.
      correction = jnp.sqrt(1.0 - jnp.power(jnp.asarray(b2, jnp.float32), count))
    else:
      correction = 1.0

    def blend(g, r, lay):
      squared = layers_lib.layer_squared_norms(g, lay, norm, axis_name)
      # In r's dtype: the where above is float64 under jax_enable_x64 (see
      # scale_by_layerwise_norm); a Python float b2 stays weakly typed.
      d = decay.astype(r.dtype) if isinstance(decay, jax.Array) else decay
      if norm == "l2":
        return jnp.sqrt(d * jnp.square(r) + (1.0 - d) * squared).astype(r.dtype)
      return (d * r + (1.0 - d) * jnp.sqrt(squared)).astype(r.dtype)

    norm_average = jax.tree.map(blend, updates, state.norm_average, layers)
    inner_updates, inner_state = inner_tx.update(
        updates, state.inner_state, params, **extra_args)

    def normalize(x, r, lay):
      inverse = 1.0 / (r / correction + eps)
      inverse = jnp.expand_dims(inverse, lay.reduce_axes)
      compute = jnp.promote_types(x.dtype, inverse.dtype)
      return (x.astype(compute) * inverse).astype(x.dtype)

    updates = jax.tree.map(normalize, inner_updates, norm_average, layers)
    return updates, NormalizeByNormAverageState(
        count=count, norm_average=norm_average, inner_state=inner_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
