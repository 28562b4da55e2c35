r"""One tuning protocol for every experiment in ``examples/``.

A comparison of optimizers is only as fair as the search that picked each one's
hyperparameters. Every experiment here (character LM, MNIST-1D batch sweep,
scale-invariant networks, deep linear network) tunes through this module, so all
optimizers get the same treatment:

1. **Learning rate.** A log-spaced grid (at least ``MIN_POINTS`` points, neighbours at
   most ``MAX_RATIO`` apart; by default 5 points a factor ``sqrt(10)`` apart) around a
   starting guess. While the best point (by the validation score of the tuning seed) is
   at an edge, the grid is widened by ``WIDEN_POINTS`` points on that side, at most
   ``max_widenings`` times; the result records whether the best point ended interior.
2. **Weight decay.** Either a small grid per optimizer, tuned jointly with the learning
   rate (one learning-rate search per weight decay), or a rule stated by the experiment
   and applied identically to every optimizer (the experiment's ``evaluate`` applies it
   and its JSON says which). With ``decay_widenings > 0`` an increasing grid whose best
   decay (by the tuning seed's best score) is its largest value is extended upward by
   a factor ``decay_ratio`` (default 10), one value at a time, at most that many times;
   the result records whether the chosen decay ended at that edge (``decay_at_edge``).
   A best decay of 0 is the grid's natural lower end (no decay), not an edge.
3. **Equal budgets.** The experiment's ``evaluate`` gives every optimizer the same steps,
   examples and evaluations; the protocol only chooses hyperparameters.
4. **Seeds.** The best learning rate *and its two grid neighbours* are re-run with every
   seed in ``seeds``; the final choice is the best of those three by the mean score over
   seeds, so the choice itself is not seed noise. When that mean prefers an edge of the
   grid, the grid is widened there (within the same ``max_widenings``) and the seeds are
   re-run around the new choice. Reported: mean, sample standard
   deviation (``ddof=1``), min and max over seeds.
5. **Verdict.** ``A`` *wins* against ``B`` when every seed of ``A`` is better than every
   seed of ``B`` (their min-max ranges do not overlap), *loses* in the mirrored case, and
   is a *tie within spread* otherwise. With 3 seeds each, disjoint ranges have
   probability 1/20 per direction when both come from one distribution (a one-sided
   permutation test at 5%).

Results are written with :func:`write_results` as JSON under ``results/`` with the
machine, date, library versions and the exact command; ``examples/make_report.py``
turns those files into the tables and plots of ``docs/experiments.md``.

``run_protocol(..., jobs=N)`` tunes the candidates in ``N`` parallel processes (one
candidate per task); ``evaluate`` must then be a module-level function.

A long run survives an interruption when its ``evaluate`` is wrapped in
:class:`CachedEvaluate`: every call's metrics are stored in a folder as soon as they are
computed, and a rerun of the same command reads them back instead of training again.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import hashlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
from typing import Any, Callable, Optional, Sequence

MIN_POINTS = 5
MAX_RATIO = 3.2
GRID_RATIO = math.sqrt(10.0)  # 3.16: two points per decade
WIDEN_POINTS = 2
VERDICTS = ("wins", "loses", "tie")

# evaluate(options, learning_rates, seed) -> one dict of metrics per learning rate.
Evaluate = Callable[[dict, list, int], list]


# ------------------------------------------------------------------------------ grids


def log_grid(centre: float, num_points: int = MIN_POINTS, ratio: float = GRID_RATIO
             ) -> list[float]:
  """``num_points`` rates ``ratio`` apart, centred (geometrically) on ``centre``."""
  if not centre > 0:
    raise ValueError(f"log_grid: centre must be > 0, got {centre!r}")
  if num_points < 1:
    raise ValueError(f"log_grid: num_points must be >= 1, got {num_points!r}")
  offset = (num_points - 1) / 2
  return [float(centre * ratio ** (k - offset)) for k in range(num_points)]


def check_grid(learning_rates: Sequence[float], min_points: int = MIN_POINTS,
               max_ratio: float = MAX_RATIO) -> None:
  """Raises ValueError unless the grid is increasing, positive, has ``min_points``
  points and no two neighbours more than ``max_ratio`` apart."""
  lrs = list(learning_rates)
  if len(lrs) < min_points:
    raise ValueError(f"learning-rate grid needs >= {min_points} points, got {len(lrs)}: {lrs}")
  if any(not lr > 0 for lr in lrs):
    raise ValueError(f"learning rates must be > 0, got {lrs}")
  for low, high in zip(lrs, lrs[1:], strict=False):
    if not high > low:
      raise ValueError(f"learning-rate grid must be increasing, got {lrs}")
    if high / low > max_ratio * (1 + 1e-9):
      raise ValueError(
          f"neighbours {low:g} and {high:g} are {high / low:.3g}x apart; the protocol "
          f"allows at most {max_ratio}x (add points in between)")


def best_index(scores: Sequence[float], higher_is_better: bool) -> int:
  """Index of the best score; NaN (a diverged run) counts as the worst. Ties go to the
  first (smallest learning rate)."""
  worst = -math.inf if higher_is_better else math.inf
  clean = [worst if (s is None or math.isnan(s)) else float(s) for s in scores]
  pick = max if higher_is_better else min
  return clean.index(pick(clean))


def is_interior(index: int, num_points: int) -> bool:
  """True when ``index`` has a neighbour on both sides."""
  return 0 < index < num_points - 1


def widen(learning_rates: Sequence[float], index: int, ratio: float = GRID_RATIO,
          points: int = WIDEN_POINTS) -> list[float]:
  """The rates to add when the best is at an edge: ``points`` more beyond that edge,
  ``ratio`` apart; ``[]`` when ``index`` is interior."""
  lrs = sorted(learning_rates)
  if is_interior(index, len(lrs)):
    return []
  if index == 0:
    return [lrs[0] / ratio ** k for k in range(points, 0, -1)]
  return [lrs[-1] * ratio ** k for k in range(1, points + 1)]


# ------------------------------------------------------------------------- statistics


def summarize(values: Sequence[float]) -> dict[str, Any]:
  """Mean, sample std (ddof=1; 0 for one value), min, max, n and the values."""
  vals = [float(v) for v in values]
  n = len(vals)
  if n == 0:
    raise ValueError("summarize: no values")
  mean = sum(vals) / n
  std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else 0.0
  return {"mean": mean, "std": std, "min": min(vals), "max": max(vals), "n": n,
          "values": vals}


def verdict(a: Sequence[float], b: Sequence[float], higher_is_better: bool) -> str:
  """``"wins"`` if every value of ``a`` beats every value of ``b``, ``"loses"`` in the
  mirrored case, else ``"tie"`` (within spread). NaN counts as the worst value."""
  bad = -math.inf if higher_is_better else math.inf
  a = [bad if math.isnan(float(v)) else float(v) for v in a]
  b = [bad if math.isnan(float(v)) else float(v) for v in b]
  if not a or not b:
    raise ValueError("verdict: both sides need values")
  sign = 1.0 if higher_is_better else -1.0
  if sign * min(a, key=lambda v: sign * v) > sign * max(b, key=lambda v: sign * v):
    return "wins"
  if sign * min(b, key=lambda v: sign * v) > sign * max(a, key=lambda v: sign * v):
    return "loses"
  return "tie"


# ------------------------------------------------------------------------------ resume


class CachedEvaluate:
  """``evaluate`` with each call's metrics stored in ``folder``, so an interrupted run
  resumes where it stopped.

  A call is keyed by its ``options``, learning rates and seed, and by ``version`` (a
  string the experiment derives from everything else its results depend on, e.g. a hash
  of its sources): a changed experiment never reads a stale entry. Entries are written
  to a temporary file and renamed, so parallel workers and a kill mid-write leave no
  half-written entry. Metrics come back through JSON: NaN and Inf are ``None``, which
  the protocol scores as NaN (a diverged run), as it does for a fresh run.
  """

  def __init__(self, evaluate: Evaluate, folder: str, version: str = ""):
    self.evaluate, self.folder, self.version = evaluate, folder, version

  def _key(self, options: dict, learning_rates: Sequence[float], seed: int) -> str:
    return json.dumps({"options": _jsonable(options),
                       "learning_rates": [float(lr) for lr in learning_rates],
                       "seed": int(seed), "version": self.version}, sort_keys=True)

  def __call__(self, options: dict, learning_rates: list, seed: int) -> list:
    key = self._key(options, learning_rates, seed)
    path = os.path.join(self.folder, hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")
    if os.path.exists(path):
      with open(path) as f:
        entry = json.load(f)
      if entry["key"] == key:
        return entry["metrics"]
    metrics = self.evaluate(options, learning_rates, seed)
    os.makedirs(self.folder, exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as f:
      json.dump({"key": key, "metrics": _jsonable(metrics)}, f, allow_nan=False)
    os.replace(temporary, path)
    return metrics


def source_version(*paths: str) -> str:
  """A hash of the files ``paths`` (an experiment's sources), for
  :class:`CachedEvaluate`'s ``version``."""
  digest = hashlib.sha256()
  for path in sorted(paths):
    with open(path, "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------- search


def tune_learning_rate(evaluate: Evaluate, options: dict, learning_rates: Sequence[float],
                       *, seed: int, score_key: str, higher_is_better: bool,
                       max_widenings: int = 3, ratio: float = GRID_RATIO) -> dict[str, Any]:
  """Searches the grid, widening it while the best point is at an edge.

  Returns ``points`` (``{"lr", **metrics}`` sorted by lr), ``best_lr``, ``interior``
  and ``widenings``.
  """
  lrs = sorted(float(lr) for lr in learning_rates)
  check_grid(lrs)
  points = {lr: dict(m) for lr, m in zip(lrs, evaluate(options, lrs, seed), strict=True)}
  widenings = 0
  while True:
    grid = sorted(points)
    index = best_index([points[lr][score_key] for lr in grid], higher_is_better)
    extra = widen(grid, index, ratio)
    if not extra or widenings >= max_widenings:
      break
    widenings += 1
    points.update(zip(extra, (dict(m) for m in evaluate(options, extra, seed)), strict=True))
  grid = sorted(points)
  return {"points": [{"lr": lr, **points[lr]} for lr in grid], "best_lr": grid[index],
          "interior": is_interior(index, len(grid)), "widenings": widenings}


def tune_candidate(evaluate: Evaluate, candidate: dict, *, seeds: Sequence[int],
                   score_key: str, higher_is_better: bool, report_keys: Sequence[str],
                   max_widenings: int = 3, ratio: float = GRID_RATIO,
                   decay_widenings: int = 0, decay_ratio: float = 10.0) -> dict[str, Any]:
  """The whole protocol for one candidate (an optimizer in one setting).

  ``candidate``: ``name``, ``options`` (passed to ``evaluate``), ``learning_rates`` (the
  starting grid) and optionally ``weight_decays`` (a grid, each value put into
  ``options["weight_decay"]``; increasing when ``decay_widenings > 0``, which extends it
  upward while its largest value is the best). ``seeds[0]`` is the tuning seed.
  """
  seeds = list(seeds)
  decays = list(candidate.get("weight_decays") or [None])
  if decay_widenings and len(decays) > 1 and any(
      not high > low for low, high in zip(decays, decays[1:], strict=False)):
    raise ValueError(f"weight_decays must be increasing to be widened, got {decays}")
  searches = []

  def search_decay(wd):
    options = dict(candidate.get("options", {}))
    if wd is not None:
      options["weight_decay"] = wd
    search = tune_learning_rate(evaluate, options, candidate["learning_rates"],
                                seed=seeds[0], score_key=score_key,
                                higher_is_better=higher_is_better,
                                max_widenings=max_widenings, ratio=ratio)
    search["weight_decay"] = wd
    searches.append(search)

  def best_decay_index():
    return best_index(
        [next(p[score_key] for p in s["points"] if p["lr"] == s["best_lr"])
         for s in searches], higher_is_better)

  for wd in decays:
    search_decay(wd)
  used_decay_widenings = 0
  while (used_decay_widenings < decay_widenings and len(searches) > 1
         and best_decay_index() == len(searches) - 1 and searches[-1]["weight_decay"] > 0):
    used_decay_widenings += 1
    search_decay(searches[-1]["weight_decay"] * decay_ratio)
  best_search = searches[best_decay_index()]
  decay_at_edge = (len(searches) > 1 and best_search is searches[-1])
  options = dict(candidate.get("options", {}))
  if best_search["weight_decay"] is not None:
    options["weight_decay"] = best_search["weight_decay"]

  points = {p["lr"]: p for p in best_search["points"]}
  centre = best_search["best_lr"]
  # per lr: the metrics of every seed (the tuning seed's run is reused).
  by_lr: dict[float, list] = {}
  widenings = best_search["widenings"]
  while True:
    grid = sorted(points)
    i = grid.index(centre)
    confirm_lrs = grid[max(i - 1, 0):i + 2]
    todo = [lr for lr in confirm_lrs if lr not in by_lr]
    for lr in todo:
      by_lr[lr] = [points[lr]]
    for seed in seeds[1:] if todo else []:
      for lr, metrics in zip(todo, evaluate(options, todo, seed), strict=True):
        by_lr[lr].append(dict(metrics))
    mean_scores = [summarize([_nan(m[score_key]) for m in by_lr[lr]])["mean"]
                   for lr in confirm_lrs]
    final_lr = confirm_lrs[best_index(mean_scores, higher_is_better)]
    # The mean over seeds may prefer the grid's edge although the tuning seed did not:
    # then the grid is widened on that side too (tuning seed first) and the seeds re-run
    # around the new centre, so the final choice is interior whenever the budget allows.
    extra = widen(grid, grid.index(final_lr), ratio)
    if not extra or widenings >= max_widenings:
      break
    widenings += 1
    points.update((lr, {"lr": lr, **m}) for lr, m in
                  zip(extra, evaluate(options, extra, seeds[0]), strict=True))
    centre = final_lr
  runs = by_lr[final_lr]
  best_search["points"] = [points[lr] for lr in grid]
  best_search["widenings"] = widenings
  # Interior: the final rate and the tuning seed's best both have grid points on each side.
  tuning_best = best_index([points[lr][score_key] for lr in grid], higher_is_better)
  return {
      "name": candidate["name"], "options": options,
      "weight_decay": best_search["weight_decay"],
      "weight_decays": [s["weight_decay"] for s in searches],
      "decay_at_edge": decay_at_edge, "decay_widenings": used_decay_widenings,
      "searches": searches, "best_lr": final_lr,
      "tuning_best_lr": best_search["best_lr"],
      "interior": (is_interior(grid.index(final_lr), len(grid))
                   and is_interior(tuning_best, len(grid))),
      "seeds": seeds,
      "confirmation": [{"lr": lr, "mean_score": s, "runs": [_strip(m) for m in by_lr[lr]]}
                       for lr, s in zip(confirm_lrs, mean_scores, strict=True)],
      "summary": {k: summarize([_nan(m[k]) for m in runs]) for k in report_keys},
      "runs": runs,
  }


def _nan(value) -> float:
  return math.nan if value is None else float(value)


def _strip(metrics: dict) -> dict:
  """Scalars only (curves stay in ``runs`` of the final choice)."""
  return {k: v for k, v in metrics.items() if not isinstance(v, (list, tuple, dict))}


def run_protocol(evaluate: Evaluate, candidates: Sequence[dict], *, seeds: Sequence[int],
                 score_key: str, higher_is_better: bool, report_keys: Sequence[str],
                 max_widenings: int = 3, jobs: int = 1, ratio: float = GRID_RATIO,
                 decay_widenings: int = 0, decay_ratio: float = 10.0,
                 progress: Optional[Callable[[str], None]] = print) -> list[dict]:
  """:func:`tune_candidate` for every candidate, in ``jobs`` processes (spawned, so
  JAX is started fresh in each); the results keep the candidates' order."""
  if len(seeds) < 1:
    raise ValueError("run_protocol: seeds must not be empty")
  kwargs = dict(seeds=list(seeds), score_key=score_key, higher_is_better=higher_is_better,
                report_keys=list(report_keys), max_widenings=max_widenings, ratio=ratio,
                decay_widenings=decay_widenings, decay_ratio=decay_ratio)
  if jobs <= 1:
    out = []
    for c in candidates:
      out.append(tune_candidate(evaluate, c, **kwargs))
      if progress:
        progress(_tuned_message(out[-1]))
    return out
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
    futures = [pool.submit(tune_candidate, evaluate, c, **kwargs) for c in candidates]
    out = []
    for f in futures:
      out.append(f.result())
      if progress:
        progress(_tuned_message(out[-1]))
    return out


def _tuned_message(result: dict) -> str:
  text = f"  tuned {result['name']}: best lr {result['best_lr']:.3g}"
  if result.get("weight_decay") is not None:
    text += f", weight decay {result['weight_decay']:g}"
    if result.get("decay_at_edge"):
      text += " (largest of its grid)"
  return text


def compare(results: Sequence[dict], a: str, b: str, key: str, higher_is_better: bool
            ) -> dict[str, Any]:
  """The verdict of candidate ``a`` against ``b`` on ``key`` (seed values at each
  one's final setting)."""
  by_name = {r["name"]: r for r in results}
  va = by_name[a]["summary"][key]["values"]
  vb = by_name[b]["summary"][key]["values"]
  return {"a": a, "b": b, "key": key, "higher_is_better": higher_is_better,
          "a_summary": summarize(va), "b_summary": summarize(vb),
          "verdict": verdict(va, vb, higher_is_better)}


# ---------------------------------------------------------------------------- results


# Paths the experiments write (results files, figures): changed, they do not make the
# code that produced a result differ from its commit.
GENERATED = ("results", "*.png")


def git_state(folder: Optional[str] = None) -> dict[str, Any]:
  """``{"commit", "dirty"}`` of the checkout holding ``folder`` (default: this file's);
  ``None`` values outside a git checkout. ``dirty``: tracked files differ from the
  commit, other than what the experiments themselves rewrite (``results/`` and ``*.png``
  figures), so a second run after an ``--update-results`` still names clean code."""
  folder = folder or os.path.dirname(os.path.abspath(__file__))

  def git(*args):
    return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()

  try:
    return {"commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--",
                              ":(top)", *(f":(top,exclude){p}" for p in GENERATED)))}
  except (OSError, subprocess.SubprocessError):
    return {"commit": None, "dirty": None}


# Taken when the experiment starts (this module is imported by it), so a results file
# names the code that ran even if the checkout moves on during a long run.
GIT_AT_START = git_state()


def environment() -> dict[str, Any]:
  """Machine, date, library versions and the git commit (at the start of the run) for
  a results file."""
  versions = {"python": platform.python_version()}
  for package in ("jax", "jaxlib", "optax", "flax", "numpy", "novograd-optax", "mnist1d",
                  "scikit-learn"):
    try:
      versions[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      pass
  machine = {"system": platform.system(), "machine": platform.machine(),
             "processor": platform.processor() or None, "cpu_count": os.cpu_count(),
             # the cores this process could run on (fewer when pinned) and XLA's flags
             "cpus_available": (len(os.sched_getaffinity(0))
                                if hasattr(os, "sched_getaffinity") else None),
             "xla_flags": os.environ.get("XLA_FLAGS") or None}
  try:
    import jax

    machine["jax_backend"] = jax.default_backend()
    machine["devices"] = [d.device_kind for d in jax.devices()]
  except Exception:  # noqa: BLE001 - the record stays useful without it
    pass
  return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
          "machine": machine, "versions": versions, "git": dict(GIT_AT_START)}


def command_line(argv: Optional[Sequence[str]] = None) -> str:
  """The command as typed from the repository root, e.g. ``python examples/x.py --quick``."""
  argv = list(sys.argv if argv is None else argv)
  script = argv[0]
  if os.path.isabs(script):
    script = os.path.relpath(script)
  return " ".join(["python", shlex.quote(script), *map(shlex.quote, argv[1:])])


def _jsonable(x):
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if hasattr(x, "tolist"):  # NumPy / JAX arrays and scalars
    return _jsonable(x.tolist())
  if isinstance(x, float) and not math.isfinite(x):
    return None  # JSON has no NaN; a diverged run is null
  return x


def write_results(path: str, experiment: str, configuration: str, config: dict,
                  payload: dict, *, argv: Optional[Sequence[str]] = None,
                  seconds: Optional[float] = None) -> dict:
  """Writes ``{experiment, configuration, config, command, wall_seconds, environment,
  **payload}`` to ``path`` (folders created) and returns it. ``environment`` holds the
  machine, date, versions and git commit; ``config`` should hold the seeds and grids.
  ``configuration`` is ``"full"``, ``"reduced"`` or ``"quick"``, printed with every table
  made from it."""
  if configuration not in ("full", "reduced", "quick", "scale", "main"):
    raise ValueError(
        f"configuration must be full/reduced/quick/scale/main, got {configuration!r}")
  record = {"experiment": experiment, "configuration": configuration, "config": config,
            "command": command_line(argv), "wall_seconds": seconds,
            "environment": environment(), **payload}
  record = _jsonable(record)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(record, f, indent=1, sort_keys=False, allow_nan=False)
    f.write("\n")
  return record


if __name__ == "__main__":
  # A module the experiments import, not an experiment: run, it describes itself.
  argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="Nothing to run here: the experiments in examples/ use this module.").parse_args()
  print("examples/protocol.py is the tuning protocol the experiments import; see --help.")
