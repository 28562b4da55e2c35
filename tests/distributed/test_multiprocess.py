"""A real multi-process run: two Python processes on 127.0.0.1 join one job
with ``jax.distributed``, each with 2 CPU devices, and train NovoGrad fully
sharded over the 4-device global mesh. Both must end with the params of the
one-device run."""

import os
import pathlib
import socket
import subprocess
import sys
import time

import jax
import numpy as np

from . import toy_problem

PROCESSES = 2
TIMEOUT_SECONDS = 180
WORKER = pathlib.Path(__file__).with_name("multiprocess_worker.py")


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def test_two_processes_end_with_the_one_device_params(tmp_path):
  inputs, targets = toy_problem.batches()
  expected_params, _ = toy_problem.one_device_run(inputs, targets)
  expected = {jax.tree_util.keystr(path): leaf
              for path, leaf in jax.tree_util.tree_leaves_with_path(expected_params)}

  env = dict(os.environ)
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"  # 2 local devices each
  env["JAX_PLATFORMS"] = "cpu"
  coordinator = f"127.0.0.1:{free_port()}"
  outputs = [tmp_path / f"params_{rank}.npz" for rank in range(PROCESSES)]
  processes = []
  try:
    for rank in range(PROCESSES):
      processes.append(subprocess.Popen(
          [sys.executable, str(WORKER), "--coordinator", coordinator,
           "--num-processes", str(PROCESSES), "--process-id", str(rank),
           "--output", str(outputs[rank])],
          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    deadline = time.monotonic() + TIMEOUT_SECONDS
    logs = [process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
            for process in processes]
  finally:
    # On a timeout or any error, no worker may outlive the test.
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.wait()
  for rank, process in enumerate(processes):
    assert process.returncode == 0, f"process {rank} failed:\n{logs[rank][-4000:]}"

  for output in outputs:
    with np.load(output) as actual:
      assert sorted(actual.files) == sorted(expected)
      toy_problem.assert_trees_close(dict(actual), expected)
