"""normalize_by_norm_average against NumPy: stacked layers, an inner transformation,
half-precision gradients, bad arguments. (Its use as apex's FusedNovoGrad is tested
in test_presets.py against a transcription of the kernel.)"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from novograd_optax import normalize_by_norm_average
from tests.optimizer_cases import scale_by_extra_arg


def _numpy_norm_average(grads, b2, eps, norm, bias_correction, first=True):
  """Per step, the normalized gradient of one layer (a NumPy array) and its norm average."""
  r, outputs = 0.0, []
  for t, g in enumerate(grads, start=1):
    g = np.asarray(g, np.float64)
    n = np.sqrt(np.sum(g ** 2)) if norm == "l2" else np.max(np.abs(g))
    decay = 0.0 if (first and t == 1) else b2
    r = np.sqrt(decay * r ** 2 + (1 - decay) * n ** 2) if norm == "l2" else (
        decay * r + (1 - decay) * n)
    c = np.sqrt(1 - b2 ** t) if bias_correction else 1.0
    outputs.append(g / (r / c + eps))
  return outputs


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("bias_correction", [False, True])
def test_stacked_layers_are_normalized_one_slice_at_a_time(norm, bias_correction):
  rng = np.random.default_rng(0)
  grads = [rng.normal(size=(3, 4, 5)).astype(np.float32) * (1 + np.arange(3))[:, None, None]
           for _ in range(5)]
  tx = normalize_by_norm_average(0.9, 1e-6, norm=norm, bias_correction=bias_correction,
                                 layer_axes=0)
  state = tx.init({"w": jnp.zeros((3, 4, 5))})
  # One norm average per stacked layer from init on (a state whose shape changed in
  # update would break lax.scan and fori_loop carries).
  assert state.norm_average["w"].shape == (3,)
  ours = []
  for g in grads:
    out, state = tx.update({"w": jnp.asarray(g)}, state)
    assert state.norm_average["w"].shape == (3,)
    ours.append(np.asarray(out["w"]))
  for layer in range(3):
    expected = _numpy_norm_average([g[layer] for g in grads], 0.9, 1e-6, norm,
                                   bias_correction)
    for t in range(5):
      np.testing.assert_allclose(ours[t][layer], expected[t], rtol=1e-5, atol=1e-7)


def test_default_eps_is_apex_1e_8():
  """apex's FusedNovoGrad default eps = 1e-8, here where it shows: a layer whose
  gradient norm is 1e-7 is divided by 1e-7 + 1e-8 (b2 = 0.98, the first step)."""
  g = np.full(4, 5e-8, np.float32)  # ||g|| = 1e-7
  tx = normalize_by_norm_average(0.98)
  out, _ = tx.update({"w": jnp.asarray(g)}, tx.init({"w": jnp.zeros(4)}))
  expected = _numpy_norm_average([g], 0.98, 1e-8, "l2", False)[0]
  np.testing.assert_allclose(np.asarray(out["w"]), expected, rtol=1e-5)


def test_complex_layer_keeps_its_imaginary_part_and_the_count_is_int32():
  """A complex gradient uses ||g||^2 = sum |g|^2 and is divided by a real norm average,
  so its imaginary part stays (||g|| = 5 here: r_1 = 5 on the first step); the step
  count is int32, as in optax."""
  g = jnp.asarray([3.0 + 4.0j, 0.0], jnp.complex64)
  tx = normalize_by_norm_average(0.9, eps=0.0)
  state = tx.init({"w": jnp.zeros(2, jnp.complex64)})
  out, new_state = tx.update({"w": g}, state)
  np.testing.assert_allclose(np.asarray(out["w"]), np.asarray(g) / 5.0, rtol=1e-6)
  assert state.count.dtype == new_state.count.dtype == jnp.int32


def test_inner_gets_the_extra_arguments_of_update():
  tx = normalize_by_norm_average(0.9, eps=0.0, inner=scale_by_extra_arg())
  g = {"w": jnp.asarray([3.0, 4.0])}
  out, _ = tx.update(g, tx.init(g), scale=2.0)
  np.testing.assert_allclose(np.asarray(out["w"]), [1.2, 1.6], rtol=1e-6)


def test_inner_output_is_normalized_by_the_gradients_norm_and_gets_params():
  params = {"w": jnp.full((2, 3), 2.0)}
  g = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
  tx = normalize_by_norm_average(0.5, 0.0, inner=optax.add_decayed_weights(0.5))
  state = tx.init(params)
  out, _ = tx.update({"w": jnp.asarray(g)}, state, params, value=1.0)
  expected = (g + 0.5 * 2.0) / np.sqrt(np.sum(g.astype(np.float64) ** 2))
  np.testing.assert_allclose(np.asarray(out["w"]), expected, rtol=1e-6)


def test_half_precision_norms_do_not_overflow():
  g = np.full((40, 40), 300.0, np.float16)  # ||g||^2 = 1.4e8 > float16's 65504
  tx = normalize_by_norm_average(0.9, 0.0, nu_init="zero")
  state = tx.init({"w": jnp.zeros((40, 40), jnp.float16)})
  out, state = tx.update({"w": jnp.asarray(g)}, state)
  assert out["w"].dtype == jnp.float16
  assert state.norm_average["w"].dtype == jnp.float32
  expected = 300.0 / (np.sqrt(0.1) * 300.0 * 40)
  np.testing.assert_allclose(np.asarray(out["w"], np.float32), expected, rtol=2e-3)


@pytest.mark.parametrize(("kwargs", "error", "argument"), [
    (dict(b2=1.0), ValueError, "b2"),
    (dict(eps=-1.0), ValueError, "eps"),
    (dict(norm="l1"), ValueError, "norm"),
    (dict(nu_init="first_nonzero"), ValueError, "nu_init"),
    (dict(bias_correction=1), TypeError, "bias_correction"),
    (dict(inner=lambda g: g), TypeError, "inner"),
])
def test_bad_arguments_name_the_argument(kwargs, error, argument):
  with pytest.raises(error, match=argument):
    normalize_by_norm_average(**kwargs)
