"""examples/scale_invariant.py: the re-evaluated cosine test agrees with where the
library's AdamP actually projects, hidden kernels are scale invariant, and the CLI writes
its results."""

import importlib.util
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from novograd_optax import adamp

PATH = pathlib.Path(__file__).resolve().parents[2] / "examples" / "scale_invariant.py"
spec = importlib.util.spec_from_file_location("scale_invariant_example", PATH)
example = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = example
spec.loader.exec_module(example)


def _model_and_grads(seed=0):
  graphdef, params = nnx.split(example.NormalizedMLP(16, rngs=nnx.Rngs(seed)))
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(32, 40)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 10, 32))

  def loss(p):
    logits = nnx.merge(graphdef, p)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  return graphdef, params, jax.grad(loss)(params), loss


def test_hidden_kernels_are_scale_invariant_and_the_head_is_not():
  graphdef, params, grads, loss = _model_and_grads()
  scaled = jax.tree_util.tree_map_with_path(
      lambda path, p: 3.0 * p if "hidden" in jax.tree_util.keystr(path) else p, params)
  assert float(loss(scaled)) == pytest.approx(float(loss(params)), rel=1e-4)
  fired = [bool(example.cosine_test_fires(w, g)) for w, g in
           zip(example._kernels(params), example._kernels(grads), strict=True)]
  assert example.kernel_names(params)[2].startswith("['out']")
  assert fired == [True, True, False]


def test_cosine_test_matches_a_numpy_transcription():
  rng = np.random.default_rng(1)
  w = rng.normal(size=(6, 4))
  g = rng.normal(size=(6, 4))
  g_orth = g - w * (np.sum(w * g, axis=0) / np.sum(w * w, axis=0))  # radial part removed

  def numpy_test(w, g, delta=0.1):
    cos = np.abs(np.sum(w * g, 0)) / (np.linalg.norm(w, axis=0) * np.linalg.norm(g, axis=0))
    whole = abs(np.sum(w * g)) / (np.linalg.norm(w) * np.linalg.norm(g))
    return cos.max() < delta / np.sqrt(6) or whole < delta / np.sqrt(24)

  for grad in (g, g_orth, w):
    assert bool(example.cosine_test_fires(jnp.asarray(w), jnp.asarray(grad))) == numpy_test(
        w, grad)
  assert numpy_test(w, g_orth) and not numpy_test(w, w)


def test_fires_exactly_where_adamp_differs_from_adamw():
  _, params, grads, _ = _model_and_grads(seed=2)
  ours = adamp(1e-2, delta=example.DELTA, wd_ratio=example.WD_RATIO)
  ref = optax.adamw(1e-2, weight_decay=0.0)
  u_p, _ = ours.update(grads, ours.init(params), params)
  u_w, _ = ref.update(grads, ref.init(params), params)
  for w, g, a, b in zip(example._kernels(params), example._kernels(grads),
                        example._kernels(u_p), example._kernels(u_w), strict=True):
    differs = not np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-8)
    assert differs == bool(example.cosine_test_fires(w, g))


def test_quick_cli_writes_norms_and_verdicts(tmp_path, monkeypatch):
  decays_seen = {}

  def fake(name, lrs, *, seed, weight_decay, **kwargs):
    decays_seen.setdefault(name, set()).add(weight_decay)
    best = example.START_LR[name]
    # validation best at the grid centre's decay (interior), worst without decay
    wd_best = example.WEIGHT_DECAY[name]
    wd_penalty = abs(np.log10(weight_decay / wd_best)) / 100 if weight_decay else 0.05
    return [{"val_accuracy": 0.5 - abs(np.log10(lr / best)) / 10 - wd_penalty,
             "test_accuracy": 0.5 + 0.01 * seed, "steps": [10], "kernel_norm": [[1.0]] * 3,
             "effective_step": [[0.1]] * 3, "fired_share": [2 / 3], "fired_rate": [1, 1, 0],
             "final_norm": [2.0 if name.endswith("p") else 4.0 + seed] * 3} for lr in lrs]

  monkeypatch.setattr(example, "train_grid", fake)
  path = tmp_path / "si.json"
  example.main(["--quick", "--out", str(path)])
  record = json.loads(path.read_text())
  verdicts = {(c["a"], c["key"]): c["verdict"] for c in record["comparisons"]}
  assert verdicts[("adamp", "final_invariant_norm")] == "wins"  # 2.0 < 4, 5, 6
  assert verdicts[("sgdp", "test_accuracy")] == "tie"  # identical seed values
  assert all(r["interior"] for r in record["results"])
  # the joint grid: one learning-rate search per decay, the best decay chosen
  for r in record["results"]:
    grid = list(example.WEIGHT_DECAYS[r["name"]])
    assert [s["weight_decay"] for s in r["searches"]] == pytest.approx(grid)
    assert decays_seen[r["name"]] == set(grid)
    assert r["weight_decay"] == pytest.approx(example.WEIGHT_DECAY[r["name"]])
    assert not r["decay_at_edge"]
  assert record["config"]["tune_decay"]
  # searches keep scalars only; the chosen setting's curves are in runs
  point = record["results"][0]["searches"][0]["points"][0]
  assert "val_accuracy" in point and "kernel_norm" not in point
  assert "kernel_norm" in record["results"][0]["runs"][0]
  assert example.WEIGHT_DECAYS["adamp"] == example.WEIGHT_DECAYS["adamw"]  # same per pair
  assert example.WEIGHT_DECAYS["sgdp"] == example.WEIGHT_DECAYS["sgd"]
