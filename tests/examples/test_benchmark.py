"""Smoke test of benchmarks/update_step.py on a tiny tree, so the script cannot rot.

No timing is asserted (timings depend on the machine); the optimizer-state sizes
are, against sizes computed here from the shapes and each optimizer's definition.
"""

import importlib.util
import json
import math
import pathlib
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "update_step.py"

# The tiny tree: dense kernel (4, 3), bias (3,), a stack of 2 layers (2, 3, 3).
SHAPES = [(4, 3), (3,), (2, 3, 3)]
PARAMS = sum(math.prod(s) for s in SHAPES)
LEAVES = len(SHAPES)
LAYERS = 1 + 1 + 2  # our novograd gets layer_axes=0 on the stacked leaf
F32, BF16, COUNT = 4, 2, 4


@pytest.fixture(scope="module")
def update_step():
  spec = importlib.util.spec_from_file_location("update_step", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # dataclasses look their module up there
  spec.loader.exec_module(module)
  return module


def expected_state_bytes():
  return {
      # first moment + 4 bytes per layer + the step count
      "novograd_optax.novograd": F32 * PARAMS + F32 * LAYERS + COUNT,
      "novograd_optax.novograd(mu_dtype=bf16)": BF16 * PARAMS + F32 * LAYERS + COUNT,
      # first moment + one float32 per leaf + the step count
      "optax.novograd": F32 * PARAMS + F32 * LEAVES + COUNT,
      # first and second moments + the step count
      "optax.adamw": 2 * F32 * PARAMS + COUNT,
      "optax.lamb": 2 * F32 * PARAMS + COUNT,
      # the momentum only
      "optax.sgd(momentum=0.9)": F32 * PARAMS,
  }


def test_markdown_report_on_tiny_tree(update_step, capsys):
  report = update_step.main(["--trees", "tiny", "--repeats", "3", "--warmup", "1"])
  (tree,) = report["trees"]
  assert tree["leaves"] == LEAVES
  assert tree["params"] == PARAMS
  assert tree["params_bytes"] == F32 * PARAMS
  rows = {r["optimizer"]: r for r in tree["rows"]}
  expected = expected_state_bytes()
  assert set(rows) == set(expected)
  for name, state_bytes in expected.items():
    assert rows[name]["state_bytes"] == state_bytes, name
    assert rows[name]["state_over_params"] == pytest.approx(state_bytes / (F32 * PARAMS))
    assert rows[name]["step_ms"] > 0 and rows[name]["compile_s"] > 0
    assert rows[name]["kernels"] > 0
  assert rows["optax.sgd(momentum=0.9)"]["ratio_to_sgd_momentum"] == 1.0
  table = capsys.readouterr().out
  assert "| optimizer | step (ms) | × SGD-m |" in table
  assert f"| {F32 * PARAMS + F32 * LAYERS + COUNT:,} |" in table


def test_json_report_with_an_optimizer_subset(update_step, capsys):
  update_step.main(["--trees", "tiny", "--repeats", "2", "--warmup", "0", "--json",
                    "--optimizers", "optax.novograd", "--scale", "0.5"])
  report = json.loads(capsys.readouterr().out)
  (tree,) = report["trees"]
  # SGD-momentum always runs: the ratios are taken against it.
  assert [r["optimizer"] for r in tree["rows"]] == ["optax.novograd", "optax.sgd(momentum=0.9)"]
  halved = [s[:-1] + (round(s[-1] * 0.5),) for s in SHAPES]  # --scale shrinks the last axis
  assert tree["params"] == sum(math.prod(s) for s in halved)


def test_rejects_an_unknown_tree(update_step):
  with pytest.raises(SystemExit):
    update_step.main(["--trees", "vgg"])
