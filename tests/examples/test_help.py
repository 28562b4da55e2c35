"""Every script in examples/ and every benchmark module a user runs answers ``--help``
with exit 0, a whole description (not cut mid-sentence), and help text with the
default for every option."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))
BENCHMARK_MODULES = ["benchmarks.update_step", "benchmarks.compiled_for_target",
                     "benchmarks.report"]
# (test id, the command line before --help)
COMMANDS = ([(p.name, [str(p)]) for p in SCRIPTS]
            + [(m, ["-m", m]) for m in BENCHMARK_MODULES])


def option_blocks(help_text: str) -> dict[str, str]:
  """``{flags: help}`` of the "options:" section, one entry per option."""
  section = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
  blocks: dict[str, str] = {}
  flags = None
  for line in section.splitlines():
    if line.startswith("  -"):
      flags, _, rest = line.strip().partition("  ")
      blocks[flags] = rest.strip()
    elif flags is not None:
      blocks[flags] = (blocks[flags] + " " + line.strip()).strip()
  return blocks


def test_the_scripts_are_found():
  assert {p.name for p in SCRIPTS} >= {"mnist1d.py", "char_lm.py", "masked_lm.py",
                                       "protocol.py", "speech_ctc.py", "translation.py"}


@pytest.mark.parametrize("script,command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_help(script, command):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
  result = subprocess.run([sys.executable, *command, "--help"], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  text = result.stdout
  assert text.startswith("usage:"), text[:200]
  # The description: the paragraphs between the usage lines and "options:".
  description = re.split(r"\n(?:positional arguments|options):\n",
                         text.split("\n\n", 1)[1], maxsplit=1)[0].strip()
  assert description, text
  assert re.search(r"[.?:)]$", description), f"cut description: {description[-80:]!r}"
  options = {flags: help for flags, help in option_blocks(text).items()
             if not flags.startswith("-h")}
  for flags, help in options.items():
    assert "(default:" in help, (script, flags, help)
    assert re.sub(r"\(default: .*\)$", "", help).strip(), (script, flags, "no help")


def test_option_blocks_parser():
  # The parser above on a hand-written help text, so a format change cannot hide options.
  text = ("usage: x [-h]\n\nDoes x.\n\noptions:\n  -h, --help  show\n"
          "  --a A       first (default:\n              1)\n  --b B\n"
          "              (default: 2)\n\nepilog\n")
  assert option_blocks(text) == {"-h, --help": "show", "--a A": "first (default: 1)",
                                 "--b B": "(default: 2)"}
