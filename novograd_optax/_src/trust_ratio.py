r"""Layer-wise trust-ratio clipping: LARC's clip mode and the speech toolkit's LUC.

You, Gitman and Ginsburg, 2017 (LARC), and the layer-wise update clipping (LUC)
of a speech toolkit's NovoGrad, used for Jasper in the NovoGrad paper. The rule,
and where to place it (before an optimizer: LARC; just before the learning rate:
LUC, ``novograd(trust_coefficient=...)``; after any optimizer with
``learning_rate=1``), is written once in the docs' algorithm page, section
"Layer-wise trust ratio: LARC and LUC".

A layer with :math:`\|w\| = 0` or :math:`\|x\| = 0` is left unscaled, as in
``optax.scale_by_trust_ratio`` and NVIDIA's LARC (the toolkit's LUC would never
move a zero-initialized layer). Scale mode with ``weight_decay=0`` and one
layer per leaf is ``optax.scale_by_trust_ratio(trust_coefficient=trust,
eps=eps)``; that transformation returns the scaled updates, not the ratio, so
it cannot give the clip mode's ``min(local / lr, 1)`` and per-layer norms of
stacked leaves, which is why the ratio is computed here.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import layers as layers_lib
from novograd_optax._src import validation
from novograd_optax._src.wrappers import require_params

TrustRatioMode = Literal["clip", "scale"]
_MODES = ("clip", "scale")


class ClipByLayerwiseTrustRatioState(NamedTuple):
  """Step count, read by ``learning_rate`` and ``weight_decay`` schedules."""

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in optax


def clip_by_layerwise_trust_ratio(
    trust_coefficient: jax.typing.ArrayLike = 0.02,
    learning_rate: optax.ScalarOrSchedule = 1.0,
    *,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    eps: jax.typing.ArrayLike = 1e-8,
    mode: TrustRatioMode = "clip",
    min_ratio: jax.typing.ArrayLike = 0.0,
    skip_zero_norms: bool = True,
    layer_axes: layers_lib.LayerAxes = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Clips (or scales) each layer's update by its trust ratio.

  .. math::
     \ell = \frac{\eta\,\|w\|}{\|x\| + d\,\|w\| + \epsilon}, \qquad
     x \leftarrow (x + d\,w)\,\min(\ell/\lambda, 1)\ \ (\text{clip}), \qquad
     x \leftarrow (x + d\,w)\,\ell\ \ (\text{scale})

  You, Gitman and Ginsburg, *Large Batch Training of Convolutional Networks*,
  2017 (LARS/LARC); the clip mode and the layer-wise update clipping of the
  NovoGrad paper's Jasper setup; math: :ref:`algorithms-trust-ratio`. In clip
  mode the final step
  :math:`\lambda x` of every layer has norm at most :math:`\eta\|w\|` when
  nothing after this transformation but the learning rate rescales it.

  Args:
    trust_coefficient: :math:`\eta` > 0 (LARC: 0.02; the toolkit's LUC: 1e-3).
    learning_rate: :math:`\lambda`, the learning rate applied *after* this
      transformation (a float >= 0 or a schedule); 1 when the updates already
      include it, i.e. after a complete optimizer. A rate of 0 (a warmup from
      zero) takes the limit of a small positive rate: nothing is clipped, and a
      zero layer let through by ``skip_zero_norms=False`` gets ``min_ratio``.
    weight_decay: :math:`d` >= 0 or a schedule: an L2 term added to the
      updates before scaling and bounded in the ratio, as NVIDIA's LARC does
      (the inner optimizer should then have no decay of its own).
    eps: added to the denominator, >= 0.
    mode: ``"clip"`` (LARC's default, and LUC) or ``"scale"`` (LARS' local
      learning rate).
    min_ratio: a lower bound on the factor, >= 0: clip mode uses
      :math:`\min(\max(\ell/\lambda, r), 1)`, scale mode
      :math:`\max(\ell, r)` (OpenSeq2Seq's LARC ``min_update``, 1e-7 there).
    skip_zero_norms: ``True`` (default): a layer with :math:`\|w\| = 0` or
      :math:`\|x\| = 0` passes with factor 1, as in ``optax.scale_by_trust_ratio``.
      ``False``: the formula applies to it too, so a zero layer gets the factor
      :math:`\max(0, r)`, as in NeMo's LUC (a zero layer never moves) and
      OpenSeq2Seq's LARC (its gradient is scaled by ``min_update``); needs
      ``eps`` > 0.
    layer_axes: axes of leaves that index stacked layers; see
      the layer-axes guide. ``None``: one layer per leaf.
    axis_name: mesh axis name(s) over which leaves are split inside
      ``shard_map``/``pmap``; the norms are ``psum``-ed over them.

  ``update`` needs ``params``. Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import clip_by_layerwise_trust_ratio
    >>> lr = optax.cosine_decay_schedule(0.1, 1000)
    >>> larc = optax.chain(
    ...     clip_by_layerwise_trust_ratio(0.02, learning_rate=lr, weight_decay=1e-4),
    ...     optax.sgd(lr, momentum=0.9))
    >>> capped_adam = optax.chain(optax.adam(1e-3), clip_by_layerwise_trust_ratio(1e-3))
    >>> params = {"w": jnp.ones((3, 2))}
    >>> state = larc.init(params)
    >>> updates, state = larc.update({"w": jnp.ones((3, 2))}, state, params)
    >>> # ||lr * x|| is capped at 0.02 ||w||: every entry moves by 0.02.
    >>> print(round(float(updates["w"][0, 0]), 6))
    -0.02

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_scalar("trust_coefficient", trust_coefficient, low=0.0,
                          low_inclusive=False)
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_non_negative("eps", eps)
  validation.check_choice("mode", mode, _MODES)
  validation.check_non_negative("min_ratio", min_ratio)
  validation.check_bool("skip_zero_norms", skip_zero_norms)
  if not skip_zero_norms and validation.is_static_zero(eps):
    raise ValueError(
        "clip_by_layerwise_trust_ratio: skip_zero_norms=False needs eps > 0, or a zero"
        " layer divides 0 by 0; got eps=0.")
  validation.check_axis_name("axis_name", axis_name)
  layers_lib.check_layer_axes(layer_axes)
  validation.check_not_injected_schedule("clip_by_layerwise_trust_ratio", ("layer_axes",))

  def init_fn(params):
    del params
    return ClipByLayerwiseTrustRatioState(count=jnp.zeros([], jnp.int32))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    require_params("clip_by_layerwise_trust_ratio (LARC/LUC, novograd's trust_coefficient)",
                   "the trust ratio", params)
    validation.check_inexact_leaves("updates", updates)
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    decay = weight_decay(state.count) if callable(weight_decay) else weight_decay
    layers = layers_lib.resolve_layer_axes(layer_axes, updates)

    def clip_leaf(x, w, lay):
      w_norm = jnp.sqrt(layers_lib.layer_squared_norms(w, lay, "l2", axis_name))
      x_norm = jnp.sqrt(layers_lib.layer_squared_norms(x, lay, "l2", axis_name))
      local = trust_coefficient * w_norm / (x_norm + decay * w_norm + eps)
      if mode == "clip":
        # A rate of 0 (e.g. a warmup schedule's first step) takes the limit lr -> 0+
        # of local / lr: inf, or 0 for a zero layer that skip_zero_norms=False lets
        # through. The plain division gives 0 / 0 = NaN there, which the inner
        # optimizer's momentum would keep after the zero step.
        positive = lr > 0
        ratio = jnp.where(positive, local / jnp.where(positive, lr, 1.0),
                          jnp.where(local > 0, jnp.inf, 0.0))
        factor = jnp.minimum(jnp.maximum(ratio, min_ratio), 1.0)
      else:
        factor = jnp.maximum(local, min_ratio)
      if skip_zero_norms:
        factor = jnp.where((w_norm == 0) | (x_norm == 0), 1.0, factor)
      factor = jnp.expand_dims(factor, lay.reduce_axes)
      compute = jnp.promote_types(x.dtype, factor.dtype)
      decayed = x.astype(compute) + decay * w.astype(compute)
      return (decayed * factor).astype(x.dtype)

    updates = jax.tree.map(clip_leaf, updates, params, layers)
    return updates, ClipByLayerwiseTrustRatioState(optax.safe_increment(state.count))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
