"""How the per-layer values of one step are laid out for the compiler.

A layer-wise step reduces every leaf to its per-layer squared norms, updates one
moment per layer, and multiplies each leaf by the reciprocal of its layers'
denominators. The moment update and the reciprocal are elementwise over layers, so
they run once per dtype on one vector: the squared norms of every leaf concatenated,
next to the moments stored the same way (:mod:`layer_moments`). The result is one
fusion that writes one state buffer, whatever the number of leaves.

Why one layout for every platform (measured 2026-12-02, jax 0.10.2; the performance
page has the numbers): the per-leaf alternative costs an H100 about two kernels a
leaf (XLA:GPU fuses neither a scalar moment update into its reduction nor sibling
scalar fusions, nor many tiny state writes) and a TPU ~8 unfused scalar ops a leaf,
run one after another on its scalar unit. On a CPU the per-leaf moment fused into
each reduction (the layout of 0.2.0 and before) compiled to more operations than this
one; with the moments stored as vectors, it would also have to slice and re-assemble
them, and compiled to more still.

How the squared norms themselves are reduced is the one platform-dependent piece
(:mod:`layer_norms`). Only per-layer values (norms, partial norms, moments,
reciprocals) are ever gathered, never the gradients (that would copy them, and gather
a leaf that is sharded over devices).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

from novograd_optax._src import layer_moments, layer_norms
from novograd_optax._src import layers as layers_lib
from novograd_optax._src.layer_moments import LayerMoments

# The moment update: one array per column (the new squared norms, the old moment, and
# with AMSGrad the old maximum), all of one shape -> a tuple of new state arrays.
Moment = Callable[..., tuple[jax.Array, ...]]
# The reciprocal denominator of a moment, elementwise.
Reciprocal = Callable[[jax.Array], jax.Array]


def stacked(moment: Moment, reciprocal: Reciprocal, grads: Sequence[jax.Array],
            leaf_layers: Sequence[layers_lib.LeafLayers], norm: str, axis_name: Any,
            moments: Sequence[LayerMoments]) -> tuple[list[LayerMoments], list[jax.Array]]:
  """The per-layer squared norms of every leaf, then the moment update and reciprocal
  once per dtype on them, stacked.

  Args:
    moment: the moment update, elementwise over layers.
    reciprocal: the reciprocal denominator of the last state ``moment`` returns.
    grads: the leaves, in the params' leaf order.
    leaf_layers: each leaf's layer and reduced axes.
    norm: ``"l2"`` or ``"linf"``.
    axis_name: mesh axes the leaves are split over (the norms are all-reduced, once
      per dtype), or None.
    moments: the stored state (``nu``, and ``nu_max`` with AMSGrad), of one layout.

  Returns:
    The new state, one :class:`LayerMoments` per entry of ``moments``, and per leaf
    the reciprocal denominators of its layers (of the moment's dtype).
  """
  layout = moments[0].layout
  vectors: list[list[jax.Array]] = [[] for _ in moments]
  inverses: list = [None] * len(grads)
  for k, dtype in enumerate(layout.dtypes):
    indices = layout.leaves_of(k)
    norms = layer_norms.group_squared_norms(
        [grads[i] for i in indices], [leaf_layers[i] for i in indices], norm, dtype)
    if axis_name is not None:
      norms = layers_lib.all_reduce_squared(norms, axis_name, norm)
    new = moment(norms, *(m.vectors[k] for m in moments))
    for column, vector in zip(vectors, new, strict=True):
      column.append(vector)
    pieces = layer_moments.split(reciprocal(new[-1]), [layout.shapes[i] for i in indices])
    for i, piece in zip(indices, pieces, strict=True):
      inverses[i] = piece
  return [LayerMoments(v, layout) for v in vectors], inverses
