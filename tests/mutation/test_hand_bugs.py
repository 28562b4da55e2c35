"""The hand-made bug catalogue follows the code: each bug's original text occurs
exactly once in its module (a refactoring that moves it fails here, not silently in
a mutation run that would apply nothing), and each bug changes the module."""

import subprocess
import sys

import pytest

from tests.mutation import hand_bugs


@pytest.mark.parametrize("number", range(1, len(hand_bugs.BUGS) + 1))
def test_each_hand_bug_applies_to_the_current_code(number):
  bug = hand_bugs.BUGS[number - 1]
  original = hand_bugs.source(bug.module).read_text()
  assert hand_bugs.apply(bug, original) != original


def test_a_stale_bug_is_refused():
  stale = hand_bugs.bug("layers", "stale", ("text that is not in the module", "x"))
  with pytest.raises(ValueError, match="occurs 0 times"):
    hand_bugs.apply(stale, hand_bugs.source("layers").read_text())


def test_the_documented_list_command_runs():
  # docs/reliability.md: `python tests/mutation/hand_bugs.py --list`.
  listing = subprocess.run(
      [sys.executable, str(hand_bugs.ROOT / "tests" / "mutation" / "hand_bugs.py"), "--list"],
      capture_output=True, text=True, check=True).stdout
  assert len(listing.splitlines()) == len(hand_bugs.BUGS)
  assert listing.startswith(" 1 layerwise_norm: eps inside the square root")
