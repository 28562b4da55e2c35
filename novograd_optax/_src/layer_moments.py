"""How the per-layer moments are stored: one vector per dtype, viewed per layer.

NovoGrad keeps one second moment per layer (a scalar per leaf, or one value per
stacked layer with ``layer_axes``). Stored as one small array per leaf, the state
costs an accelerator one kernel (GPU) or copy (TPU) per leaf on every step just to
write those arrays back: XLA:GPU does not fuse many tiny outputs into one kernel.
Stored as one vector per dtype, in the params' leaf order, the whole moment update is
one fusion writing one buffer.

:class:`LayerMoments` is that storage: a pytree whose children are the vectors (so
checkpointing, sharding and ``jax.tree`` utilities see a few small arrays) and whose
static part records each leaf's moment shape, so :meth:`LayerMoments.per_layer`
gives the values keyed like the params for users, monitoring and tests. The layout
is the same on every platform: a checkpoint written on a TPU resumes on a CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Layout(NamedTuple):
  """The static part of :class:`LayerMoments` (hashable, compared by value).

  Attributes:
    treedef: the tree structure of the params.
    shapes: per leaf (in ``treedef`` order), the shape of its moment.
    groups: per leaf, the index into ``dtypes`` of the vector holding it.
    dtypes: the dtype name of each vector.
  """

  treedef: Any
  shapes: tuple[tuple[int, ...], ...]
  groups: tuple[int, ...]
  dtypes: tuple[str, ...]

  def skeleton(self) -> Any:
    """A tree of the params' structure with a placeholder per leaf (for structure
    checks; costs nothing in a step)."""
    return self.treedef.unflatten([0] * len(self.shapes))

  def leaves_of(self, group: int) -> list[int]:
    """The leaves stored in vector ``group``, in order."""
    return [i for i, g in enumerate(self.groups) if g == group]


@jax.tree_util.register_pytree_with_keys_class
class LayerMoments:
  """Per-layer moments of a params tree, stored as one vector per dtype.

  ``vectors[k]`` holds, in the params' leaf order, the moments of every leaf whose
  moment has dtype ``layout.dtypes[k]``, each leaf's moment ravelled.
  :meth:`per_layer` gives them back keyed like the params: a scalar per leaf, or an
  array of the shape of the leaf's layer axes. A checkpoint of an earlier release
  (one array per leaf) converts with :meth:`from_per_layer`.
  """

  __slots__ = ("vectors", "layout")

  def __init__(self, vectors: Sequence[Any], layout: Layout):
    self.vectors = tuple(vectors)
    self.layout = layout

  @classmethod
  def from_per_layer(cls, tree: Any) -> LayerMoments:
    """The moments of ``tree`` (keyed like the params, one array of per-layer values
    per leaf) stored as vectors."""
    leaves, treedef = jax.tree.flatten(tree)
    dtypes: list[str] = []
    groups = []
    for leaf in leaves:
      name = jnp.dtype(leaf.dtype).name
      if name not in dtypes:
        dtypes.append(name)
      groups.append(dtypes.index(name))
    layout = Layout(treedef, tuple(tuple(np.shape(x)) for x in leaves), tuple(groups),
                    tuple(dtypes))
    return cls(_concatenate(leaves, layout), layout)

  def per_leaf(self) -> list[Any]:
    """The moments of each leaf, in the params' leaf order."""
    out: list[Any] = [None] * len(self.layout.shapes)
    for k, vector in enumerate(self.vectors):
      indices = self.layout.leaves_of(k)
      for i, piece in zip(indices, split(vector, [self.layout.shapes[i] for i in indices]),
                          strict=True):
        out[i] = piece
    return out

  def per_layer(self) -> Any:
    """The moments keyed like the params."""
    return self.layout.treedef.unflatten(self.per_leaf())

  def tree_flatten_with_keys(self):
    keys = [jax.tree_util.DictKey(name) for name in self.layout.dtypes]
    return list(zip(keys, self.vectors, strict=True)), self.layout

  def tree_flatten(self):
    return self.vectors, self.layout

  @classmethod
  def tree_unflatten(cls, layout: Layout, vectors: Sequence[Any]) -> LayerMoments:
    return cls(vectors, layout)

  def __repr__(self) -> str:
    if all(hasattr(v, "shape") and hasattr(v, "dtype") for v in self.vectors):
      return f"LayerMoments({self.per_layer()!r})"
    # Leaves that cannot be sliced (shardings, placeholders): show them as stored.
    return f"LayerMoments({dict(zip(self.layout.dtypes, self.vectors, strict=True))!r})"


def from_per_leaf(leaves: Sequence[Any], layout: Layout) -> LayerMoments:
  """:class:`LayerMoments` of ``layout`` from each leaf's moment, in leaf order."""
  return LayerMoments(_concatenate(leaves, layout), layout)


def _concatenate(leaves: Sequence[Any], layout: Layout) -> list[jax.Array]:
  return [jnp.concatenate([jnp.ravel(leaves[i]).astype(dtype)
                           for i in layout.leaves_of(k)])
          for k, dtype in enumerate(layout.dtypes)]


def split(vector: Any, shapes: Sequence[tuple[int, ...]]) -> list[jax.Array]:
  """Inverse of concatenating the ravelled pieces of the given shapes."""
  out, offset = [], 0
  for shape in shapes:
    size = math.prod(shape)
    out.append(jax.lax.slice_in_dim(vector, offset, offset + size).reshape(shape))
    offset += size
  return out
