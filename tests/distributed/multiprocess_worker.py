"""One process of the two-process run of ``test_multiprocess.py``.

Started as a script (so ``toy_problem`` is imported from this directory) with
XLA_FLAGS asking for 2 local CPU devices. Joins the job through
``jax.distributed``, trains the toy problem fully sharded over the global mesh
of all processes' devices, and saves the final params, gathered, to an .npz.
"""

import argparse

import jax
import numpy as np
import toy_problem
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

FSDP_SPECS = {"dense1": {"kernel": P("data", None), "bias": P("data")},
              "dense2": {"kernel": P("data", None), "bias": P("data")}}


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--coordinator", required=True, help="host:port of process 0")
  parser.add_argument("--num-processes", type=int, required=True)
  parser.add_argument("--process-id", type=int, required=True)
  parser.add_argument("--output", required=True, help=".npz file for the final params")
  args = parser.parse_args()

  # CPU devices of different processes talk through gloo.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=args.coordinator, num_processes=args.num_processes,
      process_id=args.process_id, initialization_timeout=60)
  assert jax.process_count() == args.num_processes
  assert jax.device_count() == 2 * args.num_processes, jax.devices()

  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  inputs, targets = toy_problem.batches()
  params, _ = toy_problem.sharded_run(mesh, FSDP_SPECS, inputs, targets,
                                      toy_problem.optimizer())
  # Gather every weight onto every device, then read this process's copy.
  replicated = jax.jit(lambda tree: tree, out_shardings=NamedSharding(mesh, P()))(params)
  flat = {jax.tree_util.keystr(path): np.asarray(leaf.addressable_data(0))
          for path, leaf in jax.tree_util.tree_leaves_with_path(replicated)}
  np.savez(args.output, **flat)
  jax.distributed.shutdown()


if __name__ == "__main__":
  main()
