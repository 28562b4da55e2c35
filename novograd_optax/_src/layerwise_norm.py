r"""The one new primitive of NovoGrad: gradients normalized by a layer-wise
second moment, eq. (1) of Ginsburg et al. (2019), one scalar per layer (a pytree
leaf, or a slice of a stacked leaf). The rule and every variant (epsilon placement,
AMSGrad, L-infinity norm, zero init) are written once in the docs' algorithm page,
section "NovoGrad".
"""

from __future__ import annotations

import math
from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import layers as layers_lib
from novograd_optax._src import validation

Norm = Literal["l2", "linf"]
MomentInit = Literal["first", "zero", "first_nonzero"]
_NORMS = ("l2", "linf")
_MOMENT_INITS = ("first", "zero", "first_nonzero")


class ScaleByLayerwiseNormState(NamedTuple):
  r"""State of :func:`scale_by_layerwise_norm`.

  Attributes:
    count: number of updates applied so far (int32).
    nu: per-layer second moment :math:`v_t`, float32 (float64 for float64
      grads), one value per layer: a scalar per leaf, or an array of the shape
      of the leaf's ``layer_axes``.
    nu_max: the AMSGrad running maximum :math:`\hat v_t` (same layout as
      ``nu``) when ``amsgrad=True``; ``None`` (no storage) otherwise.
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in optax
  nu: optax.Updates
  nu_max: Optional[optax.Updates] = None


# The multi-tensor step: every leaf is reduced on its own, and the per-layer squared norms
# of up to _MAX_LEAVES_PER_VECTOR leaves of one (moment dtype, norm dtype) are gathered
# into one vector, so the moment update, its inf restart, the AMSGrad maximum and the
# reciprocal are one small computation for all of them, there is one all-reduce under
# axis_name, and the reductions feeding one concatenation can be fused together (XLA
# fuses sibling reductions horizontally on GPU; on CPU into the concatenation). Only
# these scalars are concatenated, never the gradients: stacking leaves copies them,
# and would gather a leaf that is sharded over devices. The state keeps one nu per
# leaf, keyed like the params (checkpoints and monitoring are unchanged). Measured in
# docs/performance.md (benchmarks/update_step.py).

# At most this many leaves share a vector: XLA compiles a concatenation of thousands of
# operands slowly (with the reductions fused into it, 98 s against AdamW's 22 s for a
# 500-leaf step on CPU; 28 s with vectors of 64).
_MAX_LEAVES_PER_VECTOR = 64


def _moment_groups(squared_norms, nus) -> list[list[int]]:
  """Indices of the leaves whose per-layer scalars share a vector: same dtypes, at most
  _MAX_LEAVES_PER_VECTOR of them."""
  groups: dict[Any, list[int]] = {}
  for i, (squared, nu) in enumerate(zip(squared_norms, nus, strict=True)):
    groups.setdefault((jnp.result_type(nu), jnp.result_type(squared)), []).append(i)
  return [group[start:start + _MAX_LEAVES_PER_VECTOR] for group in groups.values()
          for start in range(0, len(group), _MAX_LEAVES_PER_VECTOR)]


def _concatenate(pieces) -> jax.Array:
  return jnp.concatenate([jnp.ravel(x) for x in pieces])


def _split(vector, shapes) -> list[jax.Array]:
  """Inverse of :func:`_concatenate` for pieces of the given shapes."""
  out, offset = [], 0
  for shape in shapes:
    size = math.prod(shape)
    out.append(jax.lax.slice_in_dim(vector, offset, offset + size).reshape(shape))
    offset += size
  return out


def scale_by_layerwise_norm(
    b2: jax.typing.ArrayLike = 0.25,
    eps: jax.typing.ArrayLike = 1e-6,
    eps_root: jax.typing.ArrayLike = 0.0,
    *,
    norm: Norm = "l2",
    nu_init: MomentInit = "first",
    amsgrad: bool = False,
    layer_axes: layers_lib.LayerAxes = None,
    axis_name: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Normalizes each layer's gradient by a moving average of its squared norm.

  .. math::
     v_t = \beta_2 v_{t-1} + (1-\beta_2)\,\|g_t\|^2, \qquad
     \hat v_t = \max(\hat v_{t-1}, v_t)\ \text{(amsgrad)}, \qquad
     u_t = \frac{g_t}{\sqrt{v_t + \epsilon_{root}} + \epsilon}

  Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive
  Moments for Training of Deep Networks*, 2019, eq. (1), Algorithm 1, the
  AMSGrad variant of §3 and footnotes 1–2; math: :ref:`algorithms-novograd`.
  ``b2=0`` gives layer-wise normalized gradient descent.

  Args:
    b2: decay of the layer-wise second moment, in [0, 1). The paper uses
      [0.2, 0.5].
    eps: added to ``sqrt(v)`` (outside the root, as in optax), >= 0.
    eps_root: added to ``v`` inside the root (the paper's epsilon), >= 0. With
      ``eps = eps_root = 0`` a layer with :math:`v_t = 0` is divided by 1, so a
      zero layer stays zero (not 0/0).
    norm: ``"l2"`` (the paper) or ``"linf"``: the moment then tracks
      :math:`\max|g|^2` and the same formula holds.
    nu_init: ``"first"``: :math:`v_1 = \|g_1\|^2` (Algorithm 1); ``"zero"``: a
      plain moving average from :math:`v_0 = 0`, without bias correction;
      ``"first_nonzero"``: :math:`v_t = \|g_t\|^2` whenever :math:`v_{t-1} = 0`,
      so a layer whose first gradients are exactly zero (e.g. behind a
      zero-initialized layer) starts its average at its first nonzero gradient,
      as the PyTorch NovoGrads of timm, NeMo and pytorch-optimizer do.
    amsgrad: normalize by the running maximum :math:`\hat v_t`; adds
      ``nu_max`` to the state, only then.
    layer_axes: axes of a leaf that index stacked layers (see
      the layer-axes guide): an int, a tuple, a pytree prefix of
      the params, or a callable of the params returning one. ``None``: each
      leaf is one layer.
    axis_name: mesh axis name(s) over which every leaf is split inside
      ``shard_map``/``pmap``; per-layer sums are ``psum``-ed over them.

  The moment is kept in float32 (or float64) whatever the gradient dtype; the
  output keeps the gradient's dtype; complex gradients use :math:`\sum |g|^2`.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> from novograd_optax import scale_by_layerwise_norm
    >>> tx = optax.chain(scale_by_layerwise_norm(b2=0.5), optax.trace(0.9),
    ...                  optax.scale_by_learning_rate(0.1))
    >>> params = {"w": jnp.ones((3, 2))}
    >>> state = tx.init(params)
    >>> updates, state = tx.update({"w": jnp.full((3, 2), 2.0)}, state, params)

  Returns:
    An :class:`optax.GradientTransformationExtraArgs`.
  """
  validation.check_decay_rate("b2", b2)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("eps_root", eps_root)
  validation.check_choice("norm", norm, _NORMS)
  validation.check_choice("nu_init", nu_init, _MOMENT_INITS)
  validation.check_bool("amsgrad", amsgrad)
  validation.check_axis_name("axis_name", axis_name)
  layers_lib.check_layer_axes(layer_axes)
  validation.check_not_injected_schedule("scale_by_layerwise_norm", ("layer_axes",))

  def zero_moments(tree):
    layers = layers_lib.resolve_layer_axes(layer_axes, tree)
    return jax.tree.map(
        lambda p, lay: jnp.zeros(lay.moment_shape(p.shape), layers_lib.moment_dtype(p.dtype)),
        tree, layers)

  def init_fn(params):
    validation.check_inexact_leaves("params", params)
    nu = zero_moments(params)
    nu_max = zero_moments(params) if amsgrad else None
    return ScaleByLayerwiseNormState(
        count=jnp.zeros([], jnp.int32), nu=nu, nu_max=nu_max)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    validation.check_same_structure("updates", updates, "the optimizer state", state.nu)
    if params is not None:
      validation.check_same_structure(
          "updates", updates, "params", params, compare_shapes=True)
    layers = layers_lib.resolve_layer_axes(layer_axes, updates)
    if nu_init == "first":
      # v_1 = ||g_1||^2 without a lax.cond: on the first step the old moment
      # (zeros) gets weight 0 and the new norm weight 1.
      decay = jnp.where(state.count == 0, 0.0, b2)
    else:
      decay = b2

    grads, treedef = jax.tree.flatten(updates)
    lays = treedef.flatten_up_to(layers)
    old_nu = treedef.flatten_up_to(state.nu)
    old_nu_max = treedef.flatten_up_to(state.nu_max) if amsgrad else None
    # One reduction per leaf; the all-reduce over axis_name is done once, on the vector.
    squared_norms = [layers_lib.layer_squared_norms(g, lay, norm) for g, lay in zip(
        grads, lays, strict=True)]
    nu: list[Any] = [None] * len(grads)
    nu_max: list[Any] = [None] * len(grads)
    inverses: list[Any] = [None] * len(grads)
    for group in _moment_groups(squared_norms, old_nu):
      shapes = [jnp.shape(old_nu[i]) for i in group]
      squared = _concatenate([squared_norms[i] for i in group])
      if axis_name is not None:
        reduce = jax.lax.psum if norm == "l2" else jax.lax.pmax
        squared = reduce(squared, axis_name)
      previous = _concatenate([old_nu[i] for i in group])
      # A float32 overflow of ||g||^2 (|g| ~ 1e20) leaves v = inf: that step's update
      # is g / inf = 0, but b2 * inf would then zero every later update of the layer,
      # silently and forever (and 0 * inf would be NaN for b2 = 0). An inf moment
      # restarts from the current gradient instead, as on the first step.
      restart = jnp.isposinf(previous)
      if nu_init == "first_nonzero":
        restart = restart | (previous == 0)
      new = jnp.where(restart, squared,
                      decay * previous + (1.0 - decay) * squared).astype(previous.dtype)
      denominator_moment = new
      if amsgrad:
        previous_max = _concatenate([old_nu_max[i] for i in group])
        new_max = jnp.where(jnp.isposinf(previous_max), new, jnp.maximum(previous_max, new))
        denominator_moment = new_max
        for i, x in zip(group, _split(new_max, shapes), strict=True):
          nu_max[i] = x
      # The reciprocal once per layer: the per-element work is a multiply (the
      # optimized HLO of a division showed the same rewrite).
      denominator = jnp.sqrt(denominator_moment + eps_root) + eps
      # With eps = eps_root = 0 a layer whose moment is 0 (all its gradients so far zero,
      # or so small that their square underflows) would get g * (1/0) = 0 * inf = NaN;
      # it is divided by 1 instead, so a zero layer gets a zero update as with any
      # eps > 0. Only an exact zero is replaced: a NaN moment still poisons its layer.
      inverse = 1.0 / jnp.where(denominator == 0, 1.0, denominator)
      for i, x, inv in zip(group, _split(new, shapes), _split(inverse, shapes), strict=True):
        nu[i], inverses[i] = x, inv

    def normalize(g, inverse, lay):
      inverse = jnp.expand_dims(inverse, lay.reduce_axes)
      compute = jnp.promote_types(g.dtype, inverse.dtype)
      return (g.astype(compute) * inverse).astype(g.dtype)

    updates = treedef.unflatten(map(normalize, grads, inverses, lays))
    return updates, ScaleByLayerwiseNormState(
        count=optax.safe_increment(state.count), nu=treedef.unflatten(nu),
        nu_max=treedef.unflatten(nu_max) if amsgrad else None)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
