r"""Each widely used NovoGrad, one call away.

One function per implementation people migrate from. Each takes that
implementation's own constructor arguments, by its own names and with its own
defaults, and returns the optax transformation that reproduces its updates (to
float32 round-off, tested over 50 steps in every switch combination), quirks
included::

    import novograd_optax as nvg
    tx = nvg.presets.timm(lr=1e-3, betas=(0.95, 0.98), weight_decay=1e-3)

The implementations disagree on more than defaults (``b2`` is 0.25, 0.98, 0.999
or 0; ``eps`` inside or outside the root; weight decay inside the normalized
moment or decoupled; bias correction or not; update clipping or not); each
docstring states its peer's rule and cites the source file it was read from.
Every preset is a chain of this package's public pieces
(:func:`~novograd_optax.scale_by_layerwise_norm`,
:func:`~novograd_optax.normalize_by_norm_average`,
:func:`~novograd_optax.clip_by_layerwise_trust_ratio`, :func:`~novograd_optax.novograd`)
and optax's, so it can be taken apart or extended like any other.

Arguments are checked as the peer checks them (and for values no peer could
use, such as a negative weight decay), with a ``ValueError`` naming the
argument. The learning rate may also be an optax schedule (the peers' schedulers
change it between steps), and every numeric argument can be injected with
``optax.inject_hyperparams`` (apex's int ``norm_type`` excepted: make it static).
``update`` needs ``params`` where a preset uses them (weight decay, update
clipping). The table of the docs' migration page is
rendered from :data:`PEERS`.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax.numpy as jnp
import optax as _optax
from optax import GradientTransformationExtraArgs, ScalarOrSchedule

from novograd_optax._src import validation
from novograd_optax._src.alias import novograd
from novograd_optax._src.layerwise_norm import scale_by_layerwise_norm
from novograd_optax._src.norm_average import normalize_by_norm_average
from novograd_optax._src.trust_ratio import TrustRatioMode, clip_by_layerwise_trust_ratio
from novograd_optax._src.wrappers import add_decayed_weights_requiring_params, keep_dtypes

__all__ = [
    "PEERS",
    "Peer",
    "apex",
    "nemo",
    "openseq2seq",
    "optax",
    "tf_addons",
    "timm",
    "torch_optimizer",
]


@dataclasses.dataclass(frozen=True)
class Peer:
  """What a preset reproduces: one row of the migration table.

  Attributes:
    preset: the preset function.
    library: the peer library, as users know it.
    constructor: the peer's optimizer, as users construct it.
    source: the peer's source file the rule was read from.
    differences: how the peer's rule differs from :func:`novograd`'s.
  """

  preset: Callable[..., GradientTransformationExtraArgs]
  library: str
  constructor: str
  source: str
  differences: str


def _check_betas(name: str, betas: Any) -> tuple[Any, Any]:
  if not isinstance(betas, Sequence) or len(betas) != 2:
    raise ValueError(f"{name} must be a pair (beta1, beta2); got {betas!r}.")
  for i, beta in enumerate(betas):
    validation.check_decay_rate(f"{name}[{i}]", beta)
  return betas[0], betas[1]


def _check_positive(name: str, value: Any, *, allow_schedule: bool = False) -> None:
  validation.check_scalar(name, value, low=0.0, low_inclusive=False,
                          allow_schedule=allow_schedule)


def _weight_decay(weight_decay: Any, who: str) -> _optax.GradientTransformation:
  """Decoupled decay ``+ wd * w``; nothing (and no params needed) for a zero."""
  if validation.is_static_zero(weight_decay):
    return _optax.identity()
  return add_decayed_weights_requiring_params(weight_decay, who=f"presets.{who}")


def _momentum(b1: Any, grad_averaging: bool) -> _optax.GradientTransformation:
  """``m = b1 m + x`` or, averaging, ``m = b1 m + (1 - b1) x``; both from ``m_0 = 0``."""
  if grad_averaging:
    return _optax.ema(b1, debias=False)
  return _optax.trace(b1)


def optax(
    learning_rate: ScalarOrSchedule,
    b1: Any = 0.9,
    b2: Any = 0.25,
    eps: Any = 1e-6,
    eps_root: Any = 0.0,
    weight_decay: Any = 0.0,
) -> GradientTransformationExtraArgs:
  r"""``optax.novograd`` (optax 0.2.8, ``optax/_src/alias.py`` and
  ``scale_by_novograd`` in ``optax/_src/transform.py``).

  .. math::
     v_t = \beta_2 v_{t-1} + (1-\beta_2)\|g_t\|^2\ (v_1 = \|g_1\|^2),\quad
     m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{v_t + \epsilon_{root}} + \epsilon}
     + d\,w_t\ (m_0 = 0),\quad w_{t+1} = w_t - \lambda_t m_t

  That is :func:`novograd` with the same arguments; unlike optax's it needs no
  ``params`` without weight decay, checks its arguments, accepts a weight-decay
  schedule and keeps fp16 layer norms finite.
  """
  return novograd(learning_rate, b1, b2, eps, eps_root, weight_decay)


def _torch_style(lr, b1, b2, eps, weight_decay, grad_averaging, amsgrad, **options):
  """The PyTorch NovoGrad of Jasper's reference code (NVIDIA DeepLearningExamples),
  which timm, NeMo and pytorch-optimizer copy; ``options`` go to :func:`novograd`."""
  validation.check_bool("grad_averaging", grad_averaging)
  validation.check_bool("amsgrad", amsgrad)
  return novograd(lr, b1, b2, eps, 0.0, weight_decay, grad_averaging=grad_averaging,
                  amsgrad=amsgrad, nu_init="first_nonzero", **options)


_TORCH_RULE = r"""
  .. math::
     v_t = \begin{cases}\|g_t\|^2 & v_{t-1} = 0\\
     \beta_2 v_{t-1} + (1-\beta_2)\|g_t\|^2 & \text{otherwise}\end{cases},\quad
     \hat v_t = \max(\hat v_{t-1}, v_t)\ (\text{amsgrad}),\\
     m_t = \beta_1 m_{t-1} + c\Big(\frac{g_t}{\sqrt{v_t}\ (\text{or}\ \sqrt{\hat v_t})
     + \epsilon} + d\,w_t\Big)\ (m_0 = 0),\quad w_{t+1} = w_t - \lambda m_t

  with :math:`c = 1-\beta_1` when ``grad_averaging``, else 1. The moment restarts
  from the current norm whenever it is exactly zero (the peer tests ``v == 0``,
  not the step count), so a layer whose first gradients are zero starts its
  average at its first nonzero gradient: ``novograd(nu_init="first_nonzero")``.
"""


def torch_optimizer(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.95, 0.0),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    grad_averaging: bool = False,
    amsgrad: bool = False,
) -> GradientTransformationExtraArgs:
  # The peer refuses lr <= 0, eps < 0, betas outside [0, 1) and weight_decay < 0.
  _check_positive("lr", lr, allow_schedule=True)
  b1, b2 = _check_betas("betas", betas)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  return _torch_style(lr, b1, b2, eps, weight_decay, grad_averaging, amsgrad)


torch_optimizer.__doc__ = r"""The PyTorch optimizer collection's ``torch_optimizer.NovoGrad``
  (pytorch-optimizer, ``torch_optimizer/novograd.py``).
""" + _TORCH_RULE + r"""
  Its default ``betas[1] = 0`` makes every step layer-wise normalized gradient
  descent with momentum (footnote 2 of the paper). Like the peer it refuses
  ``lr <= 0``.
"""


def timm(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.95, 0.98),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    grad_averaging: bool = False,
    amsgrad: bool = False,
    decoupled_decay: bool = False,
    corrected_weight_decay: bool = False,
) -> GradientTransformationExtraArgs:
  # The peer refuses lr < 0, eps < 0 and betas outside [0, 1), and a corrected
  # decay without a positive lr.
  validation.check_non_negative("lr", lr, allow_schedule=True)
  b1, b2 = _check_betas("betas", betas)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("decoupled_decay", decoupled_decay)
  validation.check_bool("corrected_weight_decay", corrected_weight_decay)
  if decoupled_decay and corrected_weight_decay:
    if callable(lr):
      raise ValueError(
          "corrected_weight_decay: the peer scales the decay by lr_t / lr_max with lr_max"
          " the constructor's (peak) learning rate, which a schedule does not name; pass"
          " a float lr, or weight_decay=optax schedule of wd * lr_t / lr_max with"
          " corrected_weight_decay=False.")
    _check_positive("lr", lr)
    # wd_scale = lr ** 2 / max_lr = lr for a constant lr: the plain decoupled decay.
  return _torch_style(lr, b1, b2, eps, weight_decay, grad_averaging, amsgrad,
                      decay_inside_moment=not decoupled_decay)


timm.__doc__ = r"""timm's ``NvNovoGrad`` (pytorch-image-models, ``timm/optim/nvnovograd.py``,
  timm 1.0.31).
""" + _TORCH_RULE + r"""
  ``decoupled_decay=True`` takes the decay out of the moment:
  :math:`w_{t+1} = (1 - \lambda d)\,w_t - \lambda m_t` with :math:`m_t` as above
  without :math:`d\,w_t` (``novograd(decay_inside_moment=False)``).
  ``corrected_weight_decay`` scales that decay by :math:`\lambda_t/\lambda_{max}`,
  :math:`\lambda_{max}` the constructor's ``lr``: with a float ``lr`` this is 1.
"""


def nemo(
    lr: ScalarOrSchedule = 1e-3,
    betas: tuple[Any, Any] = (0.95, 0.98),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    grad_averaging: bool = False,
    amsgrad: bool = False,
    luc: bool = False,
    luc_trust: Any = 1e-3,
    luc_eps: Any = 1e-8,
) -> GradientTransformationExtraArgs:
  # The peer refuses lr < 0, eps < 0 and betas outside [0, 1).
  validation.check_non_negative("lr", lr, allow_schedule=True)
  b1, b2 = _check_betas("betas", betas)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("grad_averaging", grad_averaging)
  validation.check_bool("amsgrad", amsgrad)
  validation.check_bool("luc", luc)
  if not luc:
    return _torch_style(lr, b1, b2, eps, weight_decay, grad_averaging, amsgrad)
  _check_positive("luc_trust", luc_trust)
  _check_positive("luc_eps", luc_eps)
  return keep_dtypes(_optax.chain(
      scale_by_layerwise_norm(b2, eps, nu_init="first_nonzero", amsgrad=amsgrad),
      _weight_decay(weight_decay, "nemo"),
      _momentum(b1, grad_averaging),
      # Applied to the moment, against the learning rate that scales it next; a
      # layer with zero weights gets the factor 0 (it never moves), as in the peer.
      clip_by_layerwise_trust_ratio(luc_trust, lr, eps=luc_eps, skip_zero_norms=False),
      _optax.scale_by_learning_rate(lr),
  ))


nemo.__doc__ = r"""NeMo's ``Novograd`` (NVIDIA NeMo, ``nemo/core/optim/novograd.py``), with
  its layer-wise update clipping (LUC).
""" + _TORCH_RULE + r"""
  With ``luc=True`` the step is
  :math:`w_{t+1} = w_t - \min\big(\eta\|w_t\|/(\|m_t\| + \epsilon_{luc}),\ \lambda\big)\,m_t`
  with :math:`\eta` = ``luc_trust``, :math:`\epsilon_{luc}` = ``luc_eps``: no
  layer moves by more than :math:`\eta\|w_t\|`, and a layer whose weights are all
  zero does not move at all.
"""


def apex(
    lr: ScalarOrSchedule = 1e-3,
    bias_correction: bool = True,
    betas: tuple[Any, Any] = (0.9, 0.999),
    eps: Any = 1e-8,
    weight_decay: Any = 0.0,
    amsgrad: bool = False,
    reg_inside_moment: bool = False,
    grad_averaging: bool = True,
    norm_type: int = 2,
    init_zero: bool = False,
) -> GradientTransformationExtraArgs:
  r"""apex's ``FusedNovoGrad`` (NVIDIA apex, ``apex/optimizers/fused_novograd.py``
  and its kernel ``csrc/multi_tensor_novograd.cu``), on any device.

  The kernel keeps the per-layer *norm* :math:`r` (not its square; see
  :func:`~novograd_optax.normalize_by_norm_average`):

  .. math::
     r_t = \sqrt{\beta_2 r_{t-1}^2 + (1-\beta_2)\|g_t\|_2^2}\ (\text{norm\_type}=2),
     \quad r_t = \beta_2 r_{t-1} + (1-\beta_2)\|g_t\|_\infty\ (\text{norm\_type}=0),\\
     r_1 = \|g_1\|\ (r_0 = 0\ \text{with init\_zero}),\quad
     D_t = r_t / \sqrt{1-\beta_2^t} + \epsilon,\quad c = 1-\beta_1\
     (\text{grad\_averaging})\ \text{else}\ 1

  ``reg_inside_moment=True`` (the paper's moment):
  :math:`m_t = \beta_1 m_{t-1} + c\,(g_t / D_t + d\,w_t)`,
  :math:`w_{t+1} = w_t - \lambda\, m_t / (1-\beta_1^t)`.

  ``reg_inside_moment=False`` (default, decoupled decay): momentum over the raw
  gradient, normalized and decayed afterwards:
  :math:`m_t = \beta_1 m_{t-1} + c\,g_t`,
  :math:`w_{t+1} = w_t - \lambda\big(m_t / (1-\beta_1^t) / D_t + d\,w_t\big)`.

  Without ``bias_correction`` both :math:`1-\beta^t` factors are 1. The peer
  corrects :math:`r_t` even after the first-gradient init (its default), so
  early steps are shorter by :math:`\sqrt{1-\beta_2^t}`, as there. Like the peer
  it refuses ``amsgrad=True`` and norm types other than 2 and 0. fp16/bf16
  params work: as in the kernel, each step is computed in float32 (norms and
  momentum included, the momentum kept in float32) and the update rounded to the
  params' dtype, so half-precision runs agree to that dtype's round-off. Under
  ``optax.inject_hyperparams`` pass ``static_args=("norm_type",)``.
  """
  validation.check_bool("amsgrad", amsgrad)
  if amsgrad:
    raise ValueError(
        "amsgrad: apex's FusedNovoGrad does not support the AMSGrad variant (it raises"
        " there); use amsgrad=False, or novograd_optax.novograd(amsgrad=True).")
  for name, flag in (("bias_correction", bias_correction),
                     ("reg_inside_moment", reg_inside_moment),
                     ("grad_averaging", grad_averaging), ("init_zero", init_zero)):
    validation.check_bool(name, flag)
  if not isinstance(norm_type, numbers.Integral):
    raise TypeError(
        f"norm_type must be the int 2 (L2 norm) or 0 (L-infinity norm); got {norm_type!r}."
        " Under optax.inject_hyperparams pass static_args=('norm_type',).")
  if norm_type not in (0, 2):
    raise ValueError(
        "norm_type: apex's FusedNovoGrad supports 2 (L2 norm) and 0 (L-infinity norm)"
        f" only; got {norm_type!r}.")
  validation.check_non_negative("lr", lr, allow_schedule=True)
  b1, b2 = _check_betas("betas", betas)
  validation.check_non_negative("eps", eps)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)

  momentum = _momentum(b1, grad_averaging)
  if bias_correction:
    # m_t / (1 - b1^t): optax counts from 0, the peer's step from 1.
    momentum = _optax.chain(momentum, _optax.scale_by_schedule(
        lambda count: 1.0 / (1.0 - jnp.power(jnp.asarray(b1, jnp.float32), count + 1))))

  def normalization(inner=None):
    return normalize_by_norm_average(
        b2, eps, norm="l2" if norm_type == 2 else "linf",
        nu_init="zero" if init_zero else "first", bias_correction=bias_correction,
        inner=inner)

  if reg_inside_moment:
    steps = (normalization(), _weight_decay(weight_decay, "apex"), momentum)
  else:
    steps = (normalization(inner=momentum), _weight_decay(weight_decay, "apex"))
  return keep_dtypes(_optax.chain(*steps, _optax.scale_by_learning_rate(lr)))


def tf_addons(
    learning_rate: ScalarOrSchedule = 0.001,
    beta_1: Any = 0.9,
    beta_2: Any = 0.999,
    epsilon: Any = 1e-7,
    weight_decay: Any = 0.0,
    grad_averaging: bool = False,
    amsgrad: bool = False,
) -> GradientTransformationExtraArgs:
  r"""TensorFlow Addons' ``tfa.optimizers.NovoGrad``
  (``tensorflow_addons/optimizers/novograd.py``).

  .. math::
     v_t = \beta_2 v_{t-1} + (1-\beta_2)\|g_t\|^2\ (v_1 = \|g_1\|^2),\quad
     \hat v_t = \max(\hat v_{t-1}, v_t)\ (\text{amsgrad}),\\
     x_t = c_t\Big(\frac{g_t}{\sqrt{v_t}\ (\text{or}\ \sqrt{\hat v_t}) + \epsilon}
     + d\,w_t\Big),\quad a_t = \beta_1 a_{t-1} - \lambda_t x_t,\quad
     w_{t+1} = w_t + a_t

  with :math:`c_t = 1-\beta_1` when ``grad_averaging``, except on the first step
  where :math:`c_1 = 1` (the peer skips the factor at ``iterations == 0``), and
  :math:`c_t = 1` otherwise. The learning rate enters the accumulator
  (Keras' momentum), which differs from :func:`novograd` only when it changes
  between steps. ``epsilon=0`` (or ``None``) means Keras' 1e-7, as in the peer;
  weight decay applies only when it is > 0, and a negative one is refused.
  """
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("beta_1", beta_1)
  validation.check_decay_rate("beta_2", beta_2)
  validation.check_bool("grad_averaging", grad_averaging)
  validation.check_bool("amsgrad", amsgrad)
  # `self.epsilon = epsilon or tf.keras.backend.epsilon()` in the peer.
  if epsilon is None or isinstance(epsilon, numbers.Real):
    epsilon = epsilon or 1e-7
  else:  # an array, e.g. injected by optax.inject_hyperparams
    epsilon = jnp.where(epsilon == 0, 1e-7, epsilon)
  validation.check_non_negative("epsilon", epsilon)
  averaging = _optax.identity()
  if grad_averaging:
    averaging = _optax.scale_by_schedule(
        lambda count: jnp.where(count == 0, 1.0, 1.0 - beta_1))
  return keep_dtypes(_optax.chain(
      scale_by_layerwise_norm(beta_2, epsilon, nu_init="first", amsgrad=amsgrad),
      _weight_decay(weight_decay, "tf_addons"),
      averaging,
      _optax.scale_by_learning_rate(learning_rate),
      _optax.trace(beta_1),
  ))


def openseq2seq(
    learning_rate: ScalarOrSchedule = 1.0,
    beta1: Any = 0.95,
    beta2: Any = 0.98,
    epsilon: Any = 1e-8,
    weight_decay: Any = 0.0,
    grad_averaging: bool = False,
    larc_eta: Optional[Any] = None,
    larc_mode: TrustRatioMode = "clip",
    larc_min_update: Any = 1e-7,
    larc_epsilon: Any = 1e-7,
) -> GradientTransformationExtraArgs:
  r"""OpenSeq2Seq's ``NovoGrad`` (``open_seq2seq/optimizers/novograd.py``) with its
  LARC (``optimize_loss(larc_params=...)`` in ``open_seq2seq/optimizers/optimizers.py``),
  the optimizer of the NovoGrad paper's Jasper experiments.

  LARC (``larc_eta`` not ``None``; ``larc_min_update``, ``larc_epsilon`` are the
  ``min_update``, ``epsilon`` keys of ``larc_params``) first rescales each
  layer's gradient by
  :math:`\min(\max(\eta\|w\|/(\lambda(\|g\|+\epsilon_L)),\ \mu),\ 1)` (``"clip"``)
  or :math:`\max(\eta\|w\|/(\|g\|+\epsilon_L),\ \mu)` (``"scale"``), then

  .. math::
     v_t = \|g_t\|^2,\quad
     m_t = \beta_1 m_{t-1} + c\Big(\frac{g_t}{\sqrt{v_t + \epsilon}} + d\,w_t\Big),
     \quad w_{t+1} = w_t - \lambda_t m_t

  (``tf.train.MomentumOptimizer``; :math:`c = 1-\beta_1` with
  ``grad_averaging``). ``beta2`` is accepted and has **no effect**, exactly as in
  the peer: its moving average is a TF1 graph variable that is read (always 0) but
  never assigned (the ``tf.cond`` result only rebinds the Python list entry), so
  every step takes the branch ``v_t = ||g_t||^2``. The average the peer's
  docstring describes is ``novograd(learning_rate, beta1, beta2, eps=0,
  eps_root=epsilon, weight_decay=weight_decay, grad_averaging=grad_averaging)``.
  """
  validation.check_non_negative("learning_rate", learning_rate, allow_schedule=True)
  validation.check_decay_rate("beta1", beta1)
  validation.check_decay_rate("beta2", beta2)
  validation.check_non_negative("epsilon", epsilon)
  validation.check_non_negative("weight_decay", weight_decay, allow_schedule=True)
  validation.check_bool("grad_averaging", grad_averaging)
  # The peer: "larc_mode" one of ["clip", "scale"], "larc_eta" a float.
  validation.check_choice("larc_mode", larc_mode, ("clip", "scale"))
  inner = novograd(learning_rate, beta1, 0.0, 0.0, epsilon, weight_decay,
                   grad_averaging=grad_averaging)
  if larc_eta is None:
    return inner
  _check_positive("larc_eta", larc_eta)
  validation.check_non_negative("larc_min_update", larc_min_update)
  _check_positive("larc_epsilon", larc_epsilon)
  return keep_dtypes(_optax.chain(
      clip_by_layerwise_trust_ratio(
          larc_eta, learning_rate, eps=larc_epsilon, mode=larc_mode,
          min_ratio=larc_min_update, skip_zero_norms=False),
      inner,
  ))


#: Every peer implementation this module reproduces, one :class:`Peer` each: its
#: preset function, name, constructor, source files and how it differs from
#: :func:`~novograd_optax.novograd`'s defaults.
PEERS: tuple[Peer, ...] = (
    Peer(optax, "optax 0.2.8", "optax.novograd(learning_rate, ...)",
         "optax/_src/alias.py, optax/_src/transform.py",
         "none: the same rule and defaults"),
    Peer(torch_optimizer, "pytorch-optimizer", "torch_optimizer.NovoGrad(params, ...)",
         "torch_optimizer/novograd.py",
         "b2 = 0 by default; eps = 1e-8; the moment restarts whenever it is 0"),
    Peer(timm, "timm", "timm.optim.NvNovoGrad(params, ...)", "timm/optim/nvnovograd.py",
         "b1 = 0.95, b2 = 0.98, eps = 1e-8; the moment restarts whenever it is 0;"
         " decoupled_decay: decay outside the moment"),
    Peer(nemo, "NVIDIA NeMo", "nemo.core.optim.Novograd(params, ...)",
         "nemo/core/optim/novograd.py",
         "as timm; luc: the step is at most luc_trust * ||w||, zero layers stay"),
    Peer(apex, "NVIDIA apex", "apex.optimizers.FusedNovoGrad(params, ...)",
         "apex/optimizers/fused_novograd.py, csrc/multi_tensor_novograd.cu",
         "averages the norm (not its square); bias correction; grad averaging and"
         " decoupled decay by default; L-inf averages max-norms"),
    Peer(tf_addons, "TensorFlow Addons", "tfa.optimizers.NovoGrad(...)",
         "tensorflow_addons/optimizers/novograd.py",
         "eps = 1e-7; grad averaging skips step 1; lr inside the momentum"),
    Peer(openseq2seq, "OpenSeq2Seq", "open_seq2seq.optimizers.NovoGrad(...) + LARC",
         "open_seq2seq/optimizers/novograd.py, open_seq2seq/optimizers/optimizers.py",
         "eps inside the root; beta2 has no effect (v = ||g||^2); optional LARC first"),
)


def __dir__() -> list[str]:
  # dir() and interactive completion show this module's API, not what it imports.
  return sorted(__all__)
