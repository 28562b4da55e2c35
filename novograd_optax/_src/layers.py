"""What one layer is, and its norm: shared by every layer-wise transformation.

Which axes of a pytree leaf index separate layers.

By default one pytree leaf is one layer. Models built with ``nn.scan``,
``nnx.scan`` or ``nnx.vmap`` stack the weights of ``L`` identical layers into one
leaf with a leading ``L`` axis; NovoGrad's per-layer norm must then be taken over
each slice, not over the whole stack. ``layer_axes`` names those stacking axes.

A ``layer_axes`` argument takes the same shapes optax accepts for masks:

* ``None`` or ``()``: the whole leaf is one layer;
* an ``int`` or a tuple of ``int``: those axes of *every* leaf index layers;
* a pytree whose structure is a prefix of the params, with such leaves; a
  mapping prefix (a dict) is matched by key names, so it also fits an
  ``nnx.State`` or any other mapping-like container of the params;
* a callable of the params (or updates) returning one of the above.

:func:`~novograd_optax.layer_axes_from_flax` builds the prefix from Flax's own
partitioning metadata, and :func:`~novograd_optax.decay_mask` uses a layout to
decay only each layer's weight matrices.
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


_ACCEPTED = ("None, an int, a tuple of ints, a pytree prefix of the params with such"
             " leaves, or a callable returning one")


def _bad_spec_message(spec: Any, where: str = "") -> str:
  message = f"layer_axes must be {_ACCEPTED}; got {spec!r}{where}."
  if isinstance(spec, str):
    # A logical axis name is what a Flax user has at hand; say where it goes.
    message += (
        " A Flax partition name such as 'layers' is read from the model's metadata by"
        " novograd_optax.layer_axes_from_flax(nnx.state(model, nnx.Param), "
        f"{spec!r}) (Linen: its boxed params), whose result is passed as layer_axes.")
  return message


def check_layer_axes(layer_axes: LayerAxes) -> None:
  """Fails at construction for leaves that can never be axes (e.g. a string), and
  for an array (what ``optax.inject_hyperparams`` makes of an int)."""
  validation.check_static("layer_axes", layer_axes, _ACCEPTED)
  if callable(layer_axes):
    return
  for spec in jax.tree.leaves(layer_axes, is_leaf=is_axes_spec):
    if not is_axes_spec(spec):
      raise TypeError(_bad_spec_message(spec))


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


def _key_name(key: Any) -> Any:
  """The name in a key-path entry, whatever container made it: a dict key, an
  attribute name (``nnx.Variable``'s ``value``), a sequence index."""
  for field in ("key", "name", "idx"):
    if hasattr(key, field):
      return getattr(key, field)
  return key


def _path_text(names: tuple[Any, ...]) -> str:
  return "".join(f"[{n!r}]" for n in names) or "<root>"


def _resolve_by_key_names(layer_axes: Any, tree: Any) -> Any:
  """Matches a prefix to ``tree`` by the names along key paths, not by container
  types: ``{"blocks": 0}`` fits an ``nnx.State``, a ``FrozenDict``, a dict of
  ``nnx.Variable`` or of ``nn.Partitioned`` boxes alike, none of which have a
  dict's pytree structure. Each entry must name something in ``tree`` and each
  leaf of ``tree`` must fall under exactly one entry."""
  entries = []
  for path, spec in jax.tree_util.tree_flatten_with_path(layer_axes, is_leaf=is_axes_spec)[0]:
    names = tuple(_key_name(k) for k in path)
    if not is_axes_spec(spec):
      raise TypeError(_bad_spec_message(spec, f" at {_path_text(names)}"))
    entries.append((names, spec))
  leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(tree)
  leaf_names = [tuple(_key_name(k) for k in path) for path, _ in leaves_with_paths]

  for names, _ in entries:
    if any(leaf[:len(names)] == names for leaf in leaf_names):
      continue
    # Name the first key that leads nowhere, and what exists at that level.
    depth = max(d for d in range(len(names) + 1)
                if any(leaf[:d] == names[:d] for leaf in leaf_names))
    present = sorted({repr(leaf[depth]) for leaf in leaf_names
                      if leaf[:depth] == names[:depth] and len(leaf) > depth})
    raise ValueError(
        f"layer_axes: the key {names[depth]!r} (at {_path_text(names[:depth + 1])})"
        " matches nothing in the params; the keys there are"
        f" {', '.join(present) or 'none'}. Fix the key, or give layer_axes as a"
        " callable of the params.")

  layouts = []
  for (path, leaf), names in zip(leaves_with_paths, leaf_names, strict=True):
    specs = [spec for prefix, spec in entries if names[:len(prefix)] == prefix]
    if not specs:
      raise ValueError(
          f"layer_axes: no entry covers the params leaf {_path_text(names)}; a prefix"
          " must cover every leaf (None: the leaf is one layer). Add an entry for"
          f" {names[0]!r}, or give layer_axes as a callable of the params.")
    layouts.append(_leaf_layers(specs[0], leaf, jax.tree_util.keystr(path)))
  return jax.tree_util.tree_unflatten(treedef, layouts)


def resolve_layer_axes(layer_axes: LayerAxes, tree: Any) -> Any:
  """Returns a pytree shaped like ``tree`` with a :class:`LeafLayers` per leaf.

  Raises:
    ValueError: an axis is out of range for its leaf, or ``layer_axes`` is a
      pytree that does not fit ``tree`` (a key that matches nothing is named).
    TypeError: ``layer_axes`` has leaves that are not ints or tuples of ints.
  """
  if callable(layer_axes):
    layer_axes = layer_axes(tree)

  def per_subtree(prefix_path, spec, subtree):
    if not is_axes_spec(spec):
      raise TypeError(_bad_spec_message(
          spec, f" at {jax.tree_util.keystr(prefix_path) or '<root>'}"))
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
    # Not a structural prefix (e.g. a dict for an nnx.State, or a typo in a key):
    # match by key names, which either fits or names the key that does not.
    return _resolve_by_key_names(layer_axes, tree)


def moment_dtype(dtype: Any) -> jnp.dtype:
  """The dtype of a layer's norm and second moment: the real type of ``dtype``, at
  least float32, so an fp16/bf16 layer with ``||g||^2 > 65504`` stays finite."""
  real = jnp.finfo(dtype).dtype if jnp.issubdtype(dtype, jnp.inexact) else dtype
  # canonicalize: float64 NumPy params with x64 disabled get a float32 moment.
  return jax.dtypes.canonicalize_dtype(jnp.promote_types(real, jnp.float32))


def squared_magnitude(g: jax.Array) -> jax.Array:
  """|g|^2 elementwise, computed in the moment dtype (no fp16 overflow)."""
  acc = moment_dtype(g.dtype)
  if jnp.iscomplexobj(g):
    return jnp.square(g.real.astype(acc)) + jnp.square(g.imag.astype(acc))
  return jnp.square(g.astype(acc))


def reduce_squared(squared: jax.Array, axes: Any, norm: str) -> jax.Array:
  """The sum (``norm="l2"``) or the maximum (``"linf"``) of squared magnitudes over
  ``axes``."""
  if norm == "l2":
    return jnp.sum(squared, axis=axes)
  # initial=0 keeps zero-size layers well defined (||.||_inf of nothing is 0).
  return jnp.max(squared, axis=axes, initial=0.0)


def all_reduce_squared(per_layer: jax.Array, axis_name: Any, norm: str) -> jax.Array:
  """Partial squared norms of the shards of a leaf split over ``axis_name`` combined
  into the whole layer's: summed for ``"l2"``, the maximum for ``"linf"``."""
  if norm == "l2":
    return jax.lax.psum(per_layer, axis_name)
  return jax.lax.pmax(per_layer, axis_name)


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
  per_layer = reduce_squared(squared_magnitude(g), leaf_layers.reduce_axes, norm)
  if axis_name is not None:
    per_layer = all_reduce_squared(per_layer, axis_name, norm)
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


def decay_mask(layer_axes: LayerAxes = None, *, min_ndim: int = 2) -> Callable[[Any], Any]:
  """A ``weight_decay_mask`` that decays each layer's weight matrices only.

  A leaf is decayed when one layer's slice of it has at least ``min_ndim`` axes:
  kernels, convolution filters and embeddings, stacked or not; not biases, norm
  scales or per-layer scalars. The slice is the leaf without its ``layer_axes``,
  so a scanned bias of shape ``(L, n)`` is ``L`` vectors, not a matrix (the rule
  ``x.ndim > 1`` would decay it).

  Example:
    >>> import jax.numpy as jnp
    >>> from novograd_optax import decay_mask
    >>> params = {"blocks": {"kernel": jnp.ones((4, 8, 8)), "bias": jnp.ones((4, 8))},
    ...           "head": {"kernel": jnp.ones((8, 2)), "bias": jnp.ones(2)}}
    >>> decay_mask({"blocks": 0, "head": None})(params)
    {'blocks': {'bias': False, 'kernel': True}, 'head': {'bias': False, 'kernel': True}}

  Args:
    layer_axes: the layout the optimizer is given (the same value: an int, a
      tuple, a pytree prefix such as the result of
      :func:`~novograd_optax.layer_axes_from_flax`, or a callable); ``None``: each
      leaf is one layer.
    min_ndim: the least number of axes of a layer's slice that is decayed.

  Returns:
    A callable of the params returning a pytree of bools shaped like them, to
    pass as ``weight_decay_mask`` (or as ``optax.masked``'s mask).

  Raises:
    TypeError: ``min_ndim`` is not an int, or ``layer_axes`` is not a layout.
    ValueError: ``min_ndim`` is negative.
  """
  if isinstance(min_ndim, bool) or not isinstance(min_ndim, int):
    raise TypeError(f"min_ndim must be an int, the least rank of a decayed layer; got"
                    f" {min_ndim!r}.")
  if min_ndim < 0:
    raise ValueError(f"min_ndim must be >= 0; got {min_ndim!r}.")
  check_layer_axes(layer_axes)

  def mask(params: Any) -> Any:
    return jax.tree.map(lambda lay: len(lay.reduce_axes) >= min_ndim,
                        resolve_layer_axes(layer_axes, params))

  return mask
