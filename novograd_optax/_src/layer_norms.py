"""The per-layer squared norms of a group of leaves: one reduction strategy per platform.

The math is the same everywhere, ``||g_layer||^2`` (or ``||g_layer||_inf^2``) of each
layer of each leaf, in the params' leaf order; only how the reductions are split into
kernels differs, chosen when the step is lowered (``jax.lax.platform_dependent``: at
trace time ``jax.default_backend()`` says "cpu" even for a step compiled for a GPU):

* **one pass** (CPU and TPU): each leaf reduced on its own. XLA:CPU fuses the squaring
  into the reduction; on a TPU slice with sharded (FSDP) leaves each reduction stays on
  its shards and XLA combines every leaf's all-reduce into one. (Two stages would not
  lower a TPU's op count: each leaf's first stage is a fusion of its own there too.)
* **two stages** (GPU): XLA:GPU launches a kernel per reduction, and a second one for a
  leaf longer than a few thousand elements (its tree-reduction rewrite). Here each
  leaf's last axis is reduced first (a row reduction, one kernel), and the partials of
  all leaves with the same remaining shape are stacked and finished together: about
  one kernel per leaf plus one per partial shape (measured on the performance page).
  The leaves are never reshaped, so a sharded leaf's partials keep its sharding and
  nothing is gathered (checked compiled for eight GPUs with FSDP).

Both return the same values up to float round-off (the order of the additions
differs; tested). Neither concatenates a gradient: only partial norms are stacked.
Not a scatter-add either: the GPU result does not depend on the order of atomics.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from novograd_optax._src import layers as layers_lib


def group_squared_norms(grads: Sequence[jax.Array],
                        leaf_layers: Sequence[layers_lib.LeafLayers], norm: str,
                        dtype: DTypeLike) -> jax.Array:
  """Every layer's squared norm of ``grads`` (one dtype group), concatenated in leaf
  order, in ``dtype``; the strategy is the one of the platform the step is lowered for."""
  grads = list(grads)
  one = functools.partial(one_pass, leaf_layers=leaf_layers, norm=norm, dtype=dtype)
  two = functools.partial(two_stages, leaf_layers=leaf_layers, norm=norm, dtype=dtype)
  return jax.lax.platform_dependent(grads, cuda=two, rocm=two, default=one)


def one_pass(grads: Sequence[jax.Array], leaf_layers: Sequence[layers_lib.LeafLayers],
             norm: str, dtype: DTypeLike) -> jax.Array:
  """Each leaf's layers reduced in one reduction per leaf."""
  return jnp.concatenate([
      _replicated(jnp.ravel(layers_lib.layer_squared_norms(g, lay, norm)).astype(dtype))
      for g, lay in zip(grads, leaf_layers, strict=True)])


def two_stages(grads: Sequence[jax.Array], leaf_layers: Sequence[layers_lib.LeafLayers],
               norm: str, dtype: DTypeLike) -> jax.Array:
  """Each leaf reduced to partials of shape ``(layers, *parts)``, then the partials of
  all leaves with the same ``parts`` shape stacked and finished in one reduction per
  shape."""
  partials = [layer_partials(g, lay, norm).astype(dtype)
              for g, lay in zip(grads, leaf_layers, strict=True)]
  # Bucketed by shape and, under explicit sharding, by sharding too: jnp.concatenate
  # accepts only operands sharded alike there.
  buckets: dict[tuple, list[int]] = {}
  for i, p in enumerate(partials):
    buckets.setdefault((p.shape[1:], _spec(p)), []).append(i)
  per_leaf: list = [None] * len(partials)
  for (parts, _), members in buckets.items():
    if not parts:  # already one value per layer
      for i in members:
        per_leaf[i] = _replicated(partials[i])
      continue
    # Stacked along the layers, never reshaped: a partial keeps the sharding of its
    # leaf's axes, so the finish is a local reduction plus the all-reduce XLA combines
    # with every other, and no partial is gathered.
    rows = jnp.concatenate([partials[i] for i in members])
    axes = tuple(range(1, rows.ndim))
    done = _replicated(layers_lib.reduce_squared(rows, axes, norm))
    offset = 0
    for i in members:
      per_leaf[i] = done[offset:offset + partials[i].shape[0]]
      offset += partials[i].shape[0]
  return jnp.concatenate(per_leaf)


def _spec(x: jax.Array) -> tuple:
  """The partition spec of ``x`` under explicit sharding; all ``None`` otherwise."""
  return tuple(jax.typeof(x).sharding.spec)


def _replicated(norms: jax.Array) -> jax.Array:
  """``norms`` (one value per layer) replicated. Only under explicit sharding, with the
  layer axis of a stacked leaf sharded, is this a gather, of the norms only; the
  vectors of every leaf can then be concatenated."""
  if all(s is None for s in _spec(norms)):
    return norms
  return jax.sharding.reshard(norms, jax.sharding.PartitionSpec())


def layer_partials(g: jax.Array, leaf_layers: layers_lib.LeafLayers, norm: str) -> jax.Array:
  """Partial squared norms (``"l2"``: sums; ``"linf"``: maxima) of each layer of a leaf,
  shape ``(layers, *parts)``: reducing the ``parts`` axes gives
  :func:`~novograd_optax._src.layers.layer_squared_norms`.

  Only the leaf's last axis is reduced here (a row reduction, one kernel); its other
  reduced axes are left as ``parts``, and the layer axes are moved to the front and
  merged. No reduced axis is merged with another, so a partial keeps the sharding of
  its leaf's axes. A leaf whose last axis indexes layers, or a vector, is reduced
  whole (no parts).
  """
  squared = layers_lib.squared_magnitude(g)
  shape = squared.shape
  layers = math.prod(shape[a] for a in leaf_layers.layer_axes)
  last = len(shape) - 1
  if len(shape) < 2 or last not in leaf_layers.reduce_axes:
    return layers_lib.reduce_squared(squared, leaf_layers.reduce_axes, norm).reshape(layers)
  partial = layers_lib.reduce_squared(squared, last, norm)
  parts = [a for a in range(last) if a not in leaf_layers.layer_axes]
  partial = jnp.transpose(partial, list(leaf_layers.layer_axes) + parts)
  return partial.reshape((layers,) + tuple(shape[a] for a in parts))
