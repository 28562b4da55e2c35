"""Wrappers shared by the aliases: they change no math, only what a user meets.

Every transformation of the package is a ``GradientTransformationExtraArgs``: its
``update`` takes ``updates, state, params=None, **extra_args`` and forwards extra
arguments (``value=loss`` for ``optax.contrib.reduce_on_plateau``, whatever
``nnx.Optimizer.update(model, grads, **kwargs)`` passes) to the pieces that use
them, as optax's own aliases do.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from novograd_optax._src import validation


def require_params(who: str, why: str, params: Any) -> None:
  """Raises the one "needs the current parameters" error of the package."""
  if params is None:
    raise ValueError(
        f"{who}: {why} needs the current parameters; call"
        " `optimizer.update(grads, opt_state, params)` (nnx.Optimizer passes them).")


def add_decayed_weights_requiring_params(
    weight_decay: optax.ScalarOrSchedule,
    mask: optax.MaskOrFn = None,
    *,
    who: str,
) -> optax.GradientTransformationExtraArgs:
  """``optax.add_decayed_weights`` with errors that name ``weight_decay`` and
  ``weight_decay_mask``.

  optax's message for a missing ``params`` does not say which option needs
  them, and a mask of the wrong structure fails in jax's pytree code; users of
  ``novograd(weight_decay=...)`` get told what to pass.
  """
  inner = optax.with_extra_args_support(optax.add_decayed_weights(weight_decay, mask))

  def init_fn(params):
    validation.check_mask_structure("weight_decay_mask", mask, params)
    return inner.init(params)

  def update_fn(updates, state, params=None, **extra_args):
    require_params(who, "weight_decay", params)
    validation.check_mask_structure("weight_decay_mask", mask, params)
    return inner.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _at_least_float32(tree: Any) -> Any:
  """float16/bfloat16 leaves as float32; other leaves (float32, float64, complex,
  integers, which init refuses) unchanged."""

  def widen(x):
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.inexact):
      return x
    wide = jnp.promote_types(dtype, jnp.float32)
    return x if wide == dtype else jnp.asarray(x, wide)

  return jax.tree.map(widen, tree)


def keep_dtypes(
    inner: optax.GradientTransformation, mu_dtype: Any = None
) -> optax.GradientTransformationExtraArgs:
  """Runs ``inner`` in at least float32 and returns updates of the params' dtype (of
  the gradients' dtype when ``update`` gets no params); a real ``mu_dtype`` refuses
  complex params; without ``params``, gradients are checked against the shapes
  recorded by ``init``.

  float16/bfloat16 params and gradients are cast to float32 before ``inner`` sees
  them, so its state (momenta, Adam's moments, decay) is float32 unless ``mu_dtype``
  says otherwise, and its arithmetic is float32: a float16 momentum overflows at
  |g| ~ 6e3 (10 g for b1 = 0.9), a float16 Adam moment g^2 at |g| ~ 256, and float16
  rounds a moment of (1 - b1) g ~ 1e-7 to a few bits. Only the final update is rounded
  to 16 bits, once. The params' dtype for the update: with 16-bit gradients on float32
  params (mixed precision) the update stays float32, as in optax. A real
  ``mu_dtype`` for a complex leaf would silently drop the imaginary part of its
  momentum.
  """
  inner = optax.with_extra_args_support(inner)

  def init_fn(params):
    if mu_dtype is not None and not jnp.issubdtype(mu_dtype, jnp.complexfloating):
      for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if jnp.iscomplexobj(leaf):
          raise ValueError(
              f"mu_dtype={jnp.dtype(mu_dtype).name} is real, but the params leaf"
              f" {jax.tree_util.keystr(path)} is {leaf.dtype}: its momentum would"
              " lose the imaginary part; use mu_dtype=None or a complex dtype.")
    return inner.init(_at_least_float32(params))

  def update_fn(updates, state, params=None, **extra_args):
    if params is None:
      validation.check_shapes_against_state("updates", updates, state)
    new_updates, state = inner.update(
        _at_least_float32(updates), state,
        None if params is None else _at_least_float32(params), **extra_args)
    dtypes_of = updates if params is None else params
    return jax.tree.map(
        lambda u, x: u.astype(jnp.result_type(x)), new_updates, dtypes_of), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def with_structure_check(
    inner: optax.GradientTransformation,
) -> optax.GradientTransformationExtraArgs:
  """Wraps an ``optax.GradientTransformation`` so that ``update`` first refuses
  updates shaped unlike the params (when params are passed, else unlike the shapes
  ``init`` recorded in the state), with the message of
  :func:`validation.check_same_structure`; the state is ``inner``'s, unchanged."""
  inner = optax.with_extra_args_support(inner)

  def update_fn(updates, state, params=None, **extra_args):
    if params is not None:
      validation.check_same_structure("updates", updates, "params", params, compare_shapes=True)
    else:
      validation.check_shapes_against_state("updates", updates, state)
    return inner.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(inner.init, update_fn)
