r"""Step time, compile time and optimizer-state memory of novograd against optax.

One optimizer step is ``update`` followed by ``optax.apply_updates``, jitted with
the params and the optimizer state donated, as in a training loop. For each tree
every optimizer is compiled once (the time of ``lower`` + ``compile`` and of the
first step are reported), warmed up, then timed in ``--repeats`` interleaved
rounds: each round runs one step of every optimizer, in a rotating order, so
that noise from other work on the machine hits all optimizers alike. The table
gives the median step time and the median over rounds of the step time divided
by SGD-momentum's in the same round. Only these ratios compare across runs.

The trees are shaped like real models (values are random; the gradient is a
fixed tree of the same shapes):

* ``gpt2``: GPT-2 small, 148 leaves, 124M parameters;
* ``resnet50``: ResNet-50, 161 leaves (convolutions, BatchNorm scales and
  biases, the classifier), 25.6M parameters;
* ``deep``: 2000 leaves of 1000 parameters, where per-leaf overhead dominates;
* ``scanned``: the 12 GPT-2 blocks stacked on a leading axis, as ``nn.scan``
  builds them (16 leaves, 148 layers); our novograd gets ``layer_axes=0`` for
  the stacked leaves, optax's optimizers see one layer per leaf.

``--scale s`` multiplies the last dimension of every leaf by ``s`` (leaf
counts and layer counts are unchanged), to fit small machines. The same
script runs on whatever device JAX picks: CPU by default, the GPU when there is
one. Example::

    python benchmarks/update_step.py --trees gpt2,deep --repeats 30
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax

from novograd_optax import novograd

LEARNING_RATE = 1e-3
BASELINE = "optax.sgd(momentum=0.9)"


@dataclasses.dataclass(frozen=True)
class Tree:
  """A params tree (shapes only) and, for our novograd, its ``layer_axes``."""

  shapes: Any  # pytree of tuple shapes
  layer_axes: Any = None


def _is_shape(x: Any) -> bool:
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
  stacked = jax.tree.map(lambda s: (12,) + s, gpt2_block_shapes(d), is_leaf=_is_shape)
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
  """For the smoke test: a dense layer and two stacked layers."""
  shapes = {"dense": {"kernel": (4, 3), "bias": (3,)}, "stacked": {"kernel": (2, 3, 3)}}
  return Tree(shapes, {"dense": None, "stacked": 0})


TREES: dict[str, Callable[[], Tree]] = {
    "gpt2": gpt2_tree,
    "resnet50": resnet50_tree,
    "deep": deep_tree,
    "scanned": scanned_gpt2_tree,
    "tiny": tiny_tree,
}
DEFAULT_TREES = ("gpt2", "resnet50", "deep", "scanned")


def scaled(tree: Tree, scale: float) -> Tree:
  """Multiplies the last dimension of every leaf by ``scale`` (at least 1): leaf
  and layer counts, and the stacked-layer axis of scanned leaves, stay."""
  if scale == 1.0:
    return tree

  def shrink(shape):
    return shape[:-1] + (max(1, round(shape[-1] * scale)),) if shape else shape

  return Tree(jax.tree.map(shrink, tree.shapes, is_leaf=_is_shape), tree.layer_axes)


def optimizers(tree: Tree) -> dict[str, optax.GradientTransformation]:
  """The contenders, each with its library's defaults besides the learning rate."""
  return {
      "novograd_optax.novograd": novograd(LEARNING_RATE, layer_axes=tree.layer_axes),
      "novograd_optax.novograd(mu_dtype=bf16)": novograd(
          LEARNING_RATE, mu_dtype=jnp.bfloat16, layer_axes=tree.layer_axes),
      "optax.novograd": optax.novograd(LEARNING_RATE),
      "optax.adamw": optax.adamw(LEARNING_RATE),
      "optax.lamb": optax.lamb(LEARNING_RATE),
      BASELINE: optax.sgd(LEARNING_RATE, momentum=0.9),
  }


def tree_bytes(tree: Any) -> int:
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


def count_kernels(hlo_text: str) -> int:
  """Instructions of the optimized entry computation that launch work: fusions
  and unfused ops (parameters, tuples, bitcasts and constants move nothing)."""
  entry = hlo_text[hlo_text.index("\nENTRY"):]
  entry = entry[:entry.index("\n}")]
  free = {"parameter", "tuple", "get-tuple-element", "bitcast", "constant"}
  kernels = 0
  for line in entry.splitlines()[1:]:
    match = re.search(r"= \S+(?: \S+)*? ([a-z\-]+)\(", line)
    if match and match.group(1) not in free:
      kernels += 1
  return kernels


@dataclasses.dataclass
class Contender:
  name: str
  tx: optax.GradientTransformation
  params: Any = None
  state: Any = None
  step: Any = None
  compile_s: float = 0.0
  first_step_s: float = 0.0
  kernels: int = 0
  state_bytes: int = 0
  times: list[float] = dataclasses.field(default_factory=list)


def make_step(tx: optax.GradientTransformation) -> Callable[..., Any]:
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return jax.jit(step, donate_argnums=(0, 1))


def random_tree(shapes: Any, seed: int) -> Any:
  leaves, treedef = jax.tree.flatten(shapes, is_leaf=_is_shape)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return treedef.unflatten(
      [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, leaves, strict=True)])


def block(tree: Any) -> None:
  jax.tree.map(lambda x: x.block_until_ready(), tree)


def benchmark_tree(name: str, tree: Tree, repeats: int, warmup: int,
                   only: Sequence[str] | None, log: Callable[[str], None]) -> dict[str, Any]:
  grads = random_tree(tree.shapes, seed=1)
  params_template = random_tree(tree.shapes, seed=0)
  params_bytes = tree_bytes(params_template)
  contenders = [Contender(n, tx) for n, tx in optimizers(tree).items()
                if only is None or n in only or n == BASELINE]
  for c in contenders:
    c.params = jax.tree.map(jnp.copy, params_template)
    c.state = c.tx.init(c.params)
    c.state_bytes = tree_bytes(c.state)
    step = make_step(c.tx)
    start = time.perf_counter()
    compiled = step.lower(c.params, c.state, grads).compile()
    c.compile_s = time.perf_counter() - start
    c.kernels = count_kernels(compiled.as_text())
    start = time.perf_counter()
    c.params, c.state = compiled(c.params, c.state, grads)
    block((c.params, c.state))
    c.first_step_s = time.perf_counter() - start
    c.step = compiled
    log(f"  {name}: compiled {c.name} in {c.compile_s:.2f} s")
  del params_template

  def run_once(c: Contender) -> float:
    start = time.perf_counter()
    c.params, c.state = c.step(c.params, c.state, grads)
    block((c.params, c.state))
    return time.perf_counter() - start

  for _ in range(warmup):
    for c in contenders:
      run_once(c)
  for r in range(repeats):
    shift = r % len(contenders)
    for c in contenders[shift:] + contenders[:shift]:
      c.times.append(run_once(c))

  baseline = next(c for c in contenders if c.name == BASELINE)
  rows = []
  for c in contenders:
    rows.append({
        "optimizer": c.name,
        "step_ms": 1e3 * statistics.median(c.times),
        "ratio_to_sgd_momentum": statistics.median(
            t / b for t, b in zip(c.times, baseline.times, strict=True)),
        "compile_s": c.compile_s,
        "first_step_s": c.first_step_s,
        "kernels": c.kernels,
        "state_bytes": c.state_bytes,
        "state_over_params": c.state_bytes / params_bytes,
    })
    c.params = c.state = c.step = None  # free the buffers before the next tree
  return {
      "tree": name,
      "leaves": len(jax.tree.leaves(grads)),
      "params": sum(x.size for x in jax.tree.leaves(grads)),
      "params_bytes": params_bytes,
      "repeats": repeats,
      "rows": rows,
  }


def markdown(result: dict[str, Any]) -> str:
  lines = [
      f"**{result['tree']}**: {result['leaves']} leaves, {result['params']:,} parameters"
      f" ({result['params_bytes']:,} bytes), median of {result['repeats']} interleaved steps",
      "",
      "| optimizer | step (ms) | × SGD-m | compile (s) | 1st step (s) | kernels"
      " | state bytes | state / params |",
      "|---|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in result["rows"]:
    lines.append(
        f"| {r['optimizer']} | {r['step_ms']:.2f} | {r['ratio_to_sgd_momentum']:.2f}"
        f" | {r['compile_s']:.2f} | {r['first_step_s']:.3f} | {r['kernels']}"
        f" | {r['state_bytes']:,} | {r['state_over_params']:.4f} |")
  return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--trees", default=",".join(DEFAULT_TREES),
                      help=f"comma-separated, from {','.join(TREES)}")
  parser.add_argument("--repeats", type=int, default=20,
                      help="timed interleaved rounds (one step of each optimizer per round)")
  parser.add_argument("--warmup", type=int, default=2, help="untimed rounds after compiling")
  parser.add_argument("--scale", type=float, default=1.0,
                      help="multiply the last dimension of every leaf by this")
  parser.add_argument("--optimizers", default=None,
                      help="comma-separated subset of the optimizer names (SGD-momentum"
                           " always runs: it is the reference)")
  parser.add_argument("--json", action="store_true", help="print JSON instead of markdown")
  args = parser.parse_args(argv)
  args.trees = args.trees.split(",")
  for t in args.trees:
    if t not in TREES:
      parser.error(f"unknown tree {t!r}; choose from {', '.join(TREES)}")
  if args.repeats < 1 or args.warmup < 0 or args.scale <= 0:
    parser.error("--repeats must be >= 1, --warmup >= 0 and --scale > 0")
  if args.optimizers is not None:
    args.optimizers = args.optimizers.split(",")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints the report, and returns it as a dict."""
  args = parse_args(argv)

  def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

  device = jax.devices()[0]
  report: dict[str, Any] = {
      "device": f"{device.platform}: {device.device_kind}",
      "jax": jax.__version__,
      "optax": optax.__version__,
      "scale": args.scale,
      "trees": [],
  }
  for name in args.trees:
    log(f"{name}:")
    tree = scaled(TREES[name](), args.scale)
    report["trees"].append(
        benchmark_tree(name, tree, args.repeats, args.warmup, args.optimizers, log))
  if args.json:
    print(json.dumps(report, indent=1))
  else:
    print(f"Device {report['device']}, jax {report['jax']}, optax {report['optax']},"
          f" scale {report['scale']}.\n")
    print("\n\n".join(markdown(t) for t in report["trees"]))
  return report


if __name__ == "__main__":
  main()
