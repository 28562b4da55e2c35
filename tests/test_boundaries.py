"""Boundary cases of every decision the math makes from data.

Each expectation is written here in NumPy from the update rules of the papers
(the AdamP/SGDP projection test, LARC/LUC trust ratios, SNGM's global norm,
NovoGrad's layer-wise moment), never taken from the library's output:

* the AdamP/SGDP scale-invariance test from both sides of ``delta / sqrt(n)``, per
  output channel and for the whole layer, in Flax and PyTorch kernel layouts;
* zero-norm weights and zero-norm gradients in every layer-wise ratio;
* ``eps = 0``, infinite moments (the restart), and zero-size leaves.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from novograd_optax import (
    adamp,
    clip_by_layerwise_trust_ratio,
    normalize_by_global_norm,
    novograd,
    project_scale_invariant,
    scale_by_layerwise_norm,
    sgdp,
    sngm,
)
from novograd_optax._src.layer_moments import LayerMoments
from novograd_optax._src.layerwise_norm import ScaleByLayerwiseNormState

# A non-default delta: an alias that dropped the argument would fall back to 0.1.
DELTA = 0.2
WD, WD_RATIO, EPS = 0.5, 0.1, 1e-8
# How far from the threshold "just below" and "just above" are: 1% is far beyond
# float32 rounding of a cosine (1e-6) and closer than any plausible wrong row length.
MARGIN = 0.01


# --- The AdamP/SGDP projection ---------------------------------------------------------
#
# Kernels are built in the PyTorch layout (output channel first, as in the reference
# code) and converted to the Flax layout (output channel last) for channel_axis=-1.

TORCH_SHAPES = {"dense": (4, 16), "conv": (4, 2, 3, 3)}  # (out, in), (out, in, kh, kw)


def to_flax(torch_kernel):
  """(out, in) -> (in, out); (out, in, kh, kw) -> (kh, kw, in, out)."""
  if torch_kernel.ndim == 2:
    return torch_kernel.T
  return np.transpose(torch_kernel, (2, 3, 1, 0))


def from_flax(flax_kernel):
  if flax_kernel.ndim == 2:
    return flax_kernel.T
  return np.transpose(flax_kernel, (3, 2, 0, 1))


def gradient_with_cosines(rng, w_rows, cosines):
  """Rows g_c of unit norm with <w_c, g_c> / (||w_c|| ||g_c||) = cosines[c] exactly
  (up to float64 rounding): g_c = c w_hat_c + sqrt(1 - c^2) u_c with u_c a unit
  vector orthogonal to w_c."""
  w_hat = w_rows / np.linalg.norm(w_rows, axis=1, keepdims=True)
  u = rng.normal(size=w_rows.shape)
  u -= w_hat * np.sum(u * w_hat, axis=1, keepdims=True)
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  c = np.asarray(cosines)[:, None]
  return c * w_hat + np.sqrt(1.0 - c * c) * u


def numpy_projection(w, g, p, delta, eps):
  """Heo et al. (2021), Algorithms 1-2, in the PyTorch layout: returns the projected
  step, the weight-decay factor and the view that fired ("channel", "layer", "none").
  The cosine is the reference's torch.nn.functional.cosine_similarity: each norm is
  floored at eps."""
  for view, rows in (("channel", w.shape[0]), ("layer", 1)):
    wv, gv, pv = (np.float64(x).reshape(rows, -1) for x in (w, g, p))
    cosine = np.abs(np.sum(wv * gv, axis=1)) / (
        np.maximum(np.linalg.norm(wv, axis=1), eps) * np.maximum(np.linalg.norm(gv, axis=1), eps))
    if cosine.max() < delta / np.sqrt(wv.shape[1]):
      w_hat = wv / (np.linalg.norm(wv, axis=1, keepdims=True) + eps)
      pv = pv - w_hat * np.sum(w_hat * pv, axis=1, keepdims=True)
      return pv.reshape(w.shape), WD_RATIO, view
  return np.float64(p), 1.0, "none"


def boundary_problem(shape, scenario, delta=DELTA):
  """(w, g, expected view) in the PyTorch layout with the cosines placed just below
  or just above the per-channel threshold delta/sqrt(n) or the whole-layer one
  delta/sqrt(size)."""
  rng = np.random.default_rng(zlib.crc32(repr((shape, scenario)).encode()))
  channels, n = shape[0], int(np.prod(shape[1:]))
  # Unit rows: the whole-layer cosine is then the mean of the signed row cosines.
  w = rng.normal(size=(channels, n))
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  per_channel, whole = delta / np.sqrt(n), delta / np.sqrt(channels * n)
  if scenario == "channel_below":
    cosines, view = np.full(channels, per_channel * (1 - MARGIN)), "channel"
  elif scenario == "channel_above":
    # The whole-layer cosine equals the rows' (> its smaller threshold): no view fires.
    cosines, view = np.full(channels, per_channel * (1 + MARGIN)), "none"
  elif scenario == "channel_above_negative":
    # Anti-aligned rows: the test is on |cos|, so a negative cosine is not small.
    cosines, view = np.full(channels, -per_channel * (1 + MARGIN)), "none"
  else:
    # Rows alternate mean +- per_channel: the largest |row cosine| is above the
    # per-channel threshold, while the whole-layer cosine is their mean.
    mean = whole * (1 - MARGIN if scenario == "layer_below" else 1 + MARGIN)
    signs = np.where(np.arange(channels) % 2 == 0, 1.0, -1.0)
    cosines = mean + signs * per_channel
    view = "layer" if scenario == "layer_below" else "none"
  g = gradient_with_cosines(rng, w, cosines)
  # Scale rows differently so that no norm is accidentally 1 for the whole layer.
  scales = np.linspace(0.5, 2.0, channels)[:, None]
  w, g = (w * scales).reshape(shape), (g * 3.0).reshape(shape)
  if scenario.startswith("layer"):
    # Row scales change the whole-layer cosine; keep the construction exact instead.
    w = (w.reshape(channels, n) / scales).reshape(shape)
  return w.astype(np.float32), g.astype(np.float32), view


SCENARIOS = ["channel_below", "channel_above", "channel_above_negative", "layer_below",
             "layer_above"]


def _to_layout(x, layout):
  return to_flax(x) if layout == "flax" else x


def _from_layout(x, layout):
  return from_flax(np.asarray(x)) if layout == "flax" else np.asarray(x)


@pytest.mark.parametrize("layout,channel_axis", [("flax", -1), ("torch", 0)])
@pytest.mark.parametrize("kernel", list(TORCH_SHAPES))
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_projection_threshold_from_both_sides(layout, channel_axis, kernel, scenario):
  w, g, view = boundary_problem(TORCH_SHAPES[kernel], scenario)
  # The step Adam takes first: m_hat / (sqrt(v_hat) + eps) = g / (|g| + eps).
  p = np.float64(g) / (np.abs(np.float64(g)) + EPS)
  expected_p, factor, numpy_view = numpy_projection(w, g, p, DELTA, EPS)
  assert numpy_view == view, "the construction must place the cosine where intended"
  expected = expected_p + WD * factor * np.float64(w)

  tx = project_scale_invariant(optax.scale_by_adam(eps=EPS), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=EPS, channel_axis=channel_axis)
  params = {"kernel": jnp.asarray(_to_layout(w, layout))}
  grads = {"kernel": jnp.asarray(_to_layout(g, layout))}
  out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  np.testing.assert_allclose(_from_layout(out["kernel"], layout), expected, rtol=2e-5,
                             atol=2e-6)


@pytest.mark.parametrize("factor", [0.8, 1.2])
def test_projection_cosine_floors_each_norm_at_eps(factor):
  """The reference's cosine (torch's cosine_similarity) divides by max(|w|, eps) *
  max(|g|, eps), not |w| + eps or |g| + eps. With eps = 0.5 and unit rows an added
  eps divides the cosine by 1.5 (or 2.25 for both norms): every row's cosine is
  `factor` times the per-channel threshold, so with factor 1.2 the reference does
  not project (an added eps would: 1.2 / 1.5 < 1), and with factor 0.8 both do."""
  eps, channels, n = 0.5, 4, 16
  rng = np.random.default_rng(7)
  w = rng.normal(size=(channels, n))
  w /= np.linalg.norm(w, axis=1, keepdims=True)
  other = rng.normal(size=(channels, n))
  other -= np.sum(other * w, axis=1, keepdims=True) * w
  other /= np.linalg.norm(other, axis=1, keepdims=True)
  cosine = factor * DELTA / np.sqrt(n)
  g = cosine * w + np.sqrt(1 - cosine ** 2) * other
  expected_p, expected_factor, view = numpy_projection(w, g, g, DELTA, eps)
  assert view == ("channel" if factor < 1 else "none")
  tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=eps, channel_axis=0)
  params, grads = {"kernel": jnp.asarray(w, jnp.float32)}, {"kernel": jnp.asarray(g, jnp.float32)}
  out, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(out["kernel"]),
                             expected_p + WD * expected_factor * w, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("scenario", ["channel_below", "channel_above", "layer_below"])
def test_adamp_and_sgdp_pass_the_threshold_through(scenario):
  """The aliases give the projection its delta and channel axis: their first step
  is -lr (p_projected + wd * factor * w) with Adam's and momentum SGD's first p."""
  w, g, view = boundary_problem(TORCH_SHAPES["conv"], scenario)
  lr = 0.5
  params = {"kernel": jnp.asarray(to_flax(w))}
  grads = {"kernel": jnp.asarray(to_flax(g))}
  adam_p = np.float64(g) / (np.abs(np.float64(g)) + EPS)
  for opt, p, decay in (
      (adamp(lr, weight_decay=WD, delta=DELTA, wd_ratio=WD_RATIO), adam_p, WD),
      # SGDP's first buffer is g; its decay is scaled by 1 / (1 - momentum).
      (sgdp(lr, momentum=0.5, weight_decay=WD, delta=DELTA, wd_ratio=WD_RATIO),
       np.float64(g), WD / 0.5)):
    expected_p, factor, numpy_view = numpy_projection(w, g, p, DELTA, EPS)
    assert numpy_view == view
    out, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(from_flax(np.asarray(out["kernel"])),
                               -lr * (expected_p + decay * factor * np.float64(w)),
                               rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("scenario", ["channel_below", "channel_above"])
def test_defaults_are_the_reference_values(scenario):
  """delta = 0.1, wd_ratio = 0.1, eps = 1e-8 and the Flax layout (channel_axis=-1)
  when not given: in project_scale_invariant, adamp and sgdp alike."""
  w, g, view = boundary_problem(TORCH_SHAPES["dense"], scenario, delta=0.1)
  params, grads = {"kernel": jnp.asarray(to_flax(w))}, {"kernel": jnp.asarray(to_flax(g))}
  lr, momentum = 0.5, 0.9
  for name, opt, p, scale, decay in (
      ("project_scale_invariant", project_scale_invariant(optax.identity(), weight_decay=WD),
       np.float64(g), 1.0, WD),
      ("adamp", adamp(lr, weight_decay=WD), np.float64(g) / (np.abs(np.float64(g)) + 1e-8),
       -lr, WD),
      ("sgdp", sgdp(lr, weight_decay=WD), np.float64(g), -lr, WD / (1 - momentum))):
    expected_p, factor, numpy_view = numpy_projection(w, g, p, 0.1, 1e-8)
    assert numpy_view == view
    out, _ = opt.update(grads, opt.init(params), params)
    np.testing.assert_allclose(
        from_flax(np.asarray(out["kernel"])),
        scale * (expected_p + decay * (0.1 if factor != 1.0 else 1.0) * np.float64(w)),
        rtol=2e-5, atol=2e-6, err_msg=name)


def test_weight_decay_mask_skips_the_decay_of_masked_leaves():
  """weight_decay_mask=False on a leaf: its step is the (projected) step alone, in
  the projection wrapper, adamp and sgdp; the other leaf is decayed by wd * factor."""
  w, g, view = boundary_problem(TORCH_SHAPES["dense"], "channel_below")
  assert view == "channel"
  rng = np.random.default_rng(15)
  bias_w, bias_g = np.float32(rng.normal(size=4)), np.float32(rng.normal(size=4))
  params = {"kernel": jnp.asarray(to_flax(w)), "bias": jnp.asarray(bias_w)}
  grads = {"kernel": jnp.asarray(to_flax(g)), "bias": jnp.asarray(bias_g)}
  lr, momentum = 0.5, 0.9
  adam = lambda x: np.float64(x) / (np.abs(np.float64(x)) + EPS)
  for mask in ({"kernel": False, "bias": True}, {"kernel": True, "bias": False}):
    for name, opt, step, scale, decay in (
        ("project_scale_invariant", project_scale_invariant(
            optax.identity(), delta=DELTA, wd_ratio=WD_RATIO, weight_decay=WD,
            weight_decay_mask=mask), np.float64, 1.0, WD),
        ("adamp", adamp(lr, weight_decay=WD, delta=DELTA, wd_ratio=WD_RATIO,
                        weight_decay_mask=mask), adam, -lr, WD),
        ("sgdp", sgdp(lr, momentum=momentum, weight_decay=WD, delta=DELTA, wd_ratio=WD_RATIO,
                      weight_decay_mask=mask), np.float64, -lr, WD / (1 - momentum))):
      out, _ = opt.update(grads, opt.init(params), params)
      expected_p, factor, _ = numpy_projection(w, g, step(g), DELTA, EPS)
      kernel = expected_p + (decay * factor * np.float64(w) if mask["kernel"] else 0.0)
      bias = step(bias_g) + (decay * np.float64(bias_w) if mask["bias"] else 0.0)
      np.testing.assert_allclose(from_flax(np.asarray(out["kernel"])), scale * kernel,
                                 rtol=2e-5, atol=2e-6, err_msg=f"{name} {mask}")
      np.testing.assert_allclose(np.asarray(out["bias"]), scale * bias, rtol=2e-5, atol=2e-6,
                                 err_msg=f"{name} {mask}")


@pytest.mark.parametrize("eps", [EPS, 0.0])
def test_projection_of_a_zero_gradient_removes_the_radial_momentum(eps):
  """A zero gradient has cosine 0/(||w|| max(0, eps)) = 0 < delta/sqrt(n): the step (here a
  momentum buffer from an earlier, aligned gradient) is projected per channel. With
  eps = 0 the formula is 0/0; the cosine is its limit as eps -> 0, still 0, so the same
  projection happens (it was once NaN, which failed the test and projected nothing)."""
  rng = np.random.default_rng(5)
  w = rng.normal(size=(4, 6)).astype(np.float32)  # PyTorch layout
  aligned = (w + 0.1 * rng.normal(size=w.shape)).astype(np.float32)
  tx = project_scale_invariant(optax.trace(0.9), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=eps, channel_axis=0)
  params = {"kernel": jnp.asarray(w)}
  state = tx.init(params)
  _, state = tx.update({"kernel": jnp.asarray(aligned)}, state, params)
  out, _ = tx.update({"kernel": jnp.zeros_like(params["kernel"])}, state, params)
  p = 0.9 * np.float64(aligned)
  wv = np.float64(w)
  w_hat = wv / (np.linalg.norm(wv, axis=1, keepdims=True) + eps)
  expected = p - w_hat * np.sum(w_hat * p, axis=1, keepdims=True) + WD * WD_RATIO * wv
  np.testing.assert_allclose(np.asarray(out["kernel"]), expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("eps", [EPS, 0.0])
def test_projection_of_zero_weights_is_finite_and_leaves_the_step(eps):
  """||w|| = 0: the cosine is 0, so the projection fires, but w_hat = 0/(0 + eps) = 0
  removes nothing (with eps = 0, the limit: 0, not 0/0); the decay of a zero weight is
  zero."""
  rng = np.random.default_rng(6)
  g = rng.normal(size=(3, 5)).astype(np.float32)
  tx = project_scale_invariant(optax.identity(), delta=DELTA, weight_decay=WD, eps=eps)
  params = {"kernel": jnp.zeros((3, 5))}
  out, _ = tx.update({"kernel": jnp.asarray(g)}, tx.init(params), params)
  np.testing.assert_array_equal(np.asarray(out["kernel"]), g)


# eps -> 0 in the float64 reference: small enough to change no digit of a non-zero row,
# large enough that max(0, eps) * ||g|| is not 0 and no 0/0 appears.
EPS_LIMIT = 1e-30


@pytest.mark.parametrize("layout,channel_axis", [("flax", -1), ("torch", 0)])
@pytest.mark.parametrize("kernel", list(TORCH_SHAPES))
@pytest.mark.parametrize("scenario,zero,view", [
    ("channel_below", "weight_row", "channel"), ("channel_below", "gradient_row", "channel"),
    ("channel_above", "weight_row", "none"), ("channel_above", "both_rows", "none"),
    ("layer_below", "both_rows", "layer"), ("layer_above", "both_rows", "none")])
def test_projection_with_eps_zero_and_a_zero_row(layout, channel_axis, kernel, scenario, zero,
                                                 view):
  """eps = 0 and output channels whose weights (a dead channel), gradient or both are
  zero: such a row's cosine is 0/0 in the formula. It counts as 0, the limit eps -> 0
  (the float64 reference at eps = 1e-30), not as NaN: a NaN row made max(cos) NaN, so
  the per-channel view never fired. The other rows keep the cosines of the
  construction. In the whole-layer scenarios two rows (one of each sign) lose both their
  weights and gradient: <w, g>, ||w|| and ||g|| of the layer then lose the same share,
  so its cosine stays 1% below or above delta / sqrt(leaf size)."""
  w, g, _ = boundary_problem(TORCH_SHAPES[kernel], scenario)
  if zero == "weight_row":
    w[1] = 0.0
  elif zero == "gradient_row":
    g[1] = 0.0
  else:
    w[:2], g[:2] = 0.0, 0.0
  expected_p, factor, numpy_view = numpy_projection(w, g, np.float64(g), DELTA, EPS_LIMIT)
  assert numpy_view == view, "the construction must place the cosine where intended"
  tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=0.0, channel_axis=channel_axis)
  params = {"kernel": jnp.asarray(_to_layout(w, layout))}
  grads = {"kernel": jnp.asarray(_to_layout(g, layout))}
  out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  np.testing.assert_allclose(_from_layout(out["kernel"], layout),
                             expected_p + WD * factor * np.float64(w), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("opt", ["adamp", "sgdp"])
def test_adamp_and_sgdp_with_eps_zero_and_zero_leaves(opt):
  """eps = 0 through the optimizers. A kernel with zero weights gets the plain
  optimizer's step (w_hat = 0 removes nothing, its decay is 0). With SGDP a kernel with
  a zero gradient gets 0 plus its decay, reduced by wd_ratio (cosine 0 fires the
  projection). (AdamP is left out there: Adam's own first step is then 0 / (0 + 0),
  NaN in optax.adamw and in the reference code alike.)"""
  rng = np.random.default_rng(19)
  w = np.float32(rng.normal(size=(3, 4)))
  g = np.float32(rng.normal(size=(3, 4)))
  params = {"zero_w": jnp.zeros((3, 4)), "bias": jnp.ones(3)}
  grads = {"zero_w": jnp.asarray(g), "bias": jnp.asarray(g[0, :3])}
  if opt == "sgdp":
    params["zero_grad"], grads["zero_grad"] = jnp.asarray(w), jnp.zeros((3, 4))
  lr, wd, momentum = 0.1, 0.01, 0.9
  if opt == "adamp":
    tx = adamp(lr, weight_decay=wd, eps=0.0, delta=DELTA, wd_ratio=WD_RATIO)
    # Adam's first step is m_hat / sqrt(v_hat) = g / |g| = sign(g) (eps = 0).
    plain, decay = np.sign(np.float64(g)), wd
  else:
    tx = sgdp(lr, momentum=momentum, weight_decay=wd, eps=0.0, delta=DELTA,
              wd_ratio=WD_RATIO)
    # The first momentum buffer is g; the reference's decay is d / (1 - momentum).
    plain, decay = np.float64(g), wd / (1 - momentum)
  out, _ = tx.update(grads, tx.init(params), params)
  # rtol: optax's bias corrections round 1 - b2 = 1e-3 in float32 (relative 1e-5).
  np.testing.assert_allclose(np.asarray(out["zero_w"]), -lr * plain, rtol=2e-5)
  np.testing.assert_allclose(np.asarray(out["bias"]), -lr * (plain[0, :3] + decay),
                             rtol=2e-5)
  if opt == "sgdp":
    np.testing.assert_allclose(np.asarray(out["zero_grad"]),
                               -lr * decay * WD_RATIO * np.float64(w), rtol=1e-5)


@pytest.mark.parametrize("empty_shape", [(0, 3), (3, 0), (2, 0, 3)])
def test_projection_skips_zero_size_kernels(empty_shape):
  w, g, _ = boundary_problem(TORCH_SHAPES["dense"], "channel_below")
  params = {"empty": jnp.zeros(empty_shape), "kernel": jnp.asarray(to_flax(w))}
  grads = {"empty": jnp.zeros(empty_shape), "kernel": jnp.asarray(to_flax(g))}
  tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=EPS)
  out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  assert out["empty"].shape == empty_shape
  expected_p, factor, _ = numpy_projection(w, g, np.float64(g), DELTA, EPS)
  np.testing.assert_allclose(from_flax(np.asarray(out["kernel"])),
                             expected_p + WD * factor * np.float64(w), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("scenario", ["channel_below", "channel_above"])
def test_half_precision_kernel_is_tested_in_float32(scenario):
  """float16 kernels with entries up to 1000: ||w_c||^2 overflows float16 (65504), so
  the cosine and w_hat must be computed in float32; the decision is the one of the
  float64 NumPy reference on the same float16 numbers."""
  w, g, view = boundary_problem(TORCH_SHAPES["dense"], scenario)
  w16 = np.float16(1000.0 * w / np.abs(w).max())
  g16 = np.float16(1000.0 * g / np.abs(g).max())
  assert np.all(np.sum(np.float64(w16) ** 2, axis=1) > 65504)
  expected_p, factor, numpy_view = numpy_projection(w16, g16, np.float64(g16), DELTA, EPS)
  assert numpy_view == view
  tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=EPS, channel_axis=0)
  params = {"kernel": jnp.asarray(w16)}
  out, _ = tx.update({"kernel": jnp.asarray(g16)}, tx.init(params), params)
  assert out["kernel"].dtype == jnp.float16
  np.testing.assert_allclose(np.asarray(out["kernel"], np.float64),
                             expected_p + WD * factor * np.float64(w16), rtol=5e-3, atol=0.5)


def test_projection_with_delta_zero_never_fires():
  """delta = 0: the test max(cos) < 0 fails even for an exactly orthogonal gradient
  (integer entries, <w, g> = 0 exactly), so nothing is projected."""
  w = np.float32([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
  g = np.float32([[2.0, -1.0], [4.0, -3.0], [6.0, -5.0]])  # each row orthogonal to w's
  tx = project_scale_invariant(optax.identity(), delta=0.0, wd_ratio=WD_RATIO,
                               weight_decay=WD, channel_axis=0)
  params = {"kernel": jnp.asarray(w)}
  out, _ = tx.update({"kernel": jnp.asarray(g)}, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(out["kernel"]), g + WD * w, rtol=1e-6)


def test_projection_of_small_weights_uses_eps_in_the_unit_vector():
  """||w|| = 1e-7 next to eps = 1e-8: w_hat = w / (||w|| + eps) has norm 1/1.1, so
  the projection keeps a visible share (1 - 1/1.21) of the step's radial part."""
  rng = np.random.default_rng(14)
  w = rng.normal(size=(3, 8))
  w = 1e-7 * w / np.linalg.norm(w, axis=1, keepdims=True)
  g = rng.normal(size=(3, 8))
  g -= w * np.sum(g * w, axis=1, keepdims=True) / np.sum(w * w, axis=1, keepdims=True)
  w, g = np.float32(w), np.float32(g)
  # Adam's first step g / (|g| + eps) has a radial part although g has none.
  tx = project_scale_invariant(optax.scale_by_adam(eps=EPS), delta=DELTA, eps=EPS,
                               channel_axis=0)
  params = {"kernel": jnp.asarray(w)}
  out, _ = tx.update({"kernel": jnp.asarray(g)}, tx.init(params), params)
  p = np.float64(g) / (np.abs(np.float64(g)) + EPS)
  expected, _, view = numpy_projection(w, g, p, DELTA, EPS)
  assert view == "channel"
  np.testing.assert_allclose(np.asarray(out["kernel"]), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", list(TORCH_SHAPES))
def test_channel_axis_counts_from_both_ends(kernel):
  """channel_axis=-ndim is axis 0 and ndim - 1 is -1: the same projection."""
  w, g, view = boundary_problem(TORCH_SHAPES[kernel], "channel_below")
  assert view == "channel"
  params, grads = {"kernel": jnp.asarray(w)}, {"kernel": jnp.asarray(g)}
  expected_p, factor, _ = numpy_projection(w, g, np.float64(g), DELTA, EPS)
  for axis in (0, -w.ndim):
    tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                                 weight_decay=WD, eps=EPS, channel_axis=axis)
    out, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(out["kernel"]),
                               expected_p + WD * factor * np.float64(w), rtol=2e-5,
                               atol=2e-6, err_msg=str(axis))
  flax = {"kernel": jnp.asarray(to_flax(w))}
  tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD, eps=EPS, channel_axis=w.ndim - 1)
  out, _ = tx.update({"kernel": jnp.asarray(to_flax(g))}, tx.init(flax), flax)
  np.testing.assert_allclose(from_flax(np.asarray(out["kernel"])),
                             expected_p + WD * factor * np.float64(w), rtol=2e-5, atol=2e-6)
  for bad in (w.ndim, -w.ndim - 1):
    tx = project_scale_invariant(optax.identity(), channel_axis=bad)
    with pytest.raises(ValueError, match="channel_axis"):
      tx.update(grads, tx.init(params), params)


def test_vectors_are_never_projected():
  """ndim <= 1 (biases, norm scales): not projected even with a gradient orthogonal
  to the vector, and fully decayed."""
  w = np.float32([1.0, 2.0, 3.0, 4.0])
  g = np.float32([2.0, -1.0, 4.0, -3.0])  # <w, g> = 0
  tx = project_scale_invariant(optax.identity(), delta=DELTA, wd_ratio=WD_RATIO,
                               weight_decay=WD)
  params = {"bias": jnp.asarray(w), "scalar": jnp.float32(2.0)}
  grads = {"bias": jnp.asarray(g), "scalar": jnp.float32(0.0)}
  out, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(out["bias"]), g + WD * w, rtol=1e-6)
  np.testing.assert_allclose(float(out["scalar"]), WD * 2.0, rtol=1e-6)


# --- Layer-wise trust ratios (LARC, LUC) ---------------------------------------------


def numpy_trust_ratio(x, w, trust, lr, wd, eps, mode, min_ratio=0.0, skip_zero_norms=True):
  """You et al. (2017) / NVIDIA's LARC for one layer: local = trust ||w|| /
  (||x|| + wd ||w|| + eps); factor min(max(local / lr, r), 1) (clip) or max(local, r)
  (scale); the layer is left unscaled when ||w|| or ||x|| is 0 (unless
  skip_zero_norms=False: NeMo's LUC and OpenSeq2Seq's LARC apply the formula)."""
  x, w = np.float64(x), np.float64(w)
  w_norm, x_norm = np.linalg.norm(w), np.linalg.norm(x)
  factor = 1.0
  if (w_norm > 0 and x_norm > 0) or not skip_zero_norms:
    local = trust * w_norm / (x_norm + wd * w_norm + eps)
    if mode == "clip":
      # lr = 0: the limit lr -> 0+ of local / lr, inf for local > 0 and 0 for local = 0.
      ratio = local / lr if lr > 0 else (np.inf if local > 0 else 0.0)
      factor = min(max(ratio, min_ratio), 1.0)
    else:
      factor = max(local, min_ratio)
  return (x + wd * w) * factor


def trust_ratio_problem():
  rng = np.random.default_rng(8)
  r = lambda *s: rng.normal(size=s).astype(np.float32)
  params = {"zero_grad": r(4, 3), "zero_w": np.zeros((5,), np.float32),
            "both_zero": np.zeros((2, 2), np.float32), "plain": r(3, 3),
            "empty": np.zeros((0, 3), np.float32),
            # A stack of 3 layers: row 1 gets a zero gradient, row 2 zero weights.
            "stack": r(3, 4)}
  grads = {"zero_grad": np.zeros((4, 3), np.float32), "zero_w": r(5),
           "both_zero": np.zeros((2, 2), np.float32), "plain": r(3, 3),
           "empty": np.zeros((0, 3), np.float32), "stack": r(3, 4)}
  grads["stack"][1] = 0.0
  params["stack"][2] = 0.0
  return params, grads


TRUST_LAYER_AXES = {"zero_grad": None, "zero_w": None, "both_zero": None, "plain": None,
                    "empty": None, "stack": 0}


@pytest.mark.parametrize("mode", ["clip", "scale"])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
# 0.5: an eps as large as the norms, so where it enters the ratio shows.
@pytest.mark.parametrize("eps", [1e-8, 0.0, 0.5])
def test_trust_ratio_with_zero_norm_layers(mode, weight_decay, eps):
  trust, lr = 0.02, 0.5
  params, grads = trust_ratio_problem()
  tx = clip_by_layerwise_trust_ratio(trust, learning_rate=lr, weight_decay=weight_decay,
                                     eps=eps, mode=mode, layer_axes=TRUST_LAYER_AXES)
  out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  for k in params:
    if k == "stack":
      expected = np.stack([numpy_trust_ratio(grads[k][i], params[k][i], trust, lr,
                                             weight_decay, eps, mode) for i in range(3)])
    else:
      expected = numpy_trust_ratio(grads[k], params[k], trust, lr, weight_decay, eps, mode)
    np.testing.assert_allclose(np.asarray(out[k]), expected, rtol=1e-5, atol=1e-7,
                               err_msg=k)
  # The plain layer is really clipped in clip mode (else the case tests nothing).
  plain = numpy_trust_ratio(grads["plain"], params["plain"], trust, lr, weight_decay, eps,
                            mode)
  assert not np.allclose(plain, np.float64(grads["plain"]) + weight_decay * params["plain"])


@pytest.mark.parametrize("mode", ["clip", "scale"])
@pytest.mark.parametrize("min_ratio", [0.0, 0.3])
def test_trust_ratio_formula_on_zero_layers_and_its_floor(mode, min_ratio):
  """skip_zero_norms=False: zero layers get max(0, r) (NeMo's LUC, OpenSeq2Seq's LARC);
  min_ratio floors the factor of every layer (a floor of 0.3 is above the plain layer's
  ratio, so it decides that layer's factor)."""
  trust, lr, wd, eps = 0.02, 0.5, 0.1, 1e-6
  params, grads = trust_ratio_problem()
  tx = clip_by_layerwise_trust_ratio(trust, learning_rate=lr, weight_decay=wd, eps=eps,
                                     mode=mode, min_ratio=min_ratio, skip_zero_norms=False,
                                     layer_axes=TRUST_LAYER_AXES)
  out, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  for k in params:
    rows = [(grads[k][i], params[k][i]) for i in range(3)] if k == "stack" else None
    expected = (np.stack([numpy_trust_ratio(x, w, trust, lr, wd, eps, mode, min_ratio, False)
                          for x, w in rows]) if rows else
                numpy_trust_ratio(grads[k], params[k], trust, lr, wd, eps, mode, min_ratio,
                                  False))
    np.testing.assert_allclose(np.asarray(out[k]), expected, rtol=1e-5, atol=1e-7,
                               err_msg=k)


@pytest.mark.parametrize("skip_zero_norms", [True, False])
@pytest.mark.parametrize("min_ratio", [0.0, 0.3])
def test_trust_ratio_clip_at_a_zero_learning_rate(skip_zero_norms, min_ratio):
  """LARC before SGD with momentum under a warmup from 0: the first step's rate is 0,
  where local / lr is inf (nothing clipped) or, for a zero layer that
  skip_zero_norms=False lets through, 0 / 0. The momentum carries that step's clipped
  gradient into the next steps, so it must be the limit lr -> 0+, not NaN."""
  trust, wd, eps, b1 = 0.02, 0.1, 1e-6, 0.9
  schedule = optax.linear_schedule(0.0, 0.5, 4)
  params, grads = trust_ratio_problem()
  tx = optax.chain(
      clip_by_layerwise_trust_ratio(trust, learning_rate=schedule, weight_decay=wd,
                                    eps=eps, min_ratio=min_ratio,
                                    skip_zero_norms=skip_zero_norms,
                                    layer_axes=TRUST_LAYER_AXES),
      optax.sgd(schedule, momentum=b1))
  state = tx.init(params)
  step = jax.jit(tx.update)
  momentum = {k: np.zeros_like(v, np.float64) for k, v in params.items()}
  for t in range(3):
    lr = float(schedule(t))
    out, state = step(grads, state, params)
    for k in params:
      args = (trust, lr, wd, eps, "clip", min_ratio, skip_zero_norms)
      clipped = (np.stack([numpy_trust_ratio(grads[k][i], params[k][i], *args)
                           for i in range(3)]) if k == "stack" else
                 numpy_trust_ratio(grads[k], params[k], *args))
      momentum[k] = b1 * momentum[k] + clipped
      np.testing.assert_allclose(np.asarray(out[k]), -lr * momentum[k], rtol=1e-5,
                                 atol=1e-7, err_msg=f"step {t} {k}")
  # The first step's momentum holds the unclipped plain layer (nothing is clipped at
  # rate 0), so the case is not the same as starting at the second step.
  assert lr > 0 and float(schedule(0)) == 0.0


def test_trust_ratio_min_ratio_with_skipped_zero_layers():
  """With the default skip_zero_norms=True, min_ratio floors the other layers only."""
  trust, lr, wd, eps, floor = 0.02, 0.5, 0.1, 1e-8, 0.3
  params, grads = trust_ratio_problem()
  for mode in ("clip", "scale"):
    tx = clip_by_layerwise_trust_ratio(trust, learning_rate=lr, weight_decay=wd, eps=eps,
                                       mode=mode, min_ratio=floor)
    out, _ = tx.update(grads, tx.init(params), params)
    for k in ("zero_grad", "zero_w", "plain"):
      np.testing.assert_allclose(
          np.asarray(out[k]),
          numpy_trust_ratio(grads[k], params[k], trust, lr, wd, eps, mode, floor),
          rtol=1e-5, atol=1e-7, err_msg=f"{mode} {k}")


def test_trust_ratio_at_the_clip_boundary():
  """local / lr just below 1 clips, just above leaves the update as it is."""
  trust = 0.1
  w = np.float32([3.0, 4.0])  # ||w|| = 5
  x = np.float32([0.6, 0.8])  # ||x|| = 1: local = trust * 5 / 1 = 0.5
  tx_clip = clip_by_layerwise_trust_ratio(trust, learning_rate=0.5 * (1 + MARGIN), eps=0.0)
  tx_free = clip_by_layerwise_trust_ratio(trust, learning_rate=0.5 * (1 - MARGIN), eps=0.0)
  clipped, _ = tx_clip.update({"w": jnp.asarray(x)}, tx_clip.init(None), {"w": jnp.asarray(w)})
  free, _ = tx_free.update({"w": jnp.asarray(x)}, tx_free.init(None), {"w": jnp.asarray(w)})
  np.testing.assert_allclose(np.asarray(clipped["w"]), x / (1 + MARGIN), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(free["w"]), x)


def test_novograd_update_clipping_with_zero_norm_layers():
  """The speech toolkit's LUC: step = min(trust ||w|| / (||m|| + 1e-8), lr) m, and lr m
  for a layer with ||w|| = 0. A zero-gradient layer with weight decay has m = wd w."""
  lr, b1, b2, wd, trust, eps = 0.1, 0.9, 0.5, 0.05, 1e-2, 1e-6
  rng = np.random.default_rng(9)
  params = {"zero_grad": rng.normal(size=(4, 3)), "zero_w": np.zeros(5),
            "plain": rng.normal(size=(3, 3))}
  params = {k: np.float32(v) for k, v in params.items()}
  grads = [{"zero_grad": np.zeros((4, 3), np.float32),
            "zero_w": np.float32(rng.normal(size=5)),
            "plain": np.float32(rng.normal(size=(3, 3)))} for _ in range(3)]
  opt = novograd(lr, b1=b1, b2=b2, eps=eps, weight_decay=wd, trust_coefficient=trust)
  p = jax.tree.map(jnp.asarray, params)
  state = opt.init(p)
  w = {k: np.float64(v) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in w.items()}
  nu = {}
  for t, g in enumerate(grads):
    updates, state = opt.update(g, state, p)
    p = optax.apply_updates(p, updates)
    for k in w:
      squared = np.sum(np.float64(g[k]) ** 2)
      nu[k] = squared if t == 0 else b2 * nu[k] + (1 - b2) * squared
      m[k] = b1 * m[k] + g[k] / (np.sqrt(nu[k]) + eps) + wd * w[k]
      w_norm = np.linalg.norm(w[k])
      rate = min(trust * w_norm / (np.linalg.norm(m[k]) + 1e-8), lr) if w_norm > 0 else lr
      w[k] = w[k] - rate * m[k]
    for k in w:
      np.testing.assert_allclose(np.asarray(p[k]), w[k], rtol=1e-5, atol=1e-7, err_msg=k)


# --- SNGM -----------------------------------------------------------------------------


def test_sngm_zero_gradient_with_weight_decay_moves_along_the_decay():
  """g~ = 0 + d w: the first step is -lr d w / (||d w|| + eps)."""
  lr, wd, eps = 0.3, 1e-2, 1e-8
  rng = np.random.default_rng(10)
  params = {"a": np.float32(rng.normal(size=(3, 2))), "b": np.float32(rng.normal(size=4))}
  opt = sngm(lr, momentum=0.9, weight_decay=wd, eps=eps)
  zeros = jax.tree.map(np.zeros_like, params)
  updates, _ = opt.update(zeros, opt.init(params), params)
  decayed = {k: wd * np.float64(v) for k, v in params.items()}
  norm = np.sqrt(sum(np.sum(v ** 2) for v in decayed.values()))
  for k in params:
    np.testing.assert_allclose(np.asarray(updates[k]), -lr * decayed[k] / (norm + eps),
                               rtol=1e-6)


def test_sngm_weight_decay_mask():
  """weight_decay_mask=False on a leaf: g~ has no decay term there, and the global norm
  is taken over the decayed and undecayed leaves together."""
  lr, wd, eps = 0.3, 0.5, 1e-8
  rng = np.random.default_rng(17)
  params = {"a": np.float32(rng.normal(size=(3, 2))), "b": np.float32(rng.normal(size=4))}
  grads = {"a": np.float32(rng.normal(size=(3, 2))), "b": np.float32(rng.normal(size=4))}
  for mask in ({"a": True, "b": False}, {"a": False, "b": True}):
    opt = sngm(lr, weight_decay=wd, weight_decay_mask=mask, eps=eps)
    updates, _ = opt.update(grads, opt.init(params), params)
    decayed = {k: np.float64(grads[k]) + (wd * np.float64(params[k]) if mask[k] else 0.0)
               for k in params}
    norm = np.sqrt(sum(np.sum(v ** 2) for v in decayed.values()))
    for k in params:
      np.testing.assert_allclose(np.asarray(updates[k]), -lr * decayed[k] / (norm + eps),
                                 rtol=1e-6, err_msg=f"{mask} {k}")


def test_global_norm_with_a_large_eps():
  """eps enters outside the root: u = g / (||g|| + eps)."""
  tree = {"a": np.float32([3.0, 0.0]), "b": np.float32([[4.0]])}
  tx = normalize_by_global_norm(eps=5.0)
  out, _ = tx.update(tree, tx.init(None))
  np.testing.assert_allclose(np.asarray(out["a"]), [0.3, 0.0], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(out["b"]), [[0.4]], rtol=1e-6)


def test_global_norm_of_complex_and_half_precision_leaves():
  """||g||^2 = sum |g|^2 over complex leaves; each leaf keeps its dtype (and its
  imaginary part); a float16 leaf with ||g||^2 > 65504 is normalized in float32."""
  rng = np.random.default_rng(18)
  tree = {"z": np.complex64(rng.normal(size=3) + 1j * rng.normal(size=3)),
          "h": np.float16(300.0 * rng.normal(size=4)), "f": np.float32(rng.normal(size=2))}
  tx = normalize_by_global_norm(eps=1e-8)
  out, _ = tx.update(tree, tx.init(None))
  norm = np.sqrt(sum(np.sum(np.abs(np.complex128(v)) ** 2) for v in tree.values()))
  for k, v in tree.items():
    assert out[k].dtype == v.dtype, k
    np.testing.assert_allclose(np.asarray(out[k]), np.complex128(v) / (norm + 1e-8)
                               if k == "z" else np.float64(v) / (norm + 1e-8),
                               rtol=2e-3 if k == "h" else 1e-6, atol=1e-4 if k == "h" else 0,
                               err_msg=k)


def test_global_norm_with_eps_zero_and_empty_leaves():
  """eps = 0: the output has norm 1 exactly; zero-size leaves add nothing to the norm."""
  rng = np.random.default_rng(11)
  tree = {"a": np.float32(rng.normal(size=(3, 4))), "empty": np.zeros((0, 2), np.float32),
          "b": np.float32(rng.normal(size=5) * 1e3)}
  tx = normalize_by_global_norm(eps=0.0)
  out, _ = jax.jit(tx.update)(tree, tx.init(None))
  norm = np.sqrt(sum(np.sum(np.float64(v) ** 2) for v in tree.values()))
  for k in tree:
    np.testing.assert_allclose(np.asarray(out[k]), np.float64(tree[k]) / norm, rtol=1e-6)
  assert out["empty"].shape == (0, 2)


def test_global_norm_with_eps_zero_and_a_zero_tree():
  """eps = 0 and an all-zero tree: 0 / (0 + 0) in the formula; the update is 0 (the
  limit eps -> 0 of 0 / eps), as for any eps > 0, not NaN. Dtypes are kept."""
  tree = {"a": np.zeros((3, 2), np.float32), "h": np.zeros(4, np.float16),
          "empty": np.zeros((0, 2), np.float32)}
  tx = normalize_by_global_norm(eps=0.0)
  out, _ = jax.jit(tx.update)(tree, tx.init(None))
  for k, v in tree.items():
    assert out[k].dtype == v.dtype, k
    np.testing.assert_array_equal(np.asarray(out[k]), v, err_msg=k)


def test_global_norm_with_eps_zero_and_a_tree_whose_square_underflows():
  """eps = 0 and entries of 1e-30: the squared global norm underflows to 0 in float32,
  and the documented rule divides by 1, so the update is the tiny gradient itself
  (finite, never 0 / 0)."""
  tree = {"a": np.full((3, 2), 1e-30, np.float32), "b": np.full(4, -1e-30, np.float32)}
  tx = normalize_by_global_norm(eps=0.0)
  out, _ = jax.jit(tx.update)(tree, tx.init(None))
  for k, v in tree.items():
    np.testing.assert_array_equal(np.asarray(out[k]), v, err_msg=k)


def test_sngm_with_eps_zero_coasts_through_a_zero_gradient():
  """SNGM with eps = 0: u_1 = g / ||g||, then a zero gradient normalizes to 0, so
  u_2 = beta u_1 (the momentum coasts, nothing is NaN); then u_3 = beta u_2 + g_3 / ||g_3||."""
  lr, beta = 0.3, 0.9
  rng = np.random.default_rng(20)
  shapes = {"a": (3, 2), "b": (4,)}
  g1, g3 = ({k: np.float32(rng.normal(size=s)) for k, s in shapes.items()} for _ in range(2))
  zeros = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
  params = {k: jnp.ones(s) for k, s in shapes.items()}
  opt = sngm(lr, momentum=beta, eps=0.0)
  state = opt.init(params)
  u = {k: np.zeros(s) for k, s in shapes.items()}
  for g in (g1, zeros, g3):
    updates, state = opt.update(g, state, params)
    norm = np.sqrt(sum(np.sum(np.float64(v) ** 2) for v in g.values()))
    for k in u:
      u[k] = beta * u[k] + (np.float64(g[k]) / norm if norm > 0 else 0.0)
      np.testing.assert_allclose(np.asarray(updates[k]), -lr * u[k], rtol=1e-6, atol=1e-8,
                                 err_msg=k)


# --- NovoGrad's layer-wise moment -------------------------------------------------------


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_layerwise_norm_with_eps_zero_is_exactly_normalized(norm):
  """eps = eps_root = 0, b2 = 0: u = g / ||g|| (L2) or g / max|g| (L-inf)."""
  rng = np.random.default_rng(12)
  grads = {"w": np.float32(rng.normal(size=(4, 3)) * 1e-4),
           "stack": np.float32(rng.normal(size=(2, 5)) * 1e4)}
  tx = scale_by_layerwise_norm(b2=0.0, eps=0.0, norm=norm, layer_axes={"w": None, "stack": 0})
  out, _ = jax.jit(tx.update)(grads, tx.init(grads))
  size = lambda x, axis=None: (np.linalg.norm(x, axis=axis, keepdims=axis is not None)
                               if norm == "l2"
                               else np.max(np.abs(x), axis=axis, keepdims=axis is not None))
  np.testing.assert_allclose(np.asarray(out["w"]), grads["w"] / size(np.float64(grads["w"])),
                             rtol=1e-6)
  np.testing.assert_allclose(np.asarray(out["stack"]),
                             grads["stack"] / size(np.float64(grads["stack"]), axis=1),
                             rtol=1e-6)


@pytest.mark.parametrize("norm", ["l2", "linf"])
@pytest.mark.parametrize("eps,eps_root", [(1e-6, 0.0), (0.0, 1e-8), (0.0, 0.0)])
def test_layerwise_norm_zero_gradient_layer_gives_zero(eps, eps_root, norm):
  """A zero layer's update is 0 for every eps, eps = eps_root = 0 included (there the
  formula is 0 / sqrt(0); the update is its limit, 0, not NaN); the non-zero layer
  next to it is divided by sqrt(v + eps_root) + eps, v = ||g||^2 = 25 (L2) or
  max|g|^2 = 16 (L-inf)."""
  tx = scale_by_layerwise_norm(eps=eps, eps_root=eps_root, norm=norm, layer_axes=0)
  grads = {"stack": np.float32([[0.0, 0.0], [3.0, 4.0]]), "zero": np.zeros(3, np.float32)}
  out, state = jax.jit(tx.update)(grads, tx.init(grads))
  v = 25.0 if norm == "l2" else 16.0
  np.testing.assert_allclose(np.asarray(out["stack"]),
                             [[0.0, 0.0], [3.0 / (np.sqrt(v + eps_root) + eps),
                                           4.0 / (np.sqrt(v + eps_root) + eps)]], rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(out["zero"]), np.zeros(3))
  np.testing.assert_array_equal(np.asarray(state.nu.per_layer()["stack"]), [0.0, v])


@pytest.mark.parametrize("nu_init", ["first", "zero", "first_nonzero"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_novograd_with_eps_zero_and_a_layer_with_zero_gradients(nu_init, amsgrad):
  """novograd(eps=0, eps_root=0): a layer whose first two gradients are zero has v = 0
  and gets a zero normalized gradient (0 / sqrt(0) is taken as its limit 0, not NaN),
  then moves once its gradients are non-zero; the other layer is exactly normalized
  every step. NumPy transcription of Algorithm 1 with its variants."""
  lr, b1, b2 = 0.1, 0.9, 0.5
  rng = np.random.default_rng(21)
  grads = [{"late": np.float32(rng.normal(size=4)) if t >= 2 else np.zeros(4, np.float32),
            "w": np.float32(rng.normal(size=(3, 2)))} for t in range(4)]
  params = {"late": np.float32(rng.normal(size=4)), "w": np.float32(rng.normal(size=(3, 2)))}
  opt = novograd(lr, b1=b1, b2=b2, eps=0.0, eps_root=0.0, nu_init=nu_init, amsgrad=amsgrad)
  p = jax.tree.map(jnp.asarray, params)
  state = opt.init(p)
  w = {k: np.float64(v) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in w.items()}
  nu = {k: 0.0 for k in w}
  nu_max = {k: 0.0 for k in w}
  for t, g in enumerate(grads):
    updates, state = opt.update(g, state, p)
    p = optax.apply_updates(p, updates)
    for k in w:
      gk = np.float64(g[k])
      squared = np.sum(gk ** 2)
      if (nu_init == "first" and t == 0) or (nu_init == "first_nonzero" and nu[k] == 0.0):
        nu[k] = squared
      else:
        nu[k] = b2 * nu[k] + (1 - b2) * squared
      nu_max[k] = max(nu_max[k], nu[k])
      v = nu_max[k] if amsgrad else nu[k]
      normalized = gk / np.sqrt(v) if v > 0 else np.zeros_like(gk)  # v = 0 only for g = 0
      m[k] = b1 * m[k] + normalized
      w[k] = w[k] - lr * m[k]
    for k in w:
      np.testing.assert_allclose(np.asarray(p[k]), w[k], rtol=1e-5, atol=1e-6,
                                 err_msg=f"{k} step {t}")


def test_eps_zero_with_a_gradient_whose_square_underflows():
  """eps = eps_root = 0 and a layer of 1e-30 entries: ||g||^2 = 4e-60 underflows to
  v = 0 in float32, and the documented rule divides such a layer by 1 (its update is
  g itself: finite, tiny, never 0 / 0); a layer of normal size beside it is exactly
  normalized."""
  grads = {"tiny": np.full(4, 1e-30, np.float32), "w": np.float32([3.0, 4.0])}
  tx = scale_by_layerwise_norm(b2=0.5, eps=0.0, eps_root=0.0)
  out, state = jax.jit(tx.update)(grads, tx.init(grads))
  assert float(state.nu.per_layer()["tiny"]) == 0.0
  np.testing.assert_array_equal(np.asarray(out["tiny"]), grads["tiny"])
  np.testing.assert_allclose(np.asarray(out["w"]), [0.6, 0.8], rtol=1e-6)


@pytest.mark.parametrize("nu_init", ["first", "zero"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_infinite_moment_restarts_from_the_gradient(nu_init, amsgrad):
  """A moment that overflowed to inf restarts as v = ||g||^2 (and v_hat = v), so the
  layer keeps moving; a finite moment of another layer follows the recurrence."""
  b2, eps = 0.5, 1e-6
  grads = {"a": np.float32([3.0, 4.0]), "b": np.float32([1.0, 2.0, 2.0])}
  tx = scale_by_layerwise_norm(b2=b2, eps=eps, nu_init=nu_init, amsgrad=amsgrad)
  state = tx.init(grads)
  nu = {"a": jnp.float32(jnp.inf), "b": jnp.float32(4.0)}
  nu = LayerMoments.from_per_layer(nu)
  state = ScaleByLayerwiseNormState(count=jnp.asarray(3, jnp.int32), nu=nu,
                                    nu_max=nu if amsgrad else None)
  out, new_state = tx.update(grads, state)
  expected_nu = {"a": 25.0, "b": b2 * 4.0 + (1 - b2) * 9.0}
  for k, v in expected_nu.items():
    np.testing.assert_allclose(float(new_state.nu.per_layer()[k]), v, rtol=1e-6)
    # v_hat: a restart of "a"; max(4, 6.5) for "b".
    denominator = np.sqrt(v) + eps
    np.testing.assert_allclose(np.asarray(out[k]), grads[k] / denominator, rtol=1e-6)
    if amsgrad:
      np.testing.assert_allclose(float(new_state.nu_max.per_layer()[k]), v, rtol=1e-6)


@pytest.mark.parametrize("nu_init", ["first", "zero", "first_nonzero"])
def test_moment_of_a_layer_whose_first_gradients_are_zero(nu_init):
  """Two zero gradients, then non-zero ones (a layer behind a zero-initialized one):
  "first" and "zero" average from v = 0; "first_nonzero" (timm, NeMo,
  pytorch-optimizer) sets v = ||g||^2 at the first non-zero gradient."""
  b2, eps = 0.5, 1e-6
  rng = np.random.default_rng(16)
  grads = [np.zeros(5), np.zeros(5), rng.normal(size=5), rng.normal(size=5)]
  tx = scale_by_layerwise_norm(b2=b2, eps=eps, nu_init=nu_init)
  state = tx.init({"w": jnp.zeros(5)})
  nu = 0.0
  for t, g in enumerate(grads):
    out, state = tx.update({"w": jnp.float32(g)}, state)
    squared = np.sum(np.float64(np.float32(g)) ** 2)
    if (nu_init == "first" and t == 0) or (nu_init == "first_nonzero" and nu == 0.0):
      nu = squared
    else:
      nu = b2 * nu + (1 - b2) * squared
    np.testing.assert_allclose(float(state.nu.per_layer()["w"]), nu, rtol=1e-6, err_msg=str(t))
    np.testing.assert_allclose(np.asarray(out["w"]), np.float32(g) / (np.sqrt(nu) + eps),
                               rtol=1e-5, err_msg=str(t))


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_novograd_with_zero_size_leaves(norm):
  """Zero-size leaves (alone, stacked, or among small leaves that are normalized
  together) have a zero norm and leave every other layer's update unchanged."""
  b1, b2, lr, eps = 0.9, 0.5, 0.1, 1e-6
  rng = np.random.default_rng(13)
  shapes = {"empty": (0, 3), "stacked_empty": (2, 0), "w": (4, 3), "v": (4, 3), "b": (3,)}
  axes = {"empty": None, "stacked_empty": 0, "w": None, "v": None, "b": None}
  params = {k: np.float32(rng.normal(size=s)) for k, s in shapes.items()}
  grads = [{k: np.float32(rng.normal(size=s)) for k, s in shapes.items()} for _ in range(3)]
  opt = novograd(lr, b1=b1, b2=b2, eps=eps, norm=norm, layer_axes=axes)
  p = jax.tree.map(jnp.asarray, params)
  state = opt.init(p)
  update = jax.jit(opt.update)
  for g in grads:
    updates, state = update(g, state, p)
    p = optax.apply_updates(p, updates)
  for k in ("w", "v", "b"):
    w, m, nu = np.float64(params[k]), 0.0, 0.0
    for t, g in enumerate(grads):
      gk = np.float64(g[k])
      squared = np.sum(gk ** 2) if norm == "l2" else np.max(gk ** 2)
      nu = squared if t == 0 else b2 * nu + (1 - b2) * squared
      m = b1 * m + gk / (np.sqrt(nu) + eps)
      w = w - lr * m
    np.testing.assert_allclose(np.asarray(p[k]), w, rtol=1e-5, atol=1e-6, err_msg=k)
  assert p["empty"].shape == (0, 3)
  nu = state[0].nu.per_layer()
  np.testing.assert_array_equal(np.asarray(nu["stacked_empty"]), np.zeros(2))
  np.testing.assert_array_equal(np.asarray(nu["empty"]), 0.0)
