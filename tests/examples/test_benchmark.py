"""Smoke test of the step benchmark (``python -m benchmarks.update_step --quick``) and of
the performance page generated from its committed report.

No timing is asserted (timings depend on the machine). The byte counts are, against
sizes computed here from the shapes and each optimizer's definition.
"""

import json
import math
import pathlib

import jax
import pytest

from benchmarks import compiled_for_target, hlo, trees, update_step
from benchmarks import report as report_lib

ROOT = pathlib.Path(__file__).resolve().parents[2]

# The tiny tree: dense kernel (4, 3), bias (3,), a stack of 2 layers (2, 3, 3).
SHAPES = [(4, 3), (3,), (2, 3, 3)]
PARAMS = sum(math.prod(s) for s in SHAPES)
LEAVES = len(SHAPES)
LAYERS = 1 + 1 + 2  # our novograd gets layer_axes=0 on the stacked leaf
F32, BF16, COUNT = 4, 2, 4


def expected_state_bytes():
  return {
      # first moment + 4 bytes per layer + the step count
      "ours": F32 * PARAMS + F32 * LAYERS + COUNT,
      "ours_bf16": BF16 * PARAMS + F32 * LAYERS + COUNT,
      # first moment + one float32 per leaf + the step count
      "optax_novograd": F32 * PARAMS + F32 * LEAVES + COUNT,
      # first and second moments + the step count
      "adamw": 2 * F32 * PARAMS + COUNT,
      "lamb": 2 * F32 * PARAMS + COUNT,
      # the momentum only (clipping by the global norm keeps no state)
      "sgd_momentum": F32 * PARAMS,
      "sgd_m_clipped": F32 * PARAMS,
  }


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench") / "report.json"
  returned = update_step.main(["--quick", "--out", str(out)])
  return returned, json.loads(out.read_text())


def test_quick_report_sizes_and_memory(quick_report):
  returned, written = quick_report
  assert written == json.loads(json.dumps(returned))
  assert written["machine"]["backend"] == jax.default_backend()
  assert written["versions"]["jax"] == jax.__version__
  (tree,) = written["trees"]
  assert (tree["tree"], tree["leaves"], tree["layers"], tree["params"]) == (
      "tiny", LEAVES, LAYERS, PARAMS)
  assert tree["params_bytes"] == F32 * PARAMS
  rows = {r["optimizer"]: r for r in tree["rows"]}
  expected = expected_state_bytes()
  assert set(rows) == set(expected)
  tiny = trees.tiny_tree()
  params = trees.random_tree(tiny.shapes, seed=0)
  for name, state_bytes in expected.items():
    row, grads_bytes = rows[name], F32 * PARAMS
    assert row["state_bytes"] == state_bytes, name
    # read the gradient and the params, write the params, read and write the state
    assert row["bytes_moved"] == grads_bytes + 2 * F32 * PARAMS + 2 * state_bytes, name
    memory = row["memory"]
    # The step takes params, state and gradient, returns params and state, and the
    # donated params and state are aliased to the outputs.
    assert memory["argument_size"] == F32 * PARAMS + state_bytes + grads_bytes, name
    # The outputs are returned as one tuple: a table of 8-byte buffer pointers.
    state = trees.OPTIMIZERS[name][1](tiny).init(params)
    outputs = LEAVES + len(jax.tree.leaves(state))
    assert memory["output_size"] == F32 * PARAMS + state_bytes + 8 * outputs, name
    assert memory["alias_size"] == F32 * PARAMS + state_bytes, name
    assert row["kernels"] == sum(row["kernel_ops"].values()) > 0
    for key in ("in_loop_ms", "dispatched_ms", "compile_s"):
      s = row[key]
      assert 0 < s["min"] <= s["q1"] <= s["median"] <= s["q3"] <= s["max"], (name, key)
  assert rows["sgd_momentum"]["in_loop_over_sgd_momentum"]["median"] == 1.0
  assert rows["adamw"]["dispatched_over_adamw"]["max"] == 1.0


def test_quick_report_targets_and_tables(quick_report):
  _, report = quick_report
  (tree,) = report["trees"]
  assert {(t["optimizer"], t["target"]) for t in tree["targets"]} == {
      (o, t) for o in ("ours", "ours_bf16") for t in (
          "in-loop time / AdamW's", "in-loop time / SGD-m's", "kernels",
          "temporaries (bytes)", "compile time / AdamW's", "dispatched time / AdamW's")}
  kernels = next(t for t in tree["targets"] if t["target"] == "kernels")
  assert kernels["limit"] == math.ceil(1.2 * LEAVES) + 10 * 2  # float32 x {whole, stacked}
  page = report_lib.render_page(report)
  assert "| tree | optimizer | target |" in page and "### tiny" in page
  assert "| novograd_optax.novograd |" in report_lib.summary(report)


def test_targets_pass_and_miss():
  def row(key, in_loop, temp, compile_s, dispatched):
    return {"optimizer": key, "kernels": 10, "memory": {"temp_size": temp},
            "in_loop_over_adamw": {"median": in_loop[0]},
            "in_loop_over_sgd_momentum": {"median": in_loop[1]},
            "compile_over_adamw": compile_s, "dispatched_over_adamw": {"median": dispatched}}

  result = {"tree": "resnet50", "leaves": 5, "layers": 100, "groups": 1, "rows": [
      row("ours", (0.9, 1.29), 1000 + 64 * 100 + 2**16 + 1, 1.0, 1.1),
      row("sgd_momentum", (0.5, 1.0), 1000, 0.2, 0.5),
      row("adamw", (1.0, 2.0), 5000, 1.0, 1.0)]}
  got = {t["target"]: t["pass"] for t in update_step.targets(result)}
  assert got == {"in-loop time / AdamW's": True, "in-loop time / SGD-m's": True,
                 "kernels": True, "temporaries (bytes)": False,
                 "compile time / AdamW's": True, "dispatched time / AdamW's": False}


def test_kernel_ops_of_an_entry_computation():
  text = """HloModule m

fused (p: f32[4]) -> f32[4] {
  ROOT x = f32[4] negate(p)
}

ENTRY main (a: f32[4], b: f32[]) -> (f32[4], f32[]) {
  a = f32[4]{0} parameter(0)
  b = f32[] parameter(1)
  f = f32[4]{0} fusion(a), kind=kLoop, calls=fused
  r = f32[] reduce(a, b), dimensions={0}, to_apply=add
  c = f32[4]{0} copy(f)
  t = f32[4]{0} bitcast(c)
  ROOT out = (f32[4]{0}, f32[]) tuple(t, r)
}
"""
  assert hlo.kernel_ops(text) == {"copy": 1, "fusion:loop": 1, "reduce": 1}
  assert hlo.count_kernels(text) == 3


def test_analyse_counts_compute_dma_branches_and_collectives():
  """A TPU-like module written by hand: DMA apart, the larger branch of a conditional
  counted, collectives in any computation, each once, with their values and shapes."""
  text = """HloModule m

%branch_a (p: f32[]) -> f32[] {
  %p = f32[] parameter(0)
  %n = f32[] negate(%p)
  ROOT %m = f32[] multiply(%n, %n)
}

%branch_b (p: f32[]) -> f32[] {
  %p = f32[] parameter(0)
  ROOT %n = f32[] negate(%p)
}

%nested (x: f32[8]) -> f32[8] {
  %x = f32[8]{0} parameter(0)
  ROOT %g = f32[64]{0} all-gather(%x), dimensions={0}
}

ENTRY %main (a: f32[8], b: f32[], i: s32[]) -> f32[8] {
  %a = f32[8]{0} parameter(0)
  %b = f32[] parameter(1)
  %i = s32[] parameter(2)
  %cs = (f32[8]{0}, f32[8]{0}, u32[]) copy-start(%a)
  %cd = f32[8]{0} copy-done(%cs)
  %ar = (f32[], f32[8]{0}) all-reduce(%b, %cd), replica_groups={}, to_apply=%add
  %c = f32[] conditional(%i, %b, %b), branch_computations={%branch_a, %branch_b}
  %f = f32[8]{0} fusion(%cd), kind=kLoop, calls=%fused
  ROOT %t = (f32[8]{0}, f32[]) tuple(%f, %c)
}
"""
  got = hlo.analyse(text)
  assert got["kinds"] == {"all-reduce": 1, "conditional": 1, "copy-done": 1, "copy-start": 1,
                          "fusion:loop": 1}
  assert got["dma"] == 2
  assert got["conditionals"] == [[2, 1]]
  # all-reduce + conditional + fusion in the entry, and the larger branch's 2 ops
  assert got["ops"] == 3 + 2
  assert got["collectives"] == {"all-gather": 1, "all-reduce": 1}
  assert got["all_reduce_values"] == [2]
  assert got["all_gather_shapes"] == ["f32[64]"]
  assert got["all_gather_largest"] == 64


def test_analyse_counts_the_asynchronous_collectives():
  """A GPU's collectives are start/done pairs: each counted once, by kind."""
  text = """HloModule m

ENTRY %main (a: f32[8]) -> f32[8] {
  %a = f32[8]{0} parameter(0)
  %rs = ((f32[8]{0}), f32[1]{0}) reduce-scatter-start(%a), dimensions={0}, to_apply=%add
  %rd = f32[1]{0} reduce-scatter-done(%rs)
  %xs = ((f32[8]{0}), f32[8]{0}) all-to-all-start(%a), dimensions={0}
  %xd = f32[8]{0} all-to-all-done(%xs)
  %ps = (f32[8]{0}, f32[8]{0}) collective-permute-start(%a), source_target_pairs={{0,1}}
  %pd = f32[8]{0} collective-permute-done(%ps)
  ROOT %t = (f32[1]{0}, f32[8]{0}, f32[8]{0}) tuple(%rd, %xd, %pd)
}
"""
  assert hlo.analyse(text)["collectives"] == {
      "all-to-all": 1, "collective-permute": 1, "reduce-scatter": 1}


def test_compiled_targets_pass_and_miss():
  def row(key, ops, temp, collectives=None, gathered=0):
    return {"optimizer": key, "ops": ops, "memory": {"temp_size": temp},
            "collectives": collectives or {}, "all_gather_largest": gathered}

  result = {"tree": "gpt2", "layers": 100, "groups": 2, "rows": [
      row("ours", 215, 64 * 100 + 2**16, {"all-reduce": 3}),
      row("ours_bf16", 214, 0, {"all-reduce": 2, "all-gather": 1}, gathered=256 * 768),
      row("sgd_momentum", 148, 0)]}
  got = {(t["optimizer"], t["target"]): t["pass"]
         for t in compiled_for_target.targets(result, "tpu", devices=256)}
  # 215 / 148 = 1.45 <= 1.5; 3 all-reduces for 2 groups: miss; a gathered array of 768
  # values per device (a weight's rows): miss.
  assert got == {("ours", "compute ops / SGD-m's"): True,
                 ("ours", "temporaries (bytes)"): True,
                 ("ours", "all-reduces per dtype group"): False,
                 ("ours", "values per gathered array"): True,
                 ("ours_bf16", "compute ops / SGD-m's"): True,
                 ("ours_bf16", "temporaries (bytes)"): True,
                 ("ours_bf16", "all-reduces per dtype group"): True,
                 ("ours_bf16", "values per gathered array"): False,
                 ("ours", "other collectives"): True,
                 ("ours_bf16", "other collectives"): True}
  gpu = {(t["optimizer"], t["target"]): t["pass"]
         for t in compiled_for_target.targets(result, "gpu")}
  # 215 / 148 = 1.453 > 1.45 (GPU); 214 / 148 = 1.446.
  assert gpu[("ours", "kernels / SGD-m's")] is False
  assert gpu[("ours_bf16", "kernels / SGD-m's")] is True
  # One device has no collectives to check; several GPUs are checked like a TPU slice.
  assert ("ours", "values per gathered array") not in gpu
  gpus = {(t["optimizer"], t["target"]): t["pass"]
          for t in compiled_for_target.targets(result, "gpu", devices=8)}
  assert gpus[("ours", "all-reduces per dtype group")] is False
  assert gpus[("ours_bf16", "values per gathered array")] is False
  # One partial norm per device and leaf (8 values on 8 GPUs) may be gathered.
  result["rows"][1]["all_gather_largest"] = 8
  gpus = {(t["optimizer"], t["target"]): t["pass"]
          for t in compiled_for_target.targets(result, "gpu", devices=8)}
  assert gpus[("ours_bf16", "values per gathered array")] is True
  result["rows"][0]["collectives"]["reduce-scatter"] = 1
  gpus = {(t["optimizer"], t["target"]): t["pass"]
          for t in compiled_for_target.targets(result, "gpu", devices=8)}
  assert gpus[("ours", "other collectives")] is False


def test_rejects_unknown_names():
  with pytest.raises(SystemExit):
    update_step.main(["--trees", "vgg"])
  with pytest.raises(SystemExit):
    update_step.main(["--optimizers", "adam"])
  for argv in (["--trees", "vgg"], ["--optimizers", "adam"]):
    with pytest.raises(SystemExit):
      compiled_for_target.parse_args(argv)
  args = compiled_for_target.parse_args(["--trees", "tiny", "--optimizers", "adamw"])
  assert (args.trees, args.optimizers) == (["tiny"], ["adamw", "sgd_momentum"])



def test_performance_page_is_generated_from_the_committed_report():
  results = ROOT / "results" / "benchmarks"
  report = json.loads((results / "cpu.json").read_text())
  compiled_files = ["h100_compiled.json", "h100x8_compiled.json",
                    "tpu_v5e_16x16_compiled.json"]
  compiled = [json.loads((results / name).read_text()) for name in compiled_files]
  page = (ROOT / "docs" / "performance.md").read_text()
  assert page == report_lib.render_page(report, compiled), (
      "docs/performance.md is stale: run python -m benchmarks.report"
      " results/benchmarks/cpu.json docs/performance.md --compiled "
      + " ".join(f"results/benchmarks/{name}" for name in compiled_files))


def test_append_keeps_the_other_trees_in_tree_order():
  earlier = [{"tree": "gpt2", "run": 1}, {"tree": "deep", "run": 1}]
  now = [{"tree": "tiny", "run": 2}, {"tree": "gpt2", "run": 2}]
  assert trees.merged(earlier, now) == [
      {"tree": "gpt2", "run": 2}, {"tree": "deep", "run": 1}, {"tree": "tiny", "run": 2}]
