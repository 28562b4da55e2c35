"""The presets against the PyTorch peers themselves (``pip install -e ".[peers]"``):
pytorch-optimizer's ``NovoGrad`` and timm's ``NvNovoGrad``, run on the CPU in
float32 on the model-shaped problem of trajectories.py, 50 steps, every switch
combination. Without the peer installed the test is skipped with that reason; the
NumPy transcription of the same rule (tests/test_presets.py) still runs.
"""

from __future__ import annotations

import importlib.util
import itertools
import pathlib
import sys
import types

import numpy as np
import pytest

from novograd_optax import presets
from tests.peers import trajectories as tr

COMBOS = [dict(zip(("weight_decay", "grad_averaging", "amsgrad"), values, strict=True))
          for values in itertools.product([0.0, 0.1], [False, True], [False, True])]


def _run_torch(optimizer_class, params, grads, **kwargs):
  import torch

  torch.set_num_threads(1)
  tensors = [torch.nn.Parameter(torch.tensor(p)) for p in params]
  optimizer = optimizer_class(tensors, **kwargs)
  trajectory = []
  for step_grads in grads:
    for tensor, g in zip(tensors, step_grads, strict=True):
      tensor.grad = torch.tensor(g.copy())  # the peers divide the gradient in place
    optimizer.step()
    trajectory.append([t.detach().numpy().copy() for t in tensors])
  return trajectory


def _timm_nvnovograd():
  """timm's ``NvNovoGrad``, from timm's own files.

  ``import timm`` imports torchvision, which these tests do not need and which
  does not import beside every torch build (e.g. the CPU one); ``timm/optim/``'s
  ``nvnovograd.py`` and its ``_helpers.py`` need only torch, so they are loaded as
  a package of their own, without running timm's ``__init__``.
  """
  pytest.importorskip("torch")
  spec = importlib.util.find_spec("timm")
  if spec is None or not spec.submodule_search_locations:
    pytest.skip("timm is not installed (pip install -e '.[peers]')")
  if "_timm_optim_files" not in sys.modules:
    package = types.ModuleType("_timm_optim_files")
    package.__path__ = [str(pathlib.Path(list(spec.submodule_search_locations)[0]) / "optim")]
    sys.modules["_timm_optim_files"] = package
  return importlib.import_module("_timm_optim_files.nvnovograd").NvNovoGrad


def _compare(peer_class, preset, cases):
  params, grads = tr.initial_params(), tr.gradient_sequence()
  ours = tr.run_optax([preset(**case) for case in cases], params, grads)
  failures = []
  for case, mine in zip(cases, ours, strict=True):
    theirs = _run_torch(peer_class, params, grads, **case)
    try:
      tr.assert_trajectories_close(mine, theirs)
    except AssertionError as err:
      failures.append(f"{preset.__name__}(**{case}):{err}")
  assert not failures, "\n\n".join(failures)


def test_torch_optimizer_novograd():
  torch_optimizer = pytest.importorskip("torch_optimizer")
  cases = [dict()] + [dict(lr=0.01, betas=betas, **combo)
                      for betas in [(0.95, 0.0), (0.9, 0.5)] for combo in COMBOS]
  _compare(torch_optimizer.NovoGrad, presets.torch_optimizer, cases)


def test_timm_nvnovograd():
  nvnovograd = _timm_nvnovograd()
  cases = [dict()] + [dict(lr=0.01, decoupled_decay=decoupled, **combo)
                      for decoupled in [False, True] for combo in COMBOS] + [
      dict(lr=0.01, weight_decay=0.1, decoupled_decay=True, corrected_weight_decay=True)]
  _compare(nvnovograd, presets.timm, cases)


def test_peers_see_the_problem_the_presets_see():
  """The comparison can fail: the peer's own result differs from a preset with
  another peer's rule (TF Addons has no zero-moment restart, adds (1 - b1) late)."""
  torch_optimizer = pytest.importorskip("torch_optimizer")
  params, grads = tr.initial_params(), tr.gradient_sequence()
  theirs = _run_torch(torch_optimizer.NovoGrad, params, grads, lr=0.01, betas=(0.95, 0.98),
                      grad_averaging=True)
  other = tr.run_optax([presets.tf_addons(0.01, 0.95, 0.98, 1e-8, grad_averaging=True)],
                       params, grads)[0]
  with pytest.raises(AssertionError):
    tr.assert_trajectories_close(other, theirs)
  assert np.isfinite(theirs[-1][0]).all()
