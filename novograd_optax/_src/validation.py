"""Construction-time checks of hyperparameters.

Python and NumPy numbers, and concrete (not traced) jax and NumPy arrays, are
checked when an optimizer is built, so that a typo such as ``b1=2``,
``learning_rate=-1e-3`` or an ``inf`` fails at once with a message that names the
argument and its accepted range; every float hyperparameter must be finite.
Tracers (an optimizer built inside ``jax.jit``, or by ``optax.inject_hyperparams``
inside a jitted step) and schedules are *not* checked: their values are unknown (or
change) at build time. ``optax.inject_hyperparams`` rebuilds the optimizer on every
``update``, so an injected hyperparameter is checked there when the step is not
jitted, and not at all inside ``jax.jit``.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Iterable
from typing import Any

import jax
import numpy as np
import optax


def _range_text(low, high, low_inclusive, high_inclusive) -> str:
  left = "[" if low_inclusive else "("
  right = "]" if high_inclusive else ")"
  low_text = "-inf" if low is None else f"{low:g}"
  high_text = "inf" if high is None else f"{high:g}"
  return f"{left}{low_text}, {high_text}{right}"


def _concrete_values(value: Any) -> np.ndarray | None:
  """The values of a jax/NumPy array, or ``None`` for a tracer (unknown values)."""
  try:
    return np.asarray(value)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


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
  """Checks a numeric hyperparameter that may also be an array or a schedule: a
  finite real number in the range, every entry of a concrete array too.

  Raises:
    TypeError: if ``value`` is neither a real number, a real array nor (when
      ``allow_schedule``) a callable schedule.
    ValueError: if ``value`` (or an entry of a concrete array) is inf, NaN or
      outside the range.
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
    values = _concrete_values(value)
    if values is None:
      return  # A tracer: its value is not known when the optimizer is built.
    if not (np.issubdtype(values.dtype, np.integer)
            or np.issubdtype(values.dtype, np.floating)):
      raise TypeError(f"{name} must be {accepted} of real numbers; got {value!r}.")
    shown: Any = value
    values = values.astype(np.float64).ravel()
  elif isinstance(value, numbers.Real):
    shown = value
    values = np.asarray([float(value)])
  else:
    raise TypeError(
        f"{name} must be {accepted}; got {type(value).__name__} {value!r}.")
  inside = np.isfinite(values)
  if low is not None:
    inside &= values >= low if low_inclusive else values > low
  if high is not None:
    inside &= values <= high if high_inclusive else values < high
  if not np.all(inside):
    raise ValueError(
        f"{name} must be a finite number in"
        f" {_range_text(low, high, low_inclusive, high_inclusive)}; got {shown!r}.")


def is_static_zero(value: Any) -> bool:
  """True for a Python or NumPy zero: a hyperparameter known, at build time, to
  switch its term off (an array, tracer or schedule never is)."""
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0


def check_decay_rate(name: str, value: Any) -> None:
  """A moment decay rate such as ``b1``, ``b2`` or ``momentum``: in [0, 1)."""
  check_scalar(name, value, low=0.0, high=1.0)


def check_non_negative(name: str, value: Any, *, allow_schedule: bool = False) -> None:
  """A learning rate, an epsilon or a weight decay: in [0, inf)."""
  check_scalar(name, value, low=0.0, allow_schedule=allow_schedule)


def _inject_hint(names: Iterable[str]) -> str:
  listed = ", ".join(repr(n) for n in names)
  return (
      "optax.inject_hyperparams turns every number into an array and calls every"
      " callable as a schedule of the step count; pass"
      f" optax.inject_hyperparams(..., static_args=({listed},)).")


def check_static(name: str, value: Any, accepted: str) -> None:
  """Refuses an array or tracer for an option that must be known when the
  optimizer is built: an axis, a mask, a dtype, a switch.

  Such an array is what ``optax.inject_hyperparams`` passes for an int it took
  for a number, or for a callable it took for a schedule (the callable's value at
  the step count); used as an option it would fail obscurely or, for a mask,
  silently change the math.

  Raises:
    TypeError: naming the argument and ``static_args``.
  """
  if isinstance(value, (jax.Array, np.ndarray, np.generic)):
    raise TypeError(
        f"{name} must be {accepted}, known when the optimizer is built; got an array"
        f" ({value!r}). If it comes from optax.inject_hyperparams: "
        + _inject_hint([name]))


def check_not_injected_schedule(who: str, names: Iterable[str]) -> None:
  """Refuses to be built by ``optax.inject_hyperparams`` with one of ``names``
  (options that take a callable that is not a schedule: a mask or a
  ``layer_axes`` function, a dtype class) taken for a schedule.

  inject_hyperparams calls such a callable with the step count and passes the
  result; a mask function then typically returns one bool and a ``layer_axes``
  function ``None``: plausible values, so the constructor cannot tell from the
  value and the math would change silently (no weight decay, no stacked
  layers). Its caller can: the ``init``/``update`` of an injected optimizer,
  whose ``sched_hps`` are the arguments it took for schedules. Call this from a
  public constructor only (it inspects the constructor's caller).

  Raises:
    TypeError: naming the arguments and ``static_args``.
  """
  caller = sys._getframe(2)
  # optax has no public way to tell an injected build; its init/update keep the
  # callables they took for schedules in a local `sched_hps`. Any optax module is
  # accepted (not only today's optax.schedules._inject), so a move inside optax
  # keeps the check on; tests/test_inject_hyperparams.py fails if it ever goes quiet.
  if not caller.f_globals.get("__name__", "").startswith("optax."):
    return
  schedules = caller.f_locals.get("sched_hps")
  if not isinstance(schedules, dict):
    return
  taken = [n for n in names if n in schedules]
  if taken:
    raise TypeError(
        f"{who}: {', '.join(taken)} {'is' if len(taken) == 1 else 'are'} a callable"
        " that is not a schedule, but optax.inject_hyperparams took it for one. "
        + _inject_hint(taken))


def check_mask(name: str, value: Any) -> None:
  """A mask option such as ``weight_decay_mask``: ``None``, a pytree (of bools)
  or a callable of the params returning one, as in ``optax.masked``."""
  check_static(
      name, value,
      "None, a pytree of bools shaped like the params or a callable returning one")


def check_dtype(name: str, value: Any) -> None:
  """A dtype option such as ``mu_dtype``: ``None``, a name, a NumPy dtype or a
  scalar type such as ``jnp.bfloat16``."""
  check_static(name, value, "None or a dtype (e.g. 'bfloat16' or jnp.bfloat16)")
  if value is None or isinstance(value, (str, np.dtype, type)):
    return
  raise TypeError(
      f"{name} must be None or a dtype (e.g. 'bfloat16' or jnp.bfloat16); got {value!r}.")


def check_mask_structure(name: str, mask: Any, params: Any) -> None:
  """Refuses a mask (e.g. ``weight_decay_mask``) whose pytree structure is not that of
  the params (or a prefix of it, as ``optax.masked`` accepts), naming the option; a
  callable mask is called on the params first. optax's own error is jax's pytree
  mismatch, which names neither the option nor the fix.

  Raises:
    ValueError: naming ``name``, both structures and how to build a matching mask.
  """
  if mask is None:
    return
  tree = mask(params) if callable(mask) else mask
  try:
    jax.tree.map(lambda *_: None, tree, params)
  except (ValueError, TypeError) as err:
    raise ValueError(
        f"{name} must have the pytree structure of the params (or a prefix of it), with"
        f" a bool per leaf; got {jax.tree.structure(tree)} for params"
        f" {jax.tree.structure(params)}. Build it from the params, e.g."
        f" {name}=lambda params: jax.tree.map(lambda p: p.ndim > 1, params).") from err


def check_int(name: str, value: Any, accepted: str = "an int") -> None:
  """An axis such as ``channel_axis``."""
  check_static(name, value, accepted)
  if isinstance(value, bool) or not isinstance(value, int):
    raise TypeError(f"{name} must be {accepted}; got {value!r}.")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
  """A string option such as ``norm`` or ``init``."""
  choices = tuple(choices)
  check_static(name, value, f"one of {choices}")
  if not isinstance(value, str) or value not in choices:
    raise ValueError(f"{name} must be one of {choices}; got {value!r}.")


def check_bool(name: str, value: Any) -> None:
  """A switch such as ``amsgrad``: Python (or NumPy) ``True`` or ``False``."""
  if isinstance(value, jax.Array):
    check_static(name, value, "True or False")
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


def _leaf_paths(tree: Any) -> dict[str, Any]:
  return {jax.tree_util.keystr(path): leaf
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def check_same_structure(
    name: str, tree: Any, reference_name: str, reference: Any, *, compare_shapes: bool = False,
) -> None:
  """Refuses a ``tree`` (e.g. the gradients) shaped unlike ``reference`` (e.g. the
  state built by ``init``), naming the leaves that differ.

  Without this check a mismatch surfaces deep inside ``jax.tree.map`` or as a
  broadcasting error of some ``add``, which does not say which leaf is wrong.
  Shapes are static under ``jit``, so the check costs nothing at run time.

  Raises:
    ValueError: if the pytree structures differ or, with ``compare_shapes``, a
      leaf's shape differs.
  """
  structure: Any = jax.tree.structure(tree)  # PyTreeDef's stubs lack __ne__.
  if structure != jax.tree.structure(reference):
    ours, theirs = _leaf_paths(tree), _leaf_paths(reference)
    missing = sorted(set(theirs) - set(ours))
    extra = sorted(set(ours) - set(theirs))
    detail = []
    if missing:
      detail.append(f"missing from {name}: {', '.join(missing)}")
    if extra:
      detail.append(f"not in {reference_name}: {', '.join(extra)}")
    if not detail:
      detail.append(
          f"{name} is {structure}, {reference_name} is"
          f" {jax.tree.structure(reference)}")
    raise ValueError(
        f"{name} must have the pytree structure of {reference_name}; "
        + "; ".join(detail) + ".")
  if compare_shapes:
    expected_leaves = _leaf_paths(reference)
    for path, leaf in _leaf_paths(tree).items():
      expected = expected_leaves[path]
      shape, expected_shape = np.shape(leaf), np.shape(expected)
      if shape != expected_shape:
        raise ValueError(
            f"{name}{path} has shape {shape} but {reference_name}{path} has shape"
            f" {expected_shape}.")


# optax states whose named field is a moment of the params' shapes, made by init.
_FULL_SHAPED_MOMENTS = (
    (optax.TraceState, "trace"),
    (optax.EmaState, "ema"),
    (optax.ScaleByAdamState, "mu"),
)


def check_shapes_against_state(name: str, tree: Any, state: Any) -> None:
  """Without ``params``, refuses a ``tree`` (the gradients) whose leaves' shapes differ
  from the params' shapes that ``init`` recorded in ``state``, with the message of
  :func:`check_same_structure` for params.

  Without this check a gradient of the wrong shape broadcasts: a (3,) gradient for a
  (1,) weight gives a (3,) update and momentum, and ``optax.apply_updates`` a (3,)
  weight. What records the shapes: the first-moment buffers of optax's ``trace``,
  ``ema`` and ``scale_by_adam`` anywhere in ``state`` (every alias and preset holds
  one). A layer-wise second moment records only the sizes of the ``layer_axes``, and
  a stateless transformation nothing; with neither, nothing is checked.

  Raises:
    ValueError: naming the first leaf whose shape differs.
  """
  types = tuple(kind for kind, _ in _FULL_SHAPED_MOMENTS)
  structure: Any = jax.tree.structure(tree)  # PyTreeDef's stubs lack __eq__.
  for node in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, types)):
    for kind, field in _FULL_SHAPED_MOMENTS:
      if not isinstance(node, kind):
        continue
      moment = getattr(node, field)
      # A moment of another structure belongs to a part of the params (optax.masked).
      if structure == jax.tree.structure(moment):
        check_same_structure(name, tree, "params", moment, compare_shapes=True)
        return


def check_inexact_leaves(name: str, tree: Any) -> None:
  """Refuses integer or boolean leaves, which an optimizer cannot move by a
  fraction; they must be excluded with ``optax.masked`` or frozen with
  ``optax.multi_transform`` and ``optax.set_to_zero``.

  Raises:
    TypeError: naming the first such leaf.
  """
  for path, leaf in _leaf_paths(tree).items():
    dtype = getattr(leaf, "dtype", None)
    if dtype is None:
      dtype = np.result_type(leaf)
    if not jax.numpy.issubdtype(dtype, jax.numpy.inexact):
      raise TypeError(
          f"{name}{path} has dtype {dtype}; only floating-point and complex leaves"
          " can be optimized. Exclude it with optax.masked, or freeze it with"
          " optax.multi_transform(..., optax.set_to_zero()).")
