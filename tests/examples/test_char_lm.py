"""examples/char_lm.py: per-layer norms of the scanned blocks, and a quick run
in which both optimizers lower the loss."""

import importlib.util
import pathlib
import sys

import jax
import numpy as np
import pytest
from flax import nnx

from novograd_optax import novograd

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "char_lm.py"


def load_example():
  spec = importlib.util.spec_from_file_location("char_lm_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


char_lm = load_example()


def test_alphabet_round_trip():
  train_ids, valid_ids, alphabet = char_lm.load_text()
  from pydoc_data.topics import topics

  text = "\n\n".join(topics[key] for key in sorted(topics))
  assert "".join(alphabet[i] for i in train_ids[:500]) == text[:500]
  assert len(train_ids) + len(valid_ids) == len(text)


def test_scanned_blocks_are_normalized_one_layer_at_a_time():
  num_layers = 3
  model = char_lm.CharTransformer(20, 16, 2, num_layers, 8, nnx.Rngs(0))
  _, params, _ = nnx.split(model, nnx.Param, ...)
  leaves = jax.tree_util.tree_leaves_with_path(params)
  grads = jax.tree.map(
      lambda p: np.random.default_rng(p.size).normal(size=p.shape).astype(np.float32), params)

  # b1 = 0, lr = 1, first step: the update is -g / ||g|| per layer (Algorithm 1).
  optimizer = novograd(1.0, b1=0.0, b2=0.5, eps=0.0, layer_axes=char_lm.stacked_layer_axes)
  updates, _ = optimizer.update(grads, optimizer.init(params), params)

  stacked = 0
  for (path, _), g, u in zip(leaves, jax.tree.leaves(grads), jax.tree.leaves(updates),
                             strict=True):
    g, u = np.asarray(g, np.float64), np.asarray(u, np.float64)
    if jax.tree_util.keystr(path).startswith("['blocks']"):
      stacked += 1
      assert g.shape[0] == num_layers
      for layer in range(num_layers):
        expected = -g[layer] / np.linalg.norm(g[layer])
        np.testing.assert_allclose(u[layer], expected, rtol=1e-5, atol=1e-6)
    else:
      np.testing.assert_allclose(u, -g / np.linalg.norm(g), rtol=1e-5, atol=1e-6)
  assert stacked >= 8  # attention q/k/v/out, two norms, two MLP layers


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
  out_dir = tmp_path_factory.mktemp("char_lm")
  return char_lm.main(["--quick", "--out-dir", str(out_dir)]), out_dir


@pytest.mark.parametrize("name", ["novograd", "adamw"])
def test_quick_run_lowers_the_loss(quick_run, name):
  curves = quick_run[0][name]
  assert np.all(np.isfinite(curves["train"])) and np.all(np.isfinite(curves["valid"]))
  # log(vocabulary) is the loss of a uniform guess; both must beat it clearly.
  assert curves["train"][-1] < curves["initial"] - 0.5, curves["train"]
  assert curves["valid"][-1] < curves["valid"][0] - 0.5, curves["valid"]


def test_quick_run_writes_the_figure(quick_run):
  assert (quick_run[1] / "char_lm_curves.png").stat().st_size > 10_000
