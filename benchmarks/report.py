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

from benchmarks import hlo

OURS_KEYS = ("ours", "ours_bf16")

# Why a target is missed, for the misses analysed so far: (backend, target, tree) ->
# explanation; tree None: every tree. The page says "not analysed yet" for any other miss.
_BF16 = (" With `mu_dtype=bf16` the CPU, which has no native bfloat16 arithmetic, also"
         " converts every moment element both ways (in `optax.trace`'s accumulator).")
_CPU_TIME = (
    "On CPU the layer norm is a pass of its own over each gradient before the elementwise"
    " update (one multi-operand reduction per group of same-shape leaves), and XLA:CPU"
    " splits a reduction to one number into few parallel tasks (for vectors of"
    " 1000-16000 elements it even materializes g² for a `reduce-window`), while AdamW's"
    " and SGD-momentum's steps are elementwise passes only (`optax.novograd`, with"
    " per-leaf norms, is slower). On a GPU the reductions run in parallel; the design"
    " experiment measured 1.22× (ResNet-50) and 1.24× (GPT-2) SGD-momentum there with"
    " more kernels than today's step. To be re-measured on a GPU."
    + _BF16)
WHY_MISSED: dict[tuple[str, str, str | None], str] = {
    ("cpu", "in-loop time / AdamW's", None): _CPU_TIME,
    ("cpu", "in-loop time / SGD-m's", None): _CPU_TIME,
    ("cpu", "dispatched time / AdamW's", None): _CPU_TIME,
    ("cpu", "kernels", None):
        "XLA:CPU emits, per group of same-shape leaves, the reduction (for mid-size vectors: "
        "a square, a `reduce-window` and a reduce), and per leaf the momentum update and the "
        "weight update as separate fusions (it does not fuse the new momentum with "
        "`apply_updates`: SGD-momentum has 2 per leaf too); the moment update and the "
        "reciprocals of all layers are one more fusion per dtype. CPU operation counts do not"
        " predict GPU kernel counts: the sections compiled for a GPU and a TPU below count "
        "those. The kernel column counts the entry computation only: `optax.novograd` does "
        "its norm and moment work inside two `lax.cond`s, so its count is far lower than the "
        "operations it runs.",
    ("cpu", "temporaries (bytes)", "deep"):
        "XLA:CPU materializes g² of every 1000-element leaf before its `reduce-window`"
        " (2000 × 1000 × 4 bytes = 7.6 MiB); see kernels.",
    ("cpu", "temporaries (bytes)", "gpt2"):
        "Float32: partial sums of XLA:CPU's split reductions of the large leaves, not"
        " analysed further (about 50 KiB over the limit). With `mu_dtype=bf16`: a float32"
        " intermediate of the update is materialized; not analysed yet.",
    ("cpu", "temporaries (bytes)", None):
        "With `mu_dtype=bf16`: a float32 intermediate of the update is materialized; not"
        " analysed yet.",
    ("cpu", "compile time / AdamW's", None):
        "XLA:CPU compiles the reductions into kernels of their own (AdamW's step has no"
        " reduction; `optax.novograd`, with per-leaf norms too, also compiles slower than"
        " AdamW), and it compiles every leaf's update kernel separately: each reads its"
        " layers' reciprocals at its own offset of the one vector of reciprocals, so leaves"
        " of equal shape no longer share a kernel as they did with the per-leaf state of"
        " 0.2.0 (GPT-2 at scale 0.25: 170 kernels generated against 46; XLA compile 1.65 s"
        " against 0.98 s, same machine, 2026-12-03). An optimization barrier between the"
        " reciprocals and the updates does not help (XLA:CPU removes it before fusing)."
        " Reducing the leaves of one shape together (2026-12-03) made the step faster"
        " in-loop on every tree but compiles slower still on GPT-2 (full size, one compile"
        " each, same machine: 1.56 s against 1.37 s with a reduction per leaf; AdamW 0.56"
        " s): XLA:CPU's code for a multi-operand reduction is larger. The same changes"
        " lowered the GPU and TPU counts. A compile is paid once per run; not fixed.",
}


def _miss(target: dict[str, Any], reason: str) -> str:
  """A missed target's cell: by how much, where the limit is not zero."""
  if not target["limit"]:
    return f"**miss** ({reason})"
  return f"**miss** by {100 * (target['value'] / target['limit'] - 1):.0f}% ({reason})"


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
        why = _why(backend, t["target"], tree["tree"])
        result = _miss(t, reasons.setdefault(why, f"R{len(reasons) + 1}"))
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

The same step compiled for one H100, for eight H100s of a host and for a TPU v5e slice
of 256 chips (both sharded FSDP-style) on a machine that has neither (the
`compile-targets` extra; counts, not timings), and the page:

```bash
python -m benchmarks.compiled_for_target --target h100 --trees gpt2,resnet50,scanned,tiny \\
    --out results/benchmarks/h100_compiled.json
python -m benchmarks.compiled_for_target --target h100 --trees deep --append \\
    --optimizers ours,ours_bf16,adamw,sgd_momentum,sgd_m_clipped \\
    --out results/benchmarks/h100_compiled.json
python -m benchmarks.compiled_for_target --target h100x8 --trees gpt2,resnet50 \\
    --out results/benchmarks/h100x8_compiled.json
python -m benchmarks.compiled_for_target --target tpu-v5e-16x16 \\
    --trees gpt2,resnet50,scanned,tiny --out results/benchmarks/tpu_v5e_16x16_compiled.json
python -m benchmarks.report results/benchmarks/<backend>.json docs/performance.md --compiled \\
    results/benchmarks/h100_compiled.json results/benchmarks/h100x8_compiled.json \\
    results/benchmarks/tpu_v5e_16x16_compiled.json
```

## How the step is built

NovoGrad needs each layer's squared norm before the elementwise update of that layer.
The step has three parts; gradients are never concatenated or gathered (only
per-layer values are), so a leaf sharded over devices stays where it is.

1. **The norms** (`_src/layer_norms.py`), the one piece chosen per platform, when the
   step is lowered (`jax.lax.platform_dependent`; at trace time the backend is the
   tracing machine's):
   - GPU: the leaves of one shape and layout (a transformer's blocks, a ResNet's
     repeated convolutions) are reduced together, by one multi-operand reduction
     (`jax.lax.reduce` with an operand and a result per leaf): one kernel that reads
     every member where it is, so nothing is copied and a sharded leaf stays on its
     shards. XLA:GPU then also fuses the members' elementwise updates into shared
     kernels. A reduction per leaf costs it a kernel per leaf, two for a leaf longer
     than a few thousand elements.
   - CPU and TPU: the same, except that stacked leaves (`layer_axes`) are reduced one
     by one. On a TPU slice with FSDP a stacked leaf is sharded along a reduced axis,
     and XLA's partitioner finishes a multi-operand reduction over a sharded axis by
     gathering every member's partial (a vector per device for a stacked leaf); on a
     CPU such a reduction compiles to a slow loop.
   - Sharded leaves: each reduction stays on its shards and XLA combines every leaf's
     all-reduce into one; on GPUs one all-gather of one partial norm per device and
     leaf is added (the partitioner's way of finishing a multi-operand reduction).
2. **The per-layer math**, once per dtype on one vector: the moment update (with its
   overflow restart and AMSGrad maximum) and the reciprocal of the denominator,
   elementwise functions written once (`_src/layer_layout.py`). The state stores the
   moments the same way (`LayerMoments`: one vector per dtype, viewed per layer with
   `per_layer()`), so this is one fusion writing one buffer, and the state has one
   layout on every platform: a checkpoint written on a TPU resumes on a CPU.
3. **The elementwise update** (normalize, decay, momentum, learning rate,
   `apply_updates`): one pass per leaf, which XLA:GPU fuses horizontally across leaves.

Earlier designs, for scale, compiled for the H100 (GPT-2 / ResNet-50 kernels): a
reduction per leaf, 214 / 234; two-stage norms (each leaf's rows, then the partials of
one shape together; 2026-12-03), 168 / 199; the moments stored per leaf (0.2.0), 364 /
397; the moment updated per leaf, 496 / 531.
Measured on one real NVIDIA H100 (2026-11-24, jax 0.11.2, optax 0.2.8, full-size trees,
in-loop), the step of 2026-11-21 (318 / 336 kernels) took 1.35x / 1.60x SGD-momentum's
time (AdamW: 1.34x / 1.29x), and a throwaway variant with the moments in one vector and
one-pass norms (215 / 235 kernels) 1.24x / 1.22x. **The step's time on a GPU is still
to be measured**: the sections "Compiled for ..." below give compiled-for-target
kernel and op counts, not timings. Fewer kernels need not mean less time: each kernel
of the grouped norms reads up to 32 leaves, and how fast it does so only a GPU can say.
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
        f" | {'; '.join(map(hlo.shape_summary, r['all_gather_shapes'])) or 'none'}"
        f" | {_mib(mem['temp_size'])}"
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
        "Tiny tree (3 leaves of three shapes): the step's fixed kernels dominate, a norm"
        " per leaf (no two leaves share a shape) and the moment update, with the updates"
        " fused: 5 against SGD-momentum's 3.",
    ("gpu", "temporaries (bytes)"):
        "The per-layer buffers of the norms (partial sums of XLA:GPU's two-kernel"
        " reductions, stacked vectors); not analysed further.",
    ("tpu", "compute ops / SGD-m's"):
        "The elementwise update is one fusion per leaf, as SGD-momentum's whole step, and"
        " the norms of same-shape leaves are one fusion per group (GPT-2: 15). But for a"
        " multi-operand reduction over a sharded axis XLA's partitioner gathers every"
        " member's partial norm, which on a TPU is a broadcast and a dynamic-update-slice"
        " per sharded leaf before the one all-reduce, unfused (GPT-2: 48 sharded leaves in"
        " groups, 96 scalar-sized ops; 166 fusions in all). With one reduction per leaf"
        " instead, every leaf costs two fusions (GPT-2: 315 ops). Below 1.5x would take the"
        " partitioner all-reducing a multi-operand sum directly, as it does a single one,"
        " or a hand-written kernel; neither attempted. For scale, SGD-momentum after"
        " optax's `clip_by_global_norm`, which also reduces every leaf before updating it,"
        " compiles to 446 ops on GPT-2 and 485 on ResNet-50. Tiny tree (3 leaves): the"
        " step's fixed ops (the moment update, the step count, scalar ops) dominate, 16"
        " against 3 (clipped SGD-momentum: 10). Stacked leaves (the scanned tree)"
        " are reduced one by one on a TPU, two fusions each: grouped, their gathered"
        " partials are vectors and cost more (55 ops against 43).",
    ("tpu", "temporaries (bytes)"):
        "They are those of any step that reduces the whole gradient before its elementwise"
        " update, not of this one's layout: SGD-momentum after optax's"
        " `clip_by_global_norm` (one norm, no per-layer state) compiles to about as much"
        " (GPT-2 31.9 MiB against our 32.6, ResNet-50 34.7 against 35.9, scanned 3.5"
        " against 3.3; the tables above), SGD-momentum alone to none. Per device, they"
        " are several times the weights' shards (GPT-2: 2 MiB per array); what XLA:TPU"
        " holds there is not analysed further (the compile-only client has no buffer"
        " assignment dump).",
}


def _compiled_targets(report: dict[str, Any]) -> list[str]:
  kind = report["target"]["kind"]
  lines = ["| tree | optimizer | target | value | limit | result |",
           "|---|---|---|---:|---:|---|"]
  reasons: dict[str, str] = {}
  for tree in report["trees"]:
    labels = {r["optimizer"]: r["label"] for r in tree["rows"]}
    for t in tree["targets"]:
      if t["pass"]:
        result = "pass"
      else:
        why = COMPILED_WHY_MISSED.get((kind, t["target"]), "not analysed yet")
        result = _miss(t, reasons.setdefault(why, f"R{len(reasons) + 1}"))
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
    "gpu": "The step compiled by XLA's GPU pipeline for these GPUs, without them (several"
           " are sharded FSDP-style, as the TPU slice below): `ops` are the kernels one GPU"
           " launches per step (on a real H100 these counts equal the profiled kernels)."
           " Targets for our step: at most 1.45× SGD-momentum's kernels (2× on the scanned"
           " tree), temporaries at most SGD-momentum's + 64 bytes per layer + 64 KiB; on"
           " several GPUs at most one all-reduce per (dtype, layer layout) group, no other"
           " collective but an all-gather of at most one value per device (a partial"
           " norm). **These are not timings**: the step's time on a GPU is still to be"
           " measured (`python -m benchmarks.update_step` on the GPU).",
    "tpu": "The step compiled by XLA's TPU pipeline for this slice, without one, sharded"
           " FSDP-style: `ops` are the compute ops of one device's program (asynchronous"
           " HBM↔VMEM copies are counted apart). Targets for our step: at most 1.5×"
           " SGD-momentum's ops, at most one all-reduce per (dtype, layer layout) group, no"
           " other collective, temporaries at most SGD-momentum's + 64 bytes per layer + 64 KiB."
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
