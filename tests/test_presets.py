"""Every preset against a NumPy transcription of its peer's source (tests/reference/
numpy_peers.py), or against optax itself, over 50 steps on a model-shaped tree, in
every switch combination the peer supports; the peers' argument checks; the
migration page.

The peers that install from PyPI are also run themselves, in tests/peers/.
"""

from __future__ import annotations

import importlib.util
import itertools
import pathlib

import numpy as np
import optax
import pytest

from novograd_optax import presets
from tests.peers import trajectories as tr
from tests.reference import numpy_peers

PARAMS = tr.initial_params()
GRADS = tr.gradient_sequence()
SCHEDULE = optax.linear_schedule(0.02, 0.002, tr.STEPS)
# A warmup from 0: NeMo's LUC step min(trust ||w|| / (||m|| + eps), lr) m is 0 at lr 0,
# also for the zero-initialized bias (where our trust ratio's 0 / lr once gave NaN).
WARMUP = optax.linear_schedule(0.0, 0.02, tr.STEPS)


def _combos(**switches):
  names = list(switches)
  return [dict(zip(names, values, strict=True))
          for values in itertools.product(*switches.values())]


CASES = {
    "torch_optimizer": [dict()] + _combos(
        lr=[0.01], betas=[(0.95, 0.0), (0.9, 0.5)], weight_decay=[0.0, 0.1],
        grad_averaging=[False, True], amsgrad=[False, True]),
    "timm": [dict()] + _combos(
        lr=[0.01], weight_decay=[0.0, 0.1], grad_averaging=[False, True],
        amsgrad=[False, True], decoupled_decay=[False, True]) + [
        dict(lr=0.01, weight_decay=0.1, decoupled_decay=True, corrected_weight_decay=True)],
    "nemo": [dict(), dict(lr=SCHEDULE, luc=True, weight_decay=0.01),
             dict(lr=WARMUP, luc=True)] + _combos(
        lr=[0.01], weight_decay=[0.0, 0.1], grad_averaging=[False, True],
        amsgrad=[False, True], luc=[False, True]),
    "apex": [dict()] + _combos(
        lr=[0.01], bias_correction=[False, True], weight_decay=[0.0, 0.1],
        reg_inside_moment=[False, True], grad_averaging=[False, True], norm_type=[2, 0],
        init_zero=[False, True], betas=[(0.9, 0.98)]),
    "tf_addons": [dict(), dict(learning_rate=SCHEDULE, grad_averaging=True, weight_decay=0.1),
                  dict(learning_rate=0.01, epsilon=0.0)] + _combos(
        learning_rate=[0.01], weight_decay=[0.0, 0.1], grad_averaging=[False, True],
        amsgrad=[False, True]),
    "openseq2seq": [dict(), dict(learning_rate=SCHEDULE, larc_eta=1e-3)] + _combos(
        learning_rate=[0.01], weight_decay=[0.0, 0.1], grad_averaging=[False, True],
        larc_eta=[None, 1e-3], larc_mode=["clip", "scale"]),
}
# Every argument away from its default and from the other arguments' values, so an
# argument passed to the wrong parameter, or a wrong default, changes the result (two
# arguments with equal values, such as NeMo's eps and luc_eps or OpenSeq2Seq's
# larc_min_update and larc_epsilon at their defaults, hide a swap). The epsilons are
# large enough to change a step by more than the tolerance; LUC and LARC bind on some
# layers, and larc_min_update on others (the zero-initialized bias).
ALL_ARGUMENTS_VARIED = {
    "torch_optimizer": [dict(lr=0.011, betas=(0.91, 0.37), eps=0.013, weight_decay=0.07,
                             grad_averaging=True, amsgrad=True)],
    "timm": [dict(lr=0.012, betas=(0.92, 0.61), eps=0.017, weight_decay=0.06,
                  grad_averaging=True, amsgrad=True, decoupled_decay=True,
                  corrected_weight_decay=True)],
    "nemo": [dict(lr=0.013, betas=(0.88, 0.71), eps=0.021, weight_decay=0.05,
                  grad_averaging=True, amsgrad=True, luc=True, luc_trust=2e-3, luc_eps=0.3),
             dict(lr=0.0135, betas=(0.94, 0.72), eps=0.022, weight_decay=0.045,
                  grad_averaging=False, amsgrad=True, luc=True, luc_trust=4e-3, luc_eps=0.9)],
    "apex": [dict(lr=0.014, bias_correction=False, betas=(0.87, 0.93), eps=0.019,
                  weight_decay=0.04, reg_inside_moment=True,
                  grad_averaging=False, norm_type=0, init_zero=True),
             dict(lr=0.0145, bias_correction=True, betas=(0.86, 0.94), eps=0.018,
                  weight_decay=0.035, reg_inside_moment=False, grad_averaging=True,
                  norm_type=2, init_zero=True)],
    "tf_addons": [dict(learning_rate=0.015, beta_1=0.86, beta_2=0.57, epsilon=0.023,
                       weight_decay=0.03, grad_averaging=True, amsgrad=True)],
    "openseq2seq": [dict(learning_rate=0.016, beta1=0.89, beta2=0.43, epsilon=0.027,
                         weight_decay=0.02, grad_averaging=True, larc_eta=2e-3,
                         larc_mode="clip", larc_min_update=0.1, larc_epsilon=0.5),
                    dict(learning_rate=0.0165, beta1=0.9, beta2=0.44, epsilon=0.026,
                         weight_decay=0.025, grad_averaging=True, larc_eta=0.2,
                         larc_mode="scale", larc_min_update=0.15, larc_epsilon=0.6)],
}
for _peer, _cases in ALL_ARGUMENTS_VARIED.items():
  CASES[_peer] += _cases
# OpenSeq2Seq's mode is only read with LARC on.
CASES["openseq2seq"] = [c for c in CASES["openseq2seq"]
                        if not (c.get("larc_eta") is None and c.get("larc_mode") == "scale")]

REFERENCES = {
    "torch_optimizer": lambda p, g, lr=1e-3, betas=(0.95, 0.0), **kw: numpy_peers.torch_style(
        p, g, lr=lr, betas=betas, **kw),
    "timm": lambda p, g, lr=1e-3, betas=(0.95, 0.98), **kw: numpy_peers.torch_style(
        p, g, lr=lr, betas=betas, **kw),
    "nemo": lambda p, g, lr=1e-3, **kw: numpy_peers.torch_style(p, g, lr=lr, **kw),
    "apex": lambda p, g, lr=1e-3, **kw: numpy_peers.apex_fused(p, g, lr=lr, **kw),
    "tf_addons": lambda p, g, learning_rate=0.001, **kw: numpy_peers.tf_addons(
        p, g, learning_rate=learning_rate, **kw),
    "openseq2seq": lambda p, g, learning_rate=1.0, **kw: numpy_peers.openseq2seq(
        p, g, learning_rate=learning_rate, **kw),
}


def assert_all_cases_close(name, cases, ours, references):
  """Checks every case, then fails once, listing every case that differs."""
  failures = []
  for case, mine, theirs in zip(cases, ours, references, strict=True):
    try:
      tr.assert_trajectories_close(mine, theirs)
    except AssertionError as err:
      failures.append(f"{name}(**{case}):{err}")
  assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("peer", list(CASES))
def test_preset_equals_numpy_transcription_of_peer(peer):
  """One test per peer: its cases compile together (see tr.run_optax), and each
  parallel test worker then compiles a peer at most once."""
  cases = CASES[peer]
  preset = getattr(presets, peer)
  ours = tr.run_optax([preset(**case) for case in cases], PARAMS, GRADS)
  references = [REFERENCES[peer](PARAMS, GRADS, **case) for case in cases]
  assert_all_cases_close(f"presets.{peer}", cases, ours, references)


# Unchangeable by the peer's constructor, or a switch that must stay at its default.
FIXED = {("apex", "amsgrad")}


def _numbers(value):
  return list(value) if isinstance(value, tuple) else [value]


@pytest.mark.parametrize("peer", list(ALL_ARGUMENTS_VARIED) + ["optax"])
def test_the_varied_cases_vary_every_argument(peer):
  """Each argument of the preset, in at least one case, differs from its default, and
  the numeric ones differ from one another (else a swap of two could pass)."""
  import inspect
  cases = ALL_ARGUMENTS_VARIED.get(peer, [OPTAX_ALL_VARIED])
  parameters = inspect.signature(getattr(presets, peer)).parameters.values()
  for parameter in parameters:
    if (peer, parameter.name) in FIXED:
      continue
    assert any(parameter.name in case and case[parameter.name] != parameter.default
               for case in cases), parameter.name
  for case in cases:
    numbers = [x for value in case.values() for x in _numbers(value)
               if isinstance(x, float)]
    assert len(numbers) == len(set(numbers)), case


OPTAX_ALL_VARIED = dict(learning_rate=0.017, b1=0.84, b2=0.47, eps=0.011, eps_root=0.029,
                        weight_decay=0.033)
OPTAX_CASES = [dict(learning_rate=0.01), OPTAX_ALL_VARIED] + _combos(
    learning_rate=[0.05], b1=[0.9], b2=[0.25, 0.0], eps=[1e-6], eps_root=[0.0, 1e-8],
    weight_decay=[0.0, 0.1])


def test_optax_preset_equals_optax_novograd():
  ours = tr.run_optax([presets.optax(**case) for case in OPTAX_CASES], PARAMS, GRADS)
  theirs = tr.run_optax([optax.novograd(**case) for case in OPTAX_CASES], PARAMS, GRADS)
  assert_all_cases_close("presets.optax", OPTAX_CASES, ours, theirs)


def test_the_problem_exercises_the_quirks():
  """The transcriptions differ where the peers do, so the cases above can fail."""
  nemo_plain = numpy_peers.torch_style(PARAMS, GRADS, lr=0.01)
  tf_plain = numpy_peers.tf_addons(PARAMS, GRADS, learning_rate=0.01, beta_1=0.95,
                                   beta_2=0.98, epsilon=1e-8)
  scale = tr.NAMES.index("scale")
  # A zero first gradient: the PyTorch peers restart the moment, TF does not.
  assert not np.allclose(nemo_plain[-1][scale], tf_plain[-1][scale], rtol=1e-3)
  # LUC keeps the zero-initialized bias at zero; plain NovoGrad moves it.
  bias = tr.NAMES.index("bias")
  luc = numpy_peers.torch_style(PARAMS, GRADS, lr=0.01, luc=True)
  assert np.all(luc[-1][bias] == 0) and np.any(nemo_plain[-1][bias] != 0)
  # apex's L-inf averages max-norms: not the root of averaged squares.
  linf = numpy_peers.apex_fused(PARAMS, GRADS, lr=0.01, norm_type=0, betas=(0.9, 0.98))
  l2 = numpy_peers.apex_fused(PARAMS, GRADS, lr=0.01, norm_type=2, betas=(0.9, 0.98))
  assert not np.allclose(linf[-1][0], l2[-1][0], rtol=1e-2)


@pytest.mark.parametrize("epsilon", [0.0, None])
def test_tf_addons_epsilon_zero_or_none_means_keras_default_with_tiny_gradients(epsilon):
  """The peer's `epsilon or tf.keras.backend.epsilon()`: 1e-7. Only gradients of norm
  near 1e-7 tell 1e-7 from another small fallback (or from 0)."""
  tiny = [[g * np.float32(1e-7) for g in step] for step in GRADS[:10]]
  ours = tr.run_optax([presets.tf_addons(0.01, epsilon=epsilon)], PARAMS, tiny)[0]
  reference = numpy_peers.tf_addons(PARAMS, tiny, learning_rate=0.01, epsilon=1e-7)
  tr.assert_trajectories_close(ours, reference)
  without = numpy_peers.tf_addons(PARAMS, tiny, learning_rate=0.01, epsilon=1e-9)
  assert not np.allclose(without[-1][0], reference[-1][0], rtol=1e-3)


@pytest.mark.parametrize(("call", "argument"), [
    (lambda: presets.torch_optimizer(lr=0.0), "lr"),
    (lambda: presets.torch_optimizer(betas=(1.0, 0.0)), "betas[0]"),
    (lambda: presets.torch_optimizer(eps=-1.0), "eps"),
    (lambda: presets.torch_optimizer(weight_decay=-0.1), "weight_decay"),
    (lambda: presets.timm(lr=-1.0), "lr"),
    (lambda: presets.timm(betas=(0.9, 1.0)), "betas[1]"),
    (lambda: presets.timm(betas=(0.9,)), "betas"),
    (lambda: presets.timm(SCHEDULE, weight_decay=0.1, decoupled_decay=True,
                          corrected_weight_decay=True), "corrected_weight_decay"),
    (lambda: presets.timm(0.0, decoupled_decay=True, corrected_weight_decay=True), "lr"),
    (lambda: presets.nemo(eps=-1e-8), "eps"),
    (lambda: presets.nemo(betas=(-0.1, 0.9)), "betas[0]"),
    (lambda: presets.nemo(luc=True, luc_trust=0.0), "luc_trust"),
    (lambda: presets.apex(amsgrad=True), "amsgrad"),
    (lambda: presets.apex(norm_type=1), "norm_type"),
    (lambda: presets.apex(lr=-1.0), "lr"),
    (lambda: presets.tf_addons(weight_decay=-1.0), "weight_decay"),
    (lambda: presets.tf_addons(beta_2=1.5), "beta_2"),
    (lambda: presets.openseq2seq(larc_eta=1e-3, larc_mode="clamp"), "larc_mode"),
    (lambda: presets.openseq2seq(beta1=1.0), "beta1"),
    (lambda: presets.optax(-0.1), "learning_rate"),
])
def test_peer_checks_raise_value_errors_naming_the_argument(call, argument):
  with pytest.raises(ValueError, match=argument.replace("[", r"\[").replace("]", r"\]")):
    call()


def test_apex_norm_type_must_be_a_static_int():
  with pytest.raises(TypeError, match="static_args=\\('norm_type',\\)"):
    optax.inject_hyperparams(presets.apex)(lr=0.01).init(tr.as_tree(PARAMS))


@pytest.mark.parametrize("peer", list(CASES) + ["optax"])
def test_presets_under_inject_hyperparams_and_jit_still_equal_the_peer(peer):
  """Injected (traced) hyperparameters must take the peer's path too."""
  case = dict(CASES[peer][-1]) if peer != "optax" else dict(OPTAX_CASES[-1])
  static = ("norm_type",) if peer == "apex" else ()
  injected = optax.inject_hyperparams(getattr(presets, peer), static_args=static)(**case)
  grads = GRADS[:10]
  ours = tr.run_optax([injected], PARAMS, grads)[0]
  if peer == "optax":
    reference = tr.run_optax([optax.novograd(**case)], PARAMS, grads)[0]
  else:
    reference = REFERENCES[peer](PARAMS, grads, **case)
  tr.assert_trajectories_close(ours, reference)


def test_presets_take_the_peers_argument_names_and_defaults():
  """The signatures, written out from the peers' constructors."""
  expected = {
      "optax": "(learning_rate, b1=0.9, b2=0.25, eps=1e-06, eps_root=0.0, weight_decay=0.0)",
      "torch_optimizer": "(lr=0.001, betas=(0.95, 0.0), eps=1e-08, weight_decay=0.0,"
                         " grad_averaging=False, amsgrad=False)",
      "timm": "(lr=0.001, betas=(0.95, 0.98), eps=1e-08, weight_decay=0.0,"
              " grad_averaging=False, amsgrad=False, decoupled_decay=False,"
              " corrected_weight_decay=False)",
      "nemo": "(lr=0.001, betas=(0.95, 0.98), eps=1e-08, weight_decay=0.0,"
              " grad_averaging=False, amsgrad=False, luc=False, luc_trust=0.001,"
              " luc_eps=1e-08)",
      "apex": "(lr=0.001, bias_correction=True, betas=(0.9, 0.999), eps=1e-08,"
              " weight_decay=0.0, amsgrad=False, reg_inside_moment=False,"
              " grad_averaging=True, norm_type=2, init_zero=False)",
      "tf_addons": "(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07,"
                   " weight_decay=0.0, grad_averaging=False, amsgrad=False)",
      "openseq2seq": "(learning_rate=1.0, beta1=0.95, beta2=0.98, epsilon=1e-08,"
                     " weight_decay=0.0, grad_averaging=False, larc_eta=None,"
                     " larc_mode='clip', larc_min_update=1e-07, larc_epsilon=1e-07)",
  }
  import inspect
  for name, signature in expected.items():
    parameters = inspect.signature(getattr(presets, name)).parameters.values()
    got = "(" + ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in parameters) + ")"
    assert got == signature, name
  assert {peer.preset.__name__ for peer in presets.PEERS} == set(expected)


def test_migration_page_is_generated_from_the_presets():
  root = pathlib.Path(__file__).resolve().parents[1]
  spec = importlib.util.spec_from_file_location(
      "generate_migration", root / "docs" / "generate_migration.py")
  generator = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(generator)
  committed = (root / "docs" / "migration.md").read_text()
  assert committed == generator.render(), (
      "docs/migration.md is out of date: run `python docs/generate_migration.py`")
