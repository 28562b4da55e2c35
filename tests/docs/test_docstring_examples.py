"""Every docstring example of the package runs, and prints what it says it prints.

The examples are collected from every module of ``novograd_optax`` (public and
``_src``) with :mod:`doctest`, one test per module; an example whose output differs
from the one written in the docstring fails.
"""

import doctest
import importlib
import pkgutil

import pytest

import novograd_optax

MODULES = sorted(
    ["novograd_optax"] + [info.name for info in pkgutil.walk_packages(
        novograd_optax.__path__, prefix="novograd_optax.")])
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def examples(module_name: str) -> list[doctest.DocTest]:
  module = importlib.import_module(module_name)
  return [test for test in doctest.DocTestFinder(exclude_empty=True).find(module)
          if test.examples]


def test_the_public_api_has_examples():
  # Guards the parametrization below: an empty collection would pass vacuously.
  documented = {test.name.rsplit(".", 1)[-1] for name in MODULES for test in examples(name)}
  for name in ("novograd", "sngm", "adamp", "sgdp", "scale_by_layerwise_norm",
               "clip_by_layerwise_trust_ratio", "project_scale_invariant",
               "normalize_by_global_norm", "optimizer_state_shardings", "decay_mask"):
    assert name in documented, name


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
  runner = doctest.DocTestRunner(optionflags=_FLAGS)
  for test in examples(module_name):
    runner.run(test)
  results = runner.summarize(verbose=False)
  assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed"
