"""AdamP and SGDP against the PyTorch reference implementation, run live.

The reference is Clova AI's ``adamp/adamp.py`` and ``adamp/sgdp.py``, installed as
the ``adamp`` package (the ``peers`` extra: ``pip install -e ".[test,peers]"``).
Both sides run 50 steps in float32 on the same problem, with and without
Nesterov, in PyTorch layout (``channel_axis=0``) and in Flax layout
(``channel_axis=-1``, kernels transposed); each computes its gradients at its own
weights, so the trajectories agree to float32 round-off only if the rules do.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from novograd_optax import adamp, sgdp
from tests.reference import numpy_adamp_sgdp as ref

torch = pytest.importorskip("torch", reason="the peers extra (PyTorch) is not installed")
reference = pytest.importorskip("adamp", reason="the peers extra (adamp) is not installed")

NUM_STEPS = 50
RTOL, ATOL = 2e-5, 2e-6


def torch_run(make_optimizer):
  """Weights (PyTorch layout, float64 copies) after every step of the reference."""
  params = {k: torch.tensor(v, dtype=torch.float32, requires_grad=True)
            for k, v in ref.initial_params().items()}
  optimizer = make_optimizer(list(params.values()))
  trajectory = []
  for t in range(NUM_STEPS):
    weights = {k: p.detach().double().numpy() for k, p in params.items()}
    for k, g in ref.gradients(t, weights).items():
      params[k].grad = torch.tensor(g, dtype=torch.float32)
    optimizer.step()
    trajectory.append({k: p.detach().double().numpy().copy() for k, p in params.items()})
  return trajectory


def our_run(opt, layout):
  to_opt = ref.torch_to_flax if layout == "flax" else np.asarray
  from_opt = ref.flax_to_torch if layout == "flax" else np.asarray
  params = {k: jnp.asarray(to_opt(v), jnp.float32) for k, v in ref.initial_params().items()}
  state = opt.init(params)

  @jax.jit
  def step(params, state, grads):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  trajectory = []
  for t in range(NUM_STEPS):
    weights = {k: from_opt(np.float64(v)) for k, v in params.items()}
    grads = {k: jnp.asarray(to_opt(g), jnp.float32)
             for k, g in ref.gradients(t, weights).items()}
    params, state = step(params, state, grads)
    trajectory.append({k: from_opt(np.float64(v)) for k, v in params.items()})
  return trajectory


def assert_same_trajectory(ours, theirs):
  for t, (a, b) in enumerate(zip(ours, theirs, strict=True)):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL, err_msg=f"step {t + 1} {k}")


LAYOUTS = [("torch", 0), ("flax", -1)]


@pytest.mark.parametrize("layout, channel_axis", LAYOUTS)
@pytest.mark.parametrize("nesterov", [False, True])
def test_adamp_equals_the_reference(layout, channel_axis, nesterov):
  lr, betas, weight_decay = 0.01, (0.9, 0.99), 0.1
  theirs = torch_run(lambda p: reference.AdamP(
      p, lr=lr, betas=betas, weight_decay=weight_decay, nesterov=nesterov))
  ours = our_run(adamp(lr, *betas, weight_decay=weight_decay, nesterov=nesterov,
                       channel_axis=channel_axis), layout)
  assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("layout, channel_axis", LAYOUTS)
@pytest.mark.parametrize("options", [
    {"momentum": 0.9}, {"momentum": 0.8, "dampening": 0.3}, {"momentum": 0.9, "nesterov": True}],
    ids=["momentum", "dampening", "nesterov"])
def test_sgdp_equals_the_reference(layout, channel_axis, options):
  lr, weight_decay = 0.05, 0.05
  theirs = torch_run(lambda p: reference.SGDP(p, lr=lr, weight_decay=weight_decay, **options))
  ours = our_run(sgdp(lr, weight_decay=weight_decay, channel_axis=channel_axis, **options),
                 layout)
  assert_same_trajectory(ours, theirs)


def test_the_problem_tells_the_nesterov_forms_apart():
  """optax's NAdam debiasing, the previous default, is far from the reference, so
  the tests above can fail."""
  lr = 0.01
  theirs = torch_run(lambda p: reference.AdamP(p, lr=lr, nesterov=True))
  nadam = our_run(adamp(lr, nesterov=True, nesterov_debias="nadam", channel_axis=0), "torch")
  gap = max(np.max(np.abs(nadam[-1][k] - theirs[-1][k])) for k in theirs[-1])
  assert gap > 100 * ATOL
