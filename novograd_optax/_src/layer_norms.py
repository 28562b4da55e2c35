"""The per-layer squared norms of a group of leaves: one reduction strategy per platform.

The math is the same everywhere, ``||g_layer||^2`` (or ``||g_layer||_inf^2``) of each
layer of each leaf, in the params' leaf order; only how the reductions are split into
kernels differs, chosen when the step is lowered (``jax.lax.platform_dependent``: at
trace time ``jax.default_backend()`` says "cpu" even for a step compiled for a GPU):

* **grouped** (GPU): the leaves of one shape and layout (a transformer's blocks, a
  ResNet's repeated convolutions) reduced by one multi-operand reduction, which XLA
  compiles to one kernel reading every member in place. XLA:GPU launches a kernel per
  single reduction (two for a leaf longer than a few thousand elements), so this takes
  GPT-2's norms from about 300 kernels to 15; it then also fuses the leaves' updates
  into shared kernels (the counts are on the performance page).
* **grouped, stacked leaves alone** (TPU, CPU): the same, except that a leaf with layer
  axes is reduced on its own. On a TPU slice with FSDP a stacked leaf is sharded along
  a reduced axis, and XLA's partitioner finishes a multi-operand reduction over a
  sharded axis by gathering every member's partial, a vector per device for a stacked
  leaf; XLA:CPU compiles a multi-operand reduction that keeps an axis to a slow loop
  (a scanned GPT-2's step took twice as long).

Both return the same values up to float round-off (the order of the additions differs;
tested). None concatenates or gathers a gradient: a multi-operand reduction reads each
leaf where it is, so a sharded leaf stays on its shards and only per-layer values are
ever gathered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

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
  chosen = {platform: functools.partial(strategy, leaf_layers=leaf_layers, norm=norm,
                                        dtype=dtype)
            for platform, strategy in STRATEGIES.items()}
  return jax.lax.platform_dependent(grads, **chosen)


def grouped(grads: Sequence[jax.Array], leaf_layers: Sequence[layers_lib.LeafLayers],
            norm: str, dtype: DTypeLike, *, group_stacked: bool = True,
            max_group: int | None = None) -> jax.Array:
  """The leaves with the same shape and reduced axes (GPT-2's twelve blocks, a ResNet's
  repeated convolutions) reduced together: one multi-operand reduction per group of at
  most ``max_group`` (default :data:`MAX_GROUP`) leaves, which XLA compiles to one
  kernel (fusion) reading every member in place, each with its own sum; not a
  concatenation, so no gradient is copied and a sharded leaf stays on its shards.

  With ``group_stacked=False`` a stacked leaf (one with layer axes) is reduced alone:
  XLA's SPMD partitioner finishes a multi-operand reduction over a sharded axis by
  gathering each member's partial result, one value per layer and device for a stacked
  leaf (compiled for a TPU slice with FSDP, a scanned GPT-2 then takes 55 ops against
  43; a whole leaf's partial is one value per device). XLA:CPU, too, compiles a
  multi-operand reduction that keeps an axis to a slow loop.
  """
  max_group = MAX_GROUP if max_group is None else max_group
  squared = [layers_lib.squared_magnitude(g) for g in grads]
  groups: dict[tuple, list[int]] = {}
  for i, (s, lay) in enumerate(zip(squared, leaf_layers, strict=True)):
    # Under explicit sharding, also by sharding: one reduction takes operands sharded alike.
    alone = i if lay.layer_axes and not group_stacked else None
    groups.setdefault((s.shape, s.dtype, lay.reduce_axes, _spec(s), alone), []).append(i)
  per_leaf: list = [None] * len(grads)
  for (_, _, axes, _, _), members in groups.items():
    for start in range(0, len(members), max_group):
      chunk = members[start:start + max_group]
      reduced = reduce_squared_together([squared[i] for i in chunk], axes, norm)
      for i, r in zip(chunk, reduced, strict=True):
        per_leaf[i] = _replicated(jnp.ravel(r).astype(dtype))
  return jnp.concatenate(per_leaf)


def reduce_squared_together(squared: Sequence[jax.Array], axes: tuple[int, ...],
                            norm: str) -> list[jax.Array]:
  """:func:`~novograd_optax._src.layers.reduce_squared` of several arrays of one shape,
  as one reduction with an operand (and a result) per array."""
  if len(squared) == 1:
    return [layers_lib.reduce_squared(squared[0], axes, norm)]
  combine = jnp.add if norm == "l2" else jnp.maximum
  # 0 is the identity of both: squared magnitudes are >= 0, and the L-inf norm of a
  # zero-size layer is 0, as in reduce_squared.
  zeros = tuple(jnp.zeros([], s.dtype) for s in squared)
  return list(jax.lax.reduce(
      tuple(squared), zeros,
      lambda xs, ys: tuple(combine(x, y) for x, y in zip(xs, ys, strict=True)), axes))


grouped_stacked_alone = functools.partial(grouped, group_stacked=False)

# Strategy per platform (keys of jax.lax.platform_dependent), from the compiled counts
# and CPU timings of the performance page.
STRATEGIES: dict[str, Callable[..., jax.Array]] = {
    "cuda": grouped, "rocm": grouped, "default": grouped_stacked_alone}
# The most leaves one multi-operand reduction takes (XLA:GPU passes a kernel a pointer
# per operand and keeps a partial sum per operand in registers).
MAX_GROUP = 32


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
