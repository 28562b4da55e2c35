"""A quick run of ``examples/data_parallel.py``: both layouts train and take the
same steps, in one process (the suite's 8 fake devices) and in two processes
joined by ``jax.distributed``."""

import importlib.util
import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).parents[2] / "examples" / "data_parallel.py"


@pytest.fixture(name="example", scope="module")
def fixture_example():
  spec = importlib.util.spec_from_file_location("data_parallel_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_help_lists_the_flags(example, capsys):
  with pytest.raises(SystemExit) as exit_info:
    example.main(["--help"])
  assert exit_info.value.code == 0
  help_text = capsys.readouterr().out
  for flag in ("--quick", "--processes", "--coordinator", "--layout"):
    assert flag in help_text


def test_quick_run_data_parallel_and_fully_sharded_agree(example):
  results = example.main(["--quick"])
  data_params, data_losses = results["data"]
  fsdp_params, fsdp_losses = results["fsdp"]
  assert data_losses[-1] < data_losses[0]
  np.testing.assert_allclose(fsdp_losses, data_losses, rtol=1e-5)
  assert results["difference"] < 1e-5
  assert np.all(np.isfinite(fsdp_params["output"]["kernel"]))


def test_two_local_processes(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  # A session of its own, so that a timeout kills the launcher and its workers.
  launcher = subprocess.Popen(
      [sys.executable, str(EXAMPLE), "--quick", "--layout", "fsdp", "--processes", "2",
       "--devices", "4"],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
      start_new_session=True)
  try:
    output, _ = launcher.communicate(timeout=240)
  finally:
    if launcher.poll() is None:
      os.killpg(launcher.pid, signal.SIGKILL)
      launcher.wait()
  assert launcher.returncode == 0, output[-4000:]
  assert "2 process(es), 4 cpu devices" in output
  assert "fsdp: loss" in output
