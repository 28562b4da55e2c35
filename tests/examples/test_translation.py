"""examples/translation.py: the number-to-words generator, the splits, corpus BLEU and
token accuracy against hand-computed values, and the quick configuration end to end."""

import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "translation.py"


def load_example():
  spec = importlib.util.spec_from_file_location("translation_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


translation = load_example()


@pytest.mark.parametrize("number,words", [
    (0, "zero"), (7, "seven"), (15, "fifteen"), (20, "twenty"), (40, "forty"),
    (99, "ninety nine"), (100, "one hundred"), (120, "one hundred twenty"),
    (1017, "one thousand seventeen"), (40017, "forty thousand seventeen"),
    (200000, "two hundred thousand"), (999999, "nine hundred ninety nine thousand nine "
                                               "hundred ninety nine"),
    (1000001, "one million one"), (310000000, "three hundred ten million")])
def test_number_to_words(number, words):
  assert translation.number_to_words(number) == words.split()


def test_number_to_words_refuses_out_of_range():
  with pytest.raises(ValueError):
    translation.number_to_words(10 ** 9)


def test_splits_are_disjoint_deterministic_and_cover_every_length():
  splits = translation.make_splits(3000, 300, 300)
  sizes = {k: len(v) for k, v in splits.items()}
  assert sizes == {"train": 3000, "valid": 300, "test": 300}
  sets = {k: set(v.tolist()) for k, v in splits.items()}
  assert sum(len(s) for s in sets.values()) == 3600  # distinct numbers
  assert not (sets["train"] & sets["valid"] or sets["train"] & sets["test"]
              or sets["valid"] & sets["test"])
  all_numbers = np.concatenate(list(splits.values()))
  assert all_numbers.min() >= 0 and all_numbers.max() < 10 ** translation.MAX_DIGITS
  digits = {len(str(n)) for n in all_numbers.tolist()}
  assert digits == set(range(1, translation.MAX_DIGITS + 1))
  again = translation.make_splits(3000, 300, 300)
  for k in splits:
    np.testing.assert_array_equal(splits[k], again[k])


def test_encoding_of_one_pair_by_hand():
  source, target = translation.encode([40017])
  # digits 4 0 0 1 7 -> ids digit + 1, then padding
  assert source[0].tolist() == [5, 1, 1, 2, 8] + [0] * (translation.SOURCE_LENGTH - 5)
  vocab = translation.TARGET_VOCAB
  assert [vocab[i] for i in target[0]] == ["<s>", "forty", "thousand", "seventeen", "</s>",
                                           *["<pad>"] * (translation.TARGET_LENGTH - 5)]
  assert translation.strip(target[0].tolist()) == [vocab.index(w) for w in
                                                   ("forty", "thousand", "seventeen")]


def test_corpus_bleu_of_one_sentence_by_hand():
  hyp = "the cat sat on the mat".split()
  ref = "the cat sat on a mat".split()
  # clipped precisions: 1-grams 5/6 (one "the" unmatched), 2-grams 3/5, 3-grams 2/4,
  # 4-grams 1/3; equal lengths, so no brevity penalty:
  # (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** (1/4) = 0.537284965
  assert translation.corpus_bleu([hyp], [ref]) == pytest.approx(53.7284965, abs=1e-6)


def test_corpus_bleu_sums_counts_over_the_corpus_and_penalizes_brevity():
  hyps = ["the cat sat on the mat".split(), ["x", "y"]]
  refs = ["the cat sat on a mat".split(), ["x", "y", "z"]]
  # the second pair adds 2/2 1-grams and 1/1 2-grams: precisions 7/8, 4/6, 2/4, 1/3;
  # hypothesis length 8 < reference length 9: BP = exp(1 - 9/8) = 0.882496903
  # (7/72) ** (1/4) = 0.558395; BLEU = 0.882497 * 0.558395 = 0.492781
  assert translation.corpus_bleu(hyps, refs) == pytest.approx(49.2781, abs=1e-3)
  assert translation.corpus_bleu(refs, refs) == pytest.approx(100.0)
  assert translation.corpus_bleu([["a", "b", "c", "d"]], [["e", "f", "g", "h"]]) == 0.0
  assert math.isclose(translation.corpus_bleu([[]], [["a"]]), 0.0)


def test_token_accuracy_by_hand():
  target = np.array([[1, 5, 6, 2, 0], [1, 5, 6, 7, 2]])
  decoded = np.array([[1, 5, 6, 2, 9], [1, 5, 8, 7, 0]])
  # real tokens after the start: 3 + 4; matched: 3 (first) + 2 (5 and 7) = 5
  assert translation.token_accuracy(decoded, target) == pytest.approx(5 / 7)


def test_tiny_grid_lowers_the_loss_and_decodes():
  results = translation.train_grid(
      "adamw", [1e-3, 1e-2], seed=0, weight_decay=1e-2, train_size=256, valid_size=32,
      test_size=32, width=16, heads=2, layers=1, steps=40, batch_size=16, eval_every=10)
  for r in results:
    assert 0.0 <= r["valid_bleu"] <= 100.0 and 0.0 <= r["test_token_acc"] <= 1.0
    assert r["curve_step"] == [10, 20, 30, 40]
  assert results[1]["curve_train"][-1] < results[1]["curve_train"][0] - 0.3


def test_quick_cli_tunes_the_decay_jointly_with_the_learning_rate(tmp_path, monkeypatch):
  optimum = {"novograd": (0.03, 1e-4), "adamw": (1e-3, 0.0)}

  def fake(name, lrs, *, seed, weight_decay, **kwargs):
    lr0, wd0 = optimum[name]
    out = []
    for lr in lrs:
      v = 80 - 10 * (np.log10(lr) - np.log10(lr0)) ** 2 - 100 * abs(weight_decay - wd0) + seed
      out.append({"valid_bleu": v, "test_bleu": v, "valid_token_acc": 0.9,
                  "test_token_acc": 0.9, "valid_exact": 0.5, "test_exact": 0.5,
                  "train_loss": 1.0, "valid_loss": 1.1, "curve_step": [1],
                  "curve_train": [1.0]})
    return out

  monkeypatch.setattr(translation, "train_grid", fake)
  path = tmp_path / "r.json"
  translation.main(["--quick", "--out", str(path)])
  record = json.loads(path.read_text())
  by_name = {r["name"]: r for r in record["results"]}
  for name, r in by_name.items():
    assert [s["weight_decay"] for s in r["searches"]] == record["config"]["weight_decays"][name]
    assert r["weight_decay"] == optimum[name][1]
    assert r["best_lr"] == pytest.approx(optimum[name][0], rel=0.1)
  assert [c["key"] for c in record["comparisons"]] == ["test_bleu", "test_token_acc",
                                                      "valid_bleu"]


def test_full_configuration_grids_follow_the_protocol():
  config = translation.config_from_args(translation.parse_args(["--full"]))
  for name in translation.OPTIMIZERS:
    decays = config["weight_decays"][name]
    positive = [d for d in decays if d > 0]
    assert 0.0 in decays and len(positive) >= 3 and max(positive) / min(positive) >= 100


def test_quick_runs_end_to_end(tmp_path):
  path = tmp_path / "quick.json"
  translation.main(["--quick", "--out", str(path)])
  record = json.loads(path.read_text())
  assert {r["name"] for r in record["results"]} == set(translation.OPTIMIZERS)
  assert all(r["summary"]["test_bleu"]["n"] == 3 for r in record["results"])
