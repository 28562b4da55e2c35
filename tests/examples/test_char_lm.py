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


def test_corpus_is_pinned_and_splits_interleave():
  import hashlib

  raw = (EXAMPLE.parent / "data" / "pydoc_topics.txt").read_bytes()
  assert hashlib.sha256(raw).hexdigest() == char_lm.CORPUS_SHA256
  text = raw.decode("utf-8")
  train, valid, test, alphabet = char_lm.split_blocks(text, block=100)
  n = len(text) // 100
  # blocks i % 10 == 8 validate, == 9 test: every tenth block, spread over the corpus
  assert len(valid) == len(range(8, n, 10)) and len(test) == len(range(9, n, 10))
  assert "".join(alphabet[i] for i in valid[0]) == text[800:900]
  assert "".join(alphabet[i] for i in test[1]) == text[1900:2000]
  assert "".join(alphabet[i] for i in train[8]) == text[1000:1100]


def test_changed_corpus_is_refused(tmp_path):
  bad = tmp_path / "corpus.txt"
  bad.write_text("not the pinned text")
  with pytest.raises(ValueError, match="SHA-256"):
    char_lm.load_corpus(str(bad))


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


def test_tiny_grid_lowers_the_loss():
  results = char_lm.train_grid(
      "novograd", [0.03, 0.3], size="tiny", seed=0, steps=12, warmup=2, batch_size=4,
      context=16, train_chars=8192, eval_every=6, eval_batches=2, kappa=3e-4)
  uniform = np.log(103)  # the loss of a uniform guess over the alphabet
  for r in results:
    assert np.isfinite(r["valid_loss"]) and r["curve_step"] == [6, 12]
    assert r["gap"] == pytest.approx(r["valid_loss"] - r["train_loss"])
  assert min(r["valid_loss"] for r in results) < uniform - 0.3


def test_quick_cli_writes_results_with_interior_optima(tmp_path, monkeypatch):
  # The protocol plumbing without training: a loss whose minimum over log10(lr) is at
  # a known point per optimizer (NovoGrad 0.3, AdamW 0.01).
  optimum = {"novograd": 0.3, "adamw": 0.01}

  def fake(name, lrs, *, seed, **kwargs):
    out = []
    for lr in lrs:
      v = 2.0 + (np.log10(lr) - np.log10(optimum[name])) ** 2 + 0.001 * seed
      out.append({"train_loss": v - 0.1, "valid_loss": v, "test_loss": v, "gap": 0.1,
                  "curve_step": [1], "curve_train": [v], "curve_valid": [v]})
    return out

  monkeypatch.setattr(char_lm, "train_grid", fake)
  path = tmp_path / "r.json"
  char_lm.main(["--quick", "--out", str(path)])
  import json

  record = json.loads(path.read_text())
  assert record["configuration"] == "quick"
  assert record["command"].endswith(f"--quick --out {path}")
  best = {r["name"].split("/")[0]: r["best_lr"] for r in record["results"]}
  # grids are sqrt(10) apart from 0.1 and 3e-3: the nearest points are 0.316 and 0.0095
  assert best["novograd"] == pytest.approx(0.1 * 10 ** 0.5)
  assert best["adamw"] == pytest.approx(3e-3 * 10 ** 0.5)
  assert all(r["interior"] for r in record["results"])


def test_a_rerun_with_a_cache_reads_every_training_call_back(tmp_path, monkeypatch):
  calls = []

  def fake(name, lrs, *, seed, **kwargs):
    calls.append((name, tuple(lrs), seed))
    return [{"train_loss": 2.0 + lr, "valid_loss": 2.1 + (lr - 0.1) ** 2, "test_loss": 2.1,
             "gap": 0.1, "curve_step": [1], "curve_train": [2.0], "curve_valid": [2.1]}
            for lr in lrs]

  monkeypatch.setattr(char_lm, "train_grid", fake)
  argv = ["--quick", "--cache", str(tmp_path / "cache")]
  first = char_lm.main([*argv, "--out", str(tmp_path / "a.json")])
  trained = len(calls)
  second = char_lm.main([*argv, "--out", str(tmp_path / "b.json")])
  assert trained > 0 and len(calls) == trained
  assert second["results"] == first["results"]
  char_lm.main([*argv, "--no-cache", "--out", str(tmp_path / "c.json")])
  assert len(calls) == 2 * trained


def fake_kappa_grid(optimum_kappa):
  """A ``train_grid`` whose validation loss is lowest at NovoGrad lr 0.3 / AdamW lr 0.01
  and at ``optimum_kappa[name]``; the training loss is 0.1 below it."""
  optimum = {"novograd": 0.3, "adamw": 0.01}

  def fake(name, lrs, *, seed, kappa, **kwargs):
    out = []
    for lr in lrs:
      v = (2.0 + (np.log10(lr) - np.log10(optimum[name])) ** 2
           + abs(kappa - optimum_kappa[name]) + 0.001 * seed)
      out.append({"train_loss": v - 0.1, "valid_loss": v, "test_loss": v, "gap": 0.1,
                  "curve_step": [1, 2], "curve_train": [v + 1, v - 0.1],
                  "curve_valid": [v + 1, v]})
    return out

  return fake


def test_quick_cli_tunes_kappa_jointly_with_the_learning_rate(tmp_path, monkeypatch):
  kappas = [0.0, 1e-4, 1e-3, 1e-2]
  monkeypatch.setattr(char_lm, "train_grid",
                      fake_kappa_grid({"novograd": 1e-3, "adamw": 1e-4}))
  path = tmp_path / "r.json"
  char_lm.main(["--quick", "--kappa", *map(str, kappas), "--out", str(path)])
  import json

  record = json.loads(path.read_text())
  by_name = {r["name"].split("/")[0]: r for r in record["results"]}
  # one learning-rate search per kappa, the same grid of kappas for both optimizers
  for r in by_name.values():
    assert [s["weight_decay"] for s in r["searches"]] == kappas
    assert all(len(s["points"]) >= 5 for s in r["searches"])
  assert by_name["novograd"]["weight_decay"] == 1e-3
  assert by_name["adamw"]["weight_decay"] == 1e-4
  assert by_name["novograd"]["best_lr"] == pytest.approx(0.1 * 10 ** 0.5)
  # the record names the code, seeds and grids it came from
  assert record["config"]["kappa"] == kappas and record["config"]["seeds"] == [0, 1, 2]
  assert record["config"]["lr_grids"]["adamw"][2] == pytest.approx(3e-3)
  assert set(record["environment"]["git"]) == {"commit", "dirty"}
  assert record["environment"]["machine"]["cpus_available"] >= 1


def test_the_scale_configurations_xl_size_traces_for_both_optimizers():
  """``--scale --sizes xl``, the recorded GPU command (too large to train here), builds
  its model and its whole training program: each optimizer's run traces with the scale
  configuration's shapes, giving one curve point per evaluation."""
  import jax.numpy as jnp

  config = char_lm.config_from_args(char_lm.parse_args(["--scale", "--sizes", "xl"]))
  assert config["sizes"] == ("xl",)
  width, heads, layers = char_lm.SIZES["xl"]
  context, batch = config["context"], config["batch_size"]
  model = char_lm.CharTransformer(103, width, heads, layers, context, nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  n_curve = config["eval_batches"] * batch
  windows = jax.ShapeDtypeStruct((30, context + 1), jnp.int32)
  for name in char_lm.OPTIMIZERS:
    run = char_lm._make_run(
        name, graphdef, rest, steps=config["steps"], warmup=config["warmup"],
        batch_size=batch, context=context, eval_every=config["eval_every"],
        kappa=config["kappa"][-1], n_curve=n_curve, counts=[10, 10, 10])
    curve_train, curve_valid, finals = jax.eval_shape(
        run, jax.ShapeDtypeStruct((2,), jnp.float32), params,
        jax.ShapeDtypeStruct((64, 1024), jnp.int32),
        jax.ShapeDtypeStruct((2 * n_curve, context + 1), jnp.int32), windows,
        jax.random.key_data(jax.random.key(0)))
    evaluations = config["steps"] // config["eval_every"]
    assert curve_train.shape == curve_valid.shape == (2, evaluations)
    assert [f.shape for f in finals] == [(2,)] * 3
