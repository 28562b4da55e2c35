"""A Flax NNX classifier trained with NovoGrad on every device there is.

Two layouts over one ``jax.sharding.Mesh`` with a ``data`` axis, same code on CPU,
GPU and TPU:

* ``data``: data parallel: params and optimizer state replicated, each device takes
  a slice of the batch;
* ``fsdp``: fully sharded: each weight, its momentum and its gradient are split over
  the devices as well (the per-layer second moments, one scalar per layer, are
  replicated); weights are gathered for the forward pass only.

Both layouts take the same steps, so the script ends by printing the largest
difference between their final params (float rounding only).

On a machine without accelerators the script asks for ``--devices`` fake CPU
devices (8 by default). Runs:

  python examples/data_parallel.py                 # 8 fake CPU devices, both layouts
  python examples/data_parallel.py --quick         # a few steps, a smaller model
  python examples/data_parallel.py --processes 2   # 2 local processes, jax.distributed

Multi-host (one process per host, e.g. a GPU cluster): start on every host

  python examples/data_parallel.py --coordinator HOST0:1234 --num-processes N \\
      --process-id I

with ``I`` = 0 .. N-1 and ``HOST0`` the address of the host of process 0; the mesh
then spans the devices of all hosts. (On TPU pods and SLURM clusters
``jax.distributed.initialize()`` finds these values itself: pass ``--auto-init``.)
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Any, Sequence

LAYOUTS = ("data", "fsdp")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                     argparse.RawDescriptionHelpFormatter):
  """Shows every default, and the module docstring (the epilog) as written."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description="Train a Flax NNX MLP with NovoGrad, data parallel and fully sharded.",
      formatter_class=_HelpFormatter, epilog=__doc__)
  parser.add_argument("--layout", choices=LAYOUTS + ("both",), default="both",
                      help="data: replicated params; fsdp: params sharded; both: each")
  parser.add_argument("--steps", type=int, default=200, help="training steps")
  parser.add_argument("--batch-size", type=int, default=512,
                      help="global batch, split over all devices")
  parser.add_argument("--hidden", type=int, default=256, help="hidden units of the MLP")
  parser.add_argument("--learning-rate", type=float, default=0.01,
                      help="NovoGrad's learning rate")
  parser.add_argument("--weight-decay", type=float, default=1e-3,
                      help="NovoGrad's weight decay (not on biases)")
  parser.add_argument("--quick", action="store_true",
                      help="10 steps, batch 64, hidden 32: a smoke test")
  parser.add_argument("--devices", type=int, default=8,
                      help="fake CPU devices per process when running on CPU")
  parser.add_argument("--processes", type=int, default=0,
                      help="start this many local processes joined by jax.distributed")
  parser.add_argument("--coordinator",
                      help="host:port of process 0 (multi-process; None: single process)")
  parser.add_argument("--num-processes", type=int, help="processes in the job")
  parser.add_argument("--process-id", type=int, help="this process's rank")
  parser.add_argument("--auto-init", action="store_true",
                      help="jax.distributed.initialize() without arguments (TPU pods, SLURM)")
  args = parser.parse_args(argv)
  if args.quick:
    args.steps, args.batch_size, args.hidden = 10, 64, 32
  return args


def fake_cpu_devices_flags(devices: int) -> str:
  return f"--xla_force_host_platform_device_count={devices}"


def launch_local_processes(args: argparse.Namespace, argv: Sequence[str]) -> int:
  """Starts ``--processes`` copies of this script on 127.0.0.1, each with
  ``--devices / --processes`` CPU devices, and waits for them."""
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  passed_on = [a for a in argv if not a.startswith("--processes")]
  if "--processes" in argv:  # the "--processes N" form: drop N as well
    index = argv.index("--processes")
    passed_on = list(argv[:index]) + list(argv[index + 2:])
  env = dict(os.environ)
  env["XLA_FLAGS"] = fake_cpu_devices_flags(max(1, args.devices // args.processes))
  env.setdefault("JAX_PLATFORMS", "cpu")
  children = [
      subprocess.Popen(
          [sys.executable, __file__, *passed_on, "--coordinator", f"127.0.0.1:{port}",
           "--num-processes", str(args.processes), "--process-id", str(rank)], env=env)
      for rank in range(args.processes)]
  try:
    return max(child.wait(timeout=600) for child in children)
  finally:
    for child in children:
      if child.poll() is None:
        child.kill()
        child.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
  """Trains each layout; returns {layout: (final params, losses)} and the
  difference between layouts. jax is imported here, after XLA_FLAGS is set."""
  import jax
  import numpy as np
  import optax
  from flax import nnx
  from jax.sharding import NamedSharding
  from jax.sharding import PartitionSpec as P

  from novograd_optax import novograd, optimizer_state_shardings

  if args.coordinator or args.auto_init:
    # CPU devices of different processes talk through gloo; GPUs and TPUs
    # have their own collectives.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.auto_init:
      jax.distributed.initialize()
    else:
      jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
  is_main = jax.process_index() == 0
  say = print if is_main else (lambda *a, **k: None)

  devices = jax.device_count()
  mesh = jax.make_mesh((devices,), ("data",))
  say(f"{jax.process_count()} process(es), {devices} {jax.devices()[0].platform} devices,"
      f" mesh {dict(mesh.shape)}")
  if args.batch_size % devices:
    raise SystemExit(f"--batch-size {args.batch_size} is not divisible by {devices} devices")

  class Classifier(nnx.Module):
    def __init__(self, features: int, hidden: int, classes: int, rngs: nnx.Rngs):
      self.hidden1 = nnx.Linear(features, hidden, rngs=rngs)
      self.hidden2 = nnx.Linear(hidden, hidden, rngs=rngs)
      self.output = nnx.Linear(hidden, classes, rngs=rngs)

    def __call__(self, x):
      x = nnx.gelu(self.hidden1(x))
      x = nnx.gelu(self.hidden2(x))
      return self.output(x)

  features, classes = 32, 10
  # Every process builds the same model and data from the same seeds. A real
  # input pipeline would read only its process's slice of the batch and use
  # jax.make_array_from_process_local_data.
  graphdef, initial = nnx.split(Classifier(features, args.hidden, classes, nnx.Rngs(0)),
                                nnx.Param)
  rng = np.random.default_rng(0)
  teacher = rng.normal(size=(features, classes))
  inputs = rng.normal(size=(args.steps, args.batch_size, features)).astype(np.float32)
  labels = np.argmax(inputs @ teacher, axis=-1)

  def global_array(value, sharding):
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P("data"))

  def fsdp_sharding(leaf):
    # Split the largest axis the devices divide; small leaves stay replicated.
    for axis in np.argsort(leaf.shape)[::-1]:
      if leaf.shape[axis] % devices == 0 and leaf.shape[axis] >= devices:
        spec = [None] * leaf.ndim
        spec[axis] = "data"
        return NamedSharding(mesh, P(*spec))
    return replicated

  optimizer = novograd(
      args.learning_rate, b1=0.95, b2=0.5, weight_decay=args.weight_decay,
      # No decay on biases, as in the paper's experiments.
      weight_decay_mask=lambda params: jax.tree.map(lambda p: p.ndim > 1, params))

  def train(layout: str):
    param_shardings = jax.tree.map(
        fsdp_sharding if layout == "fsdp" else (lambda _: replicated), initial)
    params = jax.tree.map(global_array, initial, param_shardings)
    state_shardings = optimizer_state_shardings(optimizer, params)
    state = jax.jit(optimizer.init, out_shardings=state_shardings)(params)

    def loss_fn(params, x, y):
      # Gather the weights (a no-op for replicated ones); the gradient of the
      # gather is a reduce-scatter back to each weight's sharding.
      whole = jax.tree.map(lambda p: jax.sharding.reshard(p, replicated), params)
      logits = nnx.merge(graphdef, whole)(x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def step(params, state, x, y):
      loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
      updates, state = optimizer.update(grads, state, params)
      return optax.apply_updates(params, updates), state, loss

    step = jax.jit(step, out_shardings=(param_shardings, state_shardings, replicated),
                   donate_argnums=(0, 1))
    losses, start = [], time.perf_counter()
    for x, y in zip(inputs, labels, strict=True):
      params, state, loss = step(params, state, global_array(x, batch_sharding),
                                 global_array(y, batch_sharding))
      # One step in flight at a time: fake CPU devices share one thread pool,
      # and many queued steps whose all-reduces wait for each other can take
      # all its threads (XLA then aborts a "stuck rendezvous" after 40 s).
      losses.append(float(loss))
    seconds = time.perf_counter() - start
    kernel = params["hidden2"]["kernel"]
    say(f"{layout:>4}: loss {losses[0]:.3f} -> {losses[-1]:.3f} in {args.steps} steps"
        f" ({seconds:.2f} s with compilation); hidden2 kernel {kernel.shape}, stored"
        f" per device as {kernel.addressable_shards[0].data.shape}")
    gathered = jax.jit(lambda t: t, out_shardings=replicated)(params)
    return jax.tree.map(lambda p: np.asarray(p.addressable_data(0)), gathered), losses

  layouts = LAYOUTS if args.layout == "both" else (args.layout,)
  results: dict[str, Any] = {layout: train(layout) for layout in layouts}
  if len(layouts) == 2:
    difference = max(jax.tree.leaves(jax.tree.map(
        lambda a, b: float(np.max(np.abs(a - b))), results["data"][0], results["fsdp"][0])))
    results["difference"] = difference
    say(f"largest |data - fsdp| over the final params: {difference:.2e}")
  if args.coordinator or args.auto_init:
    jax.distributed.shutdown()
  return results


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  if args.processes:
    return launch_local_processes(args, argv)
  # Fake CPU devices must be requested before jax is imported; a GPU or TPU
  # platform ignores the flags.
  os.environ.setdefault("XLA_FLAGS", fake_cpu_devices_flags(args.devices))
  return run(args)


if __name__ == "__main__":
  outcome = main()
  sys.exit(outcome if isinstance(outcome, int) else 0)
