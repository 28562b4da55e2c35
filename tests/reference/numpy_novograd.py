r"""NovoGrad in plain NumPy, transcribed from the paper, for the tests to compare against.

Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments
for Training of Deep Networks*, 2019, §3: eq. (1), eq. (2), Algorithm 1, the
"gradient averaging" form of the first moment, footnote 1 (the norm), footnote 2
(``b2 = 0``) and the AMSGrad variant. For every layer ``l`` and step
``t = 1, 2, ...``::

    v_t = b2 * v_{t-1} + (1 - b2) * ||g_t||^2                 # eq. (1), one number per layer
    vhat_t = max(vhat_{t-1}, v_t)                             # AMSGrad only, vhat_0 = 0
    n_t = g_t / (sqrt(v_t + eps_root) + eps)                  # vhat_t instead of v_t (AMSGrad)
    m_t = b1 * m_{t-1} + c * (n_t + d_t * w_t)                # eq. (2); c = 1, or 1 - b1
    w_{t+1} = w_t - lr_t * m_t

with ``m_0 = 0`` and ``v_1 = ||g_1||^2`` (Algorithm 1's moment initialization,
``nu_init="first"``) or ``v_0 = 0`` (a plain moving average, ``nu_init="zero"``). The
paper's ``sqrt(v + eps)`` is ``eps=0, eps_root=eps``. With ``norm="linf"``,
``||g||^2`` is replaced by ``max |g|^2``. Complex gradients use
``||g||^2 = sum |g|^2``. Schedules (``lr_t``, ``d_t``) are callables evaluated at
the 0-based step index ``t - 1``, as optax counts.

Everything is computed in float64 (complex128) from whatever dtype the inputs
have; nothing here uses jax or the library under test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Union

import numpy as np

Number = Union[float, Callable[[int], float]]
AxesSpec = Union[None, int, tuple[int, ...]]


class NumpyNovogradTrace(NamedTuple):
  """Everything the reference computed, one entry per step ``t = 1..T``.

  Attributes:
    params: ``params[t-1]`` is the list of leaves ``w_{t+1}`` after step ``t``.
    normalized: ``normalized[t-1]`` is the list of ``n_t = g_t / (sqrt(v+eps_root)+eps)``
      (the output of the layer-wise normalization alone).
    nu: ``nu[t-1]`` is the list of per-layer second moments ``v_t`` (a 0-d array per
      leaf, or an array of the shape of the leaf's layer axes).
    mu: ``mu[t-1]`` is the list of first moments ``m_t``.
  """

  params: list[list[np.ndarray]]
  normalized: list[list[np.ndarray]]
  nu: list[list[np.ndarray]]
  mu: list[list[np.ndarray]]


def _wide(x: Any) -> np.ndarray:
  """x as float64, or complex128 for complex input (also from bfloat16/float16)."""
  x = np.asarray(x)
  return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def _axes(spec: AxesSpec, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """(layer axes, reduced axes) of a leaf of rank ``ndim``."""
  if spec is None:
    layer = ()
  elif isinstance(spec, int):
    layer = (spec % ndim,)
  else:
    layer = tuple(sorted(a % ndim for a in spec))
  return layer, tuple(a for a in range(ndim) if a not in layer)


def _per_leaf(value: Any, n: int) -> list[Any]:
  """A per-leaf list from one value for all leaves, or from a list of n."""
  if isinstance(value, list):
    assert len(value) == n, (len(value), n)
    return value
  return [value] * n


def _at(value: Number, step: int) -> float:
  return float(value(step)) if callable(value) else float(value)


def layer_squared_norm(g: np.ndarray, reduce_axes: tuple[int, ...], norm: str) -> np.ndarray:
  """||g||_2^2 = sum |g|^2 or ||g||_inf^2 = max |g|^2 over ``reduce_axes``."""
  squared = np.abs(_wide(g)) ** 2
  if norm == "l2":
    return np.sum(squared, axis=reduce_axes)
  if norm == "linf":
    if squared.size == 0:
      return np.zeros([squared.shape[a] for a in range(squared.ndim)
                       if a not in reduce_axes])
    return np.max(squared, axis=reduce_axes)
  raise ValueError(norm)


def numpy_novograd(
    params: Sequence[Any],
    grads_per_step: Sequence[Sequence[Any]],
    *,
    learning_rate: Number = 0.1,
    b1: float = 0.9,
    b2: float = 0.25,
    eps: float = 1e-6,
    eps_root: float = 0.0,
    weight_decay: Number = 0.0,
    weight_decay_mask: Sequence[bool] | None = None,
    grad_averaging: bool = False,
    amsgrad: bool = False,
    norm: str = "l2",
    nu_init: str = "first",
    layer_axes: AxesSpec | list[AxesSpec] = None,
) -> NumpyNovogradTrace:
  r"""Runs NovoGrad for ``len(grads_per_step)`` steps on a list of layers.

  Args:
    params: the initial weights ``w_1``, a list of arrays (any dtype, including
      bfloat16, float16, complex64). Each array is one layer unless ``layer_axes``
      says otherwise.
    grads_per_step: ``grads_per_step[t-1]`` is the list of gradients ``g_t`` (same
      shapes as ``params``). The gradients are given, not computed from the weights.
    learning_rate: ``lr_t``, a float or a callable of the 0-based step.
    b1: momentum ``beta_1``.
    b2: decay ``beta_2`` of the layer-wise second moment (0: layer-wise NGD).
    eps: added to ``sqrt(v)``, outside the root.
    eps_root: added to ``v`` inside the root (the paper's epsilon).
    weight_decay: ``d_t``, a float or a callable of the 0-based step.
    weight_decay_mask: a list of bools, one per leaf, False where no decay applies.
    grad_averaging: ``m_t = b1 m_{t-1} + (1 - b1)(...)``.
    amsgrad: normalize with ``vhat_t = max(vhat_{t-1}, v_t)``.
    norm: ``"l2"`` or ``"linf"``.
    nu_init: ``"first"`` (``v_1 = ||g_1||^2``) or ``"zero"`` (``v_0 = 0``).
    layer_axes: for each leaf (a list) or for all leaves (one value): ``None`` (the
      leaf is one layer), an int or a tuple of ints: the axes that index stacked
      layers; the norm is then taken over the other axes, per index.

  Returns:
    A :class:`NumpyNovogradTrace` of float64/complex128 arrays, one entry per step.
  """
  n = len(params)
  w = [_wide(p) for p in params]
  mask = list(weight_decay_mask) if weight_decay_mask is not None else [True] * n
  specs = _per_leaf(layer_axes, n)
  layouts = [_axes(spec, p.ndim) for spec, p in zip(specs, w, strict=True)]
  v = [np.zeros([p.shape[a] for a in layer]) for p, (layer, _) in zip(w, layouts, strict=True)]
  vhat = [np.zeros_like(x) for x in v]
  m = [np.zeros_like(p) for p in w]
  trace = NumpyNovogradTrace([], [], [], [])
  for step, grads in enumerate(grads_per_step):  # step = t - 1
    assert len(grads) == n
    lr = _at(learning_rate, step)
    d = _at(weight_decay, step)
    new_w, normalized, new_v, new_m = [], [], [], []
    for i in range(n):
      g = _wide(grads[i])
      layer, reduce = layouts[i]
      squared_norm = layer_squared_norm(g, reduce, norm)
      if nu_init == "first" and step == 0:
        v[i] = squared_norm  # Algorithm 1: v_1 = ||g_1||^2.
      else:
        v[i] = b2 * v[i] + (1.0 - b2) * squared_norm
      vhat[i] = np.maximum(vhat[i], v[i])
      moment = vhat[i] if amsgrad else v[i]
      denominator = np.sqrt(moment + eps_root) + eps
      # Broadcast one number per layer back over the reduced axes.
      n_i = g / np.expand_dims(denominator, reduce)
      decayed = n_i + (d * w[i] if mask[i] else 0.0)
      c = (1.0 - b1) if grad_averaging else 1.0
      m[i] = b1 * m[i] + c * decayed
      w[i] = w[i] - lr * m[i]
      new_w.append(w[i].copy())
      normalized.append(n_i)
      new_v.append(v[i].copy())
      new_m.append(m[i].copy())
    trace.params.append(new_w)
    trace.normalized.append(normalized)
    trace.nu.append(new_v)
    trace.mu.append(new_m)
  return trace


def random_problem(
    shapes: Sequence[tuple[int, ...]],
    num_steps: int,
    dtype: Any = np.float32,
    seed: int = 0,
    leaf_scales: Sequence[float] | None = None,
) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
  """Random initial weights and ``num_steps`` gradients for layers of ``shapes``.

  Each step's gradients get a random overall scale in [0.2, 5] so that the second
  moment both rises and falls (AMSGrad then differs from plain NovoGrad), and
  leaf ``i`` is multiplied by ``leaf_scales[i]`` (a tiny scale makes the placement
  of ``eps`` matter). ``dtype`` may be a NumPy dtype or a jax one such as
  ``jnp.bfloat16``; complex dtypes get complex normal entries. The arrays are
  returned already rounded to ``dtype``, so the reference sees exactly what the
  optimizer sees.
  """
  rng = np.random.default_rng(seed)
  scales = [1.0] * len(shapes) if leaf_scales is None else list(leaf_scales)
  is_complex = np.issubdtype(np.dtype(dtype), np.complexfloating)

  def draw(shape):
    x = rng.normal(size=shape)
    if is_complex:
      x = x + 1j * rng.normal(size=shape)
    return x

  params = [np.asarray(draw(s)).astype(dtype) for s in shapes]
  grads = []
  for _ in range(num_steps):
    step_scale = rng.uniform(0.2, 5.0)
    grads.append([np.asarray(draw(s) * step_scale * c).astype(dtype)
                  for s, c in zip(shapes, scales, strict=True)])
  return params, grads
