r"""The one new primitive of NovoGrad: gradients normalized by a layer-wise
second moment, eq. (1) of Ginsburg et al. (2019), one scalar per layer (a pytree
leaf, or a slice of a stacked leaf). The rule and every variant (epsilon placement,
AMSGrad, L-infinity norm, zero init) are written once in the docs' algorithm page,
section "NovoGrad".
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import flax_metadata, layer_layout, validation
from novograd_optax._src import layers as layers_lib
from novograd_optax._src.layer_moments import LayerMoments

Norm = Literal["l2", "linf"]
MomentInit = Literal["first", "zero", "first_nonzero"]
_NORMS = ("l2", "linf")
_MOMENT_INITS = ("first", "zero", "first_nonzero")


class ScaleByLayerwiseNormState(NamedTuple):
  r"""State of :func:`scale_by_layerwise_norm`.

  Attributes:
    count: number of updates applied so far (int32).
    nu: per-layer second moment :math:`v_t`, float32 (float64 for float64
      params), one value per layer, stored as one vector per dtype
      (:class:`LayerMoments`; a few kernels less per leaf on a GPU or TPU);
      ``nu.per_layer()`` gives it keyed like the params: a scalar per leaf, or
      an array of the shape of the leaf's ``layer_axes``.
    nu_max: the AMSGrad running maximum :math:`\hat v_t` (same layout as
      ``nu``) when ``amsgrad=True``; ``None`` (no storage) otherwise.
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as in optax
  nu: LayerMoments
  nu_max: Optional[LayerMoments] = None


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
    return LayerMoments.from_per_layer(jax.tree.map(
        lambda p, lay: jnp.zeros(lay.moment_shape(p.shape), layers_lib.moment_dtype(p.dtype)),
        tree, layers))

  def init_fn(params):
    if _is_optax_params_placeholder(params):
      # optax.tree_map_params calls init on a placeholder to find the params-shaped
      # fields. The moments are not params-shaped and their layout needs real leaves:
      # an opaque leaf in their place makes tree_map_params hand each whole
      # LayerMoments to `transform_non_params`, as it does the step count.
      opaque = jnp.zeros([])
      return ScaleByLayerwiseNormState(
          count=jnp.zeros([], jnp.int32), nu=opaque, nu_max=opaque if amsgrad else None)
    validation.check_inexact_leaves("params", params)
    # nnx.Optimizer initializes with Variables and updates with their arrays (a plain
    # train step may update with Variables too): the moments' layout is the arrays'.
    params = flax_metadata.unwrap_variables(params)
    nu = zero_moments(params)
    nu_max = zero_moments(params) if amsgrad else None
    return ScaleByLayerwiseNormState(
        count=jnp.zeros([], jnp.int32), nu=nu, nu_max=nu_max)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    validation.check_same_structure(
        "updates", flax_metadata.unwrap_variables(updates), "the optimizer state",
        state.nu.layout.skeleton())
    if params is not None:
      validation.check_same_structure(
          "updates", updates, "params", params, compare_shapes=True)
    layers = layers_lib.resolve_layer_axes(layer_axes, updates)
    count = optax.safe_increment(state.count)
    if nu_init == "first":
      # v_1 = ||g_1||^2 without a lax.cond: on the first step the old moment
      # (zeros) gets weight 0 and the new norm weight 1. Read from the new count
      # (1 exactly on the first step): a read of the donated old count after the
      # increment overwrote it would cost a GPU a copy kernel every step.
      decay = jnp.where(count == 1, 0.0, b2)
    else:
      decay = b2

    grads, treedef = jax.tree.flatten(updates)
    lays = treedef.flatten_up_to(layers)
    _check_moment_shapes(updates, lays, state.nu.layout.shapes)
    moments = [state.nu, state.nu_max] if amsgrad else [state.nu]

    def moment(squared, previous, previous_max=None):
      # Elementwise over layers: layer_layout runs it on one vector per dtype.
      # A float32 overflow of ||g||^2 (|g| ~ 1e20) leaves v = inf: that step's update
      # is g / inf = 0, but b2 * inf would then zero every later update of the layer,
      # silently and forever (and 0 * inf would be NaN for b2 = 0). An inf moment
      # restarts from the current gradient instead, as on the first step.
      restart = jnp.isposinf(previous)
      if nu_init == "first_nonzero":
        restart = restart | (previous == 0)
      # The moment's weights in the moment's dtype: jnp.where(count == 0, 0.0, b2) is
      # float64 under jax_enable_x64, and 1 - decay in float64 would change a float32
      # layer's moment by rounding. (A Python float b2 stays weakly typed.)
      d = decay.astype(previous.dtype) if isinstance(decay, jax.Array) else decay
      new = jnp.where(restart, squared, d * previous + (1 - d) * squared).astype(previous.dtype)
      if not amsgrad:
        return (new,)
      return new, jnp.where(jnp.isposinf(previous_max), new, jnp.maximum(previous_max, new))

    new_moments, inverses = layer_layout.stacked(
        moment, lambda v: _reciprocal_denominator(v, eps, eps_root), grads, lays, norm,
        axis_name, moments)

    def normalize(g, inverse, lay):
      inverse = jnp.expand_dims(inverse, lay.reduce_axes)
      compute = jnp.promote_types(g.dtype, inverse.dtype)
      return (g.astype(compute) * inverse).astype(g.dtype)

    updates = treedef.unflatten(map(normalize, grads, inverses, lays))
    return updates, ScaleByLayerwiseNormState(
        count=count, nu=new_moments[0],
        nu_max=new_moments[1] if amsgrad else None)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_moment_shapes(updates, lays, shapes) -> None:
  """Refuses updates whose layers differ from those ``init`` stored moments for (a
  stacked leaf with another number of layers): the moments are one vector, so a
  mismatch would otherwise pair layers with other layers' moments."""
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(updates)]
  grads = jax.tree.leaves(updates)
  for path, g, lay, shape in zip(paths, grads, lays, shapes, strict=True):
    if lay.moment_shape(jnp.shape(g)) != tuple(shape):
      raise ValueError(
          f"updates{path}: has layers of shape {lay.moment_shape(jnp.shape(g))} but the"
          f" optimizer state was initialized for {tuple(shape)}; pass updates shaped like"
          " the params given to init (or re-run init for the new params)")


def _reciprocal_denominator(moment, eps, eps_root):
  """1 / (sqrt(v + eps_root) + eps), once per layer: the per-element work is then a
  multiply (the optimized HLO of a division showed the same rewrite).

  With eps = eps_root = 0 a layer whose moment is 0 (all its gradients so far zero, or
  so small that their square underflows) would get g * (1/0) = 0 * inf = NaN; it is
  divided by 1 instead, so a zero layer gets a zero update as with any eps > 0. Only an
  exact zero is replaced: a NaN moment still poisons its layer.
  """
  denominator = jnp.sqrt(moment + eps_root) + eps
  return 1.0 / jnp.where(denominator == 0, 1.0, denominator)


def _is_optax_params_placeholder(params: Any) -> bool:
  """Whether ``params`` is the stand-in ``optax.tree_map_params`` initializes with
  (a private optax class, recognized by name so that no private import is needed)."""
  kind = type(params)
  return kind.__name__ == "_ParamsPlaceholder" and kind.__module__.startswith("optax")
