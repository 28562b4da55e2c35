"""examples/make_report.py: the committed experiments page is what the committed results
produce, and the README verdict table is replaced only between its markers."""

import importlib.util
import pathlib
import sys

import pytest

PATH = pathlib.Path(__file__).resolve().parents[2] / "examples" / "make_report.py"
spec = importlib.util.spec_from_file_location("make_report_example", PATH)
report = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = report
spec.loader.exec_module(report)


def test_committed_page_matches_the_committed_results():
  page, _ = report.build(report.load_results(), plots=False)
  committed = (PATH.parents[1] / "docs" / "experiments.md").read_text()
  assert committed == page, "run: python examples/make_report.py"


def test_readme_verdict_table_is_the_generated_one():
  _, table = report.build(report.load_results(), plots=False)
  readme = (PATH.parents[1] / "README.md").read_text()
  if report.START in readme:
    inner = readme.split(report.START, 1)[1].split(report.END, 1)[0]
    assert inner.strip() == table.strip()


def test_replace_between_markers():
  text = f"intro\n{report.START}\nold\n{report.END}\nrest"
  assert report.replace_between_markers(text, "new") == (
      f"intro\n{report.START}\nnew\n{report.END}\nrest")
  assert report.replace_between_markers("no markers", "new") is None
  assert report.replace_between_markers(f"{report.END} {report.START}", "x") is None


def test_summary_formatting():
  s = {"mean": 0.5, "std": 0.1, "min": 0.4, "max": 0.6, "n": 3}
  assert report.pm(s, 100, 1) == "50.0 ± 10.0 (40.0–60.0, n=3)"
  assert report.pm({**s, "n": 1}, 100, 1) == "50.0"
  assert report._verdict_word(["wins", "wins"]) == "holds"
  assert report._verdict_word(["wins", "tie"]) == "mixed / undecided"
  assert report._verdict_word(["loses"]) == "fails (the opposite holds)"
  assert report._verdict_word(["tie", "loses"]) == "does not hold (ties or loses, never wins)"
  assert report._verdict_word(["wins", "loses"]) == "mixed / undecided"
  assert report._verdict_word(["tie", "tie"]) == "undecided (tie within spread)"


def _mlp_record():
  import copy
  return copy.deepcopy(report.load_results()["mnist1d_mlp_full"])


def test_a_cnn_sweep_gets_its_own_section_and_verdict_rows():
  # The same rows relabelled as a CNN sweep: the page must hold both sections, and the
  # verdict table one SNGM row per model.
  records = report.load_results()
  cnn = _mlp_record()
  cnn["config"].update(model="cnn", width=16)
  records = {k: v for k, v in records.items() if not k.startswith("mnist1d_cnn")}
  records["mnist1d_cnn_test"] = cnn
  page, table = report.build(records, plots=None)
  assert "## MNIST-1D MLP: large batches" in page
  assert "## MNIST-1D 1-D CNN: large batches" in page
  assert "16 channels (default 32)" in page
  sngm_rows = [line for line in table.splitlines() if line.startswith("| SNGM")]
  assert len(sngm_rows) == 2
  assert "MNIST-1D MLP" in sngm_rows[0] and "MNIST-1D 1-D CNN" in sngm_rows[1]


def test_sngm_learning_rate_rule_is_stated_from_the_configuration():
  cfg = {"lr_scaling": "auto", "reference_batch": 128, "start_lr": {"sngm": 0.1}}
  text = report.sngm_lr_rule(cfg)
  assert "`start_lr * sqrt(B / 128)`" in text and "start_lr 0.1" in text
  assert "not the SNGM paper's" in text
  linear = report.sngm_lr_rule({**cfg, "lr_scaling": "linear"})
  assert "`start_lr * B / 128`" in linear


def test_only_the_claims_of_the_optimizers_run_are_stated():
  record = _mlp_record()
  keep = {"sngm", "sgd", "lars"}
  record["rows"] = [r for r in record["rows"] if r["optimizer"] in keep]
  record["comparisons"] = [c for c in record["comparisons"]
                           if c["a"].split("@")[0] in keep and c["b"].split("@")[0] in keep]
  record["config"]["optimizers"] = sorted(keep)
  text, claims = report.mnist_section(record, plots=None)
  assert "Claim: SNGM allows larger batches" in text and "NovoGrad holds" not in text
  assert "only the optimizers lars, sgd, sngm" in text
  assert [c["claim"].split(":")[0] for c in claims] == ["SNGM"]


def test_on_par_and_share_rules():
  assert report.parity_word({"sgd": "tie", "adamw": "wins"}) == "holds (on par or better)"
  assert report.parity_word({"sgd": "loses", "adamw": "tie"}) == "partly (loses vs sgd)"
  assert report.parity_word({"sgd": "loses"}).startswith("fails")
  full = {"flat": 1.0, "runs": 300}
  assert report.share_standing(full, [{"flat": 1.0, "runs": 300}]) == "tied"
  assert report.share_standing(full, [{"flat": 0.8, "runs": 300}]) == "highest"
  # 0.73 vs 0.82 over 384 runs each is about 3 standard errors: below
  assert report.share_standing({"flat": 0.73, "runs": 384},
                               [{"flat": 0.82, "runs": 384}]) == "below"
  assert report.share_standing({"flat": 0.80, "runs": 384},
                               [{"flat": 0.82, "runs": 384}]) == "tied"


def test_rules_are_stated_once_on_the_page():
  page, _ = report.build(report.load_results(), plots=None)
  assert page.count("## How verdicts are worded") == 1
  assert "Multiplicity" in page
  assert "(not at small lr and wd)" not in page


def test_char_lm_section_with_a_joint_kappa_grid(tmp_path, monkeypatch):
  import json

  sys.path.insert(0, str(PATH.parents[1] / "tests" / "examples"))
  from test_char_lm import char_lm, fake_kappa_grid

  monkeypatch.setattr(char_lm, "train_grid",
                      fake_kappa_grid({"novograd": 1e-3, "adamw": 1e-4}))
  path = tmp_path / "r.json"
  char_lm.main(["--quick", "--kappa", "0", "1e-4", "1e-3", "1e-2", "--out", str(path)])
  record = json.loads(path.read_text())
  text, claims = report.char_lm_section(record, plots=False)  # figures built, not saved
  assert "weight decay tuned jointly with the learning rate" in text
  assert "| tiny | novograd | 0.316 | yes | 0.001 |" in text
  assert "The joint grid" in text and "| tiny | adamw | 0.01 |" in text
  assert "train_loss" in text
  assert "lr × weight decay tuned" in claims[0]["setup"]


def test_cores_text_follows_the_recorded_environment():
  old = {"cpu_count": 2}  # written before cpus_available / xla_flags were recorded
  assert report._cores(old) == "2 CPU cores (cores and threads used not recorded)"
  assert report._cores({"cpu_count": 2, "cpus_available": 2, "xla_flags": None}) == (
      "2 CPU cores")
  assert report._cores({"cpu_count": 2, "cpus_available": 1, "xla_flags": None},
                       "shared ") == "1 of 2 shared CPU cores"
  single = {"cpu_count": 2, "cpus_available": 2,
            "xla_flags": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
  assert report._cores(single) == "single-threaded XLA on 2 CPU cores"


def test_multiplicity_rule_counts_the_comparisons_of_the_page():
  page, _ = report.build(report.load_results(), plots=None)
  rule = next(line for line in page.splitlines() if line.startswith("- **Multiplicity**"))
  count = report._TALLY.count()
  assert count > 0 and f"makes {count} distinct comparisons" in rule
  assert "{" not in rule
  tally = report._Tally()
  tally.add([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
  tally.add([4.0, 5.0, 6.0], [1.0, 2.0, 3.0])  # the same comparison mirrored: once
  tally.add([1.0], [2.0])
  assert tally.count() == 2
  assert tally.expected_by_chance() == pytest.approx(2 / 20 + 1.0)


def test_a_sweep_with_tuned_decay_states_its_grid_and_chosen_decays():
  record = _mlp_record()
  record["config"].update(
      tune_decay=True, decay_widenings=2,
      weight_decays={n: [0.0, 1e-4, 1e-3, 1e-2] for n in record["config"]["momentum"]})
  for row in record["rows"]:
    row["weight_decay"] = 1e-3
    row["decay_at_edge"] = row["optimizer"] == "lars"
    row["searches"] = [{**s, "weight_decay": wd} for s, wd in
                       zip(row["searches"][:1] * 4, [0.0, 1e-4, 1e-3, 1e-2], strict=True)]
  text, claims = report.mnist_section(record, plots=None)
  assert "weight decay tuned jointly with the learning rate" in text
  assert "weight decay 0 for every optimizer" not in text
  assert "Chosen weight decays" in text and "0.001 (edge)" in text
  assert "The joint grid (tuning seed)" in text and "0.0001: " in text
  ordinary = next(c for c in claims if c["claim"].startswith("on par"))
  assert "lr × weight decay tuned" in ordinary["setup"]
  assert "chosen weight decay novograd 0.001" in ordinary["result"]
  # an untuned sweep (as the older records are) still says so
  record = _mlp_record()
  record["config"].update(tune_decay=False,
                          weight_decay={n: 0.0 for n in record["config"]["momentum"]})
  text, claims = report.mnist_section(record, plots=None)
  assert "weight decay 0 for every optimizer (not tuned)" in text
  assert "Chosen weight decays" not in text
  large = next(c for c in claims if c["claim"].startswith("works well"))
  assert "weight decay 0 (not tuned)" in large["setup"]


def test_scale_invariant_section_states_the_decay_setting_from_the_record():
  import copy
  record = copy.deepcopy(report.load_results()["scale_invariant_full"])
  if record["config"].get("tune_decay"):
    text, claims = report.scale_invariant_section(record, plots=None)
    assert "weight decay tuned jointly with the learning rate" in text
    assert "The joint grid (tuning seed)" in text
    assert all("lr × weight decay tuned" in c["setup"] for c in claims)
  record["config"]["tune_decay"] = False
  text, claims = report.scale_invariant_section(record, plots=None)
  assert "no weight decay" in text and "The joint grid" not in text
