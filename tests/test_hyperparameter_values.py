"""Every float hyperparameter of every public constructor and preset refuses inf, -inf
and NaN, as a Python float and as a concrete jax or NumPy array, with a ValueError
naming it; tracers are not checked (their values are unknown when the optimizer is
built). The arguments are found from the signatures, so a new one is covered."""

from __future__ import annotations

import inspect
import math
import numbers
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import novograd_optax as nvg
from novograd_optax import presets

# Each constructor with the arguments that make every numeric argument matter (e.g.
# NeMo's luc_* are only read with luc=True).
CONSTRUCTORS = {
    "novograd": (nvg.novograd, dict(learning_rate=0.1, trust_coefficient=1e-3)),
    "sngm": (nvg.sngm, dict(learning_rate=0.1)),
    "adamp": (nvg.adamp, dict(learning_rate=0.1)),
    "sgdp": (nvg.sgdp, dict(learning_rate=0.1)),
    "scale_by_layerwise_norm": (nvg.scale_by_layerwise_norm, {}),
    "normalize_by_global_norm": (nvg.normalize_by_global_norm, {}),
    "normalize_by_norm_average": (nvg.normalize_by_norm_average, {}),
    "clip_by_layerwise_trust_ratio": (nvg.clip_by_layerwise_trust_ratio, {}),
    "project_scale_invariant": (nvg.project_scale_invariant, dict(inner=optax.identity())),
    **{f"presets.{peer.preset.__name__}": (peer.preset, {}) for peer in presets.PEERS},
}
CONSTRUCTORS["presets.optax"] = (presets.optax, dict(learning_rate=0.1))
CONSTRUCTORS["presets.nemo"] = (presets.nemo, dict(luc=True))
CONSTRUCTORS["presets.openseq2seq"] = (presets.openseq2seq, dict(larc_eta=1e-3))
# Numeric options whose default is None.
NONE_DEFAULT_NUMBERS = {"trust_coefficient", "larc_eta"}


def _float_arguments():
  """(constructor id, argument name, path into a pair such as betas or None)."""
  found = []
  for key, (make, base) in CONSTRUCTORS.items():
    for parameter in inspect.signature(make).parameters.values():
      default = base.get(parameter.name, parameter.default)
      if parameter.name in NONE_DEFAULT_NUMBERS or (
          isinstance(default, float) and not isinstance(default, bool)):
        found.append((key, parameter.name, None))
      elif isinstance(default, tuple) and all(isinstance(x, float) for x in default):
        found.extend((key, parameter.name, i) for i in range(len(default)))
      elif parameter.name in ("learning_rate", "lr"):
        found.append((key, parameter.name, None))
  return found


FLOAT_ARGUMENTS = _float_arguments()
BAD_VALUES = {
    "inf": math.inf, "-inf": -math.inf, "nan": math.nan,
    "jnp-inf": jnp.asarray(jnp.inf), "np-nan": np.asarray(np.nan),
    "np-float32-inf": np.float32(np.inf), "jnp-negative": jnp.asarray(-0.5),
    "jnp-vector-with-nan": jnp.asarray([0.1, jnp.nan]),
}


def _build(key, name, index, value):
  make, base = CONSTRUCTORS[key]
  kwargs = dict(base)
  if index is None:
    kwargs[name] = value
  else:
    pair = list(inspect.signature(make).parameters[name].default)
    pair[index] = value
    kwargs[name] = tuple(pair)
  return make(**kwargs)


def test_every_constructor_has_float_arguments_found():
  """The discovery above finds what it must (else the tests below test nothing)."""
  names = {(key, name) for key, name, _ in FLOAT_ARGUMENTS}
  for expected in [("novograd", "eps_root"), ("novograd", "trust_coefficient"),
                   ("adamp", "wd_ratio"), ("presets.nemo", "luc_eps"),
                   ("presets.openseq2seq", "larc_min_update"), ("presets.timm", "betas"),
                   ("presets.apex", "lr"), ("clip_by_layerwise_trust_ratio", "min_ratio")]:
    assert expected in names
  assert len(FLOAT_ARGUMENTS) > 60


@pytest.mark.parametrize("value", BAD_VALUES.values(), ids=list(BAD_VALUES))
@pytest.mark.parametrize(
    "key, name, index", FLOAT_ARGUMENTS,
    ids=[f"{k}-{n}" + ("" if i is None else f"[{i}]") for k, n, i in FLOAT_ARGUMENTS])
def test_non_finite_or_negative_hyperparameter_is_refused_naming_it(key, name, index, value):
  shown = name if index is None else f"{name}[{index}]"
  with pytest.raises(ValueError, match=f"^{re.escape(shown)} must be"):
    _build(key, name, index, value)


@pytest.mark.parametrize(
    "key, name, index", FLOAT_ARGUMENTS,
    ids=[f"{k}-{n}" + ("" if i is None else f"[{i}]") for k, n, i in FLOAT_ARGUMENTS])
def test_traced_hyperparameter_is_not_checked(key, name, index):
  """Inside jit the value is unknown at build time: no error, also for a bad one."""
  params = {"w": jnp.ones((2, 3))}

  @jax.jit
  def build_and_init(value):
    opt = _build(key, name, index, value)
    return jax.tree.leaves(opt.init(params))

  build_and_init(jnp.float32(jnp.inf))


def test_concrete_good_arrays_and_numpy_numbers_are_accepted():
  nvg.novograd(jnp.asarray(0.1), b1=np.float32(0.9), b2=np.asarray(0.5),
               weight_decay=jnp.asarray([1e-3]))
  presets.timm(lr=jnp.asarray(1e-3), betas=(jnp.asarray(0.9), np.float64(0.98)))
  with pytest.raises(TypeError, match="learning_rate"):
    nvg.novograd(jnp.asarray(True))
  assert isinstance(np.float32(1.0), numbers.Real)
