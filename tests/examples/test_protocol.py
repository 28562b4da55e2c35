"""examples/protocol.py: grid widening, interior check, seeds and the verdict rule,
against hand-computed expectations."""

import importlib.util
import json
import math
import pathlib
import sys

import pytest

PATH = pathlib.Path(__file__).resolve().parents[2] / "examples" / "protocol.py"
spec = importlib.util.spec_from_file_location("protocol_example", PATH)
protocol = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = protocol
spec.loader.exec_module(protocol)


def test_log_grid_is_centred_and_sqrt10_apart():
  grid = protocol.log_grid(0.01)
  assert grid == pytest.approx([0.001, 0.01 / 10 ** 0.5, 0.01, 0.01 * 10 ** 0.5, 0.1])
  protocol.check_grid(grid)


@pytest.mark.parametrize("grid, message", [
    ([0.1, 0.2, 0.4, 0.8], ">= 5 points"),
    ([0.1, 0.2, 0.4, 0.8, 4.0], "5x apart"),
    ([0.1, 0.2, 0.2, 0.4, 0.8], "increasing"),
    ([0.0, 0.1, 0.2, 0.4, 0.8], "> 0"),
])
def test_check_grid_refuses(grid, message):
  with pytest.raises(ValueError, match=message):
    protocol.check_grid(grid)


def test_best_index_treats_nan_as_worst():
  assert protocol.best_index([3.0, float("nan"), 1.0, 2.0], higher_is_better=False) == 2
  assert protocol.best_index([0.1, float("nan"), 0.5, 0.2], higher_is_better=True) == 2
  assert protocol.best_index([float("nan"), 5.0], higher_is_better=False) == 1


def test_interior_and_widen():
  grid = [1.0, 10.0, 100.0, 1000.0, 10000.0]
  assert not protocol.is_interior(0, 5) and not protocol.is_interior(4, 5)
  assert protocol.is_interior(2, 5)
  assert protocol.widen(grid, 2, ratio=10.0) == []
  assert protocol.widen(grid, 0, ratio=10.0) == pytest.approx([0.01, 0.1])
  assert protocol.widen(grid, 4, ratio=10.0) == pytest.approx([1e5, 1e6])


def test_tune_widens_until_interior():
  calls = []

  def evaluate(options, lrs, seed):
    calls.append(list(lrs))
    # minimum at lr = 10: the starting grid 1e-3 .. 1e-1 has it far to the right
    return [{"loss": (math.log10(lr) - 1.0) ** 2} for lr in lrs]

  out = protocol.tune_learning_rate(evaluate, {}, protocol.log_grid(0.01), seed=0,
                                    score_key="loss", higher_is_better=False)
  # each widening adds 2 points sqrt(10) apart above the edge: 0.316, 1; 3.16, 10; 31.6, 100
  assert out["widenings"] == 3 and out["interior"]
  assert out["best_lr"] == pytest.approx(10.0)
  assert [len(c) for c in calls] == [5, 2, 2, 2]
  assert calls[-1] == pytest.approx([10 ** 1.5, 100.0])


def test_tune_stops_after_max_widenings_and_says_so():
  def evaluate(options, lrs, seed):
    return [{"loss": -lr} for lr in lrs]  # always better at larger lr

  out = protocol.tune_learning_rate(evaluate, {}, protocol.log_grid(1.0), seed=0,
                                    score_key="loss", higher_is_better=False, max_widenings=1)
  assert out["widenings"] == 1 and not out["interior"]
  assert out["best_lr"] == pytest.approx(100.0)  # the last added point


def test_candidate_runs_seeds_at_best_and_neighbours_and_tunes_decay():
  seen = []

  def evaluate(options, lrs, seed):
    seen.append((options.get("weight_decay"), tuple(lrs), seed))
    wd = options["weight_decay"]
    # best decay 0.1; best lr 0.01 for seed 0, but 0.0316 on average over seeds 0-2
    out = []
    for lr in lrs:
      base = abs(math.log10(lr) + 2.0) + abs(wd - 0.1)
      if seed > 0 and abs(lr - 0.01 * 10 ** 0.5) < 1e-9:
        base -= 0.8
      out.append({"loss": base + 0.01 * seed, "acc": 1 - base})
    return out

  cand = {"name": "x", "options": {"model": "m"}, "learning_rates": protocol.log_grid(0.01),
          "weight_decays": [0.0, 0.1]}
  out = protocol.tune_candidate(evaluate, cand, seeds=[0, 1, 2], score_key="loss",
                                higher_is_better=False, report_keys=["loss", "acc"])
  assert out["weight_decay"] == 0.1 and out["options"] == {"model": "m", "weight_decay": 0.1}
  assert out["tuning_best_lr"] == pytest.approx(0.01)
  # seeds 1 and 2 at the three rates 0.00316, 0.01, 0.0316
  extra = [s for s in seen if s[2] > 0]
  assert [s[2] for s in extra] == [1, 2]
  assert extra[0][1] == pytest.approx((0.01 / 10 ** 0.5, 0.01, 0.01 * 10 ** 0.5))
  # mean loss at 0.01: (0 + 0.01 + 0.02) / 3 = 0.01; at 0.0316: (0.5 - 0.29 - 0.28) / 3
  # = -0.0233, so the seed average moves the choice to the neighbour.
  assert out["best_lr"] == pytest.approx(0.01 * 10 ** 0.5)
  assert out["summary"]["loss"]["values"] == pytest.approx([0.5, -0.29, -0.28])
  assert out["summary"]["loss"]["mean"] == pytest.approx(-0.07 / 3)
  assert out["interior"]


def _decay_evaluate(best_wd, seen):
  def evaluate(options, lrs, seed):
    seen.append(options["weight_decay"])
    wd = options["weight_decay"]
    distance = abs(math.log10(wd / best_wd)) if wd > 0 else 50.0
    return [{"loss": abs(math.log10(lr) + 2.0) + distance + 0.01 * seed} for lr in lrs]
  return evaluate


def test_decay_grid_at_its_top_edge_is_widened_upward_until_interior():
  seen = []
  cand = {"name": "x", "learning_rates": protocol.log_grid(0.01),
          "weight_decays": [0.0, 1e-4, 1e-3, 1e-2]}
  out = protocol.tune_candidate(_decay_evaluate(1.0, seen), cand, seeds=[0],
                                score_key="loss", higher_is_better=False,
                                report_keys=["loss"], decay_widenings=3)
  # 1e-2 is best of the starting grid: 1e-1, then 1 (best), then 10 (worse): interior
  assert out["weight_decays"] == pytest.approx([0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0])
  assert out["weight_decay"] == pytest.approx(1.0)
  assert not out["decay_at_edge"] and out["decay_widenings"] == 3
  # one learning-rate search per decay, and every search is recorded with its decay
  assert [s["weight_decay"] for s in out["searches"]] == pytest.approx(out["weight_decays"])


def test_decay_widening_budget_spent_reports_the_edge_and_zero_is_no_edge():
  cand = {"name": "x", "learning_rates": protocol.log_grid(0.01),
          "weight_decays": [0.0, 1e-4, 1e-3, 1e-2]}
  out = protocol.tune_candidate(_decay_evaluate(1e3, []), cand, seeds=[0],
                                score_key="loss", higher_is_better=False,
                                report_keys=["loss"], decay_widenings=1)
  assert out["weight_decay"] == pytest.approx(0.1) and out["decay_at_edge"]
  # without widening (the default) the grid is searched as given
  seen = []
  out = protocol.tune_candidate(_decay_evaluate(1e3, seen), cand, seeds=[0],
                                score_key="loss", higher_is_better=False,
                                report_keys=["loss"])
  assert out["weight_decay"] == pytest.approx(1e-2) and out["decay_at_edge"]
  assert sorted(set(seen)) == [0.0, 1e-4, 1e-3, 1e-2]

  def no_decay_best(options, lrs, seed):
    return [{"loss": abs(math.log10(lr) + 2.0) + options["weight_decay"]} for lr in lrs]

  out = protocol.tune_candidate(no_decay_best, cand, seeds=[0], score_key="loss",
                                higher_is_better=False, report_keys=["loss"],
                                decay_widenings=2)
  assert out["weight_decay"] == 0.0 and not out["decay_at_edge"]
  assert out["decay_widenings"] == 0
  with pytest.raises(ValueError, match="increasing"):
    protocol.tune_candidate(no_decay_best, {**cand, "weight_decays": [1e-2, 0.0]}, seeds=[0],
                            score_key="loss", higher_is_better=False, report_keys=["loss"],
                            decay_widenings=1)


def test_summarize_hand_computed():
  s = protocol.summarize([1.0, 2.0, 4.0])
  assert s["mean"] == pytest.approx(7 / 3)
  assert s["std"] == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2
                                              + (4 - 7 / 3) ** 2) / 2))
  assert (s["min"], s["max"], s["n"]) == (1.0, 4.0, 3)
  assert protocol.summarize([5.0])["std"] == 0.0


@pytest.mark.parametrize("a, b, higher, expected", [
    ([0.90, 0.91, 0.92], [0.80, 0.85, 0.89], True, "wins"),   # ranges disjoint
    ([0.90, 0.91, 0.92], [0.80, 0.85, 0.90], True, "tie"),    # touching: 0.90 = 0.90
    ([0.80, 0.85, 0.89], [0.90, 0.91, 0.92], True, "loses"),
    ([1.2, 1.3, 1.25], [1.4, 1.5, 1.45], False, "wins"),      # lower loss wins
    ([1.2, 1.5, 1.25], [1.4, 1.5, 1.45], False, "tie"),
    ([1.2, float("nan"), 1.25], [1.4, 1.5, 1.45], False, "tie"),  # a diverged seed
])
def test_verdict_rule(a, b, higher, expected):
  assert protocol.verdict(a, b, higher) == expected


def test_write_results_records_environment_and_command(tmp_path):
  path = tmp_path / "sub" / "r.json"
  protocol.write_results(str(path), "demo", "reduced", {"steps": 3}, {"x": [float("nan"), 1.0]},
                         argv=["examples/demo.py", "--seeds", "3"], seconds=2.5)
  record = json.loads(path.read_text())
  assert record["command"] == "python examples/demo.py --seeds 3"
  assert record["configuration"] == "reduced" and record["x"] == [None, 1.0]
  assert record["environment"]["versions"]["python"]
  assert "jax" in record["environment"]["versions"]
  with pytest.raises(ValueError, match="configuration"):
    protocol.write_results(str(path), "demo", "big", {}, {})


# ------------------------------------------------------------------------------ resume


class CountingEvaluate:
  """An evaluate whose score is a known function of (lr, seed), counting its calls."""

  def __init__(self):
    self.calls = []

  def __call__(self, options, lrs, seed):
    self.calls.append((dict(options), list(lrs), seed))
    return [{"score": (math.log10(lr) + 1) ** 2 + 0.01 * seed + options.get("shift", 0.0),
             "curve": [lr, 2 * lr]} for lr in lrs]


def test_cached_evaluate_trains_each_call_once_and_returns_the_same_metrics(tmp_path):
  inner = CountingEvaluate()
  cached = protocol.CachedEvaluate(inner, str(tmp_path / "cache"), version="v1")
  first = cached({"shift": 0.5}, [0.01, 0.1], 2)
  again = cached({"shift": 0.5}, [0.01, 0.1], 2)
  assert len(inner.calls) == 1
  assert again == first == inner({"shift": 0.5}, [0.01, 0.1], 2)
  # a different seed, grid, option or version is a different call
  cached({"shift": 0.5}, [0.01, 0.1], 3)
  cached({"shift": 0.5}, [0.01], 2)
  cached({"shift": 0.0}, [0.01, 0.1], 2)
  protocol.CachedEvaluate(inner, str(tmp_path / "cache"), version="v2")(
      {"shift": 0.5}, [0.01, 0.1], 2)
  assert len(inner.calls) == 1 + 1 + 4
  assert not list((tmp_path / "cache").glob("*.tmp"))


def test_cached_evaluate_stores_a_diverged_run_as_none_which_scores_as_nan(tmp_path):
  cached = protocol.CachedEvaluate(lambda o, lrs, s: [{"score": math.nan} for _ in lrs],
                                   str(tmp_path))
  cached({}, [1.0], 0)
  assert cached({}, [1.0], 0) == [{"score": None}]
  assert math.isnan(protocol._nan(None))


def test_an_interrupted_protocol_resumes_with_the_result_of_an_uninterrupted_one(tmp_path):
  candidates = [{"name": "a", "options": {}, "learning_rates": protocol.log_grid(0.1)},
                {"name": "b", "options": {"shift": 1.0},
                 "learning_rates": protocol.log_grid(1.0)}]
  kwargs = dict(seeds=[0, 1, 2], score_key="score", higher_is_better=False,
                report_keys=["score"], progress=None)
  reference = protocol.run_protocol(CountingEvaluate(), candidates, **kwargs)

  class Interrupted(Exception):
    pass

  inner = CountingEvaluate()

  def dies_after_three(options, lrs, seed):
    if len(inner.calls) == 3:
      raise Interrupted
    return inner(options, lrs, seed)

  folder = str(tmp_path / "cache")
  with pytest.raises(Interrupted):
    protocol.run_protocol(protocol.CachedEvaluate(dies_after_three, folder), candidates,
                          **kwargs)
  resumed_inner = CountingEvaluate()
  resumed = protocol.run_protocol(protocol.CachedEvaluate(resumed_inner, folder),
                                  candidates, **kwargs)
  assert resumed == reference
  # the three calls finished before the interruption were read back, not trained again
  fresh = CountingEvaluate()
  protocol.run_protocol(fresh, candidates, **kwargs)
  assert resumed_inner.calls == fresh.calls[3:]


def tune_with_split_optimum(other_seeds_optimum: float, **kwargs) -> dict:
  """One candidate, seeds 0-2, grid log_grid(0.1); the score (log10(lr) - optimum)^2 has
  its optimum at log10(lr) = -0.5 for the tuning seed and ``other_seeds_optimum`` for
  seeds 1 and 2."""
  def evaluate(options, lrs, seed):
    optimum = -0.5 if seed == 0 else other_seeds_optimum
    return [{"score": (math.log10(lr) - optimum) ** 2} for lr in lrs]

  [result] = protocol.run_protocol(
      evaluate, [{"name": "x", "options": {}, "learning_rates": protocol.log_grid(0.1)}],
      seeds=[0, 1, 2], score_key="score", higher_is_better=False, report_keys=["score"],
      progress=None, **kwargs)
  return result


def test_seeds_preferring_the_grid_edge_widen_it_until_the_choice_is_interior():
  # The tuning seed's optimum is log10(lr) = -0.5 (0.316, interior), the other seeds'
  # +0.5. Means over the 3 seeds, by hand: lr 0.316: (0 + 1 + 1) / 3 = 0.667; lr 1.0:
  # (0.25 + 0.25 + 0.25) / 3 = 0.25; so 1.0, the grid's top edge, wins. The grid grows
  # by 3.16 and 10 (tuning seed), the seeds run at 3.16: (1 + 0 + 0) / 3 = 0.333, and
  # 1.0 stays the choice, now with a neighbour on each side.
  r = tune_with_split_optimum(0.5)
  assert r["tuning_best_lr"] == pytest.approx(10 ** -0.5)
  assert r["best_lr"] == pytest.approx(1.0)
  assert r["interior"]
  grid = [p["lr"] for p in r["searches"][0]["points"]]
  assert grid[-1] == pytest.approx(10.0) and len(grid) == 7
  assert r["summary"]["score"]["mean"] == pytest.approx(0.25)


def test_without_widening_budget_an_edge_choice_is_reported_not_interior():
  r = tune_with_split_optimum(3.0, max_widenings=0)
  assert r["best_lr"] == pytest.approx(1.0) and not r["interior"]


def test_git_state_ignores_rewritten_results_and_figures(tmp_path):
  import subprocess

  def git(*args):
    subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

  git("init", "-q")
  (tmp_path / "examples").mkdir()
  (tmp_path / "results").mkdir()
  (tmp_path / "docs").mkdir()
  (tmp_path / "examples" / "x.py").write_text("a = 1\n")
  (tmp_path / "results" / "r.json").write_text("{}\n")
  (tmp_path / "docs" / "f.png").write_bytes(b"png")
  git("add", ".")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  folder = str(tmp_path / "examples")
  assert protocol.git_state(folder)["dirty"] is False
  (tmp_path / "results" / "r.json").write_text('{"new": 1}\n')
  (tmp_path / "docs" / "f.png").write_bytes(b"other")
  assert protocol.git_state(folder)["dirty"] is False  # an experiment's own outputs
  (tmp_path / "docs" / "page.md").write_text("untracked\n")
  assert protocol.git_state(folder)["dirty"] is False
  (tmp_path / "examples" / "x.py").write_text("a = 2\n")
  state = protocol.git_state(folder)
  assert state["dirty"] is True and len(state["commit"]) == 40
