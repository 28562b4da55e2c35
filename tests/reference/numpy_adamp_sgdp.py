r"""AdamP and SGDP in plain NumPy, transcribed from the PyTorch reference.

Heo et al., *AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights*, ICLR 2021; the reference is Clova AI's ``adamp/adamp.py``
and ``adamp/sgdp.py`` (also the ``adamp`` package on PyPI). Kernels are in PyTorch
layout: the output channel is axis 0, so the per-channel view is
``x.view(x.size(0), -1)`` and the whole-layer view is ``x.view(1, -1)``::

    for view in (per-output-channel, whole-layer):      # only for ndim > 1
      cos = |cosine_similarity(g, w, dim=1, eps)|       # <g, w> / (max(||g||, eps) max(||w||, eps))
      if max(cos) < delta / sqrt(row length):
        w_hat = w / (||w|| + eps);  p -= w_hat <w_hat, p>;  wd_factor = wd_ratio; stop

AdamP::

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    denom = sqrt(v) / sqrt(1 - b2^t) + eps
    p = m / denom   (Nesterov: (b1 m + (1 - b1) g) / denom);  project p
    w = w * (1 - lr wd wd_factor);  w = w - lr / (1 - b1^t) * p

SGDP::

    buf = momentum buf + (1 - dampening) g;  p = buf  (Nesterov: g + momentum buf)
    project p     # in place: without Nesterov p *is* buf, so the buffer is projected
    w = w * (1 - lr wd wd_factor / (1 - momentum));  w = w - lr p

``buffer_projected=False`` gives the paper's Algorithm 1 as printed (the buffer
keeps the unprojected sum).

Everything in float64; nothing here uses jax or the library under test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CHANNEL, LAYER, NONE = "channel", "layer", "none"


def project(w, g, p, delta, wd_ratio, eps):
  """Returns (projected p, weight-decay factor, which view triggered)."""
  if w.ndim <= 1:
    return p, 1.0, NONE
  for name, rows in ((CHANNEL, w.shape[0]), (LAYER, 1)):
    wv, gv, pv = (x.reshape(rows, -1) for x in (w, g, p))
    cos = np.abs(np.sum(wv * gv, axis=1)) / (
        np.maximum(np.linalg.norm(gv, axis=1), eps) * np.maximum(np.linalg.norm(wv, axis=1), eps))
    if cos.max() < delta / np.sqrt(wv.shape[1]):
      w_hat = wv / (np.linalg.norm(wv, axis=1, keepdims=True) + eps)
      pv = pv - w_hat * np.sum(w_hat * pv, axis=1, keepdims=True)
      return pv.reshape(p.shape), wd_ratio, name
  return p, 1.0, NONE


GradFn = Callable[[int, dict], dict]


def numpy_adamp(params, grad_fn: GradFn, num_steps, lr, b1=0.9, b2=0.999, eps=1e-8,
                weight_decay=0.0, delta=0.1, wd_ratio=0.1, nesterov=False):
  """Trajectory of the weights and, per step, which view each leaf used."""
  w = {k: np.asarray(v, np.float64) for k, v in params.items()}
  m = {k: np.zeros_like(v) for k, v in w.items()}
  v = {k: np.zeros_like(x) for k, x in w.items()}
  weights, views = [], []
  for t in range(1, num_steps + 1):
    g = {k: np.asarray(x, np.float64) for k, x in grad_fn(t - 1, w).items()}
    used = {}
    for k in w:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      denom = np.sqrt(v[k]) / np.sqrt(1 - b2 ** t) + eps
      p = (b1 * m[k] + (1 - b1) * g[k]) / denom if nesterov else m[k] / denom
      p, factor, used[k] = project(w[k], g[k], p, delta, wd_ratio, eps)
      w[k] = w[k] * (1 - lr * weight_decay * factor) - lr / (1 - b1 ** t) * p
    weights.append({k: x.copy() for k, x in w.items()})
    views.append(used)
  return weights, views


def numpy_sgdp(params, grad_fn: GradFn, num_steps, lr, momentum=0.9, dampening=0.0,
               eps=1e-8, weight_decay=0.0, delta=0.1, wd_ratio=0.1, nesterov=False,
               buffer_projected=True):
  w = {k: np.asarray(v, np.float64) for k, v in params.items()}
  buf = {k: np.zeros_like(v) for k, v in w.items()}
  weights, views, buffers = [], [], []
  for t in range(num_steps):
    g = {k: np.asarray(x, np.float64) for k, x in grad_fn(t, w).items()}
    used = {}
    for k in w:
      buf[k] = momentum * buf[k] + (1 - dampening) * g[k]
      p = g[k] + momentum * buf[k] if nesterov else buf[k]
      p, factor, used[k] = project(w[k], g[k], p, delta, wd_ratio, eps)
      if buffer_projected and not nesterov:
        buf[k] = p
      w[k] = w[k] * (1 - lr * weight_decay * factor / (1 - momentum)) - lr * p
    weights.append({k: x.copy() for k, x in w.items()})
    views.append(used)
    buffers.append({k: x.copy() for k, x in buf.items()})
  return weights, views, buffers


# A test problem in PyTorch layout: per leaf, how its gradient relates to w.
TORCH_SHAPES = {
    "bias": (4,),                 # 1-D: never projected
    "conv": (4, 2, 3, 3),         # gradient orthogonal to every output channel
    "dense_channel": (4, 6),      # gradient orthogonal to every output channel
    "dense_layer": (5, 3),        # orthogonal to the whole kernel only
    "generic": (3, 4),            # strongly aligned with w: no projection
}
EXPECTED_VIEWS = {"bias": NONE, "conv": CHANNEL, "dense_channel": CHANNEL,
                  "dense_layer": LAYER, "generic": NONE}


def torch_to_flax(x):
  """(out, in) -> (in, out); (out, in, kh, kw) -> (kh, kw, in, out)."""
  x = np.asarray(x)
  if x.ndim == 2:
    return x.T
  if x.ndim == 4:
    return x.transpose(2, 3, 1, 0)
  return x


def flax_to_torch(x):
  x = np.asarray(x)
  if x.ndim == 2:
    return x.T
  if x.ndim == 4:
    return x.transpose(3, 2, 0, 1)
  return x


def initial_params(seed=0):
  rng = np.random.default_rng(seed)
  return {k: rng.normal(size=s) for k, s in TORCH_SHAPES.items()}


def gradients(step, w, seed=1):
  """Gradients (PyTorch layout) of the kinds named in TORCH_SHAPES at weights w."""
  rng = np.random.default_rng(seed + 1000 * step)
  g = {}
  for k, shape in TORCH_SHAPES.items():
    r = rng.normal(size=shape)
    x = np.asarray(w[k], np.float64)
    if k in ("conv", "dense_channel"):
      rows, xr = r.reshape(shape[0], -1), x.reshape(shape[0], -1)
      rows = rows - xr * (np.sum(rows * xr, 1, keepdims=True) / np.sum(xr * xr, 1,
                                                                        keepdims=True))
      g[k] = rows.reshape(shape)
    elif k == "dense_layer":
      g[k] = r - x * (np.sum(r * x) / np.sum(x * x))
    elif k == "generic":
      g[k] = r + 2.0 * x
    else:
      g[k] = r
  return g
