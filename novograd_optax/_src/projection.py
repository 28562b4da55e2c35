r"""Removing the radial part of a step for scale-invariant weights (AdamP/SGDP).

Heo et al., *AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights*, ICLR 2021. For a weight followed by a normalization
layer the loss does not change along :math:`w`, so the gradient is orthogonal
to :math:`w`; momentum nevertheless accumulates a radial component that only
inflates :math:`\|w\|` and shrinks the effective step. The rule (written once, with
its equations, in the docs' algorithm page, section "AdamP and SGDP"): for every
leaf with ``ndim > 1`` whose cosine with its gradient looks scale-invariant, the
radial part of the step is removed and the decoupled decay reduced.

Why a wrapper. The test uses the *raw* gradient :math:`g` and the parameters,
while the projection acts on the inner optimizer's *output* :math:`p`. In an
``optax.chain`` each link only sees its predecessor's output, so a link placed
after ``scale_by_adam`` no longer sees :math:`g`, and a link placed before it
would project the gradient instead of the step (a different algorithm, since
Adam's per-coordinate scaling reintroduces radial components). Storing
:math:`g` in a state for a later link would double the memory. Wrapping the
inner transformation gives one function both :math:`g` and :math:`p`, at no
memory cost, and any inner optimizer (Adam, momentum, a chain) can be used.
The decoupled weight decay lives in the same wrapper because its size depends
on the projection decision; it is optax's ``add_decayed_weights`` applied to
``wd_factor * w``, so schedules and masks behave as in optax.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import validation
from novograd_optax._src.wrappers import require_params


class ProjectScaleInvariantState(NamedTuple):
  """State of :func:`project_scale_invariant`.

  Attributes:
    inner_state: the state of the wrapped transformation.
    decay_state: the state of ``optax.add_decayed_weights`` (a step count when
      ``weight_decay`` is a schedule, empty otherwise).
  """

  inner_state: optax.OptState
  decay_state: optax.OptState


def _real_inner(a, b, axis, keepdims=False):
  """``Re <a, b> = sum(Re(conj(a) b))`` over ``axis``: the inner product of the real
  vectors that hold the real and imaginary parts of ``a`` and ``b`` side by side.

  For complex weights the radial direction of a scale-invariant weight is ``w``
  itself (a positive real factor, as a normalization layer divides out), so the
  cosine and the projection are those of C^n seen as R^(2n); norms are real.
  """
  if jnp.iscomplexobj(a) or jnp.iscomplexobj(b):
    product = jnp.real(a) * jnp.real(b) + jnp.imag(a) * jnp.imag(b)
  else:
    product = a * b
  return jnp.sum(product, axis=axis, keepdims=keepdims)


def _project_leaf(g, w, p, delta, wd_ratio, eps, channel_axis):
  """Returns the projected step and the decay factor (1 or wd_ratio) of a leaf."""
  if w.ndim <= 1 or w.size == 0:
    # Biases and norm scales: the reference never projects them. A zero-size kernel
    # has no rows: its cosine would be a max over nothing and delta / sqrt(0).
    return p, jnp.ones([], jnp.float32)
  if not -w.ndim <= channel_axis < w.ndim:
    raise ValueError(
        f"channel_axis={channel_axis} is out of range for a parameter of shape"
        f" {w.shape}; accepted: integers in [{-w.ndim}, {w.ndim}).")
  compute = jnp.promote_types(
      jnp.promote_types(jnp.promote_types(w.dtype, p.dtype), g.dtype), jnp.float32)
  w32, g32, p32 = (x.astype(compute) for x in (w, g, p))
  channel = channel_axis % w.ndim
  channel_rows = tuple(a for a in range(w.ndim) if a != channel)
  whole_layer = tuple(range(w.ndim))
  # A complex entry is two real coordinates: the threshold delta / sqrt(n) is that
  # of a row of n real numbers, as for the same weights stored as real and imaginary
  # parts side by side.
  coordinates_per_entry = 2 if jnp.issubdtype(compute, jnp.complexfloating) else 1

  def looks_scale_invariant(rows):
    # torch.nn.functional.cosine_similarity, as the reference: each norm is
    # floored at eps (not eps added to their product), which matters for tiny
    # gradients near the threshold.
    dot = _real_inner(w32, g32, rows)
    w_norm = jnp.maximum(jnp.sqrt(_real_inner(w32, w32, rows)), eps)
    g_norm = jnp.maximum(jnp.sqrt(_real_inner(g32, g32, rows)), eps)
    # A row with a zero norm has <w, g> = 0: its cosine is 0, as with any eps > 0.
    # With eps = 0 (or a product w_norm * g_norm that underflows) it would be 0/0 = NaN,
    # and one NaN row would make max(cos) NaN and silently turn the whole view off.
    denominator = w_norm * g_norm
    cosine = jnp.abs(dot) / jnp.where(denominator == 0, 1, denominator)
    row_length = coordinates_per_entry * math.prod(w.shape[a] for a in rows)
    return jnp.max(cosine) < delta / math.sqrt(row_length)

  def project(rows):
    # w_hat of a zero row is 0 (nothing to remove), as 0 / (0 + eps) for any eps > 0.
    denominator = jnp.sqrt(_real_inner(w32, w32, rows, keepdims=True)) + eps
    w_hat = w32 / jnp.where(denominator == 0, 1, denominator)
    return p32 - w_hat * _real_inner(w_hat, p32, rows, keepdims=True)

  # Both views are computed and selected with `where`, which keeps the rule
  # jit-able without lax.cond; the per-channel view has priority.
  by_channel = looks_scale_invariant(channel_rows)
  by_layer = looks_scale_invariant(whole_layer)
  projected = jnp.where(
      by_channel, project(channel_rows), jnp.where(by_layer, project(whole_layer), p32))
  factor = jnp.where(jnp.logical_or(by_channel, by_layer), wd_ratio, 1.0)
  return projected.astype(p.dtype), jnp.asarray(factor, jnp.float32)


def project_scale_invariant(
    inner: optax.GradientTransformation,
    *,
    delta: jax.typing.ArrayLike = 0.1,
    wd_ratio: jax.typing.ArrayLike = 0.1,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    weight_decay_mask: optax.MaskOrFn = None,
    eps: jax.typing.ArrayLike = 1e-8,
    channel_axis: Optional[int] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Wraps an optimizer so that its steps lose their radial part on
  scale-invariant weights, and adds decoupled weight decay reduced there.

  .. math::
     p = \mathrm{inner}(g), \quad
     \cos = \frac{|\langle w, g\rangle|}{\max(\|w\|,\epsilon)\max(\|g\|,\epsilon)}, \quad
     p \leftarrow p - \hat w \langle \hat w, p\rangle \ \text{if}\
     \max\cos < \delta/\sqrt{n}, \quad
     u = p + d\,r\,w

  with :math:`r` = ``wd_ratio`` when projected and 1 otherwise; the test is
  done per output channel first (rows of length :math:`n` = leaf size /
  channels), then for the whole leaf (:math:`n` = leaf size). Complex weights
  are the real vectors of their real and imaginary parts:
  :math:`\langle a, b\rangle = \mathrm{Re}\sum \bar a b`, real norms, and
  :math:`n` counts two coordinates per complex entry. Heo et al.,
  ICLR 2021, Algorithms 1–2; math: :ref:`algorithms-adamp`. See the module
  docstring for why this is a wrapper rather than a link of a chain.

  Args:
    inner: the transformation producing the step :math:`p` from the raw
      gradient, e.g. ``optax.scale_by_adam()`` or ``optax.trace(0.9)``.
    delta: the cosine threshold :math:`\delta`, >= 0.
    wd_ratio: factor :math:`r` of the weight decay on projected leaves, >= 0.
    weight_decay: decoupled decay :math:`d` added to the step (scale it by the
      learning rate after this wrapper); a float >= 0 or a schedule.
    weight_decay_mask: a pytree of bools (or a callable), ``True`` where decay
      applies, as in ``optax.add_decayed_weights``.
    eps: in the cosine and in :math:`\hat w`, >= 0. A row whose gradient or
      weights are zero has cosine 0 and :math:`\hat w = 0` for every ``eps``,
      0 included (not 0/0).
    channel_axis: the output-channel axis of a kernel: ``None`` (default) or
      ``-1``, the last axis, for Flax ``Dense``/``Conv`` kernels
      (``(..., in, out)``); ``0`` for PyTorch layouts ``(out, in, ...)``.
      Leaves with ``ndim <= 1`` are never projected. (``None`` rather than ``-1``
      as the default keeps ``optax.inject_hyperparams`` from taking it for a
      number; set another axis there with ``static_args=("channel_axis",)``.)

  ``update`` needs ``params``. Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import project_scale_invariant
    >>> tx = optax.chain(
    ...     project_scale_invariant(optax.scale_by_adam(), weight_decay=1e-2),
    ...     optax.scale_by_learning_rate(1e-3))
    >>> params = {"kernel": jnp.eye(3), "bias": jnp.zeros(3)}
    >>> state = tx.init(params)
    >>> grads = {"kernel": jnp.ones((3, 3)) - jnp.eye(3), "bias": jnp.ones(3)}
    >>> updates, state = tx.update(grads, state, params)

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_not_injected_schedule("project_scale_invariant", ("weight_decay_mask",))
  return projected(
      inner, delta=delta, wd_ratio=wd_ratio, weight_decay=weight_decay,
      weight_decay_mask=weight_decay_mask, eps=eps, channel_axis=channel_axis)


def projected(
    inner: optax.GradientTransformation,
    *,
    delta: jax.typing.ArrayLike,
    wd_ratio: jax.typing.ArrayLike,
    weight_decay: optax.ScalarOrSchedule,
    weight_decay_mask: optax.MaskOrFn,
    eps: jax.typing.ArrayLike,
    channel_axis: Optional[int],
    store_projected: Optional[Callable[[optax.OptState, optax.Updates], optax.OptState]] = None,
) -> optax.GradientTransformationExtraArgs:
  """:func:`project_scale_invariant`, and with ``store_projected`` the projected
  steps are also written into the inner state: ``store_projected(inner_state,
  steps)`` returns the new inner state. SGDP's reference without Nesterov needs
  this: its step *is* its momentum buffer (one tensor, projected in place)."""
  validation.check_non_negative("delta", delta)
  validation.check_non_negative("wd_ratio", wd_ratio)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_non_negative("eps", eps)
  validation.check_mask("weight_decay_mask", weight_decay_mask)
  if channel_axis is None:
    channel_axis = -1
  validation.check_int("channel_axis", channel_axis, "None or an int")
  decay = optax.add_decayed_weights(weight_decay, weight_decay_mask)

  def init_fn(params):
    # An integer weight would get a float step that apply_updates truncates.
    validation.check_inexact_leaves("params", params)
    validation.check_mask_structure("weight_decay_mask", weight_decay_mask, params)
    return ProjectScaleInvariantState(
        inner_state=inner.init(params), decay_state=decay.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    require_params("project_scale_invariant (AdamP/SGDP)", "the projection", params)
    validation.check_same_structure(
        "updates", updates, "params", params, compare_shapes=True)
    validation.check_mask_structure("weight_decay_mask", weight_decay_mask, params)
    steps, inner_state = optax.with_extra_args_support(inner).update(
        updates, state.inner_state, params, **extra_args)
    grads, treedef = jax.tree.flatten(updates)
    pairs = [
        _project_leaf(g, w, p, delta, wd_ratio, eps, channel_axis)
        for g, w, p in zip(grads, treedef.flatten_up_to(params),
                           treedef.flatten_up_to(steps), strict=True)]
    projected_steps = treedef.unflatten([step for step, _ in pairs])
    factors = treedef.unflatten([factor for _, factor in pairs])
    if store_projected is not None:
      inner_state = store_projected(inner_state, projected_steps)
    # Decaying `wd_factor * w` reuses optax's schedule and mask handling.
    scaled_params = jax.tree.map(
        lambda w, f: (w * f).astype(w.dtype), params, factors)
    out, decay_state = decay.update(projected_steps, state.decay_state, scaled_params)
    return out, ProjectScaleInvariantState(inner_state, decay_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
