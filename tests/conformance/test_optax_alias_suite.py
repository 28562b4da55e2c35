"""optax's own alias test suite, run from the installed optax wheel on our aliases.

optax ships its tests inside the wheel (``optax/_src/alias_test.py``). Its common
tests (``AliasTest``: optimization of a parabola and of Rosenbrock's function,
extra arguments in ``update``, ``inject_hyperparams``, dtype preservation, state
stability under ``lax.cond``, ``MultiSteps``) are parametrized over optax's own
optimizer list. This module finds every such test in the installed file (any
``AliasTest`` method parametrized by ``opt_name`` and ``opt_kwargs``), keeps its
other parameters (target, dtype, ...) and runs its body, unchanged, for each entry
of :data:`ALIASES_UNDER_TEST` instead, with optax's ``_get_opt`` looking our names
up. Nothing of optax's is copied: a new common test in a later optax runs here too.

Not applicable, and therefore not run (see :data:`NOT_APPLICABLE`):

* the tests of ``AliasTest`` that are not parametrized by the optimizer list
  (``test_explicit_dtype``: ``sgd``/``adam``/``adamw``'s own ``mu_dtype`` and
  ``accumulator_dtype`` arguments) and the L-BFGS tests: they test optax's own
  optimizers, not an interface ours share.

To add an alias (e.g. a preset), append ``(name, factory, kwargs)`` to
:data:`ALIASES_UNDER_TEST`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pytest

import novograd_optax

alias_test = pytest.importorskip(
    "optax._src.alias_test", reason="this optax wheel does not ship its alias tests")

# (name, factory, keyword arguments): the hyperparameters are chosen, as optax
# chooses its own, so that 10,000 steps reach the minimum of the test functions.
ALIASES_UNDER_TEST: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("novograd", novograd_optax.novograd, {"learning_rate": 1e-3}),
    ("sngm", novograd_optax.sngm, {"learning_rate": 1e-3}),
    ("adamp", novograd_optax.adamp, {"learning_rate": 1e-1}),
    ("sgdp", novograd_optax.sgdp, {"learning_rate": 1e-3}),
]

# (alias name, optax test name) -> why that test cannot apply to that alias.
# Empty: every common test applies to every alias above, and passes.
NOT_APPLICABLE: dict[tuple[str, str], str] = {}

_OPTIMIZER_PARAMETERS = ("opt_name", "opt_kwargs")
_PREFIX = "novograd_optax."  # our names never collide with optax's special cases


def _case_parameters(method: Any) -> Any:
  """The parameters absl's ``parameterized`` bound to one generated test method."""
  closure = inspect.getclosurevars(method).nonlocals
  return closure.get("testcase_params")


def _common_tests() -> dict[str, tuple[Callable[..., Any], str, list[dict[str, Any]]]]:
  """``{test name: (its body, one generated method name, [other parameters])}`` for
  every AliasTest method parametrized by the optimizer list."""
  found: dict[str, tuple[Callable[..., Any], str, list[dict[str, Any]]]] = {}
  for attr in sorted(vars(alias_test.AliasTest)):
    method = getattr(alias_test.AliasTest, attr)
    body = getattr(method, "__wrapped__", None)
    if not attr.startswith("test") or body is None:
      continue
    params = _case_parameters(method)
    if not isinstance(params, Mapping) or not set(_OPTIMIZER_PARAMETERS) <= set(params):
      continue
    rest = {k: v for k, v in params.items() if k not in _OPTIMIZER_PARAMETERS}
    _, _, variants = found.setdefault(body.__name__, (body, attr, []))
    if rest not in variants:
      variants.append(rest)
  return found


COMMON_TESTS = _common_tests()


def _describe(value: Any) -> str:
  return getattr(value, "__name__", None) or str(value)


def _cases():
  for alias_name, _, _ in ALIASES_UNDER_TEST:
    for test_name, (_, _, variants) in COMMON_TESTS.items():
      for rest in variants:
        rest_id = ",".join(f"{k}={_describe(v)}" for k, v in sorted(rest.items()))
        case_id = "-".join(filter(None, [alias_name, test_name, rest_id]))
        marks = ()
        reason = NOT_APPLICABLE.get((alias_name, test_name))
        if reason is not None:
          marks = (pytest.mark.skip(reason=reason),)
        yield pytest.param(alias_name, test_name, rest, id=case_id, marks=marks)


def test_the_suite_was_found():
  """The tests below are generated from optax's file: an empty list would pass."""
  assert {"test_optimization", "test_optimizers_accept_extra_args",
          "test_optimizers_can_be_wrapped_in_inject_hyperparams",
          "test_preserve_dtype", "test_gradient_accumulation"} <= set(COMMON_TESTS)


@pytest.mark.parametrize("alias_name, test_name, parameters", list(_cases()))
def test_optax_alias_suite(alias_name, test_name, parameters, monkeypatch):
  factories = {_PREFIX + name: (factory, kwargs) for name, factory, kwargs in ALIASES_UNDER_TEST}
  original_get_opt = alias_test._get_opt

  def get_opt(self, opt_name):
    if opt_name in factories:
      return factories[opt_name][0]
    return original_get_opt(self, opt_name)

  monkeypatch.setattr(alias_test, "_get_opt", get_opt)
  body, method_name, _ = COMMON_TESTS[test_name]
  case = alias_test.AliasTest(methodName=method_name)
  _, kwargs = factories[_PREFIX + alias_name]
  body(case, opt_name=_PREFIX + alias_name, opt_kwargs=dict(kwargs), **parameters)
