"""How the per-layer values of one step are laid out for the compiler.

A layer-wise step reduces every leaf to its per-layer squared norms, updates one
moment per layer, and multiplies each leaf by the reciprocal of its layers'
denominators. The moment update and the reciprocal are elementwise over layers, so
they can run on each leaf's few values alone or on the values of many leaves gathered
into one vector: the same numbers, laid out differently. The layout that compiles best
depends on the target, so :func:`for_platform` picks one when the step is *lowered*
(``jax.lax.platform_dependent``), not when it is traced: a step traced on a CPU host
and compiled for a GPU or a TPU gets the accelerator's layout.

* **CPU** (:func:`per_leaf_on_cpu`): each leaf's moment update on its own, which
  XLA:CPU fuses into the kernel that reduces the leaf; the reciprocals of 8 leaves of
  a dtype on one small vector. XLA:CPU compiles a vector of many scalars whose slices
  feed as many fusions slowly (GPT-2, 148 leaves: ~20 s with groups of 64 against
  ~9 s with groups of 8).
* **GPU, TPU** (:func:`stacked`): all layers of a dtype on one vector, the moment
  update and reciprocal one fusion. XLA:GPU fuses neither a scalar moment update into
  its reduction nor sibling scalar fusions together, so per leaf it would cost ~2
  kernels a leaf (1.4-2 us each on an H100), and a TPU runs ~8 unfused scalar ops a
  leaf one after another on its scalar unit.

Only per-layer values (norms, moments, reciprocals) are ever gathered, never the
gradients (that would copy them, and gather a leaf that is sharded over devices). The
optimizer state keeps one moment per leaf, keyed like the params, on every platform,
so a checkpoint moves between platforms; on an accelerator, writing that state back
leaf by leaf costs one small kernel (GPU) or copy (TPU) per leaf.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

# The moment update: one array per column (the new squared norms, the old moment, and
# with AMSGrad the old maximum), all of one shape -> a tuple of new state arrays.
Moment = Callable[..., tuple[jax.Array, ...]]
# The reciprocal denominator of a moment, elementwise.
Reciprocal = Callable[[jax.Array], jax.Array]
# Per leaf: the new state arrays, then the reciprocal of the last one.
Results = list[tuple[jax.Array, ...]]

_CPU_RECIPROCALS_PER_VECTOR = 8


def per_leaf_on_cpu(moment: Moment, reciprocal: Reciprocal,
                    columns: Sequence[Sequence[jax.Array]]) -> Results:
  """The moment per leaf; the reciprocals on vectors of up to 8 leaves of a dtype."""
  states = [tuple(moment(*row)) for row in zip(*columns, strict=True)]
  inverses = _apply_stacked(lambda v: (reciprocal(v[0]),), [[s[-1] for s in states]],
                            group_size=_CPU_RECIPROCALS_PER_VECTOR)
  return [s + i for s, i in zip(states, inverses, strict=True)]


def stacked(moment: Moment, reciprocal: Reciprocal,
            columns: Sequence[Sequence[jax.Array]]) -> Results:
  """The moment and reciprocal once per dtype, on every leaf's values concatenated."""
  def both(values):
    new = tuple(moment(*values))
    return new + (reciprocal(new[-1]),)
  return _apply_stacked(both, columns, group_size=None)


def for_platform(moment: Moment, reciprocal: Reciprocal,
                 columns: Sequence[Sequence[jax.Array]]) -> Results:
  """:func:`per_leaf_on_cpu` when the step is lowered for a CPU, :func:`stacked` for
  any other platform."""
  columns = [list(column) for column in columns]
  return jax.lax.platform_dependent(
      columns,
      cpu=lambda cols: per_leaf_on_cpu(moment, reciprocal, cols),
      default=lambda cols: stacked(moment, reciprocal, cols))


def _apply_stacked(fn: Callable[[list[jax.Array]], tuple[jax.Array, ...]],
                   columns: Sequence[Sequence[jax.Array]],
                   group_size: int | None) -> Results:
  """``fn`` of each group's concatenated columns, split back into leaves. A group is
  the leaves whose columns have the same dtypes (at most ``group_size`` of them)."""
  by_dtypes: dict[Any, list[int]] = {}
  for i in range(len(columns[0])):
    by_dtypes.setdefault(tuple(jnp.result_type(col[i]) for col in columns), []).append(i)
  out: list[Any] = [None] * len(columns[0])
  for indices in by_dtypes.values():
    step = group_size or len(indices)
    for start in range(0, len(indices), step):
      group = indices[start:start + step]
      shapes = [jnp.shape(columns[0][i]) for i in group]
      vectors = [jnp.concatenate([jnp.ravel(col[i]) for i in group]) for col in columns]
      pieces = [_split(result, shapes) for result in fn(vectors)]
      for k, i in enumerate(group):
        out[i] = tuple(piece[k] for piece in pieces)
  return out


def _split(vector: jax.Array, shapes: Sequence[tuple[int, ...]]) -> list[jax.Array]:
  """Inverse of concatenating the ravelled pieces of the given shapes."""
  out, offset = [], 0
  for shape in shapes:
    size = math.prod(shape)
    out.append(jax.lax.slice_in_dim(vector, offset, offset + size).reshape(shape))
    offset += size
  return out
