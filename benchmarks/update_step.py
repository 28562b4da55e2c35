r"""Device time, kernels, compile time and memory of one optimizer step, against optax.

One optimizer step is ``update`` followed by ``optax.apply_updates``, jitted with the
params and the optimizer state donated, as in a training loop. For every tree and
optimizer the benchmark reports:

* **in-loop time**: device time per step inside one jitted ``lax.fori_loop`` of
  ``--loop-steps`` steps (buffers donated), so host dispatch is excluded. The gradient
  is scaled by a step-dependent factor so that no part of the step is loop-invariant
  (XLA would otherwise hoist the gradient norms out of the loop), and materialized
  like the output of a backward pass: every optimizer pays the same write and read
  of the gradient for it;
* **dispatched time**: one jit call per step, ``--dispatch-steps`` calls in a row and
  one wait at the end, as a Python training loop runs;
* **kernels**: operations of the optimized entry computation of the compiled step that
  launch work (fusions and unfused operations), and their kinds;
* **compile time**: ``lower`` + ``compile`` of the step;
* **memory**: from ``compiled.memory_analysis()``: arguments, outputs, aliased
  (donated) bytes, temporaries and the peak;
* **the bandwidth floor**: the bytes an in-loop step must move (read the gradient and
  the params, write the params, read and write the optimizer state, plus the write and
  read that make the step's gradient) divided by the copy bandwidth measured on this
  machine for a buffer of the params' size.

Every time is sampled ``--repeats`` times in interleaved rounds (each round measures
every optimizer once, in a rotating order), so that load from other work hits all
optimizers alike; the report gives the median and the spread (quartiles, min, max) and
ratios to SGD-momentum and to AdamW taken within each round. Only ratios compare
across machines. The targets of the project (see the performance page of the docs)
are evaluated for our optimizer on every tree and reported as pass/miss.

The trees (GPT-2, ResNet-50, scanned GPT-2, a deep tree, a tiny one) and the optimizers
are those of :mod:`benchmarks.trees`; kernel counting is :mod:`benchmarks.hlo`. The same
step compiled for a GPU or TPU without one: :mod:`benchmarks.compiled_for_target`.

``--scale s`` multiplies the last dimension of every leaf by ``s`` (leaf and layer
counts are unchanged). The same command runs on whatever backend JAX picks (CPU, GPU,
TPU). Example::

    python -m benchmarks.update_step --out results/benchmarks/cpu.json
    python -m benchmarks.report results/benchmarks/cpu.json docs/performance.md
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import novograd_optax
from benchmarks.hlo import kernel_ops
from benchmarks.trees import (
  DEFAULT_TREES,
  OPTIMIZERS,
  OURS,
  OURS_BF16,
  REFERENCES,
  SGD_M,
  TREES,
  Tree,
  layer_groups,
  merged,
  parse_names,
  random_tree,
  scaled,
  tree_bytes,
)

# Targets for our optimizer (issue "At AdamW's speed or better"): a step no slower than
# AdamW's and within 25% of SGD-momentum's (30% on ResNet-50), about one kernel per leaf,
# no more temporaries than SGD-momentum beyond a few per-layer vectors, compile and
# dispatch no slower than AdamW's.
SGD_M_TIME_LIMIT = {"resnet50": 1.3}
SGD_M_TIME_LIMIT_DEFAULT = 1.25
KERNELS_PER_LEAF = 1.2
KERNELS_PER_GROUP = 10
TEMP_BYTES_PER_LAYER = 64  # a handful of float32 per-layer vectors
TEMP_BYTES_SLACK = 1 << 16  # alignment and small scratch buffers


def make_step(tx: optax.GradientTransformation) -> Callable[..., Any]:
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return step


def make_loop(tx: optax.GradientTransformation, steps: int) -> Callable[..., Any]:
  step = make_step(tx)

  def loop(params, state, grads):
    def body(i, carry):
      # A different gradient every step: nothing in the step is loop-invariant. The
      # barrier materializes it, as a backward pass would: otherwise the scaling fuses
      # into every reader and an optimizer that reads the gradient twice (a norm, then
      # the update) would pay for it twice.
      factor = 1.0 + i.astype(jnp.float32) * 1e-3
      step_grads = jax.lax.optimization_barrier(
          jax.tree.map(lambda g: g * factor.astype(g.dtype), grads))
      return step(*carry, step_grads)
    return jax.lax.fori_loop(0, steps, body, (params, state))
  return loop


def spread(samples: Sequence[float]) -> dict[str, Any]:
  q1, median, q3 = np.percentile(np.asarray(samples, np.float64), [25, 50, 75])
  return {"median": float(median), "q1": float(q1), "q3": float(q3),
          "min": float(min(samples)), "max": float(max(samples)), "n": len(samples)}


def copy_bandwidth(num_bytes: int, repeats: int, steps: int) -> float:
  """Bytes per second of an in-loop read + write of a float32 buffer of ``num_bytes``."""
  n = max(num_bytes // 4, 1 << 18)

  def loop(x):
    return jax.lax.fori_loop(0, steps, lambda i, y: y + 1.0, x)

  run = jax.jit(loop, donate_argnums=0).lower(jax.ShapeDtypeStruct((n,), jnp.float32)).compile()
  x = run(jnp.zeros((n,), jnp.float32))
  x.block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    x = run(x)
    x.block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * 4 * n * steps / statistics.median(times)


@dataclasses.dataclass
class Contender:
  key: str
  label: str
  tx: optax.GradientTransformation
  params: Any = None
  state: Any = None
  step: Any = None
  loop: Any = None
  kernels: dict[str, int] = dataclasses.field(default_factory=dict)
  memory: dict[str, int] = dataclasses.field(default_factory=dict)
  compile_s: list[float] = dataclasses.field(default_factory=list)
  in_loop: list[float] = dataclasses.field(default_factory=list)
  dispatched: list[float] = dataclasses.field(default_factory=list)


def _block(tree: Any) -> None:
  jax.block_until_ready(tree)


def _memory(compiled: Any) -> dict[str, int]:
  stats = compiled.memory_analysis()
  fields = ("argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
            "temp_size_in_bytes", "peak_memory_in_bytes", "generated_code_size_in_bytes")
  return {f.removesuffix("_in_bytes"): int(getattr(stats, f, -1)) for f in fields}


def _rotated(items: list[Any], r: int) -> list[Any]:
  shift = r % len(items)
  return items[shift:] + items[:shift]


def benchmark_tree(name: str, tree: Tree, keys: Sequence[str], settings: dict[str, Any],
                   log: Callable[[str], None]) -> dict[str, Any]:
  grads = random_tree(tree.shapes, seed=1)
  template = random_tree(tree.shapes, seed=0)
  params_bytes = tree_bytes(template)
  layers, groups = layer_groups(tree, template)
  contenders = [Contender(k, OPTIMIZERS[k][0], OPTIMIZERS[k][1](tree)) for k in keys]
  for c in contenders:
    c.params = jax.tree.map(jnp.copy, template)
    c.state = c.tx.init(c.params)
  del template
  steps = settings["loop_steps"]

  # Compile: interleaved too, the first round also keeps the executables.
  for r in range(settings["compile_repeats"]):
    for c in _rotated(contenders, r):
      step = jax.jit(make_step(c.tx), donate_argnums=(0, 1))
      start = time.perf_counter()
      compiled = step.lower(c.params, c.state, grads).compile()
      c.compile_s.append(time.perf_counter() - start)
      if c.step is None:
        c.step = compiled
        c.kernels = kernel_ops(compiled.as_text())
        c.memory = _memory(compiled)
        c.loop = jax.jit(make_loop(c.tx, steps), donate_argnums=(0, 1)).lower(
            c.params, c.state, grads).compile()
  log(f"  {name}: compiled " + ", ".join(
      f"{c.key} {statistics.median(c.compile_s):.2f}s" for c in contenders))

  bandwidth = copy_bandwidth(params_bytes, settings["repeats"], steps)

  def time_loop(c: Contender) -> float:
    start = time.perf_counter()
    c.params, c.state = c.loop(c.params, c.state, grads)
    _block((c.params, c.state))
    return (time.perf_counter() - start) / steps

  def time_dispatched(c: Contender) -> float:
    n = settings["dispatch_steps"]
    start = time.perf_counter()
    for _ in range(n):
      c.params, c.state = c.step(c.params, c.state, grads)
    _block((c.params, c.state))
    return (time.perf_counter() - start) / n

  for c in contenders:  # warm-up: first runs page memory in and fill caches
    time_loop(c)
    time_dispatched(c)
  for r in range(settings["repeats"]):
    for c in _rotated(contenders, r):
      c.in_loop.append(time_loop(c))
      c.dispatched.append(time_dispatched(c))
  log(f"  {name}: in-loop ms " + ", ".join(
      f"{c.key} {1e3 * statistics.median(c.in_loop):.3f}" for c in contenders))

  by_key = {c.key: c for c in contenders}
  grads_bytes = tree_bytes(grads)
  rows = []
  for c in contenders:
    state_bytes = tree_bytes(c.state)
    moved = grads_bytes + 2 * params_bytes + 2 * state_bytes
    # in the loop, the step's gradient is also written (and its source read) first
    floor = (moved + 2 * grads_bytes) / bandwidth
    row: dict[str, Any] = {
        "optimizer": c.key,
        "label": c.label,
        "state_bytes": state_bytes,
        "bytes_moved": moved,
        "loop_bytes_moved": moved + 2 * grads_bytes,
        "floor_ms": 1e3 * floor,
        "kernels": sum(c.kernels.values()),
        "kernel_ops": c.kernels,
        "memory": c.memory,
        "compile_s": spread(c.compile_s),
        "in_loop_ms": spread([1e3 * t for t in c.in_loop]),
        "dispatched_ms": spread([1e3 * t for t in c.dispatched]),
        "in_loop_over_floor": statistics.median(c.in_loop) / floor,
    }
    for ref in REFERENCES:
      other = by_key[ref]
      row[f"in_loop_over_{ref}"] = spread(
          [a / b for a, b in zip(c.in_loop, other.in_loop, strict=True)])
      row[f"dispatched_over_{ref}"] = spread(
          [a / b for a, b in zip(c.dispatched, other.dispatched, strict=True)])
      row[f"compile_over_{ref}"] = statistics.median(c.compile_s) / statistics.median(
          other.compile_s)
    rows.append(row)
    c.params = c.state = c.step = c.loop = None  # free the buffers before the next tree
  result = {
      "tree": name,
      "leaves": len(jax.tree.leaves(grads)),
      "layers": layers,
      "groups": groups,
      "params": sum(x.size for x in jax.tree.leaves(grads)),
      "params_bytes": params_bytes,
      "copy_bandwidth_gb_s": bandwidth / 1e9,
      "rows": rows,
  }
  result["targets"] = targets(result)
  return result


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
  """The project's targets for our optimizer(s) on one tree: value, limit, pass."""
  rows = {r["optimizer"]: r for r in result["rows"]}
  sgd_m = rows[SGD_M]
  time_limit = SGD_M_TIME_LIMIT.get(result["tree"], SGD_M_TIME_LIMIT_DEFAULT)
  kernel_limit = (math.ceil(KERNELS_PER_LEAF * result["leaves"])
                  + KERNELS_PER_GROUP * result["groups"])
  temp_limit = (sgd_m["memory"]["temp_size"] + TEMP_BYTES_PER_LAYER * result["layers"]
                + TEMP_BYTES_SLACK)
  out = []
  for key in (OURS, OURS_BF16):
    if key not in rows:
      continue
    r = rows[key]
    checks = [
        ("in-loop time / AdamW's", r["in_loop_over_adamw"]["median"], 1.0),
        ("in-loop time / SGD-m's", r["in_loop_over_sgd_momentum"]["median"], time_limit),
        ("kernels", r["kernels"], kernel_limit),
        ("temporaries (bytes)", r["memory"]["temp_size"], temp_limit),
        ("compile time / AdamW's", r["compile_over_adamw"], 1.0),
        ("dispatched time / AdamW's", r["dispatched_over_adamw"]["median"], 1.0),
    ]
    for target, value, limit in checks:
      out.append({"optimizer": key, "target": target, "value": value, "limit": limit,
                  "pass": bool(value <= limit)})
  return out


def machine() -> dict[str, Any]:
  device = jax.devices()[0]
  return {
      "backend": jax.default_backend(),
      "device_kind": device.device_kind,
      "device_count": jax.device_count(),
      "platform": platform.platform(),
      "processor": platform.processor() or platform.machine(),
      "cpu_count": os.cpu_count(),
      "python": platform.python_version(),
  }


def versions() -> dict[str, str]:
  import jaxlib
  return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "optax": optax.__version__,
          "numpy": np.__version__, "novograd_optax": novograd_optax.__version__}


QUICK = {"trees": "tiny", "repeats": 3, "loop_steps": 2, "dispatch_steps": 2,
         "compile_repeats": 1}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m benchmarks.update_step", description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--trees", default=",".join(DEFAULT_TREES),
                      help=f"comma-separated, from {','.join(TREES)}")
  parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                      help=f"comma-separated, from {','.join(OPTIMIZERS)} (SGD-momentum and"
                           " AdamW always run: ratios are taken against them)")
  parser.add_argument("--repeats", type=int, default=7,
                      help="interleaved rounds of timing (each measures every optimizer)")
  parser.add_argument("--loop-steps", type=int, default=10,
                      help="steps inside one fori_loop for the in-loop time")
  parser.add_argument("--dispatch-steps", type=int, default=5,
                      help="jit calls in a row for the dispatched time")
  parser.add_argument("--compile-repeats", type=int, default=2,
                      help="interleaved compilations of every step")
  parser.add_argument("--scale", type=float, default=1.0,
                      help="multiply the last dimension of every leaf by this")
  parser.add_argument("--quick", action="store_true",
                      help="the tiny tree, few repeats: a smoke test that runs in seconds")
  parser.add_argument("--out", default=None, help="write the JSON report to this file")
  parser.add_argument("--append", action="store_true",
                      help="keep the other trees of an existing --out report (each tree"
                           " records its own settings), replacing those measured now")
  if "--quick" in (sys.argv[1:] if argv is None else argv):
    parser.set_defaults(**QUICK)  # explicit flags still win
  args = parser.parse_args(argv)
  args.trees, args.optimizers = parse_names(parser, args.trees, args.optimizers, REFERENCES)
  if min(args.repeats, args.loop_steps, args.dispatch_steps, args.compile_repeats) < 1:
    parser.error("--repeats, --loop-steps, --dispatch-steps and --compile-repeats must be >= 1")
  if args.scale <= 0:
    parser.error("--scale must be > 0")
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Runs the benchmark, prints a summary, writes the JSON report, and returns it."""
  from benchmarks import report as report_lib

  args = parse_args(argv)

  def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

  command = "python -m benchmarks.update_step " + " ".join(
      sys.argv[1:] if argv is None else argv)
  settings = {"repeats": args.repeats, "loop_steps": args.loop_steps,
              "dispatch_steps": args.dispatch_steps, "compile_repeats": args.compile_repeats,
              "scale": args.scale, "quick": args.quick, "command": command}
  report: dict[str, Any] = {
      "schema": 1,
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "machine": machine(),
      "versions": versions(),
      "trees": [],
  }
  for name in args.trees:
    log(f"{name}:")
    start = time.perf_counter()
    tree = scaled(TREES[name](), args.scale)
    result = benchmark_tree(name, tree, args.optimizers, settings, log)
    result["settings"] = settings
    result["date"] = report["date"]
    result["total_s"] = time.perf_counter() - start
    report["trees"].append(result)
  if args.out:
    path = pathlib.Path(args.out)
    if args.append and path.exists():
      # Read only now: another run may have appended to the file meanwhile.
      earlier = json.loads(path.read_text())
      report["trees"] = merged(earlier["trees"], report["trees"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
  print(report_lib.summary(report))
  return report


if __name__ == "__main__":
  main()
