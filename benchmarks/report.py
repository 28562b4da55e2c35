"""Renders the reports of ``benchmarks.update_step`` (timed) and of
``benchmarks.compiled_for_target`` (compiled for a GPU or TPU, counts only) as markdown:
short summaries for the terminal and the docs' performance page.

    python -m benchmarks.report results/benchmarks/cpu.json docs/performance.md \
        --compiled results/benchmarks/h100_compiled.json \
        results/benchmarks/tpu_v5e_16x16_compiled.json

The page is generated, never edited by hand; a test checks that the committed page
equals the one generated from the committed report.
"""

from __future__ import annotations

import argparse
import json
import pathlib
from collections.abc import Sequence
from typing import Any

OURS_KEYS = ("ours", "ours_bf16")

# Why a target is missed, for the misses analysed so far: (backend, target, tree) ->
# explanation; tree None: every tree. The page says "not analysed yet" for any other miss.
_BF16 = (" With `mu_dtype=bf16` the CPU, which has no native bfloat16 arithmetic, also"
         " converts every moment element both ways (in `optax.trace`'s accumulator).")
_CPU_TIME = (
    "On CPU the layer norm is a pass of its own over each gradient before the elementwise"
    " update, and XLA:CPU splits a reduction to one number into few parallel tasks (for"
    " vectors of 1000-16000 elements it even materializes g² for a `reduce-window`),"
    " while AdamW's and SGD-momentum's steps are elementwise passes only (`optax.novograd`,"
    " with the same per-leaf norms, is no faster). On a GPU the reductions run"
    " in parallel and are fused horizontally; the design experiment measured 1.22×"
    " (ResNet-50) and 1.24× (GPT-2) SGD-momentum there. To be re-measured on a GPU."
    + _BF16)
WHY_MISSED: dict[tuple[str, str, str | None], str] = {
    ("cpu", "in-loop time / AdamW's", None): _CPU_TIME,
    ("cpu", "in-loop time / SGD-m's", None): _CPU_TIME,
    ("cpu", "dispatched time / AdamW's", None): _CPU_TIME,
    ("cpu", "kernels", None):
        "XLA:CPU emits, per leaf, the reduction (for mid-size vectors: a square, a"
        " `reduce-window` and a reduce), the momentum update and the weight update as"
        " separate fusions (it does not fuse the new momentum with `apply_updates`:"
        " SGD-momentum has 2 per leaf too), and it never fuses the reciprocal of a"
        " denominator (a divide and a square root) into the kernel that broadcasts it, so"
        " each group of 8 reciprocals is a kernel of its own. On a GPU small reductions are"
        " candidates for horizontal fusion; CPU operation counts do not predict GPU kernel"
        " counts (to be counted on a GPU). The kernel column counts the entry computation"
        " only: `optax.novograd` does its norm and moment work inside two `lax.cond`s, so"
        " its count is far lower than the operations it runs.",
    ("cpu", "temporaries (bytes)", "deep"):
        "XLA:CPU materializes g² of every 1000-element leaf before its `reduce-window`"
        " (2000 × 1000 × 4 bytes = 7.6 MiB); see kernels.",
    ("cpu", "temporaries (bytes)", "gpt2"):
        "Float32: partial sums of XLA:CPU's split reductions of the large leaves, not"
        " analysed further (60 KiB over the limit). With `mu_dtype=bf16`: a float32"
        " intermediate of the update is materialized; not analysed yet.",
    ("cpu", "temporaries (bytes)", None):
        "With `mu_dtype=bf16`: a float32 intermediate of the update is materialized; not"
        " analysed yet.",
    ("cpu", "compile time / AdamW's", None):
        "XLA:CPU compiles each per-leaf reduction into a kernel of its own; AdamW's step has"
        " no reduction (`optax.novograd`, with per-leaf norms too, also compiles slower than"
        " AdamW). Batching the reciprocals in groups of 8 costs some compile time on"
        " ResNet-50 (not batching them compiled faster there, with 140 more operations).",
}


def _ms(s: dict[str, Any]) -> str:
  return f"{s['median']:.3g} [{s['q1']:.3g}–{s['q3']:.3g}]"


def _ratio(s: dict[str, Any]) -> str:
  return f"{s['median']:.2f} [{s['q1']:.2f}–{s['q3']:.2f}]"


def _mib(n: int) -> str:
  return f"{n / 2**20:.1f}"


def _value(target: str, v: float) -> str:
  if target in ("kernels", "all-gathers"):
    return f"{v:.0f}"
  if target.startswith("temporaries"):
    return f"{v / 2**20:.2f} MiB"
  return f"{v:.2f}"


def _why(backend: str, target: str, tree: str) -> str:
  for key in ((backend, target, tree), (backend, target, None)):
    if key in WHY_MISSED:
      return WHY_MISSED[key]
  return "not analysed yet"


def tree_table(tree: dict[str, Any]) -> list[str]:
  lines = [
      "| optimizer | in-loop ms [IQR] | × SGD-m | × AdamW | × floor | dispatched ms"
      " | × AdamW | kernels | compile s | temp MiB | peak MiB | state MiB |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]
  for r in tree["rows"]:
    lines.append(
        f"| {r['label']} | {_ms(r['in_loop_ms'])} | {_ratio(r['in_loop_over_sgd_momentum'])}"
        f" | {_ratio(r['in_loop_over_adamw'])} | {r['in_loop_over_floor']:.2f}"
        f" | {_ms(r['dispatched_ms'])} | {_ratio(r['dispatched_over_adamw'])}"
        f" | {r['kernels']} | {r['compile_s']['median']:.2f}"
        f" | {_mib(r['memory']['temp_size'])} | {_mib(r['memory']['peak_memory'])}"
        f" | {_mib(r['state_bytes'])} |")
  return lines


def targets_table(report: dict[str, Any]) -> list[str]:
  """The per-target pass/miss table, then the reasons of the misses, each once."""
  backend = report["machine"]["backend"]
  lines = ["| tree | optimizer | target | value | limit | result |",
           "|---|---|---|---:|---:|---|"]
  reasons: dict[str, str] = {}
  labels = {}
  for tree in report["trees"]:
    labels.update({r["optimizer"]: r["label"] for r in tree["rows"]})
    for t in tree["targets"]:
      if t["pass"]:
        result = "pass"
      else:
        over = t["value"] / t["limit"] - 1 if t["limit"] else float("inf")
        why = _why(backend, t["target"], tree["tree"])
        reason = reasons.setdefault(why, f"R{len(reasons) + 1}")
        result = f"**miss** by {100 * over:.0f}% ({reason})"
      lines.append(
          f"| {tree['tree']} | {labels[t['optimizer']]} | {t['target']}"
          f" | {_value(t['target'], t['value'])} | {_value(t['target'], t['limit'])}"
          f" | {result} |")
  if reasons:
    lines += ["", "Why targets are missed:", ""]
    lines += [f"- **{reason}**: {why}" for why, reason in reasons.items()]
  return lines


def _header(report: dict[str, Any]) -> list[str]:
  m, v = report["machine"], report["versions"]
  return [
      f"- Machine: {m['backend']} ({m['device_kind']}, {m['device_count']} device(s)),"
      f" {m['processor']}, {m['cpu_count']} CPU cores, {m['platform']}, Python {m['python']}",
      f"- Date: {report['date']}",
      "- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
  ]


def _settings(tree: dict[str, Any]) -> str:
  s = tree["settings"]
  return (f"Measured {tree['date']}: {s['repeats']} interleaved rounds, {s['loop_steps']}"
          f" steps per loop, {s['dispatch_steps']} dispatched steps per sample,"
          f" {s['compile_repeats']} compilation(s), scale {s['scale']}"
          f" (`{s['command']}`).")


def summary(report: dict[str, Any]) -> str:
  """The terminal summary: the header, one table per tree, the targets."""
  out = _header(report) + [""]
  for tree in report["trees"]:
    out += [f"{tree['tree']}: {tree['leaves']} leaves, {tree['layers']} layers,"
            f" {tree['params']:,} parameters", "", _settings(tree), ""] + tree_table(tree) + [""]
  return "\n".join(out + targets_table(report))


PAGE_INTRO = """\
# Performance

<!-- Generated by `python -m benchmarks.report`; do not edit by hand. -->

One optimizer step is `update` followed by `optax.apply_updates`, jitted with the
params and the optimizer state donated. The benchmark measures, per tree and optimizer:
the **in-loop** time (device time per step inside one `lax.fori_loop`, so host dispatch
is excluded), the **dispatched** time (one jit call per step), the number of **kernels**
(operations of the optimized HLO entry computation that launch work), the **compile**
time, the **temporaries** and **peak** memory of the compiled step
(`compiled.memory_analysis()`), and the bandwidth **floor** (the bytes a step must move
divided by the copy bandwidth measured on the same machine). Times are medians of
interleaved rounds with the interquartile range in brackets; ratios are taken within
each round. Reproduce with:

```bash
python -m benchmarks.update_step --out results/benchmarks/<backend>.json
```

The same step compiled for an H100 and for a TPU v5e slice of 256 chips (FSDP) on a
machine that has neither (the `compile-targets` extra; counts, not timings), and the page:

```bash
python -m benchmarks.compiled_for_target --target h100 --out results/benchmarks/h100_compiled.json
python -m benchmarks.compiled_for_target --target tpu-v5e-16x16 \\
    --trees gpt2,resnet50,scanned,tiny --out results/benchmarks/tpu_v5e_16x16_compiled.json
python -m benchmarks.report results/benchmarks/<backend>.json docs/performance.md \\
    --compiled results/benchmarks/h100_compiled.json results/benchmarks/tpu_v5e_16x16_compiled.json
```

## How the step is built

NovoGrad needs one reduction per layer (its squared norm) before the elementwise
update of that layer. Each leaf is reduced on its own: gradients are never concatenated,
so a leaf sharded over devices stays where it is. The per-layer math that follows (the
moment update with its overflow restart and AMSGrad maximum, and the reciprocal of the
denominator) is written once, as elementwise functions, and laid out for the platform
the step is compiled for (`_src/layer_layout.py`, chosen when the step is lowered with
`jax.lax.platform_dependent`):

- **CPU**: per leaf, in the form XLA:CPU fuses into the kernel that reduces the leaf;
  the reciprocals of 8 leaves of a dtype on one small vector (a vector of many scalars
  whose slices feed as many fusions compiles slowly on XLA:CPU).
- **GPU and TPU**: the norms of all leaves of a dtype stacked into one vector and the
  whole per-layer update done once on it. Per leaf, XLA:GPU fuses neither a leaf's
  scalar moment update into its reduction nor sibling scalar fusions together, so the
  per-leaf form costs about two kernels a leaf on an H100 (GPT-2: 496 kernels against
  364 stacked), and a TPU runs its ~8 scalar ops a leaf one after another (GPT-2 FSDP
  on a v5e 16x16: 1932 ops against 473 stacked).

The elementwise part (normalize, decay, momentum, learning rate, `apply_updates`) is
one pass per leaf, which XLA:GPU also fuses horizontally across leaves of one shape.

**What the state layout costs.** The optimizer state keeps `nu` keyed like the params
(one value, or one array of the leaf's `layer_axes` shape, per leaf) on every platform,
so a checkpoint written on a TPU resumes on a CPU (tested with orbax across the two
layouts). On an accelerator that layout costs about one kernel per leaf: writing each
leaf's moment back out of the stacked vector is a small slice kernel (ResNet-50: 161,
GPT-2: 148 on the H100), or, where XLA fuses the slices, a copy per leaf that
buffer donation inserts (the scanned tree: 16). The reductions themselves are one
kernel per leaf plus a second stage for large leaves (ResNet-50: 207, GPT-2: 198).
A throwaway variant that kept `nu` as one vector in the state compiled to 235 / 215
kernels (ResNet-50 / GPT-2) and measured 1.22x / 1.24x SGD-momentum's time on a real
H100 (2026-11-24, below); moving the state to such a layout (vectors per dtype, with a
per-layer view for users and monitoring) is the next step toward the targets.

Before this design, small leaves of one shape were stacked (copied) and reduced
together, and each leaf's moment update was a few scalar kernels of its own. Measured on
one NVIDIA H100 (2026-11-24, jax 0.11.2, optax 0.2.8, full-size trees, in-loop), that
step took 1.35x SGD-momentum's time on GPT-2 with 318 kernels for 148 leaves (AdamW:
1.34x, 150 kernels) and 1.60x on ResNet-50 with 336 kernels for 161 leaves (AdamW:
1.29x); the throwaway stacked-state variant measured 1.24x and 1.22x. **The step's
time on a GPU is still to be measured**: the sections "Compiled for ..." below give
compiled-for-target kernel and op counts, not timings.
"""


def compiled_table(tree: dict[str, Any]) -> list[str]:
  """One tree of a compiled-for-target report: counts and memory per optimizer."""
  rows = {r["optimizer"]: r for r in tree["rows"]}
  sgd_m = rows["sgd_momentum"]["ops"]
  lines = ["| optimizer | ops | × SGD-m | kinds | collectives (values per all-reduce)"
           " | all-gathers | temp MiB | args MiB | aliased MiB | compile s |",
           "|---|---:|---:|---|---|---|---:|---:|---:|---:|"]
  for r in tree["rows"]:
    kinds = ", ".join(f"{k} {v}" for k, v in r["kinds"].items())
    if r["dma"]:
      kinds += f" ({r['dma']} of them DMA, not counted)"
    if r["conditionals"]:
      kinds += "; conditional branches " + ", ".join("/".join(map(str, b))
                                                     for b in r["conditionals"])
    collectives = ", ".join(f"{k} {v}" for k, v in r["collectives"].items()) or "none"
    if r["all_reduce_values"]:
      collectives += " (" + ", ".join(map(str, r["all_reduce_values"])) + ")"
    mem = r["memory"]
    lines.append(
        f"| {r['label']} | {r['ops']} | {r['ops'] / sgd_m:.2f} | {kinds} | {collectives}"
        f" | {'; '.join(r['all_gather_shapes']) or 'none'} | {_mib(mem['temp_size'])}"
        f" | {_mib(mem['argument_size'])} | {_mib(mem['alias_size'])}"
        f" | {r['compile_s']:.1f} |")
  return lines


def _compiled_header(report: dict[str, Any]) -> list[str]:
  t, h = report["target"], report["host"]
  return [
      f"- Compiled for: {t['name']} ({t['devices']} × {t['device_kind']}), on a"
      f" {h['cpu_count']}-core CPU host without the device ({h['platform']},"
      f" Python {h['python']})",
      f"- Date of the last run: {report['date']} (each tree says when and how it was"
      " compiled)",
      "- Versions: " + ", ".join(f"{k} {val}" for k, val in report["versions"].items()),
  ]


# Why a compiled-for-target target is missed: (target kind, target) -> explanation.
COMPILED_WHY_MISSED: dict[tuple[str, str], str] = {
    ("gpu", "kernels / SGD-m's"):
        "SGD-momentum is one fused elementwise kernel per leaf. Our step adds, per leaf,"
        " the reduction of its squared norm (XLA:GPU fuses sibling reductions neither with"
        " each other nor with the update; a large leaf adds a second reduction stage:"
        " ResNet-50 has 207 reduction kernels for 161 leaves, GPT-2 198 for 148) and the"
        " write of its moment into the per-leaf state (a slice kernel per leaf, or, where"
        " XLA fuses the slices, as on the scanned tree, a copy per leaf inserted for the"
        " donated buffer). The per-layer math is one kernel and the elementwise updates"
        " are fused horizontally across leaves (ResNet-50: 28 kernels besides the 161"
        " slices). A state that keeps the moments as one vector per dtype removes the"
        " writes (a throwaway variant of it compiled to 235 / 215 kernels on ResNet-50 /"
        " GPT-2); see \"What the state layout costs\" above. On the tiny tree (3 leaves)"
        " the fixed per-step kernels dominate.",
    ("gpu", "temporaries (bytes)"):
        "Deep tree: 0.5 MiB above SGD-momentum's, about 256 bytes per layer where the target"
        " allows 64: buffers of per-layer values (the per-leaf reduction results and the"
        " stacked vectors); not analysed further.",
    ("tpu", "compute ops / SGD-m's"):
        "Per leaf, one reduction fusion and one copy that writes the leaf's moment back into"
        " the per-leaf state (GPT-2: 149 copies), besides the elementwise fusion that is"
        " SGD-momentum's whole step; the per-layer math is a handful of vector ops. The"
        " state layout is the lever here too.",
    ("tpu", "temporaries (bytes)"):
        "Not analysed yet: about 25 MiB per device on both GPT-2 and ResNet-50, so not"
        " proportional to the weights (optax.novograd: 51 MiB, LAMB: 17 MiB, both with"
        " per-leaf norms too); presumably the padded buffers of per-leaf scalars.",
}


def _compiled_targets(report: dict[str, Any]) -> list[str]:
  kind = report["target"]["kind"]
  lines = ["| tree | optimizer | target | value | limit | result |",
           "|---|---|---|---:|---:|---|"]
  reasons: dict[str, str] = {}
  for tree in report["trees"]:
    labels = {r["optimizer"]: r["label"] for r in tree["rows"]}
    for t in tree["targets"]:
      over = t["value"] / t["limit"] - 1 if t["limit"] else float("inf")
      if t["pass"]:
        result = "pass"
      else:
        why = COMPILED_WHY_MISSED.get((kind, t["target"]), "not analysed yet")
        reason = reasons.setdefault(why, f"R{len(reasons) + 1}")
        result = f"**miss** by {100 * over:.0f}% ({reason})"
      value = _value(t["target"], t["value"])
      limit = _value(t["target"], t["limit"])
      lines.append(f"| {tree['tree']} | {labels[t['optimizer']]} | {t['target']}"
                   f" | {value} | {limit} | {result} |")
  if reasons:
    lines += ["", "Why targets are missed:", ""]
    lines += [f"- **{reason}**: {why}" for why, reason in reasons.items()]
  return lines


def compiled_summary(report: dict[str, Any]) -> str:
  """The terminal summary of a compiled-for-target report."""
  out = _compiled_header(report) + [""]
  for tree in report["trees"]:
    out += [f"{tree['tree']}: {tree['leaves']} leaves ({tree['sharded_leaves']} sharded),"
            f" {tree['layers']} layers, {tree['groups']} group(s)", ""]
    out += compiled_table(tree) + [""]
  return "\n".join(out + _compiled_targets(report))


def compiled_section(report: dict[str, Any]) -> list[str]:
  """The performance page's section for one compiled-for-target report."""
  t = report["target"]
  out = [f"## Compiled for {t['name']} (counts, not timings)", ""] + _compiled_header(report)
  out += ["", COMPILED_NOTE[t["kind"]], "", "### Targets", ""] + _compiled_targets(report)
  for tree in report["trees"]:
    out += ["", f"### {t['name']}: {tree['tree']}", "",
            f"{tree['leaves']} leaves ({tree['sharded_leaves']} sharded over"
            f" {t['devices']} device(s)), {tree['layers']} layers, {tree['groups']}"
            " (dtype, layer layout) group(s). Compiled"
            f" {tree.get('date', report['date'])}"
            f" (`{tree.get('command', report['command'])}`).", ""] + compiled_table(tree)
  return out + [""]


COMPILED_NOTE = {
    "gpu": "The step compiled by XLA's GPU pipeline for this GPU, without one: `ops` are"
           " the kernels it launches per step (on a real H100 these counts equal the"
           " profiled kernels). Targets for our step: at most 1.45× SGD-momentum's kernels"
           " (2× on the scanned tree), temporaries at most SGD-momentum's + 64 bytes per"
           " layer + 64 KiB. **These are not timings**: the step's time on a GPU is still"
           " to be measured (`python -m benchmarks.update_step` on the GPU).",
    "tpu": "The step compiled by XLA's TPU pipeline for this slice, without one, sharded"
           " FSDP-style: `ops` are the compute ops of one device's program (asynchronous"
           " HBM↔VMEM copies are counted apart). Targets for our step: at most 1.5×"
           " SGD-momentum's ops, at most one all-reduce per (dtype, layer layout) group, no"
           " all-gather, temporaries at most SGD-momentum's + 64 bytes per layer + 64 KiB."
           " **These are not timings.**",
}


def render_page(report: dict[str, Any], compiled: Sequence[dict[str, Any]] = ()) -> str:
  """The docs' performance page for the timed ``report`` and the compiled-for-target
  reports ``compiled``."""
  page = _render_timed(report)
  for other in compiled:
    page += "\n" + "\n".join(compiled_section(other))
  return page.rstrip("\n") + "\n"


def _render_timed(report: dict[str, Any]) -> str:
  backend = report["machine"]["backend"]
  out = [PAGE_INTRO, f"## Measured on {backend}", ""] + _header(report) + [""]
  if backend == "cpu":
    out += [
        "These figures come from a CPU. The targets were set for accelerators, where the"
        " step is launch-bound and kernel counts decide; CPU operation counts do not"
        " predict GPU kernel counts. **GPU figures are to be re-measured** with the"
        " commands above on a GPU.", ""]
  out += ["### Targets", "",
          "For our optimizer on every tree: in-loop time at most AdamW's and at most"
          " 1.25× SGD-momentum's (ResNet-50: 1.3×); kernels at most 1.2 per leaf + 10 per"
          " (dtype, layer layout) group; temporaries at most SGD-momentum's + 64 bytes per"
          " layer + 64 KiB; compile and dispatched time at most AdamW's.", ""]
  out += targets_table(report) + [""]
  for tree in report["trees"]:
    out += [f"### {tree['tree']}", "",
            f"{tree['leaves']} leaves, {tree['layers']} layers, {tree['params']:,}"
            f" parameters; copy bandwidth {tree['copy_bandwidth_gb_s']:.1f} GB/s.", "",
            _settings(tree), ""]
    out += tree_table(tree) + [""]
  return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(
      prog="python -m benchmarks.report",
      description="Writes the docs' performance page from a timed report of"
                  " benchmarks.update_step and any compiled-for-target reports of"
                  " benchmarks.compiled_for_target.",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("report", help="JSON of python -m benchmarks.update_step --out")
  parser.add_argument("page", help="the markdown page to write")
  parser.add_argument("--compiled", nargs="*", default=[],
                      help="JSON files of python -m benchmarks.compiled_for_target --out")
  args = parser.parse_args(argv)
  report = json.loads(pathlib.Path(args.report).read_text())
  compiled = [json.loads(pathlib.Path(p).read_text()) for p in args.compiled]
  pathlib.Path(args.page).write_text(render_page(report, compiled))


if __name__ == "__main__":
  main()
