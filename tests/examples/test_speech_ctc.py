"""examples/speech_ctc.py: the sequence builder, CTC greedy decoding and the label error
rate against hand-computed values, the im2col convolution against XLA's, and the
quick configuration end to end."""

import importlib.util
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "speech_ctc.py"


def load_example():
  spec = importlib.util.spec_from_file_location("speech_ctc_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


speech = load_example()


def test_sequences_concatenate_whole_signals_and_their_digits():
  # signal i is constant i (so each 40-sample chunk names the signal it came from);
  # its digit is i % 10
  x = np.repeat(np.arange(30, dtype=np.float32)[:, None], 40, axis=1)
  y = np.arange(30) % 10
  inputs, lengths, labels, label_lengths = speech.make_sequences(
      x, y, 200, np.random.default_rng(0), min_digits=2, max_digits=3)
  assert inputs.shape == (200, 120) and labels.shape == (200, 3)
  assert set(label_lengths.tolist()) == {2, 3}
  np.testing.assert_array_equal(lengths, 40 * label_lengths)
  for seq, n, lab, k in zip(inputs, lengths, labels, label_lengths, strict=True):
    chunks = seq[:n].reshape(k, 40)
    assert (chunks == chunks[:, :1]).all()  # whole signals, not cut
    sources = chunks[:, 0].astype(int)
    assert lab[:k].tolist() == [s % 10 + 1 for s in sources]  # class = digit + 1
    assert (lab[k:] == 0).all() and (seq[n:] == 0).all()  # padding


def test_splits_share_no_signal():
  data = speech.load_splits(600, 50, 20, 20)
  raw = speech._load("mnist1d_example", "mnist1d.py").load_data(600, speech.DATA_SEED)
  for split, source in (("train", "x_train"), ("valid", "x_val"), ("test", "x_test")):
    inputs, lengths, _, _ = data[split]
    rows = {r.tobytes() for r in raw[source]}
    for seq, n in zip(inputs, lengths, strict=True):
      for chunk in seq[:n].reshape(-1, 40):
        assert chunk.tobytes() in rows, split


def test_greedy_decoding_merges_repeats_and_drops_blanks():
  frames = np.array([[1, 1, 0, 1, 2, 2, 0, 0, 3, 3],
                     [0, 0, 5, 5, 5, 0, 5, 7, 7, 7]])
  # the second sequence has 6 real frames: 0 0 5 5 5 0 -> [5]
  assert speech.greedy_decode(frames, np.array([10, 6])) == [[1, 1, 2, 3], [5]]
  assert speech.greedy_decode(frames, np.array([2, 0])) == [[1], []]


def test_edit_distance_and_label_error_rate_by_hand():
  assert speech.edit_distance("kitten", "sitting") == 3
  assert speech.edit_distance([], [1, 2]) == 2
  assert speech.edit_distance([1, 2, 3], [1, 2, 3]) == 0
  assert speech.edit_distance([3, 1, 2], [1, 2, 3]) == 2
  # errors 1 (a deletion) + 1 (a substitution) over 3 + 2 reference labels
  assert speech.label_error_rate([[1, 2], [3, 5]], [[1, 2, 3], [3, 4]]) == pytest.approx(0.4)


@pytest.mark.parametrize("kernel,stride,length", [(5, 1, 30), (11, 4, 120), (1, 1, 7),
                                                  (4, 2, 9)])
def test_im2col_convolution_equals_xla_convolution(kernel, stride, length):
  conv = speech.Conv1D(3, 5, kernel, stride, nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, length, 3))
  reference = jax.lax.conv_general_dilated(
      x, conv.kernel[...].reshape(kernel, 3, 5), (stride,), "SAME",
      dimension_numbers=("NWC", "WIO", "NWC")) + conv.bias[...]
  np.testing.assert_allclose(conv(x), reference, rtol=1e-5, atol=1e-5)


def test_padded_frames_do_not_change_the_real_ones():
  model = speech.JasperLike(8, 2, 5, nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(2), (1, 120))
  lengths = jnp.array([80])
  mask = (jnp.arange(30)[None] < speech.frame_counts(lengths)[:, None]).astype(jnp.float32)
  short = model(x.at[:, 80:].set(0.0), mask)
  other = model(x.at[:, 80:].set(0.0).at[:, 100:].set(5.0) * (jnp.arange(120) < 80), mask)
  assert short.shape == (1, 30, speech.NUM_CLASSES)
  np.testing.assert_allclose(short[:, :20], other[:, :20], atol=1e-6)


def test_tiny_grid_lowers_the_ctc_loss():
  kwargs = dict(weight_decay=1e-3, num_samples=600, train_sequences=64, valid_sequences=16,
                test_sequences=16, channels=8, blocks=1, kernel=5, steps=30, batch_size=8,
                eval_every=10)
  results = speech.train_grid("adamw", [1e-3, 3e-2], seed=0, **kwargs)
  for r in results:
    assert 0.0 <= r["valid_ler"] and np.isfinite(r["valid_loss"])
    assert r["curve_step"] == [10, 20, 30]
  assert results[1]["curve_train"][-1] < results[1]["curve_train"][0] - 0.1
  clipped = speech.train_grid("novograd", [0.1], seed=0, **kwargs)
  assert np.isfinite(clipped[0]["valid_loss"])


def test_quick_cli_tunes_the_decay_jointly_with_the_learning_rate(tmp_path, monkeypatch):
  # The protocol plumbing without training: a score lowest at a known (lr, wd) per
  # optimizer.
  optimum = {"novograd": (0.3, 1e-3), "novograd_noluc": (0.03, 0.0), "sgd": (0.1, 1e-4),
             "adamw": (0.03, 1e-2)}

  def fake(name, lrs, *, seed, weight_decay, **kwargs):
    lr0, wd0 = optimum[name]
    return [{"valid_ler": 0.2 + (np.log10(lr) - np.log10(lr0)) ** 2 + abs(weight_decay - wd0)
             + 0.001 * seed, "test_ler": 0.25, "train_loss": 1.0, "valid_loss": 1.1,
             "test_loss": 1.1, "curve_step": [1], "curve_train": [1.0]} for lr in lrs]

  monkeypatch.setattr(speech, "train_grid", fake)
  path = tmp_path / "r.json"
  speech.main(["--quick", "--out", str(path)])
  record = json.loads(path.read_text())
  assert record["configuration"] == "quick"
  by_name = {r["name"]: r for r in record["results"]}
  assert set(by_name) == set(speech.OPTIMIZERS)
  for name, r in by_name.items():
    assert [s["weight_decay"] for s in r["searches"]] == record["config"]["weight_decays"][name]
    assert r["best_lr"] == pytest.approx(optimum[name][0], rel=0.1) and r["interior"]
    assert r["weight_decay"] == optimum[name][1]
  assert {(c["a"], c["b"]) for c in record["comparisons"]} == {
      (a, b) for a in ("novograd", "novograd_noluc") for b in ("sgd", "adamw")}


def test_full_configuration_grids_follow_the_protocol():
  config = speech.config_from_args(speech.parse_args(["--full"]))
  for name in speech.OPTIMIZERS:
    decays = config["weight_decays"][name]
    assert 0.0 in decays and len(decays) >= 4
    positive = [d for d in decays if d > 0]
    assert max(positive) / min(positive) >= 100  # 3 values over 2 decades
  assert config["seeds"] == (0, 1, 2)


def test_quick_runs_end_to_end(tmp_path):
  path = tmp_path / "quick.json"
  out = speech.main(["--quick", "--out", str(path)])
  record = json.loads(path.read_text())
  assert len(record["results"]) == len(speech.OPTIMIZERS)
  for r in out["results"]:
    assert r["summary"]["valid_ler"]["n"] == 3
