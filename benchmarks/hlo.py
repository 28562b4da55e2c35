"""Counting what a compiled step launches, from its optimized HLO text.

The rule, the same for every target: an instruction of the optimized entry
computation launches work unless it is a parameter, tuple, get-tuple-element,
bitcast or constant (those move nothing); a fusion is counted once, by its kind; a
``while`` (the in-loop program) counts once. On a GPU each counted instruction is
one kernel launch (checked against a real H100's profile for SGD-m, AdamW and
``optax.novograd``); on a TPU it is one op, and the asynchronous HBM<->VMEM copies
that memory-space assignment schedules around the compute are counted apart.
Collectives are counted in every computation, each once (an async start/done pair
is one).
"""

from __future__ import annotations

import collections
import math
import re
from typing import Any

_FREE_OPS = {"parameter", "tuple", "get-tuple-element", "bitcast", "constant"}


def kernel_ops(hlo_text: str) -> dict[str, int]:
  """The kinds of the instructions of the optimized entry computation that launch
  work: fusions and unfused ops (parameters, tuples, bitcasts and constants move
  nothing). A ``while`` (the in-loop program) counts as one."""
  return dict(sorted(_launch_kinds(computations(hlo_text)["ENTRY"]).items()))


def count_kernels(hlo_text: str) -> int:
  return sum(kernel_ops(hlo_text).values())




# TPU memory-space assignment's asynchronous HBM<->VMEM transfers (a copy or a slice
# prefetched in pieces, reassembled by a ConcatBitcast custom call): they launch no
# compute and overlap it, so they are counted apart from the compute ops.
DMA_OPS = frozenset({"copy-start", "copy-done", "slice-start", "slice-done",
                     "custom-call:ConcatBitcast"})
_COLLECTIVES = {
    "all-reduce": "all-reduce", "all-reduce-start": "all-reduce",
    "all-gather": "all-gather", "all-gather-start": "all-gather",
    "reduce-scatter": "reduce-scatter", "reduce-scatter-start": "reduce-scatter",
    "collective-permute": "collective-permute",
    "collective-permute-start": "collective-permute",
    "all-to-all": "all-to-all", "all-to-all-start": "all-to-all",
    "ragged-all-to-all": "all-to-all",
    "collective-broadcast": "collective-broadcast",
}
# Names carry a "%" in XLA's text; the hand-written modules of the tests may omit it.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?(\S+) = (.*?) ([a-z][a-z0-9\-]*)\((.*)$")
_HEADER = re.compile(r"^(ENTRY )?%?(\S+) \(.*\{\s*$")
# An array in an HLO shape: element type and dimensions (``f32[8,4]``).
_ARRAY = re.compile(r"\w+\[([\d,]*)\]")


def computations(hlo_text: str) -> dict[str, list[str]]:
  """``{name: instruction lines}`` of every computation of an HLO module's text; the
  entry computation is named ``"ENTRY"``."""
  comps: dict[str, list[str]] = {}
  name: str | None = None
  body: list[str] = []
  for line in hlo_text.splitlines():
    header = _HEADER.match(line)
    if header:
      name, body = ("ENTRY" if header.group(1) else header.group(2)), []
    elif line.startswith("}") and name is not None:
      comps[name], name = body, None
    elif name is not None:
      body.append(line)
  return comps


def _launch_kinds(lines: list[str]) -> collections.Counter[str]:
  kinds: collections.Counter[str] = collections.Counter()
  for line in lines:
    parsed = _INSTRUCTION.match(line)
    if not parsed or parsed.group(3) in _FREE_OPS:
      continue
    kind = parsed.group(3)
    if kind == "fusion":
      fusion_kind = re.search(r"kind=k(\w+)", line)
      kind = f"fusion:{fusion_kind.group(1).lower()}" if fusion_kind else kind
    elif kind == "custom-call":
      call = re.search(r'custom_call_target="([^"]*)"', line)
      kind = f"custom-call:{call.group(1)}" if call else kind
    kinds[kind] += 1
  return kinds


def analyse(hlo_text: str) -> dict[str, Any]:
  """What a compiled step launches: ``ops`` (the entry computation's compute ops, plus
  the largest branch of each conditional, since one branch runs per step), ``dma``
  (asynchronous transfers, apart), ``kinds``, ``conditionals`` (ops per branch),
  ``collectives`` by kind, the values each all-reduce carries (XLA combines
  independent all-reduces into one of many values) and every all-gather's result
  shape (gathering a sharded weight whole would be a scaling bug)."""
  comps = computations(hlo_text)
  kinds = _launch_kinds(comps["ENTRY"])
  branches = []
  for line in comps["ENTRY"]:
    parsed = _INSTRUCTION.match(line)
    if parsed and parsed.group(3) == "conditional":
      names = re.search(r"branch_computations=\{([^}]*)\}", line)
      branch_names = [n.strip().lstrip("%") for n in names.group(1).split(",")] if names else []
      branches.append([
          sum(v for k, v in _launch_kinds(comps.get(n, [])).items() if k not in DMA_OPS)
          for n in branch_names])
  collectives: collections.Counter[str] = collections.Counter()
  all_reduce_values, all_gather_shapes = [], []
  for lines in comps.values():
    for line in lines:
      parsed = _INSTRUCTION.match(line)
      if not parsed or parsed.group(3) not in _COLLECTIVES:
        continue
      kind = _COLLECTIVES[parsed.group(3)]
      collectives[kind] += 1
      if kind == "all-reduce":
        all_reduce_values.append(parsed.group(4).split(")", 1)[0].count("%"))
      elif kind == "all-gather":
        all_gather_shapes.append(re.sub(r"\{[^}]*\}", "", parsed.group(2)))
  dma = sum(v for k, v in kinds.items() if k in DMA_OPS)
  ops = sum(kinds.values()) - dma + sum(max(b, default=0) for b in branches)
  return {"ops": ops, "dma": dma, "kinds": dict(sorted(kinds.items())),
          "conditionals": branches, "collectives": dict(sorted(collectives.items())),
          "all_reduce_values": all_reduce_values, "all_gather_shapes": all_gather_shapes,
          "all_gather_largest": max(map(largest_array, all_gather_shapes), default=0)}


def largest_array(shape_text: str) -> int:
  """The most elements of any array in an HLO shape (``f32[8,4]``, or a tuple of them):
  for an all-gather, whether it gathers a few values per device or a weight."""
  return max((math.prod(int(d) for d in dims.split(",") if d)
              for dims in _ARRAY.findall(shape_text)), default=0)


def shape_summary(shape_text: str) -> str:
  """An HLO shape with its arrays counted (an all-gather of 48 partial norms is a tuple
  of 48 inputs and 48 results): ``48× f32[1], 48× f32[8]``."""
  arrays = collections.Counter(m.group(0) for m in _ARRAY.finditer(shape_text))
  return ", ".join(f"{n}× {a}" if n > 1 else a for a, n in arrays.items())
