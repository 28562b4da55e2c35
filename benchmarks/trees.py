"""The params trees and the optimizers the step benchmarks measure.

The trees are shaped like real models (values are random):

* ``gpt2``: GPT-2 small, 148 leaves, 124M parameters;
* ``resnet50``: ResNet-50, 161 leaves (convolutions, BatchNorm scales and biases, the
  classifier), 25.6M parameters;
* ``scanned``: the 12 GPT-2 blocks stacked on a leading axis as ``nn.scan`` builds
  them (16 leaves, 148 layers); our optimizer gets ``layer_axes=0`` for the stacked
  leaves, optax's see one layer per leaf;
* ``deep``: 2000 leaves of 1000 parameters, where per-leaf overhead dominates;
* ``tiny``: a dense layer and a stack of two layers (for the smoke test).

Every optimizer runs with its library's defaults besides the learning rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from novograd_optax import novograd
from novograd_optax._src import layers as layers_lib

LEARNING_RATE = 1e-3
OURS, OURS_BF16, SGD_M, ADAMW = "ours", "ours_bf16", "sgd_momentum", "adamw"


@dataclasses.dataclass(frozen=True)
class Tree:
  """A params tree (shapes only) and, for our novograd, its ``layer_axes``."""

  shapes: Any  # pytree of tuple shapes
  layer_axes: Any = None


def is_shape(x: Any) -> bool:
  return isinstance(x, tuple) and all(isinstance(d, int) for d in x)


def gpt2_block_shapes(d: int = 768, ffn: int = 3072) -> dict[str, Any]:
  return {
      "ln_1": {"scale": (d,), "bias": (d,)},
      "attn": {"c_attn": {"kernel": (d, 3 * d), "bias": (3 * d,)},
               "c_proj": {"kernel": (d, d), "bias": (d,)}},
      "ln_2": {"scale": (d,), "bias": (d,)},
      "mlp": {"c_fc": {"kernel": (d, ffn), "bias": (ffn,)},
              "c_proj": {"kernel": (ffn, d), "bias": (d,)}},
  }


def gpt2_tree(vocab: int = 50257, context: int = 1024, d: int = 768) -> Tree:
  shapes = {"wte": (vocab, d), "wpe": (context, d),
            "ln_f": {"scale": (d,), "bias": (d,)}}
  shapes["blocks"] = {f"h{i:02d}": gpt2_block_shapes(d) for i in range(12)}
  return Tree(shapes)


def scanned_gpt2_tree(vocab: int = 50257, context: int = 1024, d: int = 768) -> Tree:
  stacked = jax.tree.map(lambda s: (12,) + s, gpt2_block_shapes(d), is_leaf=is_shape)
  shapes = {"wte": (vocab, d), "wpe": (context, d),
            "ln_f": {"scale": (d,), "bias": (d,)}, "blocks": stacked}
  # A pytree prefix of the params: axis 0 of every stacked leaf indexes layers.
  layer_axes = {"wte": None, "wpe": None, "ln_f": None, "blocks": 0}
  return Tree(shapes, layer_axes)


def resnet50_tree() -> Tree:
  def conv_bn(k: int, cin: int, cout: int) -> dict[str, Any]:
    return {"conv": {"kernel": (k, k, cin, cout)},
            "bn": {"scale": (cout,), "bias": (cout,)}}

  shapes: dict[str, Any] = {"stem": conv_bn(7, 3, 64)}
  cin = 64
  for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
    for block in range(blocks):
      unit = {"conv1": conv_bn(1, cin, width), "conv2": conv_bn(3, width, width),
              "conv3": conv_bn(1, width, 4 * width)}
      if block == 0:
        unit["projection"] = conv_bn(1, cin, 4 * width)
      shapes[f"stage{stage + 1}_block{block + 1}"] = unit
      cin = 4 * width
  shapes["fc"] = {"kernel": (2048, 1000), "bias": (1000,)}
  return Tree(shapes)


def deep_tree(leaves: int = 2000, size: int = 1000) -> Tree:
  return Tree({f"layer{i:04d}": {"w": (size,)} for i in range(leaves)})


def tiny_tree() -> Tree:
  """A dense layer and two stacked layers."""
  shapes = {"dense": {"kernel": (4, 3), "bias": (3,)}, "stacked": {"kernel": (2, 3, 3)}}
  return Tree(shapes, {"dense": None, "stacked": 0})


TREES: dict[str, Callable[[], Tree]] = {
    "gpt2": gpt2_tree,
    "resnet50": resnet50_tree,
    "scanned": scanned_gpt2_tree,
    "deep": deep_tree,
    "tiny": tiny_tree,
}
DEFAULT_TREES = ("gpt2", "resnet50", "scanned", "deep", "tiny")


def scaled(tree: Tree, scale: float) -> Tree:
  """Multiplies the last dimension of every leaf by ``scale`` (at least 1): leaf
  and layer counts, and the stacked-layer axis of scanned leaves, stay."""
  if scale == 1.0:
    return tree

  def shrink(shape):
    return shape[:-1] + (max(1, round(shape[-1] * scale)),) if shape else shape

  return Tree(jax.tree.map(shrink, tree.shapes, is_leaf=is_shape), tree.layer_axes)


OPTIMIZERS: dict[str, tuple[str, Callable[[Tree], optax.GradientTransformation]]] = {
    OURS: ("novograd_optax.novograd",
           lambda t: novograd(LEARNING_RATE, layer_axes=t.layer_axes)),
    OURS_BF16: ("novograd_optax.novograd(mu_dtype=bf16)",
                lambda t: novograd(LEARNING_RATE, mu_dtype=jnp.bfloat16,
                                   layer_axes=t.layer_axes)),
    "optax_novograd": ("optax.novograd", lambda t: optax.novograd(LEARNING_RATE)),
    ADAMW: ("optax.adamw", lambda t: optax.adamw(LEARNING_RATE)),
    "lamb": ("optax.lamb", lambda t: optax.lamb(LEARNING_RATE)),
    SGD_M: ("optax.sgd(momentum=0.9)", lambda t: optax.sgd(LEARNING_RATE, momentum=0.9)),
    # SGD-momentum after global-norm clipping: the plainest step that, like ours, reduces
    # the whole gradient before its elementwise update (a reference for what that costs).
    "sgd_m_clipped": ("optax.clip_by_global_norm + sgd(momentum=0.9)",
                      lambda t: optax.chain(optax.clip_by_global_norm(1.0),
                                            optax.sgd(LEARNING_RATE, momentum=0.9))),
}
# The references of the ratios: always measured.
REFERENCES = (SGD_M, ADAMW)


def tree_bytes(tree: Any) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def layer_groups(tree: Tree, params: Any) -> tuple[int, int]:
  """(layers, groups) of the tree as our optimizer sees it: one layer per leaf or per
  stacked slice; a group is a distinct (dtype, layer layout) of the leaves."""
  layouts = layers_lib.resolve_layer_axes(tree.layer_axes, params)
  leaves = jax.tree.leaves(params)
  lays = jax.tree.structure(params).flatten_up_to(layouts)
  layers = sum(math.prod(lay.moment_shape(p.shape)) for p, lay in zip(leaves, lays, strict=True))
  groups = {(p.dtype, len(lay.layer_axes)) for p, lay in zip(leaves, lays, strict=True)}
  return layers, len(groups)


def random_tree(shapes: Any, seed: int) -> Any:
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=is_shape)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return treedef.unflatten(
      [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, leaves, strict=True)])


def merged(earlier: list[dict[str, Any]], now: list[dict[str, Any]]) -> list[dict[str, Any]]:
  """The per-tree results of a report written with ``--append``: those of ``earlier`` not
  measured ``now``, then ``now``'s, in the order of :data:`TREES`."""
  measured = {t["tree"] for t in now}
  order = {name: i for i, name in enumerate(TREES)}
  return sorted([t for t in earlier if t["tree"] not in measured] + now,
                key=lambda t: order.get(t["tree"], len(order)))


def parse_names(parser: argparse.ArgumentParser, trees: str, optimizers: str,
                always: tuple[str, ...]) -> tuple[list[str], list[str]]:
  """The comma-separated ``--trees`` and ``--optimizers`` of a benchmark's command line,
  checked against :data:`TREES` and :data:`OPTIMIZERS` (a ``parser.error`` names an
  unknown one); the optimizers in ``OPTIMIZERS`` order, with ``always`` added."""
  tree_names = trees.split(",")
  for t in tree_names:
    if t not in TREES:
      parser.error(f"--trees: unknown tree {t!r}; choose from {', '.join(TREES)}")
  chosen = optimizers.split(",")
  for o in chosen:
    if o not in OPTIMIZERS:
      parser.error(f"--optimizers: unknown optimizer {o!r}; choose from {', '.join(OPTIMIZERS)}")
  return tree_names, [k for k in OPTIMIZERS if k in chosen or k in always]
