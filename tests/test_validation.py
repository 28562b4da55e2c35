"""Bad hyperparameters fail at construction with a message naming the argument;
tracers and schedules are not inspected and never crash."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from novograd_optax import novograd, scale_by_layerwise_norm
from tests.test_hyperparameter_values import CONSTRUCTORS

# (constructor keyword arguments, error, text the message must contain).
BAD_NOVOGRAD_ARGUMENTS = [
    (dict(learning_rate=-1e-3), ValueError, ["learning_rate", "[0, inf)"]),
    (dict(learning_rate=float("nan")), ValueError, ["learning_rate"]),
    (dict(b1=1.0), ValueError, ["b1", "[0, 1)"]),
    (dict(b1=-0.1), ValueError, ["b1", "[0, 1)"]),
    (dict(b1=2), ValueError, ["b1", "[0, 1)"]),
    (dict(b2=1.0), ValueError, ["b2", "[0, 1)"]),
    (dict(b2=-0.5), ValueError, ["b2", "[0, 1)"]),
    (dict(eps=-1e-8), ValueError, ["eps", "[0, inf)"]),
    (dict(eps_root=-1e-8), ValueError, ["eps_root", "[0, inf)"]),
    (dict(weight_decay=-1e-4), ValueError, ["weight_decay", "[0, inf)"]),
    (dict(norm="l1"), ValueError, ["norm", "'l2'", "'linf'"]),
    (dict(norm=2), ValueError, ["norm"]),
    (dict(nu_init="ones"), ValueError, ["nu_init", "'first'", "'zero'"]),
    (dict(b1="0.9"), TypeError, ["b1"]),
    (dict(learning_rate=None), TypeError, ["learning_rate"]),
    (dict(b2=True), TypeError, ["b2"]),
    (dict(eps=lambda count: 1e-6), TypeError, ["eps"]),  # only lr and wd take schedules.
    (dict(amsgrad="yes"), TypeError, ["amsgrad"]),
    (dict(grad_averaging=None), TypeError, ["grad_averaging"]),
    (dict(axis_name=3), TypeError, ["axis_name"]),
    (dict(layer_axes="batch"), TypeError, ["layer_axes"]),
]


def _id(case):
  kwargs, error, _ = case
  # A callable's repr holds its address, which differs between xdist workers.
  return f"{error.__name__}:" + ",".join(
      f"{k}={'<callable>' if callable(v) else repr(v)}" for k, v in kwargs.items())


@pytest.mark.parametrize(
    "case", BAD_NOVOGRAD_ARGUMENTS, ids=[_id(c) for c in BAD_NOVOGRAD_ARGUMENTS])
def test_novograd_rejects_bad_argument(case):
  kwargs, error, texts = case
  kwargs = {"learning_rate": 0.1, **kwargs}
  with pytest.raises(error) as info:
    novograd(**kwargs)
  for text in texts:
    assert text in str(info.value), (text, str(info.value))


@pytest.mark.parametrize(
    "kwargs, error, name",
    [(dict(b2=1.5), ValueError, "b2"), (dict(eps=-1.0), ValueError, "eps"),
     (dict(eps_root=-1.0), ValueError, "eps_root"), (dict(norm="l3"), ValueError, "norm"),
     (dict(nu_init="random"), ValueError, "nu_init"), (dict(amsgrad=1), TypeError, "amsgrad"),
     (dict(axis_name=("i", 0)), TypeError, "axis_name"),
     (dict(layer_axes=1.5), TypeError, "layer_axes")],
)
def test_scale_by_layerwise_norm_rejects_bad_argument(kwargs, error, name):
  with pytest.raises(error, match=name):
    scale_by_layerwise_norm(**kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(b1=0.0, b2=0.0, eps=0.0, eps_root=0.0, weight_decay=0.0, learning_rate=0.0),
    dict(b1=0.999, b2=0.999, learning_rate=10),
    dict(b1=np.float32(0.5), learning_rate=np.float64(0.1)),
    dict(norm="linf", nu_init="zero", amsgrad=True, grad_averaging=True, axis_name=("i", "j")),
    dict(amsgrad=np.bool_(True)),
])
def test_accepts_edges_of_the_ranges(kwargs):
  kwargs = {"learning_rate": 0.1, **kwargs}
  novograd(**kwargs)


def test_weight_decay_without_params_is_a_clear_error():
  opt = novograd(0.1, weight_decay=1e-2)
  params = {"w": jnp.ones(3)}
  state = opt.init(params)
  with pytest.raises(ValueError, match="weight_decay"):
    opt.update(params, state)  # params not passed.
  # The same with a schedule, and under jit.
  opt = novograd(0.1, weight_decay=optax.constant_schedule(1e-2))
  with pytest.raises(ValueError, match="weight_decay"):
    jax.jit(opt.update)(params, opt.init(params))


def test_no_weight_decay_needs_no_params():
  # Unlike optax.novograd, which always reads params.
  opt = novograd(0.1)
  params = {"w": jnp.ones(3)}
  updates, _ = opt.update(params, opt.init(params))
  assert bool(jnp.all(jnp.isfinite(updates["w"])))


def test_concrete_arrays_are_checked_like_numbers():
  # A concrete array's values are known at construction: a negative learning rate
  # would train by gradient ascent.
  for name, value in [("learning_rate", jnp.asarray(-0.1)), ("b1", jnp.asarray(1.5)),
                      ("b2", np.asarray(2.0)), ("eps", jnp.asarray(-1.0)),
                      ("weight_decay", jnp.asarray(np.inf))]:
    with pytest.raises(ValueError, match=name):
      novograd(**{"learning_rate": 0.1, name: value})
  opt = novograd(jnp.asarray(0.1), b1=jnp.asarray(0.9), b2=np.asarray(0.5),
                 eps=jnp.asarray(1e-6), weight_decay=jnp.asarray(1e-3))
  params = {"w": jnp.ones(3)}
  updates, _ = opt.update(params, opt.init(params), params)
  assert updates["w"].shape == (3,)


def test_tracers_are_not_checked():
  params = {"w": jnp.ones(3)}

  @jax.jit
  def step(lr, b1, b2, eps, eps_root, weight_decay):
    opt = novograd(lr, b1, b2, eps, eps_root, weight_decay)
    updates, _ = opt.update(params, opt.init(params), params)
    return updates

  updates = step(0.1, 0.9, 0.25, 1e-6, 0.0, 0.01)
  expected = novograd(0.1, 0.9, 0.25, 1e-6, 0.0, 0.01)
  want, _ = expected.update(params, expected.init(params), params)
  np.testing.assert_allclose(updates["w"], want["w"], rtol=1e-6)


def test_schedules_are_not_checked():
  # A schedule that would be negative is the user's business; it is not called
  # at construction.
  def never_called_at_construction(count):
    raise AssertionError("called at construction")

  opt = novograd(never_called_at_construction, weight_decay=never_called_at_construction)
  assert isinstance(opt, optax.GradientTransformation)
  opt = novograd(optax.linear_schedule(0.1, 0.0, 10), weight_decay=lambda c: 1e-3)
  params = {"w": jnp.ones(3)}
  updates, _ = opt.update(params, opt.init(params), params)
  assert bool(jnp.all(jnp.isfinite(updates["w"])))


def test_inject_hyperparams_builds_with_every_numeric_argument():
  opt = optax.inject_hyperparams(novograd)(
      learning_rate=0.1, b1=0.9, b2=0.25, eps=1e-6, eps_root=1e-8, weight_decay=1e-3)
  params = {"w": jnp.ones(3)}
  state = opt.init(params)
  assert set(state.hyperparams) == {
      "learning_rate", "b1", "b2", "eps", "eps_root", "weight_decay"}
  updates, _ = jax.jit(opt.update)(params, state, params)
  assert bool(jnp.all(jnp.isfinite(updates["w"])))


def _constructors_taking(argument):
  return {key: value for key, value in CONSTRUCTORS.items()
          if argument in inspect.signature(value[0]).parameters}


AXIS_ARGUMENTS = [(key, argument, value)
                  for argument in ("channel_axis", "layer_axes")
                  for key in _constructors_taking(argument)
                  for value in (True, False)]


@pytest.mark.parametrize("key, argument, value", AXIS_ARGUMENTS,
                         ids=[f"{k}-{a}={v}" for k, a, v in AXIS_ARGUMENTS])
def test_bool_is_not_an_axis(key, argument, value):
  """True is the int 1 in Python: taken for an axis it would silently pick axis 1."""
  make, base = CONSTRUCTORS[key]
  with pytest.raises(TypeError, match=argument):
    make(**base, **{argument: value})
  if argument == "layer_axes":
    with pytest.raises(TypeError, match=argument):
      make(**base, layer_axes=(0, value))


AXIS_NAME_CONSTRUCTORS = list(_constructors_taking("axis_name"))


@pytest.mark.parametrize("key", AXIS_NAME_CONSTRUCTORS)
@pytest.mark.parametrize("value", [(), ("i", ()), ("i", 0), 3])
def test_empty_or_non_string_axis_name_is_refused(key, value):
  """axis_name=() would psum over no axis: each shard would silently use its own norm."""
  make, base = CONSTRUCTORS[key]
  with pytest.raises(TypeError, match="axis_name"):
    make(**base, axis_name=value)


def test_axis_arguments_are_found():
  assert {"adamp", "sgdp", "project_scale_invariant"} <= {k for k, _, _ in AXIS_ARGUMENTS}
  assert {"novograd", "sngm", "scale_by_layerwise_norm", "normalize_by_global_norm",
          "clip_by_layerwise_trust_ratio"} <= set(AXIS_NAME_CONSTRUCTORS)
