"""examples/make_report.py: the committed experiments page is what the committed results
produce, and the README verdict table is replaced only between its markers."""

import importlib.util
import pathlib
import sys

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
