"""Which axes of a pytree leaf index separate layers.

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
  """Fails at construction for leaves that can never be axes (e.g. a string)."""
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
