"""examples/masked_lm.py: the BERT masking rule against independent expectations, the
masked-only loss, LAMB's per-layer trust ratio, the encoder seeing both directions, and
the protocol plumbing of the CLI."""

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

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "masked_lm.py"


def load_example():
  spec = importlib.util.spec_from_file_location("masked_lm_example", EXAMPLE)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)
  return module


masked_lm = load_example()
NUM_CHARS = 50


def test_masking_proportions_on_a_large_sample():
  n = 400_000
  # tokens avoid 0 and 1 so a random replacement is seen apart from a kept token
  tokens = jnp.full((n,), 7, jnp.int32)
  inputs, targets = masked_lm.mask_tokens(jax.random.key(0), tokens, NUM_CHARS)
  inputs, targets = np.asarray(inputs), np.asarray(targets)
  chosen = targets.sum()
  # binomial standard errors: 15% of n, then 80 / 10 / 10 of the chosen; 5 sigma bounds
  assert abs(chosen / n - 0.15) < 5 * np.sqrt(0.15 * 0.85 / n)
  masked = (inputs[targets] == NUM_CHARS).mean()
  kept = (inputs[targets] == 7).mean()
  replaced = 1 - masked - kept
  se = lambda p: 5 * np.sqrt(p * (1 - p) / chosen)  # noqa: E731
  assert abs(masked - 0.8) < se(0.8)
  # a random character equals the original 1 time in NUM_CHARS: counted as kept then
  assert abs(kept - (0.1 + 0.1 / NUM_CHARS)) < se(0.1)
  assert abs(replaced - 0.1 * (1 - 1 / NUM_CHARS)) < se(0.1)
  # positions not chosen are never changed, and [MASK] appears only where chosen
  assert (inputs[~targets] == 7).all()
  assert not (inputs[~targets] == NUM_CHARS).any()
  # random replacements are characters, never [MASK] or out of range
  replacements = inputs[targets & (inputs != NUM_CHARS) & (inputs != 7)]
  assert replacements.size and replacements.min() >= 0 and replacements.max() < NUM_CHARS
  # uniform over the characters: every character shows up
  assert len(np.unique(replacements)) == NUM_CHARS - 1


def test_masks_depend_on_the_key_only():
  tokens = jnp.arange(1000, dtype=jnp.int32) % NUM_CHARS
  a = masked_lm.mask_tokens(jax.random.key(3), tokens, NUM_CHARS)
  b = masked_lm.mask_tokens(jax.random.key(3), tokens, NUM_CHARS)
  c = masked_lm.mask_tokens(jax.random.key(4), tokens, NUM_CHARS)
  assert all((np.asarray(x) == np.asarray(y)).all() for x, y in zip(a, b, strict=True))
  assert (np.asarray(a[1]) != np.asarray(c[1])).any()


def test_loss_counts_the_chosen_positions_only():
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(0, NUM_CHARS, (4, 32)), jnp.int32)
  _, targets = masked_lm.mask_tokens(jax.random.key(1), tokens, NUM_CHARS)
  logits = jnp.asarray(rng.normal(size=(4, 32, NUM_CHARS)), jnp.float32)

  loss, acc = masked_lm.masked_loss_and_accuracy(logits, tokens, targets)
  # an independent computation: log-softmax by hand, mean over chosen positions
  lg = np.asarray(logits, np.float64)
  logp = lg - lg.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  t, m = np.asarray(tokens), np.asarray(targets)
  nll = -np.take_along_axis(logp, t[..., None], -1)[..., 0]
  assert float(loss) == pytest.approx(nll[m].mean(), rel=1e-5)
  assert float(acc) == pytest.approx((lg.argmax(-1) == t)[m].mean())
  # the gradient is zero at every position that was not chosen
  grad = np.asarray(jax.grad(
      lambda x: masked_lm.masked_loss_and_accuracy(x, tokens, targets)[0])(logits))
  assert np.abs(grad[~m]).max() == 0 and np.abs(grad[m]).min(axis=-1).max() > 0


def test_mask_is_never_a_target_and_the_head_cannot_predict_it():
  train, _, _, alphabet = masked_lm.load_data()
  mask_id = len(alphabet)
  assert train.max() < mask_id  # the corpus never holds the [MASK] id
  model = masked_lm.make_encoder(len(alphabet), 8, 1, 1, 16, seed=0)
  tokens = jnp.asarray(train[:2, :16])
  inputs, targets = masked_lm.mask_tokens(jax.random.key(0), tokens, len(alphabet))
  assert (np.asarray(inputs) == mask_id).any()
  logits = nnx.jit(lambda m, x: m(x))(model, inputs)
  assert logits.shape == (2, 16, len(alphabet))  # no output for [MASK]


def test_encoder_is_bidirectional():
  model = masked_lm.make_encoder(NUM_CHARS, 16, 2, 2, 12, seed=0)
  tokens = jnp.arange(12, dtype=jnp.int32)[None] % NUM_CHARS
  changed = tokens.at[0, -1].set(NUM_CHARS)  # [MASK] at the last position
  both = nnx.jit(lambda m, x: m(x))(model, jnp.concatenate([tokens, changed]))
  # the first position sees the change at the last one (a causal model would not)
  assert np.abs(np.asarray(both[0, 0] - both[1, 0])).max() > 1e-6


def stacked_params():
  model = masked_lm.make_encoder(NUM_CHARS, 16, 2, 3, 8, seed=0)
  _, params, _ = nnx.split(model, nnx.Param, ...)
  return params


def test_lamb_matches_optax_lamb_on_unstacked_layers_and_is_per_layer_when_stacked():
  params = stacked_params()
  grads = jax.tree.map(
      lambda p: jnp.asarray(np.random.default_rng(p.size).normal(size=p.shape), p.dtype),
      params)
  mine = masked_lm.lamb(1e-2, 1e-2, masked_lm.char_lm.decay_mask)
  ours, _ = jax.jit(mine.update)(grads, mine.init(params), params)
  reference = optax.lamb(1e-2, b1=0.9, b2=0.999, eps=1e-6, weight_decay=1e-2,
                         mask=masked_lm.char_lm.decay_mask)
  theirs, _ = jax.jit(reference.update)(grads, reference.init(params), params)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
  checked = 0
  for path, u, r, p, g in zip(paths, jax.tree.leaves(ours), jax.tree.leaves(theirs),
                              jax.tree.leaves(params), jax.tree.leaves(grads), strict=True):
    if not path.startswith("['blocks']"):
      np.testing.assert_allclose(u, r, rtol=1e-5, atol=1e-8)
      continue
    # per layer: |update| = lr * |w| for every layer with nonzero weights
    for layer in range(u.shape[0]):
      w_norm = np.linalg.norm(np.asarray(p[layer]))
      if w_norm > 0 and np.linalg.norm(np.asarray(g[layer])) > 0:
        assert np.linalg.norm(np.asarray(u[layer])) == pytest.approx(1e-2 * w_norm, rel=1e-4)
        checked += 1
  assert checked >= 3 * 6


def fake_train_grid(optimum_wd):
  """A ``train_grid`` whose validation loss is lowest at a known lr per optimizer and at
  ``optimum_wd[name]``."""
  optimum = {"novograd": 0.03, "adamw": 3e-3, "lamb": 0.01}

  def fake(name, lrs, *, seed, weight_decay, steps, eval_every, **kwargs):
    out = []
    for lr in lrs:
      v = (2.0 + (np.log10(lr) - np.log10(optimum[name])) ** 2
           + abs(np.log10(weight_decay + 1e-4) - np.log10(optimum_wd[name] + 1e-4))
           + 0.001 * seed)
      out.append({"train_loss": v - 0.1, "train_acc": 0.5, "valid_loss": v,
                  "valid_acc": 1 / v, "test_loss": v, "test_acc": 1 / v,
                  "curve_step": [eval_every], "curve_train": [v], "curve_valid": [v]})
    return out

  return fake


def test_quick_cli_tunes_lr_and_weight_decay_for_every_optimizer(tmp_path, monkeypatch):
  monkeypatch.setattr(masked_lm, "train_grid",
                      fake_train_grid({"novograd": 1e-2, "adamw": 0.0, "lamb": 1e-2}))
  path = tmp_path / "r.json"
  masked_lm.main(["--quick", "--out", str(path)])
  record = json.loads(path.read_text())
  assert record["experiment"] == "masked_lm" and record["configuration"] == "quick"
  by_name = {r["name"]: r for r in record["results"]}
  assert set(by_name) == {"novograd", "adamw", "lamb"}
  decays = list(masked_lm.CONFIGS["quick"]["weight_decays"])
  for r in by_name.values():
    assert [s["weight_decay"] for s in r["searches"]] == decays
    assert r["interior"] and len(r["summary"]["test_acc"]["values"]) == 3
  assert by_name["novograd"]["weight_decay"] == 1e-2
  assert by_name["adamw"]["weight_decay"] == 0.0
  assert by_name["novograd"]["best_lr"] == pytest.approx(1e-2 * 10 ** 0.5)
  keys = {(c["b"], c["key"]) for c in record["comparisons"]}
  assert ("lamb", "test_acc") in keys and ("adamw", "valid_loss") in keys
  assert all(c["verdict"] in ("wins", "loses", "tie") for c in record["comparisons"])


def test_tiny_real_run_lowers_the_masked_loss():
  config = dict(masked_lm.CONFIGS["quick"])
  for key in ("weight_decays", "seeds", "pad_lrs"):
    config.pop(key)
  config.update(steps=20, eval_every=10, width=16, heads=2, context=16, batch_size=16)
  out = masked_lm.train_grid("novograd", [0.01, 0.05], seed=0, weight_decay=1e-3, **config)
  assert len(out) == 2 and out[0]["curve_step"] == [10, 20]
  best = min(r["valid_loss"] for r in out)
  assert np.isfinite(best) and best < np.log(103) - 0.5  # below a uniform guess
  assert all(0 <= r["test_acc"] <= 1 for r in out)
