"""What one layer is, and its norm: shared by every layer-wise transformation.

Which axes of a pytree leaf index separate layers.

By default one pytree leaf is one layer. Models built with ``nn.scan``,
``nnx.scan`` or ``nnx.vmap`` stack the weights of ``L`` identical layers into one
leaf with a leading ``L`` axis; NovoGrad's per-layer norm must then be taken over
each slice, not over the whole stack. ``layer_axes`` names those stacking axes.

A ``layer_axes`` argument takes the same shapes optax accepts for masks:

* ``None`` or ``()``: the whole leaf is one layer;
* an ``int`` or a tuple of ``int``: those axes of *every* leaf index layers;
* a pytree whose structure is a prefix of the params, with such leaves;
* a callable of the params (or updates) returning one of the above.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Union

import jax
import jax.numpy as jnp

from novograd_optax._src import validation

LayerAxesSpec = Union[None, int, tuple[int, ...]]
LayerAxes = Union[LayerAxesSpec, Any, Callable[[Any], Any]]


@dataclasses.dataclass(frozen=True)
class LeafLayers:
  """The layout of one leaf: ``layer_axes`` index layers, ``reduce_axes`` are
  reduced to form each layer's norm. Not a pytree node, so it is a leaf."""

  layer_axes: tuple[int, ...]
  reduce_axes: tuple[int, ...]

  def moment_shape(self, leaf_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(leaf_shape[a] for a in self.layer_axes)


def is_axes_spec(x: Any) -> bool:
  return (
      x is None
      or (isinstance(x, int) and not isinstance(x, bool))
      or (isinstance(x, tuple) and all(
          isinstance(a, int) and not isinstance(a, bool) for a in x))
  )


def check_layer_axes(layer_axes: LayerAxes) -> None:
  """Fails at construction for leaves that can never be axes (e.g. a string), and
  for an array (what ``optax.inject_hyperparams`` makes of an int)."""
  validation.check_static(
      "layer_axes", layer_axes,
      "None, an int, a tuple of ints, a pytree prefix of the params with such leaves,"
      " or a callable returning one")
  if callable(layer_axes):
    return
  for spec in jax.tree.leaves(layer_axes, is_leaf=is_axes_spec):
    if not is_axes_spec(spec):
      raise TypeError(
          "layer_axes must be None, an int, a tuple of ints, a pytree prefix of"
          f" the params with such leaves, or a callable returning one; got {spec!r}.")


def _leaf_layers(spec: LayerAxesSpec, leaf: Any, path: str) -> LeafLayers:
  ndim = len(getattr(leaf, "shape", ()))
  axes = () if spec is None else (spec if isinstance(spec, tuple) else (spec,))
  normalized = []
  for axis in axes:
    if not -ndim <= axis < ndim:
      raise ValueError(
          f"layer_axes: axis {axis} is out of range for the leaf {path or '<root>'}"
          f" of shape {tuple(leaf.shape)}; accepted: integers in [{-ndim}, {ndim}).")
    normalized.append(axis % ndim)
  if len(set(normalized)) != len(normalized):
    raise ValueError(f"layer_axes: repeated axis in {spec!r} for the leaf {path}.")
  layer = tuple(sorted(normalized))
  reduce = tuple(a for a in range(ndim) if a not in layer)
  return LeafLayers(layer, reduce)


def resolve_layer_axes(layer_axes: LayerAxes, tree: Any) -> Any:
  """Returns a pytree shaped like ``tree`` with a :class:`LeafLayers` per leaf.

  Raises:
    ValueError: an axis is out of range for its leaf, or the structure of
      ``layer_axes`` is not a prefix of ``tree``.
    TypeError: ``layer_axes`` has leaves that are not ints or tuples of ints.
  """
  if callable(layer_axes):
    layer_axes = layer_axes(tree)

  def per_subtree(prefix_path, spec, subtree):
    if not is_axes_spec(spec):
      raise TypeError(
          "layer_axes must be None, an int, a tuple of ints, a pytree prefix of"
          f" the params with such leaves, or a callable returning one; got {spec!r}"
          f" at {jax.tree_util.keystr(prefix_path) or '<root>'}.")
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: _leaf_layers(
            spec, leaf, jax.tree_util.keystr(tuple(prefix_path) + tuple(path))),
        subtree)

  if is_axes_spec(layer_axes):
    return per_subtree((), layer_axes, tree)
  try:
    return jax.tree_util.tree_map_with_path(
        per_subtree, layer_axes, tree, is_leaf=is_axes_spec)
  except ValueError as err:
    if "layer_axes" in str(err):
      raise
    raise ValueError(
        "layer_axes: its pytree structure must be a prefix of the params'"
        f" structure ({err})") from err


def moment_dtype(dtype: Any) -> jnp.dtype:
  """The dtype of a layer's norm and second moment: the real type of ``dtype``, at
  least float32, so an fp16/bf16 layer with ``||g||^2 > 65504`` stays finite."""
  real = jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.inexact) else dtype
  # canonicalize: float64 NumPy params with x64 disabled get a float32 moment.
  return jax.dtypes.canonicalize_dtype(jnp.promote_types(real, jnp.float32))


def _squared_magnitude(g: jax.Array) -> jax.Array:
  """|g|^2 elementwise, computed in the moment dtype (no fp16 overflow)."""
  acc = moment_dtype(g.dtype)
  if jnp.iscomplexobj(g):
    return jnp.square(g.real.astype(acc)) + jnp.square(g.imag.astype(acc))
  return jnp.square(g.astype(acc))


def layer_squared_norms(
    g: jax.Array,
    leaf_layers: LeafLayers,
    norm: str,
    axis_name: Any = None,
) -> jax.Array:
  """||g||_2^2 (``norm="l2"``) or ||g||_inf^2 (``"linf"``) of each layer of a leaf.

  With ``axis_name``, the leaf is one shard of a leaf split over those mesh
  axes, and the partial sums (maxima) are all-reduced so every shard sees the
  norm of the whole layer.
  """
  squared = _squared_magnitude(g)
  if norm == "l2":
    per_layer = jnp.sum(squared, axis=leaf_layers.reduce_axes)
    if axis_name is not None:
      per_layer = jax.lax.psum(per_layer, axis_name)
  else:
    # initial=0 keeps zero-size layers well defined (||.||_inf of nothing is 0).
    per_layer = jnp.max(squared, axis=leaf_layers.reduce_axes, initial=0.0)
    if axis_name is not None:
      per_layer = jax.lax.pmax(per_layer, axis_name)
  return per_layer


def whole_leaf(leaf: Any) -> LeafLayers:
  """The layout of a leaf that is one layer."""
  return LeafLayers(layer_axes=(), reduce_axes=tuple(range(jnp.ndim(leaf))))


def global_squared_norm(updates: Any, axis_name: Any = None) -> jax.Array:
  """``sum_leaves ||g||^2`` accumulated in float32 or wider (no fp16 overflow).

  With ``axis_name``, every leaf is one shard of a leaf split over those mesh
  axes and the partial sums are ``psum``-ed.
  """
  total = jnp.zeros([], jnp.float32)
  for leaf in jax.tree.leaves(updates):
    total = total + layer_squared_norms(leaf, whole_leaf(leaf), "l2")
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
  return total
