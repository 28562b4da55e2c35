"""The MNIST-1D example: runs offline in quick mode, learns, and its data are deterministic."""

import importlib.util
import math
import os
import socket

import numpy as np
import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "examples", "mnist1d.py")
CHANCE = 0.1  # ten balanced classes


def _load_example():
  # Loaded by path: the file is named like the `mnist1d` package it uses.
  spec = importlib.util.spec_from_file_location("mnist1d_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


example = _load_example()


@pytest.fixture
def no_network(monkeypatch):
  """Any attempt to open a connection (sockets or requests) fails the test."""

  def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args!r}")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket.socket, "connect_ex", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)
  requests = pytest.importorskip("requests")  # mnist1d imports it; installed with it
  monkeypatch.setattr(requests.Session, "request", refuse)


def test_help_lists_the_flags(capsys):
  with pytest.raises(SystemExit) as exit_info:
    example.main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  for flag in ("--quick", "--batch-sizes", "--epochs", "--seeds", "--extra-epochs", "--model",
               "--plot", "--jobs"):
    assert flag in out


def test_outputs_go_to_an_ignored_folder_unless_results_are_updated():
  # README's first command must leave `git status` clean: outputs/ is in .gitignore.
  args = example.parse_args([])
  assert args.out == os.path.join("outputs", "mnist1d_mlp_main.json")
  assert args.plot == os.path.join("outputs", "mnist1d_mlp_main.png")
  args = example.parse_args(["--update-results", "--seeds", "3", "--plot", ""])
  assert args.out == os.path.join("results", "mnist1d_mlp_full.json") and args.plot == ""
  assert example.parse_args(["--out", "x.json"]).out == "x.json"
  gitignore = open(os.path.join(os.path.dirname(EXAMPLE), os.pardir, ".gitignore")).read()
  assert "outputs/" in gitignore.splitlines()


def test_load_data_is_deterministic_and_offline(no_network, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  global_state = np.random.get_state()
  first = example.load_data(num_samples=1000, seed=3)
  again = example.load_data(num_samples=1000, seed=3)
  other = example.load_data(num_samples=1000, seed=4)
  assert sorted(first) == ["x_test", "x_train", "x_val", "y_test", "y_train", "y_val"]
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  assert not np.array_equal(first["x_train"], other["x_train"])
  # 80% train (10% of it validation), 20% test; 40 samples per signal.
  assert first["x_train"].shape == (720, 40) and first["x_val"].shape == (80, 40)
  assert first["x_test"].shape == (200, 40)
  assert set(np.unique(first["y_train"])) == set(range(10))
  # The caller's global NumPy generator is left as it was.
  np.testing.assert_array_equal(np.random.get_state()[1], global_state[1])
  assert os.listdir(tmp_path) == []  # mnist1d's get_dataset would write a pickle here


def test_load_data_cache_round_trips(tmp_path):
  fresh = example.load_data(num_samples=500, seed=1, cache_dir=str(tmp_path))
  assert len(os.listdir(tmp_path)) == 1
  cached = example.load_data(num_samples=500, seed=1, cache_dir=str(tmp_path))
  for key in fresh:
    np.testing.assert_array_equal(fresh[key], cached[key])


def test_optimizers_match_optax_without_decay():
  """With weight decay 0 our NovoGrad is optax's novograd (its reference definition)."""
  import jax.numpy as jnp
  import optax

  params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
  grads = {"w": jnp.full((2, 3), 0.5), "b": jnp.arange(3.0)}
  ours = example.make_optimizer("novograd", 0.1, weight_decay=0.0)
  ref = optax.novograd(0.1, b1=0.95, b2=0.98, weight_decay=0.0)
  ours_state, ref_state = ours.init(params), ref.init(params)
  for _ in range(3):
    ours_updates, ours_state = ours.update(grads, ours_state, params)
    ref_updates, ref_state = ref.update(grads, ref_state, params)
    for key in params:
      np.testing.assert_allclose(ours_updates[key], ref_updates[key], rtol=1e-6)
  with pytest.raises(ValueError, match="optimizer"):
    example.make_optimizer("adagrad", 0.1)
  with pytest.raises(ValueError, match="model"):
    example.make_model("rnn")


def test_quick_run_learns_offline(no_network, tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  plot = tmp_path / "sweep.png"
  out_json = tmp_path / "r.json"
  rows = example.main(["--quick", "--plot", str(plot), "--out", str(out_json)])
  captured = capsys.readouterr()
  out = captured.out
  # Progress on stderr: the count of tuned cells (every optimizer at batches 32 and 512).
  cells = len(example.OPTIMIZERS) * 2
  assert f"{cells}/{cells}" in captured.err

  assert {(r["optimizer"], r["batch_size"]) for r in rows} == {
      (o, b) for o in example.OPTIMIZERS for b in (32, 512)}
  for row in rows:
    loss = row["train_loss"]
    # The loss of the chosen run falls from the first to the last epoch, and ends
    # below that of a uniform guess, log(10).
    assert loss[-1] < loss[0], row["optimizer"]
    assert loss[-1] < math.log(10), row["optimizer"]
    # 800 test samples: chance accuracy is 10% +- 1%; 15% is far above it.
    assert row["test_accuracy"] > CHANCE + 0.05, (row["optimizer"], row["batch_size"])
  for name in example.OPTIMIZERS:
    assert f"| {name} |" in out
  assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # no downloaded or cached data
  assert sorted(os.listdir(tmp_path)) == ["r.json", "sweep.png"]
  import json

  record = json.loads(out_json.read_text())
  assert record["configuration"] == "quick" and record["command"].endswith(f"{out_json}")
  assert {r["name"] for r in record["rows"]} == {
      f"{o}@B{b}" for o in example.OPTIMIZERS for b in (32, 512)}
  # updates per run: 3 epochs of 2880 training samples
  assert {r["updates"] for r in record["rows"]} == {3 * (2880 // 32), 3 * (2880 // 512)}
  assert record["config"]["tune_decay"] and record["config"]["weight_decays"]
  for row in record["rows"]:
    _assert_joint_grid_searched(row, example.WEIGHT_DECAYS[row["optimizer"]])


def _assert_joint_grid_searched(row, grid):
  """One learning-rate search per weight decay of the (possibly widened) grid, and the
  chosen decay is the one whose best rate scored highest on validation (ties: first)."""
  decays = [s["weight_decay"] for s in row["searches"]]
  assert decays == row["weight_decays"]
  assert decays[:len(grid)] == pytest.approx(list(grid))  # then x10 widenings, if any
  for low, high in zip(decays[len(grid) - 1:], decays[len(grid):], strict=False):
    assert high == pytest.approx(10 * low)
  assert len(grid) >= 4 and grid[0] == 0 and grid[-1] / grid[1] >= 100  # 0 + 2 decades
  best = [next(p["val_accuracy"] for p in s["points"] if p["lr"] == s["best_lr"])
          for s in row["searches"]]
  clean = [-1.0 if b is None else b for b in best]
  assert row["weight_decay"] == decays[clean.index(max(clean))]
  assert row["decay_at_edge"] == (row["weight_decay"] == decays[-1])
  # every search has its own learning-rate grid (at least the 5 starting points)
  assert all(len(s["points"]) >= 5 for s in row["searches"])


def test_weight_decay_is_applied_and_traced_decay_matches_a_constant():
  """A decay changes training (so the joint grid searches something), and the decay
  passed as an argument of the compiled program gives the constant-decay optimizer's
  result."""
  import jax.numpy as jnp
  import optax

  data = example.load_data(num_samples=1000, seed=0)
  plain = example.train("sgd", 0.1, 64, 2, data=data, weight_decay=0.0)
  decayed = example.train("sgd", 0.1, 64, 2, data=data, weight_decay=0.05)
  assert not np.allclose(plain["train_loss"], decayed["train_loss"])
  params = {"w": jnp.arange(6.0).reshape(2, 3)}
  grads = {"w": jnp.full((2, 3), 0.5)}
  for name in example.OPTIMIZERS:
    wd = example.WEIGHT_DECAY[name]
    traced = example.make_optimizer(name, 0.1, jnp.asarray(wd, jnp.float32))
    constant = example.make_optimizer(name, 0.1, wd)
    a, _ = traced.update(grads, traced.init(params), params)
    b, _ = constant.update(grads, constant.init(params), params)
    np.testing.assert_allclose(a["w"], b["w"], rtol=1e-6, err_msg=name)
  reference = optax.chain(optax.add_decayed_weights(1e-2), optax.sgd(0.1, momentum=0.9))
  ours = example.make_optimizer("sgd", 0.1, 1e-2)
  np.testing.assert_allclose(ours.update(grads, ours.init(params), params)[0]["w"],
                             reference.update(grads, reference.init(params), params)[0]["w"])


def test_cnn_learns_with_a_single_learning_rate():
  data = example.load_data(num_samples=2000, seed=0)
  result = example.train("novograd", 0.05, 64, 3, data=data, model="cnn")
  assert result["train_loss"].shape == (3,)  # a float lr: no learning-rate axis
  assert result["train_loss"][-1] < result["train_loss"][0]
  assert result["train_loss"][-1] < math.log(10)
  # 400 test samples: chance is 10% +- 1.5%.
  assert result["test_accuracy"] > CHANCE + 0.1
