r"""The NovoGrads of other libraries in plain NumPy, transcribed from their sources, for
the preset tests to compare against.

Each function follows its peer's ``step`` line by line, in the peer's order of
operations and with its quirks (how the moment starts, where ``eps`` and the weight
decay enter, what is debiased), one layer per leaf:

* :func:`torch_style` — the PyTorch NovoGrad of NVIDIA's Jasper example, as copied in
  ``torch_optimizer/novograd.py`` (pytorch-optimizer), ``timm/optim/nvnovograd.py``
  and ``nemo/core/optim/novograd.py`` (NeMo adds layer-wise update clipping, ``luc``);
* :func:`apex_fused` — ``apex/optimizers/fused_novograd.py`` and its CUDA kernels
  ``csrc/multi_tensor_novograd.cu`` (update) and ``csrc/multi_tensor_l2norm_kernel.cu``
  (``multi_tensor_norm_out_cuda``: the per-layer norm blend);
* :func:`tf_addons` — ``tensorflow_addons/optimizers/novograd.py`` with Keras'
  momentum kernel (``accum = momentum * accum - lr * grad; var += accum``);
* :func:`openseq2seq` — ``open_seq2seq/optimizers/novograd.py`` (TF1) after the LARC
  of ``optimize_loss`` in ``open_seq2seq/optimizers/optimizers.py``, with
  ``tf.train.MomentumOptimizer`` (``accum = momentum * accum + grad; var -= lr * accum``).

Inputs: ``params``, a list of arrays; ``grads``, a list over steps of lists of
arrays. The learning rate is a float or a callable of the 0-based step. Returns the
list over steps of the parameter lists after each step. Everything is float64;
nothing here uses jax or the library under test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

Rate = Union[float, Callable[[int], float]]
Leaves = list[np.ndarray]


def _rate(lr: Rate, step: int) -> float:
  return float(lr(step)) if callable(lr) else float(lr)


def _wide(leaves: Sequence[Any]) -> Leaves:
  return [np.array(x, dtype=np.float64) for x in leaves]


def torch_style(
    params: Sequence[Any], grads: Sequence[Sequence[Any]], *, lr: Rate, betas=(0.95, 0.98),
    eps=1e-8, weight_decay=0.0, grad_averaging=False, amsgrad=False, luc=False,
    luc_trust=1e-3, luc_eps=1e-8, decoupled_decay=False, corrected_weight_decay=False,
) -> list[Leaves]:
  """``luc*``: NeMo only; ``decoupled_decay``, ``corrected_weight_decay``: timm 1.0.31
  only (``max_lr_snapshot`` is the constructor's lr, here ``lr`` at step 0)."""
  beta1, beta2 = betas
  max_lr = _rate(lr, 0)
  w = _wide(params)
  exp_avg = [np.zeros_like(p) for p in w]
  exp_avg_sq = [0.0] * len(w)
  max_exp_avg_sq = [0.0] * len(w)
  out = []
  for step, step_grads in enumerate(grads):
    rate = _rate(lr, step)
    for i, g in enumerate(_wide(step_grads)):
      norm = np.sum(g ** 2)
      # `if exp_avg_sq == 0: copy_(norm)`: a zero moment restarts, at any step.
      if exp_avg_sq[i] == 0:
        exp_avg_sq[i] = norm
      else:
        exp_avg_sq[i] = exp_avg_sq[i] * beta2 + (1 - beta2) * norm
      if amsgrad:
        max_exp_avg_sq[i] = max(max_exp_avg_sq[i], exp_avg_sq[i])
        denom = np.sqrt(max_exp_avg_sq[i]) + eps
      else:
        denom = np.sqrt(exp_avg_sq[i]) + eps
      g = g / denom
      if weight_decay != 0:
        if decoupled_decay:
          wd_scale = rate ** 2 / max_lr if corrected_weight_decay else rate
          w[i] = w[i] * (1.0 - wd_scale * weight_decay)
        else:
          g = g + weight_decay * w[i]
      if grad_averaging:
        g = g * (1 - beta1)
      exp_avg[i] = exp_avg[i] * beta1 + g
      if luc:
        data_norm = np.linalg.norm(w[i])
        grad_norm = np.linalg.norm(exp_avg[i])
        luc_factor = min(luc_trust * data_norm / (grad_norm + luc_eps), rate)
        w[i] = w[i] - luc_factor * exp_avg[i]
      else:
        w[i] = w[i] - rate * exp_avg[i]
    out.append([x.copy() for x in w])
  return out


def apex_fused(
    params: Sequence[Any], grads: Sequence[Sequence[Any]], *, lr: Rate, bias_correction=True,
    betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, reg_inside_moment=False,
    grad_averaging=True, norm_type=2, init_zero=False,
) -> list[Leaves]:
  beta1, beta2 = betas
  w = _wide(params)
  exp_avg = [np.zeros_like(p) for p in w]
  grad_norms = None  # group['exp_avg_sq']: the per-layer *norm*, created on step 1
  out = []

  def layer_norm(g):
    return np.max(np.abs(g)) if norm_type == 0 else np.sqrt(np.sum(g ** 2))

  for step_index, step_grads in enumerate(grads):
    step = step_index + 1
    rate = _rate(lr, step_index)
    g_all = _wide(step_grads)
    if grad_norms is None:
      # init_zero: zeros; else the first step's norms, "so first blend have no effect".
      grad_norms = [0.0 if init_zero else layer_norm(g) for g in g_all]
    # multi_tensor_norm_out_cuda(..., alpha=beta2, beta=1-beta2, norm_type).
    for i, g in enumerate(g_all):
      n = layer_norm(g)
      if norm_type == 0:
        grad_norms[i] = beta2 * grad_norms[i] + (1 - beta2) * n
      else:
        grad_norms[i] = np.sqrt(beta2 * grad_norms[i] ** 2 + (1 - beta2) * n ** 2)
    bias_correction1, bias_correction2 = 1.0, 1.0
    if bias_correction:
      bias_correction1 = 1 - beta1 ** step
      bias_correction2 = np.sqrt(1 - beta2 ** step)
    beta3 = 1 - beta1 if grad_averaging else 1.0
    for i, g in enumerate(g_all):
      if reg_inside_moment:  # MOMENT_MODE_0
        denom = grad_norms[i] / bias_correction2 + eps
        g = g / denom + weight_decay * w[i]
        exp_avg[i] = beta1 * exp_avg[i] + beta3 * g
        w[i] = w[i] - rate * (exp_avg[i] / bias_correction1)
      else:  # MOMENT_MODE_1, decoupled
        exp_avg[i] = beta1 * exp_avg[i] + beta3 * g
        next_m_unbiased = exp_avg[i] / bias_correction1
        denom = grad_norms[i] / bias_correction2 + eps
        update = next_m_unbiased / denom + weight_decay * w[i]
        w[i] = w[i] - rate * update
    out.append([x.copy() for x in w])
  return out


def tf_addons(
    params: Sequence[Any], grads: Sequence[Sequence[Any]], *, learning_rate: Rate,
    beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=0.0, grad_averaging=False,
    amsgrad=False,
) -> list[Leaves]:
  epsilon = epsilon or 1e-7  # `epsilon or tf.keras.backend.epsilon()`
  w = _wide(params)
  m = [np.zeros_like(p) for p in w]
  v = [0.0] * len(w)
  vhat = [np.zeros_like(p) for p in w]  # add_slot(var, "vhat"): shaped like the var
  out = []
  for iterations, step_grads in enumerate(grads):
    rate = _rate(learning_rate, iterations)
    for i, grad in enumerate(_wide(step_grads)):
      g_2 = np.sum(grad ** 2)
      v[i] = g_2 if iterations == 0 else v[i] * beta_2 + g_2 * (1 - beta_2)
      if amsgrad:
        vhat[i] = np.maximum(vhat[i], v[i])
        grad = grad / (np.sqrt(vhat[i]) + epsilon)
      else:
        grad = grad / (np.sqrt(v[i]) + epsilon)
      if weight_decay > 0:
        grad = grad + weight_decay * w[i]
      if grad_averaging and iterations != 0:
        grad = grad * (1 - beta_1)
      # resource_apply_keras_momentum, use_nesterov=False.
      m[i] = m[i] * beta_1 - rate * grad
      w[i] = w[i] + m[i]
    out.append([x.copy() for x in w])
  return out


def openseq2seq(
    params: Sequence[Any], grads: Sequence[Sequence[Any]], *, learning_rate: Rate,
    beta1=0.95, beta2=0.98, epsilon=1e-8, weight_decay=0.0, grad_averaging=False,
    larc_eta=None, larc_mode="clip", larc_min_update=1e-7, larc_epsilon=1e-7,
) -> list[Leaves]:
  w = _wide(params)
  accum = [np.zeros_like(p) for p in w]
  # tf.get_variable("nvgrad2_ema<i>", initializer=Zeros): never assigned afterwards
  # (apply_gradients rebinds the Python list entry to the tf.cond result), so every
  # step reads 0 here.
  grads_ema_variable = [0.0] * len(w)
  out = []
  for step, step_grads in enumerate(grads):
    rate = _rate(learning_rate, step)
    g_all = _wide(step_grads)
    if larc_eta is not None:  # post_process_gradients
      for i, g in enumerate(g_all):
        v_norm = np.linalg.norm(w[i])
        g_norm = np.linalg.norm(g)
        if larc_mode == "clip":
          larc_grad_update = max(larc_eta * v_norm / (rate * (g_norm + larc_epsilon)),
                                 larc_min_update)
          larc_grad_update = min(larc_grad_update, 1.0)
        else:
          larc_grad_update = max(larc_eta * v_norm / (g_norm + larc_epsilon), larc_min_update)
        g_all[i] = larc_grad_update * g
    for i, grad in enumerate(g_all):
      g_2 = np.sum(grad ** 2)
      ema = g_2 if grads_ema_variable[i] == 0 else (
          grads_ema_variable[i] * beta2 + g_2 * (1 - beta2))
      grad = grad * (1.0 / np.sqrt(ema + epsilon))
      if weight_decay > 0:
        grad = grad + weight_decay * w[i]
      if grad_averaging:
        grad = grad * (1 - beta1)
      # tf.train.MomentumOptimizer (ApplyMomentum, use_nesterov=False).
      accum[i] = accum[i] * beta1 + grad
      w[i] = w[i] - rate * accum[i]
    out.append([x.copy() for x in w])
  return out
