"""Mutation testing of the math modules with mutmut, one module at a time.

mutmut (3.x) rewrites every function of a module into variants with one small
change each (an operator, a constant, a comparison, an argument dropped) and runs,
for each variant, the tests that called that function in a first, recorded run. A
variant no test fails on ("survived") is a bug the suite would not catch, unless it
is equivalent to the original (listed with the reason in docs/reliability.md).

The run happens in a copy of the checkout, in a temporary directory (or ``--workdir``):
mutmut writes its ``mutants/`` tree and results there and nothing in the working tree
changes. The mutmut configuration for the module (which file, which tests, which
lines are left alone) is written into the copy's ``pyproject.toml``.

Usage (from the repository root, with the ``mutation`` extra installed)::

    python tests/mutation/run_mutations.py projection          # one module
    python tests/mutation/run_mutations.py --list               # the modules
    python tests/mutation/run_mutations.py trust_ratio --children 2 --workdir /tmp/mut

It prints mutmut's per-mutant results, the surviving mutants with their diffs, and
a one-line summary (killed / survived / timeout / other).
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The tests that check each module against independent references. mutmut then
# runs, per mutant, only those of them that executed the mutated function.
TESTS = {
    "layerwise_norm": ["tests/test_layerwise_norm.py", "tests/test_boundaries.py",
                       "tests/test_novograd.py", "tests/test_numerics.py",
                       "tests/distributed/test_axis_name.py", "tests/test_x64_invariance.py",
                       "tests/test_layer_layout.py"],
    "layer_layout": ["tests/test_layer_layout.py", "tests/test_layerwise_norm.py",
                     "tests/test_novograd.py"],
    "layer_norms": ["tests/test_layer_norms.py", "tests/test_layerwise_norm.py",
                    "tests/test_layer_axes.py", "tests/distributed/test_axis_name.py"],
    "layer_moments": ["tests/test_layer_layout.py", "tests/test_layerwise_norm.py",
                      "tests/test_novograd.py", "tests/test_monitoring.py",
                      "tests/test_layer_axes.py"],
    "global_norm": ["tests/test_sngm.py", "tests/test_boundaries.py",
                    "tests/test_half_precision.py",
                    "tests/distributed/test_axis_name.py", "tests/test_x64_invariance.py"],
    "trust_ratio": ["tests/test_update_clipping.py", "tests/test_boundaries.py",
                    "tests/distributed/test_axis_name.py", "tests/test_x64_invariance.py"],
    "projection": ["tests/test_boundaries.py", "tests/test_adamp.py", "tests/test_sgdp.py",
                   "tests/test_complex.py",
                   "tests/test_x64_invariance.py"],
    "alias": ["tests/test_novograd.py", "tests/test_sngm.py", "tests/test_adamp.py",
              "tests/test_sgdp.py", "tests/test_update_clipping.py",
              "tests/test_boundaries.py", "tests/distributed/test_axis_name.py",
              "tests/test_bad_input.py", "tests/test_numerics.py",
              "tests/test_complex.py", "tests/test_half_precision.py",
              "tests/test_x64_invariance.py"],
    "norm_average": ["tests/test_norm_average.py", "tests/distributed/test_axis_name.py",
                     "tests/test_x64_invariance.py"],
    "layers": ["tests/test_layer_axes.py", "tests/test_layerwise_norm.py",
               "tests/test_boundaries.py", "tests/distributed/test_axis_name.py",
               "tests/test_x64_invariance.py"],
}

# Lines left unmutated: argument validation and its error messages. They are
# tested by tests/test_bad_input.py and tests/test_validation.py, and mutating
# message strings only multiplies the mutants of a math module.
DO_NOT_MUTATE = [
    r"^\s*validation\.check_",
    r"^\s*layers_lib\.check_layer_axes",
    r"^\s*require_params\(",
    r"^\s*raise (ValueError|TypeError)\(",
]

CONFIG = """
[tool.mutmut]
source_paths = ["novograd_optax/"]
only_mutate = ["novograd_optax/_src/{module}.py"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-n", "0", "-q"]
pytest_add_cli_args_test_selection = {tests}
do_not_mutate_patterns = {patterns}
# Each mutant's tests run in a process forked from a server that has imported
# nothing but pytest: JAX's thread pools do not survive a fork.
process_isolation = "forkserver"
forkserver_warmup = "none"
use_git_change_detection = false
"""


def toml_list(items: list[str]) -> str:
  return "[" + ", ".join("'" + item + "'" for item in items) + "]"


def copy_checkout(workdir: pathlib.Path) -> None:
  """Copies the package, the tests and pyproject.toml into ``workdir`` (replacing an
  earlier copy there)."""
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "mutants")
  for name in ("novograd_optax", "tests"):
    if (workdir / name).exists():
      shutil.rmtree(workdir / name)
    shutil.copytree(ROOT / name, workdir / name, ignore=ignore)
  shutil.copy(ROOT / "pyproject.toml", workdir / "pyproject.toml")


def prepare_copy(module: str, workdir: pathlib.Path) -> None:
  """:func:`copy_checkout`, with mutmut's configuration for ``module`` in the copy's
  pyproject.toml."""
  copy_checkout(workdir)
  pyproject = (workdir / "pyproject.toml").read_text()
  pyproject = pyproject.split("\n[tool.mutmut]")[0]
  (workdir / "pyproject.toml").write_text(pyproject + CONFIG.format(
      module=module, tests=toml_list(TESTS[module]), patterns=toml_list(DO_NOT_MUTATE)))


def summarize(results: str) -> collections.Counter:
  counts: collections.Counter = collections.Counter()
  for line in results.splitlines():
    if ": " in line and "__mutmut_" in line:
      counts[line.rsplit(": ", 1)[1].strip()] += 1
  return counts


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("module", nargs="?", choices=sorted(TESTS))
  parser.add_argument("--list", action="store_true", help="list the modules and their tests")
  parser.add_argument("--children", type=int, default=2, help="parallel mutant runs (2)")
  parser.add_argument("--workdir", type=pathlib.Path, default=None,
                      help="where the copy and mutmut's results go (default: a new temp dir;"
                           " reusing one keeps mutmut's cache of finished mutants)")
  args = parser.parse_args()
  if args.list or args.module is None:
    for module, tests in TESTS.items():
      print(f"{module}: {' '.join(tests)}")
    return 0
  workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix=f"mutation-{args.module}-"))
  workdir.mkdir(parents=True, exist_ok=True)
  prepare_copy(args.module, workdir)
  print(f"mutating novograd_optax/_src/{args.module}.py in {workdir}", flush=True)
  run = subprocess.run(["mutmut", "run", "--max-children", str(args.children)], cwd=workdir)
  results = subprocess.run(["mutmut", "results", "--all", "true"], cwd=workdir,
                           capture_output=True, text=True).stdout
  print(results)
  for line in results.splitlines():
    if line.strip().endswith(": survived"):
      name = line.split(":")[0].strip()
      subprocess.run(["mutmut", "show", name], cwd=workdir)
  counts = summarize(results)
  print(f"{args.module}: " + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())))
  return run.returncode


if __name__ == "__main__":
  sys.exit(main())
