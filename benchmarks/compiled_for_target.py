r"""The optimizer step compiled for a GPU or a TPU on a machine that has neither.

XLA's real GPU and TPU pipelines (SPMD partitioning, fusion, collective combining,
scheduling, buffer assignment) run on the CPU through compile-only clients: the CUDA
PJRT plugin compiles for a GPU described by a ``GpuTargetConfigProto``, and libtpu makes
compile-only topologies of any TPU slice. Nothing is executed, so what this module
reports are **compiled-for-target counts, not timings**: per optimizer and tree, the
kernels (GPU) or compute ops (TPU) of the optimized step by kind (the counting rule of
:mod:`benchmarks.hlo`; on an H100 these equal the kernels a real H100 profile shows), the
collectives (how many, values per all-reduce, the result shape of any all-gather), the
compiled memory figures and the compile time.

Targets (``--target``):

* ``h100``: one NVIDIA H100 SXM 80GB (sm_90); ``h100x8``: eight in one host, the step
  sharded FSDP-style as on a TPU slice (below);
* ``tpu-v5e-16x16``: a TPU v5e slice of 256 chips, the step sharded FSDP-style: every
  matrix on its largest axis that the device count divides, vectors replicated, and
  the optimizer state by the same rule (moments follow their weights, per-layer
  scalars are replicated). ``tpu-<generation>-<chips>`` names any other slice, e.g.
  ``tpu-v5e-2x2``, ``tpu-v4-4x4x4``.

The plugins are optional: ``pip install -e ".[compile-targets]"`` (Linux x86_64; the
plugin versions are pinned to the jax version they compile for). Example::

    python -m benchmarks.compiled_for_target --target h100 \
        --out results/benchmarks/h100_compiled.json
    python -m benchmarks.compiled_for_target --target tpu-v5e-16x16 --trees gpt2 \
        --out results/benchmarks/tpu_v5e_16x16_compiled.json
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
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

# libtpu asks the cloud metadata server about the TPU VM it runs on, and takes a
# machine-wide lock file so that one process owns the TPU. A compile-only topology
# owns no TPU: skip both, so compiles can run in several processes (test workers).
os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

import novograd_optax  # noqa: E402
from benchmarks import hlo  # noqa: E402
from benchmarks.trees import (  # noqa: E402
    DEFAULT_TREES,
    OPTIMIZERS,
    OURS,
    OURS_BF16,
    SGD_M,
    TREES,
    Tree,
    is_shape,
    layer_groups,
    merged,
    parse_names,
)

# The properties of an H100 SXM 80GB that XLA's GPU cost models read, in the text form
# of xla's stream_executor.GpuTargetConfigProto (parsed strictly: a misspelt field is
# an error, not a silent default).
H100_SXM = """
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84942979072
  shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 minor: 0 }
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""

# The targets for our step, as multiples of SGD-momentum's count on the same
# target and tree (reported as pass/miss, never asserted in a test).
GPU_KERNEL_TARGET = {"scanned": 2.0}
GPU_KERNEL_TARGET_DEFAULT = 1.45
TPU_OPS_TARGET = 1.5
TEMP_BYTES_PER_LAYER = 64  # a handful of float32 per-layer vectors
TEMP_BYTES_SLACK = 1 << 16


@dataclasses.dataclass(frozen=True)
class Target:
  """Where a step is compiled for: the devices' sharding rule and a description."""

  name: str
  kind: str  # "gpu" or "tpu"
  device_kind: str
  devices: int
  shard: Callable[[tuple[int, ...]], Any]


def _require(module: str, extra_hint: str) -> None:
  import importlib.util
  if importlib.util.find_spec(module) is None:
    raise SystemExit(
        f"compiling for this target needs the {module!r} plugin: pip install -e"
        f" \".[compile-targets]\" ({extra_hint})")


def fsdp_rule(mesh: Any, n: int) -> Callable[[tuple[int, ...]], NamedSharding]:
  """FSDP-style sharding over ``n`` devices: a matrix on its largest axis that ``n``
  divides, vectors and scalars replicated."""

  def shard(shape: tuple[int, ...]) -> NamedSharding:
    axes = [i for i, s in enumerate(shape) if s % n == 0] if len(shape) >= 2 else []
    if not axes:
      return NamedSharding(mesh, PartitionSpec())
    spec: list[Any] = [None] * len(shape)
    spec[max(axes, key=lambda i: (shape[i], -i))] = "fsdp"
    return NamedSharding(mesh, PartitionSpec(*spec))

  return shard


def gpu_target(config_text: str = H100_SXM, name: str = "h100", gpus: int = 1) -> Target:
  """``gpus`` GPUs of the given description in one host, through the CUDA plugin's
  compile-only client; more than one are sharded FSDP-style."""
  _require("jax_cuda12_plugin", "Linux x86_64 only")
  from jax.experimental import topologies

  jax.config.update("jax_platforms", "cpu")  # never look for a real GPU
  topology = topologies.get_topology_desc(
      platform="cuda", target_config=config_text, topology=f"1x1x{gpus}")
  device = topology.devices[0]
  if device.client.runtime_type != "compile_only_runtime":
    raise RuntimeError(f"expected a compile-only client, got {device.client.runtime_type}")
  mesh = topologies.make_mesh(topology, (gpus,), ("fsdp",))
  return Target(name, "gpu", device.device_kind, gpus, fsdp_rule(mesh, gpus))


def tpu_target(topology_name: str, name: str) -> Target:
  """A TPU slice through libtpu's compile-only topologies, sharded FSDP-style."""
  _require("libtpu", "Linux x86_64 only")
  from jax.experimental import topologies

  jax.config.update("jax_platforms", "cpu")  # never look for a real TPU
  topology = topologies.get_topology_desc(topology_name=topology_name, platform="tpu")
  devices = topology.devices
  if devices[0].client.runtime_type != "compile_only_runtime":
    raise RuntimeError(f"expected a compile-only client, got {devices[0].client.runtime_type}")
  n = len(devices)
  mesh = topologies.make_mesh(topology, (n,), ("fsdp",))
  return Target(name, "tpu", devices[0].device_kind, n, fsdp_rule(mesh, n))


def make_target(name: str) -> Target:
  if name == "h100":
    return gpu_target()
  if name.startswith("h100x") and name.removeprefix("h100x").isdigit():
    return gpu_target(name=name, gpus=int(name.removeprefix("h100x")))
  if name.startswith("tpu-"):
    generation, _, chips = name.removeprefix("tpu-").partition("-")
    if not chips:
      raise SystemExit(f"--target {name!r}: write a TPU slice as tpu-<generation>-<chips>,"
                       " e.g. tpu-v5e-16x16")
    return tpu_target(f"{generation}:{chips}", name)
  raise SystemExit(f"--target {name!r}: choose h100, h100x<n> or tpu-<generation>-<chips>")


def compile_step(tx: optax.GradientTransformation, tree: Tree, target: Target) -> tuple[Any, float]:
  """The donated step ``update`` + ``apply_updates``, lowered and compiled for the target
  from shapes alone; returns the compiled executable and the compile time."""
  params = jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s, jnp.float32, sharding=target.shard(s)),
      tree.shapes, is_leaf=is_shape)
  state = jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=target.shard(a.shape)),
      jax.eval_shape(tx.init, params))
  out_shardings = jax.tree.map(lambda a: a.sharding, (params, state))

  def step(p, s, g):
    updates, s = tx.update(g, s, p)
    return optax.apply_updates(p, updates), s

  start = time.perf_counter()
  compiled = jax.jit(step, donate_argnums=(0, 1), out_shardings=out_shardings).lower(
      params, state, params).compile()
  return compiled, time.perf_counter() - start


def measure(tx: optax.GradientTransformation, tree: Tree, target: Target) -> dict[str, Any]:
  compiled, seconds = compile_step(tx, tree, target)
  text = compiled.as_text()
  if text is None:
    raise SystemExit("this jax's compile-only executable gives no HLO text (jax 0.10.2 does)")
  analysis = hlo.analyse(text)
  stats = compiled.memory_analysis()
  memory = {f.removesuffix("_in_bytes"): int(getattr(stats, f))
            for f in ("argument_size_in_bytes", "output_size_in_bytes",
                      "alias_size_in_bytes", "temp_size_in_bytes")}
  return {**analysis, "memory": memory, "compile_s": seconds}


def targets(result: dict[str, Any], kind: str, devices: int = 1) -> list[dict[str, Any]]:
  """The issue's targets for our optimizer(s) on one tree: value, limit, pass."""
  rows = {r["optimizer"]: r for r in result["rows"]}
  sgd_m = rows[SGD_M]
  if kind == "gpu":
    factor = GPU_KERNEL_TARGET.get(result["tree"], GPU_KERNEL_TARGET_DEFAULT)
    what = "kernels"
  else:
    factor, what = TPU_OPS_TARGET, "compute ops"
  temp_limit = (sgd_m["memory"]["temp_size"] + TEMP_BYTES_PER_LAYER * result["layers"]
                + TEMP_BYTES_SLACK)
  out = []
  for key in (OURS, OURS_BF16):
    if key not in rows:
      continue
    r = rows[key]
    checks = [(f"{what} / SGD-m's", r["ops"] / sgd_m["ops"], factor),
              ("temporaries (bytes)", r["memory"]["temp_size"], temp_limit)]
    if devices > 1:
      checks += [("all-reduces per dtype group", r["collectives"].get("all-reduce", 0)
                  / result["groups"], 1),
                 # A gather of one partial norm per device and leaf (the grouped norms
                 # of a sharded leaf on GPUs) is fine; one of a weight or moment is not.
                 ("values per gathered array", r.get("all_gather_largest", 0), devices),
                 ("other collectives", sum(n for kind, n in r["collectives"].items()
                                           if kind not in ("all-reduce", "all-gather")), 0)]
    for name, value, limit in checks:
      out.append({"optimizer": key, "target": name, "value": value, "limit": limit,
                  "pass": bool(value <= limit)})
  return out


def measure_tree(name: str, tree: Tree, keys: Sequence[str], target: Target,
                 log: Callable[[str], None]) -> dict[str, Any]:
  shapes = jax.tree.leaves(tree.shapes, is_leaf=is_shape)
  template = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, jnp.float32), tree.shapes,
                          is_leaf=is_shape)
  layers, groups = layer_groups(tree, template)
  rows = []
  for key in keys:
    label, build = OPTIMIZERS[key]
    row = {"optimizer": key, "label": label, **measure(build(tree), tree, target)}
    rows.append(row)
    log(f"  {name} {key}: {row['ops']} ops, {row['compile_s']:.1f} s")
  result = {"tree": name, "leaves": len(shapes), "layers": layers, "groups": groups,
            "params": sum(math.prod(s) for s in shapes),
            "sharded_leaves": sum(not target.shard(s).is_fully_replicated for s in shapes),
            "rows": rows}
  result["targets"] = targets(result, target.kind, target.devices)
  return result


def versions() -> dict[str, str]:
  import importlib.metadata as md
  out = {"jax": jax.__version__, "optax": optax.__version__,
         "novograd_optax": novograd_optax.__version__}
  for dist in ("jaxlib", "jax-cuda12-plugin", "libtpu"):
    try:
      out[dist] = md.version(dist)
    except md.PackageNotFoundError:
      pass
  return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog="python -m benchmarks.compiled_for_target",
      description=__doc__.split("\n\n")[0].replace("\n", " "),
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--target", default="h100",
                      help="h100 (one GPU), h100x<n> (n GPUs of a host), or a TPU"
                           " slice as tpu-<generation>-<chips>, e.g. tpu-v5e-16x16 (with"
                           " several devices the step is sharded FSDP-style)")
  parser.add_argument("--trees", default=",".join(DEFAULT_TREES),
                      help=f"comma-separated, from {','.join(TREES)}")
  parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                      help=f"comma-separated, from {','.join(OPTIMIZERS)} (SGD-momentum is"
                           " always compiled: the targets are multiples of its count)")
  parser.add_argument("--out", default=None, help="write the JSON report to this file")
  parser.add_argument("--append", action="store_true",
                      help="keep the other trees of an existing --out report of the same"
                           " target, replacing those compiled now")
  args = parser.parse_args(argv)
  args.trees, args.optimizers = parse_names(parser, args.trees, args.optimizers, (SGD_M,))
  return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  """Compiles every tree and optimizer for the target, writes and returns the report."""
  from benchmarks import report as report_lib

  args = parse_args(argv)
  target = make_target(args.target)

  def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

  report: dict[str, Any] = {
      "schema": 1,
      "kind": "compiled_for_target",
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "command": "python -m benchmarks.compiled_for_target " + " ".join(
          sys.argv[1:] if argv is None else argv),
      "target": {"name": target.name, "kind": target.kind, "device_kind": target.device_kind,
                 "devices": target.devices},
      "host": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
               "python": platform.python_version()},
      "versions": versions(),
      "trees": [measure_tree(name, TREES[name](), args.optimizers, target, log)
                for name in args.trees],
  }
  for tree in report["trees"]:
    tree["command"], tree["date"] = report["command"], report["date"]
  if args.out:
    path = pathlib.Path(args.out)
    if args.append and path.exists():
      earlier = json.loads(path.read_text())
      if earlier["target"]["name"] != target.name:
        raise SystemExit(f"--append: {path} is a report for {earlier['target']['name']}")
      for tree in earlier["trees"]:  # each tree keeps the command that compiled it
        tree.setdefault("command", earlier["command"])
        tree.setdefault("date", earlier["date"])
      report["trees"] = merged(earlier["trees"], report["trees"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1) + "\n")
  print(report_lib.compiled_summary(report))
  return report


if __name__ == "__main__":
  main()
