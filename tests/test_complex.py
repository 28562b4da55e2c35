"""AdamP and SGDP on complex weights.

A complex weight of n entries is the real weight of 2n entries holding its real and
imaginary parts side by side: its cosine with the gradient and the projection use the
real inner product Re sum(conj(a) b) and real norms, and the row length of the
threshold delta / sqrt(n) counts real coordinates. SGDP uses only inner products,
norms and linear momentum, so on complex weights it must equal SGDP on the
side-by-side real weights; AdamP's second moment is |g|^2 per complex entry (as
optax's Adam), so it is checked against a complex NumPy transcription of the
reference written out below. The gradient of a complex weight here is
dL/dRe(w) + i dL/dIm(w), the steepest-ascent direction that optax expects.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import novograd_optax as nvg
from novograd_optax import adamp, novograd, presets, sgdp

# PyTorch layout: the output channel is axis 0 (channel_axis=0 below).
SHAPES = {"kernel": (3, 4), "conv": (2, 3, 2, 2), "layer": (5, 2), "bias": (3,),
          "generic": (4, 3)}
STEPS = 30


def _complex(rng, shape):
  return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def _real_inner(a, b, axis=None, keepdims=False):
  return np.sum(np.real(np.conj(a) * b), axis=axis, keepdims=keepdims)


def _scale_invariant_gradients(step, w):
  """Per leaf: orthogonal (in Re<.,.>) to every output channel of w (projected per
  channel), orthogonal to the whole of w (projected as a layer) or aligned with w
  (not projected); the bias is never projected."""
  rng = np.random.default_rng(100 + step)
  g = {}
  for name, shape in SHAPES.items():
    r = _complex(rng, shape)
    x = w[name]
    if name == "kernel" or name == "conv":
      rows, xr = r.reshape(shape[0], -1), x.reshape(shape[0], -1)
      rows = rows - xr * _real_inner(xr, rows, 1, True) / _real_inner(xr, xr, 1, True)
      g[name] = rows.reshape(shape)
    elif name == "layer":
      g[name] = r - x * _real_inner(x, r) / _real_inner(x, x)
    elif name == "generic":
      g[name] = r + 2.0 * x
    else:
      g[name] = r
  return g


def _project(w, g, p, delta, wd_ratio, eps):
  """The reference's projection (adamp/adamp.py, _projection) on C^n as R^(2n)."""
  if w.ndim <= 1:
    return p, 1.0, "none"
  for view, rows in (("channel", w.shape[0]), ("layer", 1)):
    wv, gv, pv = (x.reshape(rows, -1) for x in (w, g, p))
    w_norm = np.sqrt(_real_inner(wv, wv, 1))
    g_norm = np.sqrt(_real_inner(gv, gv, 1))
    cosine = np.abs(_real_inner(wv, gv, 1)) / (np.maximum(w_norm, eps) * np.maximum(g_norm, eps))
    if cosine.max() < delta / np.sqrt(2 * wv.shape[1]):
      w_hat = wv / (w_norm[:, None] + eps)
      pv = pv - w_hat * _real_inner(w_hat, pv, 1, True)
      return pv.reshape(p.shape), wd_ratio, view
  return p, 1.0, "none"


def _numpy_adamp(w0, lr, b1, b2, eps, weight_decay, delta, wd_ratio):
  """adamp/adamp.py's step in complex128: exp_avg_sq accumulates |g|^2."""
  w = {k: v.copy() for k, v in w0.items()}
  m = {k: np.zeros_like(v) for k, v in w.items()}
  v = {k: np.zeros(x.shape) for k, x in w.items()}
  views = []
  for t in range(1, STEPS + 1):
    g = _scale_invariant_gradients(t - 1, w)
    used = {}
    for k in w:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * np.abs(g[k]) ** 2
      denom = np.sqrt(v[k]) / np.sqrt(1 - b2 ** t) + eps
      p, factor, used[k] = _project(w[k], g[k], m[k] / denom, delta, wd_ratio, eps)
      w[k] = w[k] * (1 - lr * weight_decay * factor) - lr / (1 - b1 ** t) * p
    views.append(used)
  return w, views


def _run(opt, w0, to_opt, from_opt):
  """Our optimizer on the problem; gradients are taken in the complex layout."""
  params = {k: to_opt(v) for k, v in w0.items()}
  state = opt.init(params)
  update = jax.jit(opt.update)
  for t in range(STEPS):
    w = {k: from_opt(v) for k, v in params.items()}
    grads = {k: to_opt(v) for k, v in _scale_invariant_gradients(t, w).items()}
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return {k: from_opt(v) for k, v in params.items()}


def _as_complex64(x):
  return jnp.asarray(x, jnp.complex64)


def _from_jax(x):
  return np.asarray(x).astype(np.complex128)


def _side_by_side(x):
  """A complex leaf as one real leaf: real parts, then imaginary parts, along axis 1
  for kernels (rows of the output-channel view hold both) and axis 0 for vectors."""
  x = np.asarray(x)
  axis = 1 if x.ndim > 1 else 0
  return jnp.asarray(np.concatenate([x.real, x.imag], axis=axis), jnp.float32)


def _from_side_by_side(x):
  x = np.asarray(x, np.float64)
  axis = 1 if x.ndim > 1 else 0
  real, imag = np.split(x, 2, axis=axis)
  return real + 1j * imag


def _initial_weights():
  rng = np.random.default_rng(0)
  return {k: _complex(rng, s) for k, s in SHAPES.items()}


def test_views_of_the_problem():
  """The problem exercises every branch of the projection (else the tests below could
  not tell a wrong cosine from a right one)."""
  _, views = _numpy_adamp(_initial_weights(), 0.01, 0.9, 0.999, 1e-8, 0.1, 0.1, 0.1)
  assert views[0] == {"kernel": "channel", "conv": "channel", "layer": "layer",
                      "bias": "none", "generic": "none"}
  assert views[-1] == views[0]


@pytest.mark.parametrize("kwargs", [dict(), dict(weight_decay=0.1, wd_ratio=0.3)])
def test_adamp_on_complex_weights_equals_complex_numpy_transcription(kwargs):
  args = dict(lr=0.01, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, delta=0.1,
              wd_ratio=0.1) | kwargs
  expected, _ = _numpy_adamp(_initial_weights(), **args)
  opt = adamp(args["lr"], args["b1"], args["b2"], args["eps"], args["weight_decay"],
              delta=args["delta"], wd_ratio=args["wd_ratio"], channel_axis=0)
  got = _run(opt, _initial_weights(), _as_complex64, _from_jax)
  for k in SHAPES:
    np.testing.assert_allclose(got[k], expected[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.mark.parametrize("kwargs", [
    dict(weight_decay=0.1),
    dict(weight_decay=0.1, nesterov=True),
    dict(weight_decay=0.1, project_momentum=False, dampening=0.2),
])
def test_sgdp_on_complex_weights_equals_sgdp_on_real_and_imaginary_parts(kwargs):
  opt = sgdp(0.05, channel_axis=0, **kwargs)
  complex_run = _run(opt, _initial_weights(), _as_complex64, _from_jax)
  real_run = _run(opt, _initial_weights(), _side_by_side, _from_side_by_side)
  for k in SHAPES:
    np.testing.assert_allclose(complex_run[k], real_run[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # The projection changed the result (a test that could not fail otherwise).
  unprojected = _run(sgdp(0.05, channel_axis=0, delta=0.0, **kwargs), _initial_weights(),
                     _as_complex64, _from_jax)
  assert np.abs(unprojected["kernel"] - complex_run["kernel"]).max() > 1e-3


@pytest.mark.parametrize("shape", [(), (1, 1), (2, 2), (3, 2, 2)])
def test_unprojected_steps_on_complex_weights_equal_optax(shape):
  """The issue's example: with delta = 0 nothing is projected, so sgdp is optax.sgd with
  momentum and adamp is optax.adamw, at w = exp(i pi / 3) (each was 0 or ~0 for
  kernels, from a complex cosine)."""
  w = jnp.full(shape, np.exp(1j * np.pi / 3), jnp.complex64)
  pairs = [(sgdp(0.1, delta=0.0), optax.sgd(0.1, momentum=0.9)),
           (adamp(0.1, delta=0.0, weight_decay=0.1), optax.adamw(0.1, weight_decay=0.1))]
  for (ours, theirs), g in itertools.product(pairs, (w, jnp.full_like(w, 0.5 - 0.25j))):
    u_ours, _ = ours.update(g, ours.init(w), w)
    u_theirs, _ = theirs.update(g, theirs.init(w), w)
    np.testing.assert_allclose(np.asarray(u_ours), np.asarray(u_theirs), rtol=1e-6)
    assert np.all(np.abs(np.asarray(u_ours)) > 0.01)


def test_complex_least_squares_trains_with_every_member():
  """min ||A z - b||^2 over a complex (6, 4) kernel: each optimizer gets near the
  optimum (the loss was rising for sgdp and stalling for adamp)."""
  rng = np.random.default_rng(5)
  a = jnp.asarray(_complex(rng, (20, 6)), jnp.complex64)
  b = jnp.asarray(_complex(rng, (20, 4)), jnp.complex64)
  a64, b64 = np.asarray(a, np.complex128), np.asarray(b, np.complex128)
  optimum = np.linalg.lstsq(a64, b64, rcond=None)[0]
  best = float(np.sum(np.abs(a64 @ optimum - b64) ** 2))

  def loss(z):
    return jnp.sum(jnp.abs(a @ z - b) ** 2)

  def gradient(z):
    # dL/dRe(z) + i dL/dIm(z) = 2 A^H (A z - b).
    return 2 * jnp.conj(a).T @ (a @ z - b)

  z0 = jnp.asarray(_complex(rng, (6, 4)), jnp.complex64)
  initial = float(loss(z0))
  for opt in (sgdp(0.01), adamp(0.05), novograd(0.05)):
    z, state = z0, opt.init(z0)

    @jax.jit
    def step(z, state, opt=opt):
      updates, state = opt.update(gradient(z), state, z)
      return optax.apply_updates(z, updates), state

    for _ in range(300):
      z, state = step(z, state)
    assert float(loss(z)) - best < 1e-2 * (initial - best)


@pytest.mark.parametrize("side, projected", [(0.99, True), (1.01, False)])
def test_complex_threshold_counts_two_real_coordinates_per_entry(side, projected):
  """Per-channel cosines just below or above delta / sqrt(2 m) for rows of m complex
  entries: projected exactly as the side-by-side real weight (rows of 2 m reals) is.
  With m in place of 2 m both would be projected."""
  delta, m = 0.1, 6
  rng = np.random.default_rng(7)
  w = _complex(rng, (3, m))  # PyTorch layout: 3 output channels of m entries
  cosine = side * delta / np.sqrt(2 * m)
  g = np.empty_like(w)
  for row in range(3):
    r = _complex(rng, (m,))
    orthogonal = r - w[row] * _real_inner(w[row], r) / _real_inner(w[row], w[row])
    u = orthogonal / np.sqrt(_real_inner(orthogonal, orthogonal))
    w_hat = w[row] / np.sqrt(_real_inner(w[row], w[row]))
    g[row] = cosine * w_hat + np.sqrt(1 - cosine ** 2) * u
  assert cosine < delta / np.sqrt(m)  # below the threshold of m coordinates
  opt = sgdp(0.1, momentum=0.0, delta=delta, channel_axis=0)
  results = []
  for to_opt, from_opt in ((_as_complex64, _from_jax), (_side_by_side, _from_side_by_side)):
    params, grads = to_opt(w), to_opt(g)
    updates, _ = opt.update(grads, opt.init(params), params)
    results.append(from_opt(updates))
  np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-6)
  # Unprojected, the step is -lr g; projected, its radial part is removed.
  radial_part_removed = np.abs(results[0] + 0.1 * g).max() > 1e-4
  assert radial_part_removed == projected


def _side_by_side_axis0(x):
  """A complex leaf as one real leaf, real parts then imaginary parts along axis 0 (a
  scalar becomes a pair): for kernels in the Flax layout (output channel last) and
  whole-leaf layers."""
  x = np.asarray(x)
  return jnp.asarray(np.concatenate([np.atleast_1d(x.real), np.atleast_1d(x.imag)]),
                     jnp.float32)


def _from_side_by_side_axis0(x, shape):
  real, imag = np.split(np.asarray(x, np.float64), 2, axis=0)
  return (real + 1j * imag).reshape(shape)


# Every member whose rule uses only L2 norms, inner products and linear moments: on
# complex weights it must equal itself on the real and imaginary parts side by side.
# (Adam's moment is per complex entry, |g|^2, and an L-inf norm takes the modulus of
# each entry: both differ from the side-by-side problem by definition.)
SIDE_BY_SIDE_CASES = {
    "novograd": lambda: novograd(0.05, weight_decay=0.01, grad_averaging=True, amsgrad=True),
    "novograd_luc_decoupled": lambda: novograd(0.05, weight_decay=0.01, trust_coefficient=1e-2,
                                               decay_inside_moment=False),
    "sngm": lambda: nvg.sngm(0.05, weight_decay=0.01),
    "sgdp": lambda: sgdp(0.05, weight_decay=0.01),
    "normalize_by_norm_average": lambda: optax.chain(
        nvg.normalize_by_norm_average(0.9, inner=optax.ema(0.9), bias_correction=True),
        optax.scale(-0.05)),
    **{f"presets.{peer.preset.__name__}": (lambda peer=peer: peer.preset(0.05, weight_decay=0.01))
       for peer in presets.PEERS},
    "presets.nemo_luc": lambda: presets.nemo(0.05, luc=True, weight_decay=0.01),
    "presets.openseq2seq_larc": lambda: presets.openseq2seq(0.05, larc_eta=1e-2),
}


@pytest.mark.parametrize("make", SIDE_BY_SIDE_CASES.values(), ids=list(SIDE_BY_SIDE_CASES))
def test_norm_based_members_on_complex_weights_equal_real_and_imaginary_parts(make):
  rng = np.random.default_rng(11)
  shapes = {"kernel": (4, 3), "bias": (3,), "scale": ()}
  w0 = {k: _complex(rng, s) for k, s in shapes.items()}
  grads = [{k: _complex(rng, s) for k, s in shapes.items()} for _ in range(5)]
  opt = make()
  results = []
  for to_opt in (_as_complex64, _side_by_side_axis0):
    params = {k: to_opt(v) for k, v in w0.items()}
    state = opt.init(params)
    for g in grads:
      updates, state = opt.update({k: to_opt(v) for k, v in g.items()}, state, params)
      params = optax.apply_updates(params, updates)
    results.append(params)
  for k, shape in shapes.items():
    complex_run = _from_jax(results[0][k])
    real_run = _from_side_by_side_axis0(results[1][k], shape)
    np.testing.assert_allclose(complex_run, real_run, rtol=2e-5, atol=2e-6, err_msg=k)
    assert np.abs(complex_run - w0[k]).max() > 1e-3  # it trained
