"""Bad input fails early with a message naming the culprit; odd but legal trees work."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import novograd_optax
from novograd_optax import novograd, presets, scale_by_layerwise_norm
from tests.optimizer_cases import (
  ALL_CASES,
  NOVOGRAD_CASES,
  assert_close,
  case_params,
  make_params,
  run,
)

NAN = float("nan")

# (constructor, required positional kwargs, bad argument, bad value, exception)

BAD_ARGUMENTS = [
    (novograd, {}, "learning_rate", -1e-3, ValueError),
    (novograd, {}, "learning_rate", "0.1", TypeError),
    (novograd, {}, "learning_rate", None, TypeError),
    (novograd, {"learning_rate": 0.1}, "b1", 1.0, ValueError),
    (novograd, {"learning_rate": 0.1}, "b1", -0.1, ValueError),
    (novograd, {"learning_rate": 0.1}, "b1", NAN, ValueError),
    (novograd, {"learning_rate": 0.1}, "b1", True, TypeError),
    (novograd, {"learning_rate": 0.1}, "b2", 1.5, ValueError),
    (novograd, {"learning_rate": 0.1}, "eps", -1e-8, ValueError),
    (novograd, {"learning_rate": 0.1}, "eps_root", -1e-8, ValueError),
    (novograd, {"learning_rate": 0.1}, "weight_decay", -1e-4, ValueError),
    (novograd, {"learning_rate": 0.1}, "weight_decay", [0.1], TypeError),
    (novograd, {"learning_rate": 0.1}, "grad_averaging", 1, TypeError),
    (novograd, {"learning_rate": 0.1}, "amsgrad", "yes", TypeError),
    (novograd, {"learning_rate": 0.1}, "norm", "l1", ValueError),
    (novograd, {"learning_rate": 0.1}, "nu_init", "ones", ValueError),
    (novograd, {"learning_rate": 0.1}, "layer_axes", "rows", TypeError),
    (novograd, {"learning_rate": 0.1}, "axis_name", 3, TypeError),
    (scale_by_layerwise_norm, {}, "b2", 1.0, ValueError),
    (scale_by_layerwise_norm, {}, "eps", -1.0, ValueError),
    (scale_by_layerwise_norm, {}, "norm", "l2 ", ValueError),
    (scale_by_layerwise_norm, {}, "nu_init", None, ValueError),
    (scale_by_layerwise_norm, {}, "amsgrad", None, TypeError),
]
BAD_ARGUMENTS += [
    (novograd_optax.sngm, {}, "learning_rate", -0.1, ValueError),
    (novograd_optax.sngm, {"learning_rate": 0.1}, "momentum", 1.0, ValueError),
    (novograd_optax.sngm, {"learning_rate": 0.1}, "momentum", "0.9", TypeError),
    (novograd_optax.sngm, {"learning_rate": 0.1}, "weight_decay", -1.0, ValueError),
    (novograd_optax.sngm, {"learning_rate": 0.1}, "eps", -1.0, ValueError),
    (novograd_optax.adamp, {}, "learning_rate", -0.1, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "b1", 1.0, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "b2", -0.5, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "eps", -1.0, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "weight_decay", -1.0, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "delta", -0.1, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "wd_ratio", -0.1, ValueError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "nesterov", "no", TypeError),
    (novograd_optax.adamp, {"learning_rate": 0.1}, "channel_axis", "last", TypeError),
    (novograd_optax.sgdp, {}, "learning_rate", -0.1, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "momentum", 1.0, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "dampening", 1.5, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "eps", -1.0, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "weight_decay", -1.0, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "delta", -0.1, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "wd_ratio", -0.1, ValueError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "nesterov", 1, TypeError),
    (novograd_optax.sgdp, {"learning_rate": 0.1}, "channel_axis", 1.5, TypeError),
]


@pytest.mark.parametrize(
    "constructor,base,argument,value,error", BAD_ARGUMENTS,
    ids=[f"{c.__name__}-{a}={v!r}" for c, _, a, v, _ in BAD_ARGUMENTS])
def test_constructor_refuses_bad_argument_naming_it(constructor, base, argument, value, error):
  with pytest.raises(error, match=argument):
    constructor(**base, **{argument: value})


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_good_arguments_as_arrays_and_schedules_are_accepted(case):
  # Arrays and schedules are never inspected (inject_hyperparams passes arrays).
  opt = case.build(learning_rate=optax.linear_schedule(0.1, 0.0, 10))
  _, state = run(opt, make_params(), [make_params(1)])
  assert jax.tree.leaves(state)
  case.build(learning_rate=jnp.asarray(0.1))


def _mismatched_gradients():
  grads = make_params(1)
  missing = {"w": grads["w"], "b": grads["b"]}
  extra = {**grads, "extra": jnp.ones(2)}
  renamed = {"w": grads["w"], "b": grads["b"], "t": grads["s"]}
  return [("missing", missing, "'s'"), ("extra", extra, "'extra'"),
          ("renamed", renamed, "'t'"), ("list", list(grads.values()), "structure")]


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_gradient_tree_unlike_the_state_is_refused_readably(case):
  opt = case.build()
  params = make_params()
  state = opt.init(params)
  for what, grads, culprit in _mismatched_gradients():
    with pytest.raises(ValueError, match="structure") as info:
      opt.update(grads, state, params)
    assert culprit in str(info.value), (what, str(info.value))


@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_gradient_of_wrong_shape_is_refused_readably(case):
  opt = case.build()
  params = make_params()
  grads = {**make_params(1), "b": jnp.ones(5)}
  with pytest.raises(ValueError, match=r"updates\['b'\] has shape \(5,\)"):
    opt.update(grads, opt.init(params), params)


WITHOUT_PARAMS = {
    "novograd": lambda: novograd(0.1),
    "novograd_averaging_stacked": lambda: novograd(0.1, grad_averaging=True, layer_axes=0),
    "sngm": lambda: novograd_optax.sngm(0.1),
    **{f"presets.{peer.preset.__name__}": (
        (lambda peer=peer: peer.preset(0.1)) if peer.preset is presets.optax else peer.preset)
       for peer in presets.PEERS},
}


@pytest.mark.parametrize("make", WITHOUT_PARAMS.values(), ids=list(WITHOUT_PARAMS))
def test_gradient_of_wrong_shape_is_refused_without_params(make):
  """Without params (allowed without weight decay) the shapes recorded by init are the
  reference: a (3,) gradient for a (1,) weight would broadcast the update, the
  momentum and, through apply_updates, the weight to (3,)."""
  opt = make()
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(1)}
  state = opt.init(params)
  grads = {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}
  message = r"updates\['b'\] has shape \(3,\) but params\['b'\] has shape \(1,\)"
  with pytest.raises(ValueError, match=message):
    opt.update(grads, state)
  with pytest.raises(ValueError, match=message):
    jax.jit(opt.update)(grads, state)
  updates, _ = opt.update({"w": jnp.ones((2, 3)), "b": jnp.ones(1)}, state)
  assert updates["b"].shape == (1,)


@pytest.mark.parametrize("make, who", [
    (lambda: novograd(0.1, weight_decay=0.1), "novograd: weight_decay"),
    (lambda: novograd_optax.clip_by_layerwise_trust_ratio(), "clip_by_layerwise_trust_ratio"),
    (lambda: novograd_optax.adamp(0.1), "project_scale_invariant (AdamP/SGDP)"),
], ids=["novograd_decay", "trust_ratio", "adamp"])
def test_missing_params_name_the_option_that_needs_them(make, who):
  params = make_params()
  tx = make()
  with pytest.raises(ValueError, match=re.escape(who) + ".*needs the current parameters"):
    tx.update(make_params(1), tx.init(params))


@pytest.mark.parametrize("make", [
    lambda: novograd(0.1), lambda: novograd_optax.adamp(0.1),
    lambda: novograd_optax.sgdp(0.1, momentum=0.9)], ids=["novograd", "adamp", "sgdp"])
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.bool_])
def test_integer_leaves_are_refused_at_init_with_the_remedy(dtype, make):
  # optax.adamw gives such a leaf a float update that apply_updates truncates back to
  # int: a silent no-op or jump. Ours keep per-leaf state, so they refuse it at init.
  params = {**make_params(), "step": jnp.zeros((2,), dtype)}
  with pytest.raises(TypeError, match=r"params\['step'\].*optax.masked"):
    make().init(params)


@pytest.mark.parametrize("make", [
    lambda: novograd_optax.sngm(0.1), novograd_optax.normalize_by_global_norm,
    novograd_optax.clip_by_layerwise_trust_ratio],
    ids=["sngm", "normalize_by_global_norm", "clip_by_layerwise_trust_ratio"])
def test_integer_leaves_are_refused_by_the_stateless_norms_at_update(make):
  # These keep no per-leaf state (init may get None), so the leaves are checked in
  # update: an integer gradient would otherwise be normalized and cast back to int.
  params = {**make_params(), "step": jnp.zeros((2,), jnp.int32)}
  tx = make()
  with pytest.raises(TypeError, match=r"updates\['step'\].*optax.masked"):
    tx.update(params, tx.init(params), params)


@pytest.mark.parametrize("case", **case_params(NOVOGRAD_CASES))
def test_integer_leaves_train_around_when_masked_out(case):
  # The documented remedy: keep the integer leaf out with optax.masked; the float
  # leaves then train exactly as without it, and the integer leaf is untouched.
  params = {**make_params(), "step": jnp.arange(3, dtype=jnp.int32)}
  is_float = jax.tree.map(lambda p: jnp.issubdtype(p.dtype, jnp.floating), params)
  opt = optax.masked(case.build(), is_float)
  grads = [{**make_params(t), "step": jnp.zeros(3, jnp.int32)} for t in (1, 2)]
  new_params, _ = run(opt, params, grads)
  expected, _ = run(case.build(), make_params(), [make_params(t) for t in (1, 2)])
  assert_close(case, {k: v for k, v in new_params.items() if k != "step"}, expected)
  chex.assert_trees_all_equal(new_params["step"], params["step"])


@pytest.mark.parametrize("empty_leaf", [None, optax.MaskedNode()], ids=["None", "MaskedNode"])
@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_none_and_masked_node_leaves_are_carried_through(case, empty_leaf):
  # None and MaskedNode are empty subtrees, not leaves: they hold no state and come
  # back unchanged, and the other leaves train as if they were absent.
  params = {**make_params(), "empty": empty_leaf}
  grads = [{**make_params(t), "empty": empty_leaf} for t in (1, 2)]
  opt = case.build()
  state = opt.init(params)
  updates, state = opt.update(grads[0], state, params)
  assert updates["empty"] == empty_leaf
  new_params, _ = run(opt, params, grads)
  expected, _ = run(case.build(), make_params(), [make_params(t) for t in (1, 2)])
  assert new_params["empty"] == empty_leaf
  assert_close(case, {k: v for k, v in new_params.items() if k != "empty"}, expected)


@pytest.mark.parametrize("empty", [{}, (), []], ids=["dict", "tuple", "list"])
@pytest.mark.parametrize("case", **case_params(ALL_CASES))
def test_empty_pytree_works(case, empty):
  opt = case.build()
  state = opt.init(empty)
  updates, state = jax.jit(opt.update)(empty, state, empty)
  assert updates == empty
  assert jax.tree.structure(updates) == jax.tree.structure(empty)
  assert all(np.ndim(x) == 0 for x in jax.tree.leaves(state))  # only counters remain


MASKED_DECAY = {
    "novograd": lambda mask: novograd(0.1, weight_decay=0.1, weight_decay_mask=mask),
    "novograd_decoupled": lambda mask: novograd(
        0.1, weight_decay=0.1, weight_decay_mask=mask, decay_inside_moment=False),
    "sngm": lambda mask: novograd_optax.sngm(0.1, weight_decay=0.1, weight_decay_mask=mask),
    "adamp": lambda mask: novograd_optax.adamp(0.1, weight_decay=0.1, weight_decay_mask=mask),
    "sgdp": lambda mask: novograd_optax.sgdp(0.1, weight_decay=0.1, weight_decay_mask=mask),
}
WRONG_MASKS = {
    "missing_leaf": {"w": True, "b": False},
    "list": [True, False, True],
    "callable": lambda params: {"w": True},
    "deeper": {"w": {"kernel": True}, "b": False, "s": True},
}


@pytest.mark.parametrize("mask", WRONG_MASKS.values(), ids=list(WRONG_MASKS))
@pytest.mark.parametrize("make", MASKED_DECAY.values(), ids=list(MASKED_DECAY))
def test_weight_decay_mask_of_wrong_structure_names_the_option_and_the_fix(make, mask):
  params = make_params()
  opt = make(mask)
  with pytest.raises(ValueError, match=r"weight_decay_mask must have the pytree structure"
                     r" of the params.*weight_decay_mask=lambda params"):
    state = opt.init(params)
    opt.update(make_params(1), state, params)


@pytest.mark.parametrize("make", MASKED_DECAY.values(), ids=list(MASKED_DECAY))
def test_weight_decay_mask_of_the_params_structure_or_a_prefix_is_accepted(make):
  params = make_params()
  for mask in ({"w": True, "b": False, "s": False}, lambda p: jax.tree.map(
      lambda x: x.ndim > 1, p), True):
    opt = make(mask)
    updates, _ = opt.update(make_params(1), opt.init(params), params)
    assert updates["w"].shape == params["w"].shape
