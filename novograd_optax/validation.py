"""Construction-time checks of hyperparameters.

Python numbers are checked when an optimizer is built, so that a typo such as
``b1=2`` or ``learning_rate=-1e-3`` fails at once with a message that names the
argument and its accepted range. Arrays, tracers and schedules are *not* checked:
their values are unknown (or change) at build time, and ``optax.inject_hyperparams``
rebuilds the optimizer with jax arrays on every step.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np


def _range_text(low, high, low_inclusive, high_inclusive) -> str:
  left = "[" if low_inclusive else "("
  right = "]" if high_inclusive else ")"
  low_text = "-inf" if low is None else f"{low:g}"
  high_text = "inf" if high is None else f"{high:g}"
  return f"{left}{low_text}, {high_text}{right}"


def check_scalar(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
    allow_schedule: bool = False,
) -> None:
  """Checks a numeric hyperparameter that may also be an array or a schedule.

  Raises:
    TypeError: if ``value`` is neither a real number, an array nor (when
      ``allow_schedule``) a callable schedule.
    ValueError: if ``value`` is a Python or NumPy number outside the range.
  """
  accepted = "a real number or a jax/numpy array"
  if allow_schedule:
    accepted += " or an optax schedule (a callable of the step count)"
  if callable(value) and not isinstance(value, (jax.Array, np.ndarray)):
    if allow_schedule:
      return
    raise TypeError(f"{name} must be {accepted}; got {value!r}.")
  if isinstance(value, bool) or isinstance(value, (str, bytes)):
    raise TypeError(f"{name} must be {accepted}; got {value!r}.")
  if isinstance(value, (jax.Array, np.ndarray)):
    return  # Values of arrays and tracers are not inspected (inject_hyperparams).
  if not isinstance(value, numbers.Real):
    raise TypeError(
        f"{name} must be {accepted}; got {type(value).__name__} {value!r}.")
  value = float(value)
  inside = not np.isnan(value)
  if inside and low is not None:
    inside = value >= low if low_inclusive else value > low
  if inside and high is not None:
    inside = value <= high if high_inclusive else value < high
  if not inside:
    raise ValueError(
        f"{name} must be in {_range_text(low, high, low_inclusive, high_inclusive)};"
        f" got {value!r}.")


def check_decay_rate(name: str, value: Any) -> None:
  """A moment decay rate such as ``b1``, ``b2`` or ``momentum``: in [0, 1)."""
  check_scalar(name, value, low=0.0, high=1.0)


def check_non_negative(name: str, value: Any, *, allow_schedule: bool = False) -> None:
  """A learning rate, an epsilon or a weight decay: in [0, inf)."""
  check_scalar(name, value, low=0.0, allow_schedule=allow_schedule)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
  """A string option such as ``norm`` or ``init``."""
  choices = tuple(choices)
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def check_bool(name: str, value: Any) -> None:
  if not isinstance(value, (bool, np.bool_)):
    raise TypeError(f"{name} must be True or False; got {value!r}.")


def check_axis_name(name: str, value: Any) -> None:
  """A mesh axis name for collectives: None, a hashable name, or a tuple of them."""
  if value is None:
    return
  names = value if isinstance(value, tuple) else (value,)
  if not names or not all(isinstance(n, str) for n in names):
    raise TypeError(
        f"{name} must be None, a mesh axis name (str) or a tuple of names;"
        f" got {value!r}.")
