"""README.md is the front door: short, its commands are the ones CI runs, and its
links lead to files that exist. (Its python blocks run in test_code_blocks.py.)"""

import pathlib
import re
import shlex

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CI = (ROOT / ".ci" / "run").read_text()


def bash_commands() -> list[list[str]]:
  """Each ```bash block's lines, split at ``&&``, as argument lists."""
  blocks = re.findall(r"^```bash\n(.*?)^```", README, re.DOTALL | re.MULTILINE)
  return [shlex.split(part) for block in blocks for line in block.splitlines()
          if line.strip() for part in line.split("&&")]


def ci_commands() -> list[list[str]]:
  return [shlex.split(line) for line in CI.splitlines()
          if line.strip() and not line.lstrip().startswith("#")]


def test_readme_is_at_most_200_lines():
  assert len(README.splitlines()) <= 200


def editable_installs(commands: list[list[str]]) -> list[str]:
  """The targets of ``pip install [--quiet] -e TARGET`` commands."""
  return [c[c.index("-e") + 1] for c in commands if c[:2] == ["pip", "install"] and "-e" in c]


def test_the_test_command_is_what_ci_runs():
  commands = bash_commands()
  pytest_run = [c for c in commands if c[:3] == ["python", "-m", "pytest"]]
  assert pytest_run == [["python", "-m", "pytest", "-n", "auto"]], pytest_run
  ci = ci_commands()
  assert pytest_run[0] in ci
  # The same install as CI: the same extras, editable.
  ci_install = editable_installs(ci)
  assert len(ci_install) == 1, ci_install
  assert ci_install[0] in editable_installs(commands), (ci_install, editable_installs(commands))


def test_the_main_job_command_names_the_example():
  assert ["python", "examples/mnist1d.py"] in bash_commands()
  assert (ROOT / "examples" / "mnist1d.py").exists()


def test_verdict_table_markers_enclose_a_table():
  start, end = "<!-- verdict-table:start -->", "<!-- verdict-table:end -->"
  assert README.count(start) == 1 and README.count(end) == 1
  table = README[README.index(start) + len(start):README.index(end)]
  assert table.strip().startswith("| claim")


def test_relative_links_exist():
  links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
  local = [link for link in links if "://" not in link]
  assert local, "no links into the docs"
  missing = [link for link in local if not (ROOT / link).exists()]
  assert not missing, missing
