"""Stacked layers read from Flax's partitioning metadata.

Flax already records which axis of a scanned or vmapped parameter stacks layers:
``nnx.vmap``/``nnx.scan`` with ``transform_metadata={nnx.PARTITION_NAME: "layers"}``
inserts ``"layers"`` into each annotated ``nnx.Variable``'s ``out_sharding``, and
Linen's ``nn.scan(metadata_params={nn.PARTITION_NAME: "layers"})`` into the names of
each ``nn.Partitioned`` box. :func:`layer_axes_from_flax` turns those names into a
``layer_axes`` prefix, so the optimizer's layout follows the model's own.

Flax is imported only when the tree holds a Flax type (it is an optional
dependency): a tree of plain arrays never imports it.
"""

from __future__ import annotations

import sys
from typing import Any

import jax

# Metadata keys under which Flax versions keep a Variable's axis names: 0.11+
# uses ``out_sharding``; 0.10 ``sharding_names``; older ``sharding``.
_NNX_SHARDING_KEYS = ("out_sharding", "sharding_names", "sharding")

_NOT_ANNOTATED = object()


def _flax_box_types() -> tuple[type, ...]:
  """The Flax containers that carry axis names, if Flax is already imported.

  A tree can only hold a Flax object once Flax is imported, so checking
  ``sys.modules`` keeps Flax optional without importing it here.
  """
  types: list[type] = []
  if "flax.nnx" in sys.modules:
    nnx = sys.modules["flax.nnx"]
    types.append(nnx.Variable)
    # What nnx.state holds before Flax 0.12 (later only a deprecated alias of
    # Variable, reached through the module's __getattr__: vars() skips it).
    variable_state = vars(nnx).get("VariableState")
    if isinstance(variable_state, type):
      types.append(variable_state)
  if "flax.core.meta" in sys.modules:
    types.append(sys.modules["flax.core.meta"].Partitioned)
  return tuple(types)


def unwrap_variables(tree: Any) -> Any:
  """Replaces Flax NNX ``Variable`` leaves (``nnx.Optimizer`` wraps every array of
  its state in one) by their arrays, so that paths name the layers, without a
  trailing ``.value``. Flax is not a dependency: without it nothing is wrapped."""
  nnx = sys.modules.get("flax.nnx")
  variable_type = getattr(nnx, "Variable", None)
  if variable_type is None:
    return tree

  def value(x):
    return x.get_value() if hasattr(x, "get_value") else x.value

  return jax.tree.map(
      lambda x: value(x) if isinstance(x, variable_type) else x, tree,
      is_leaf=lambda x: isinstance(x, variable_type))


def _axis_names(node: Any, box_types: tuple[type, ...]) -> Any:
  """The per-axis names of a Flax box, or ``_NOT_ANNOTATED``."""
  if not (box_types and isinstance(node, box_types)):
    return _NOT_ANNOTATED
  names = getattr(node, "names", None)  # nn.Partitioned (and LogicallyPartitioned)
  if names is None:  # nnx.Variable (or VariableState)
    metadata = node.get_metadata() if hasattr(node, "get_metadata") else {}
    for key in _NNX_SHARDING_KEYS:
      if metadata.get(key):
        names = metadata[key]
        break
  if not names:
    return _NOT_ANNOTATED
  return tuple(names)


def _path_text(path: tuple[Any, ...]) -> str:
  return jax.tree_util.keystr(path) or "<root>"


def layer_axes_from_flax(tree: Any, axis_name: str = "layers") -> Any:
  """The ``layer_axes`` of a Flax model's params, read from their axis names.

  Every parameter whose partitioning metadata names ``axis_name`` gets that axis
  (or those axes) as its layer axes; every other annotated parameter is one
  layer. Pass the result as ``layer_axes`` to :func:`~novograd_optax.novograd`
  (and :func:`~novograd_optax.decay_mask`); it is a pytree prefix that also fits
  the plain arrays ``nnx.Optimizer`` passes to ``update``.

  Example (Flax NNX; Linen: pass the boxed ``variables["params"]``)::

    layer_axes = layer_axes_from_flax(nnx.state(model, nnx.Param), "layers")
    optimizer = nnx.Optimizer(model, novograd(1e-2, layer_axes=layer_axes),
                              wrt=nnx.Param)

  Args:
    tree: the params with their metadata: for NNX, ``nnx.state(model, wrt)``
      (the ``wrt`` filter given to ``nnx.Optimizer``, by default ``nnx.Param``) or
      the model itself (its ``nnx.Param`` state is taken); for Linen, the params
      before ``nn.unbox`` (``nn.Partitioned`` boxes).
    axis_name: the partition name the model's ``nnx.vmap``/``nnx.scan``
      (``transform_metadata={nnx.PARTITION_NAME: axis_name}``) or ``nn.scan``
      (``metadata_params={nn.PARTITION_NAME: axis_name}``) was given.

  Returns:
    A pytree shaped like ``tree`` with each parameter replaced by its layer axes:
    an int, a tuple of ints, or ``None`` (the parameter is one layer).

  Raises:
    TypeError: ``axis_name`` is not a string.
    ValueError: no parameter names ``axis_name``; or a parameter carries no axis
      names but sits in a subtree whose annotated parameters are all stacked, so
      whether it is stacked cannot be told (annotate it, or pass ``layer_axes``
      a prefix or a callable instead).
  """
  if not isinstance(axis_name, str):
    raise TypeError(
        f"axis_name must be a string, the partition name given to nnx.vmap/nnx.scan"
        f" (transform_metadata) or nn.scan (metadata_params); got {axis_name!r}.")
  if "flax.nnx" in sys.modules and isinstance(tree, sys.modules["flax.nnx"].Module):
    nnx = sys.modules["flax.nnx"]
    tree = nnx.state(tree, nnx.Param)
  box_types = _flax_box_types()
  is_box = lambda x: bool(box_types) and isinstance(x, box_types)

  entries, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_box)
  names = [_axis_names(node, box_types) for _, node in entries]
  stacked = [n is not _NOT_ANNOTATED and axis_name in n for n in names]
  if not any(stacked):
    annotated = [n for n in names if n is not _NOT_ANNOTATED]
    raise ValueError(
        f"layer_axes_from_flax: no parameter names the axis {axis_name!r}"
        + (f" (the annotated ones name {sorted({a for n in annotated for a in n if a})})"
           if annotated else " (none carries partitioning metadata)")
        + ". Give nnx.vmap/nnx.scan transform_metadata={nnx.PARTITION_NAME:"
        f" {axis_name!r}}} (Linen: nn.scan(metadata_params={{nn.PARTITION_NAME:"
        f" {axis_name!r}}})) and annotate the layer's parameters (nnx.with_partitioning,"
        " nn.with_partitioning); for Linen pass the params before nn.unbox.")

  def in_all_stacked_subtree(index: int) -> bool:
    # Walk up from the parameter to the nearest proper subtree that holds an
    # annotated parameter: if all of those are stacked, this one most likely is
    # too (a LayerNorm scale next to an annotated kernel in a scanned block).
    path = entries[index][0]
    for depth in range(len(path) - 1, 0, -1):
      near = [j for j, (other, _) in enumerate(entries)
              if other[:depth] == path[:depth] and names[j] is not _NOT_ANNOTATED]
      if near:
        return all(stacked[j] for j in near)
    return False

  layer_axes: list[Any] = []
  for index, ((path, _), node_names) in enumerate(zip(entries, names, strict=True)):
    if node_names is _NOT_ANNOTATED:
      if in_all_stacked_subtree(index):
        raise ValueError(
            f"layer_axes_from_flax: the parameter {_path_text(path)} carries no axis"
            f" names, but the annotated parameters next to it are stacked along"
            f" {axis_name!r}, so it probably is too. Annotate it (NNX: e.g."
            " nnx.with_partitioning(init, (None,)) or scale_metadata/kernel_metadata="
            "{'out_sharding': (None,)}; Linen: nn.with_partitioning(init, (None,))) so"
            f" that {axis_name!r} is inserted into its names, or pass layer_axes a"
            " pytree prefix (e.g. {'blocks': 0, 'head': None}) or a callable of the"
            " params instead.")
      layer_axes.append(None)
      continue
    axes = tuple(i for i, n in enumerate(node_names) if n == axis_name)
    layer_axes.append(None if not axes else axes[0] if len(axes) == 1 else axes)
  return jax.tree_util.tree_unflatten(treedef, layer_axes)
