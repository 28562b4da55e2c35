r"""A character-level Transformer with scanned layers: does NovoGrad generalize better
than AdamW on language modelling?

The NovoGrad paper (Ginsburg et al., 2019, §5.3, Figure 4, Table 6) trains
Transformer-XL on WikiText-103 and reports that NovoGrad ends with a higher training
loss but a lower validation loss than Adam. This example tests that claim at CPU scale
with the tuning protocol of ``examples/protocol.py``:

* **Corpus**, pinned: ``examples/data/pydoc_topics.txt`` (the help topics of
  ``pydoc_data.topics`` written out once from CPython 3.11.7, 465K characters; its
  SHA-256 is checked at load and recorded in the results). Cut into blocks of
  ``BLOCK`` characters; blocks ``i % 10 == 8`` validate, ``i % 10 == 9`` test, the rest
  train, so all three splits come from the same distribution. ``--train-chars`` keeps a
  fixed random subset of the training blocks, small enough for the larger model to
  overfit.
* **Two model sizes** (``--sizes``), pre-norm decoders whose blocks are created with
  ``nnx.vmap`` and run with ``nnx.scan``; NovoGrad takes one norm per layer of the stack
  (``layer_axes``).
* **Equal tuning.** Each optimizer gets a 5-point learning-rate grid (factor
  ``sqrt(10)``), widened until the best is interior, then 3 seeds at the best and its
  neighbours; selection by validation loss, report on validation *and* test.
  Momentum settings are fixed, stated: NovoGrad ``b1 = 0.95, b2 = 0.98`` with gradient
  averaging (the paper's LM setting), AdamW ``b1 = 0.9, b2 = 0.98``.
* **Weight-decay rule, fair to both.** With gradient averaging NovoGrad's step is
  ``lr * (m + wd * w)`` like AdamW's, so the per-step shrink of the weights is
  ``lr * wd`` for both. The rule fixes that product, ``kappa = lr * wd`` (at the peak
  of the schedule), for every optimizer and learning rate: ``wd = kappa / lr``.
  ``--kappa`` takes one value (the rule) or several (then the protocol tunes it per
  optimizer). Decay applies to matrices only (kernels, embeddings).
* **Equal budgets**: same steps, batches (the batch order depends only on the seed),
  warmup + cosine schedule, evaluations. The final losses use the whole validation and
  test splits in non-overlapping windows; the curves use fixed crops.

The learning-rate grid of one optimizer is trained at once under ``jax.vmap``.

``python examples/char_lm.py`` runs the reduced configuration; ``--full`` the
configuration sized to decide the question (the whole training split, 2000 steps,
learning rate x kappa grid; one process; it resumes from its cache when interrupted);
``--scale`` a larger one for an accelerator; ``--quick`` a seconds-long smoke test.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from novograd_optax import novograd

_HERE = os.path.dirname(os.path.abspath(__file__))
# The shared tuning protocol, loaded by path rather than by putting this folder on
# sys.path: there, examples/mnist1d.py would shadow the mnist1d package for every later
# import in the process (a test worker, a notebook).
if "protocol" not in sys.modules:
  _spec = importlib.util.spec_from_file_location("protocol", os.path.join(_HERE, "protocol.py"))
  sys.modules["protocol"] = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(sys.modules["protocol"])
protocol = sys.modules["protocol"]

CORPUS = os.path.join(_HERE, "data", "pydoc_topics.txt")
CORPUS_SHA256 = "71f2ff5d99bdc1f9c48c5c2353ad138201c5ca1c377e0226857ef8fa89b8bcee"
BLOCK = 1024
OPTIMIZERS = ("novograd", "adamw")
START_LR = {"novograd": 0.1, "adamw": 3e-3}  # centres of the starting grids

# name -> (width, heads, layers)
SIZES = {"tiny": (16, 2, 1), "small": (32, 2, 2), "medium": (64, 4, 2), "large": (128, 4, 4)}

CONFIGS = {
    # about an hour of one loaded CPU core
    "reduced": dict(sizes=("small", "medium"), steps=600, warmup=60, batch_size=16,
                    context=32, train_chars=32_768, eval_every=50, eval_batches=32,
                    seeds=(0, 1, 2), kappa=(3e-4,), jobs=1),
    # the whole training split (372,736 characters; 2000 steps of 16 x 32 characters are
    # about 2.7 passes), weight decay tuned with the learning rate: per optimizer one
    # learning-rate search per kappa (0 and 3 values over 2 decades), then 3 seeds (which
    # vary the initialization and the batch order) at the best setting. 77 min with
    # --jobs 2 on a 2-core machine, single-threaded XLA (2026-12-03; its first 27 min
    # shared with a CI run), about 60 of them for large (4x medium's weights per layer,
    # twice the layers), which runs first so that an interrupted run has it done.
    "full": dict(sizes=("large", "medium", "small"), steps=2000, warmup=200, batch_size=16,
                 context=32, train_chars=0, eval_every=100, eval_batches=32,
                 seeds=(0, 1, 2), kappa=(0.0, 1e-4, 1e-3, 1e-2), jobs=1),
    # an accelerator
    "scale": dict(sizes=("medium", "large"), steps=5000, warmup=500, batch_size=64,
                  context=128, train_chars=262_144, eval_every=250, eval_batches=64,
                  seeds=(0, 1, 2), kappa=(0.0, 3e-4, 1e-3), jobs=1),
    "quick": dict(sizes=("tiny",), steps=12, warmup=2, batch_size=4, context=16,
                  train_chars=8192, eval_every=6, eval_batches=2, seeds=(0, 1, 2),
                  kappa=(3e-4,), jobs=1),
}
SIZES["xl"] = (256, 8, 6)


# ------------------------------------------------------------------------------ data


def load_corpus(path: str = CORPUS, sha256: str = CORPUS_SHA256) -> str:
  """The pinned text; ValueError if its checksum differs (a changed file)."""
  with open(path, "rb") as f:
    raw = f.read()
  digest = hashlib.sha256(raw).hexdigest()
  if digest != sha256:
    raise ValueError(f"{path}: SHA-256 {digest} differs from the pinned {sha256}; restore "
                     "the shipped file (git checkout) rather than regenerating it")
  return raw.decode("utf-8")


def split_blocks(text: str, block: int = BLOCK):
  """``(train, valid, test)`` arrays of blocks ``(n, block)`` of character ids, and the
  alphabet. Block ``i`` validates if ``i % 10 == 8``, tests if ``i % 10 == 9``."""
  alphabet = sorted(set(text))
  code_points = np.frombuffer(text.encode("utf-32-le"), np.uint32)
  ids = np.searchsorted(np.array([ord(c) for c in alphabet]), code_points).astype(np.int32)
  n = len(ids) // block
  blocks = ids[:n * block].reshape(n, block)
  which = np.arange(n) % 10
  return blocks[which < 8], blocks[which == 8], blocks[which == 9], alphabet


def load_splits(train_chars: int = 0, block: int = BLOCK, subset_seed: int = 0):
  """Splits with a fixed random subset of ``train_chars // block`` training blocks
  (0: all)."""
  train, valid, test, alphabet = split_blocks(load_corpus(), block)
  if train_chars:
    keep = max(1, train_chars // block)
    if keep > len(train):
      raise ValueError(f"train_chars={train_chars} exceeds the {len(train) * block} "
                       "training characters")
    pick = np.sort(np.random.default_rng(subset_seed).choice(len(train), keep, replace=False))
    train = train[pick]
  return train, valid, test, alphabet


def windows(blocks: np.ndarray, length: int) -> np.ndarray:
  """All non-overlapping windows of ``length + 1`` inside each block."""
  per = (blocks.shape[1] - 1) // length
  starts = np.arange(per) * length
  return np.concatenate([blocks[:, s:s + length + 1] for s in starts])


# ----------------------------------------------------------------------------- model


class Block(nnx.Module):
  """Pre-norm Transformer block: causal self-attention, then a GELU MLP."""

  def __init__(self, width: int, num_heads: int, rngs: nnx.Rngs):
    self.attention_norm = nnx.LayerNorm(width, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(
        num_heads=num_heads, in_features=width, decode=False, rngs=rngs)
    self.mlp_norm = nnx.LayerNorm(width, rngs=rngs)
    self.mlp_in = nnx.Linear(width, 4 * width, rngs=rngs)
    self.mlp_out = nnx.Linear(4 * width, width, rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attention(self.attention_norm(x), mask=mask)
    return x + self.mlp_out(nnx.gelu(self.mlp_in(self.mlp_norm(x))))


class CharTransformer(nnx.Module):
  """Token + position embeddings, ``num_layers`` scanned blocks, a linear head."""

  def __init__(self, vocab_size: int, width: int, num_heads: int, num_layers: int,
               context: int, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab_size, width, rngs=rngs)
    self.positions = nnx.Param(0.02 * jax.random.normal(rngs.params(), (context, width)))

    @nnx.split_rngs(splits=num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
      return Block(width, num_heads, rngs)

    self.blocks = make_blocks(rngs)  # every leaf: (num_layers, ...)
    self.final_norm = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, vocab_size, rngs=rngs)

  def __call__(self, tokens):
    x = self.embed(tokens) + self.positions[: tokens.shape[-1]]
    mask = nnx.make_causal_mask(tokens)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def through_blocks(x, block):
      return block(x, mask)

    return self.head(self.final_norm(through_blocks(x, self.blocks)))


def stacked_layer_axes(params):
  """``layer_axes`` for NovoGrad: axis 0 indexes layers in the scanned blocks."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: 0 if jax.tree_util.keystr(path).startswith("['blocks']") else None,
      params)


def decay_mask(params):
  """Weight decay on the matrices (kernels, embeddings) only."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(k in jax.tree_util.keystr(path) for k in ("kernel", "embedding")),
      params)


def make_optimizer(name: str, peak_lr, kappa, steps: int, warmup: int):
  """NovoGrad or AdamW with a warmup + cosine schedule and the decay rule
  ``wd = kappa / peak_lr`` (``peak_lr`` may be traced)."""
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps)
  schedule = lambda count: peak_lr * unit(count)  # noqa: E731
  wd = kappa / peak_lr
  if name == "novograd":
    return novograd(schedule, b1=0.95, b2=0.98, weight_decay=wd,
                    weight_decay_mask=decay_mask, grad_averaging=True,
                    layer_axes=stacked_layer_axes)
  if name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=wd, mask=decay_mask)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")


def cross_entropy(graphdef, params, rest, batch):
  model = nnx.merge(graphdef, params, rest)
  logits = model(batch[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()


# -------------------------------------------------------------------------- training


_DATA_CACHE: dict = {}


def _data(train_chars: int):
  if train_chars not in _DATA_CACHE:
    _DATA_CACHE[train_chars] = load_splits(train_chars)
  return _DATA_CACHE[train_chars]

_RUN_CACHE: dict = {}


def _make_run(name, graphdef, rest, *, steps, warmup, batch_size, context, eval_every,
              kappa, n_curve, counts):
  """The jitted training program of one (optimizer, model, budget); learning rates,
  initial weights, data and seed are arguments, so seeds and grids reuse one compile."""
  num_evals = steps // eval_every

  def loss(params, batch):
    return cross_entropy(graphdef, params, rest, batch)

  def window_losses(params, data, chunk=256):
    pad = -data.shape[0] % chunk
    padded = jnp.concatenate([data, jnp.repeat(data[:1], pad, axis=0)])
    chunks = padded.reshape(-1, chunk, data.shape[-1])

    def per_window(p, c):
      logits = nnx.merge(graphdef, p, rest)(c[:, :-1])
      return p, optax.softmax_cross_entropy_with_integer_labels(logits, c[:, 1:]).mean(-1)

    # params travel in the carry: nnx.merge inside the scan needs them at its trace level
    _, per = jax.lax.scan(per_window, params, chunks)
    return per.reshape(-1)[:data.shape[0]]

  def run(lrs, params0, train_dev, curve_data, final_data, key):
    step_keys = jax.random.split(key, steps).reshape(num_evals, eval_every, -1)

    def batch_of(k):
      kb, ks = jax.random.split(jax.random.wrap_key_data(k))
      b = jax.random.randint(kb, (batch_size,), 0, train_dev.shape[0])
      s = jax.random.randint(ks, (batch_size,), 0, train_dev.shape[1] - context - 1)
      idx = s[:, None] + jnp.arange(context + 1)[None]
      return train_dev[b[:, None], idx]

    def one(peak_lr):
      tx = make_optimizer(name, peak_lr, kappa, steps, warmup)

      def step(carry, k):
        params, state = carry
        grads = jax.grad(loss)(params, batch_of(k))
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

      def segment(carry, keys):
        carry, _ = jax.lax.scan(step, carry, keys)
        per = window_losses(carry[0], curve_data, chunk=n_curve)
        return carry, (per[:n_curve].mean(), per[n_curve:].mean())

      (params, _), (ct, cv) = jax.lax.scan(segment, (params0, tx.init(params0)), step_keys)
      per = window_losses(params, final_data)
      bounds = np.cumsum([0, *counts])
      finals = tuple(per[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:], strict=True))
      return ct, cv, finals

    return jax.vmap(one)(lrs)

  return run


def train_grid(name: str, lrs, *, size: str, seed: int, steps: int, warmup: int,
               batch_size: int, context: int, train_chars: int, eval_every: int,
               eval_batches: int, kappa: float) -> list[dict[str, Any]]:
  """Trains one model per learning rate in ``lrs`` (vmapped; same init and batches).

  Returns per learning rate: ``train_loss`` and ``valid_loss`` / ``test_loss`` on the
  whole splits (nats/char, after the last step), ``gap`` (valid - train), and the
  curves ``curve_step``, ``curve_train``, ``curve_valid`` (fixed crops).
  """
  train_b, valid_b, test_b, alphabet = _data(train_chars)
  width, heads, layers = SIZES[size]
  model = CharTransformer(len(alphabet), width, heads, layers, context, nnx.Rngs(seed))
  graphdef, params0, rest = nnx.split(model, nnx.Param, ...)
  if steps % eval_every:
    raise ValueError(f"steps ({steps}) must be a multiple of eval_every ({eval_every})")
  num_evals = steps // eval_every

  crop_rng = np.random.default_rng(1234)  # the same curve crops for every run

  def crops(blocks, n):
    b = crop_rng.integers(0, len(blocks), n)
    s = crop_rng.integers(0, blocks.shape[1] - context - 1, n)
    return np.stack([blocks[i, j:j + context + 1] for i, j in zip(b, s, strict=True)])

  # One array each for the curves and the final losses, so the model is traced once
  # per use; `counts` splits the per-window losses back into train / valid / test.
  n_curve = eval_batches * batch_size
  curve_data = np.concatenate([crops(train_b, n_curve), crops(valid_b, n_curve)])
  parts = [windows(v, context) for v in (train_b, valid_b, test_b)]
  counts = [len(p) for p in parts]
  key = (name, size, len(lrs), steps, warmup, batch_size, context, train_chars, eval_every,
         eval_batches, float(kappa), len(alphabet))
  if key not in _RUN_CACHE:
    _RUN_CACHE[key] = jax.jit(_make_run(
        name, graphdef, rest, steps=steps, warmup=warmup, batch_size=batch_size,
        context=context, eval_every=eval_every, kappa=kappa, n_curve=n_curve,
        counts=counts))
  ct, cv, finals = _RUN_CACHE[key](
      jnp.asarray(lrs, jnp.float32), params0, jnp.asarray(train_b),
      jnp.asarray(curve_data), jnp.asarray(np.concatenate(parts)),
      jax.random.key_data(jax.random.key(seed)))
  finals = dict(zip(("train", "valid", "test"), finals, strict=True))
  ct, cv = np.asarray(ct), np.asarray(cv)
  finals = {k: np.asarray(v) for k, v in finals.items()}
  out = []
  for i in range(len(lrs)):
    tr, va, te = (float(finals[k][i]) for k in ("train", "valid", "test"))
    out.append({"train_loss": tr, "valid_loss": va, "test_loss": te, "gap": va - tr,
                "curve_step": [eval_every * (j + 1) for j in range(num_evals)],
                "curve_train": ct[i].tolist(), "curve_valid": cv[i].tolist()})
  return out


def evaluate(options: dict, lrs: list, seed: int) -> list[dict]:
  """The protocol's ``evaluate``: ``options`` holds the optimizer and the run settings
  (``weight_decay`` from a tuned grid is the ``kappa`` of the decay rule)."""
  opts = dict(options)
  name = opts.pop("optimizer")
  if "weight_decay" in opts:
    opts["kappa"] = opts.pop("weight_decay")
  # Widening adds 2 rates and the seed runs take 3: pad to 3 so both reuse one compile.
  padded = list(lrs) + [lrs[-1]] * (3 - len(lrs))
  out = train_grid(name, padded, seed=seed, **opts)[:len(lrs)]
  return [{**m, "valid_loss": m["valid_loss"] if np.isfinite(m["valid_loss"]) else None}
          for m in out]


# --------------------------------------------------------------------------------- CLI


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=" ".join(__doc__.split("\n\n")[0].split()),
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--quick", action="store_true", help="seconds-long smoke test")
  group.add_argument("--full", action="store_true",
                     help="the full configuration (whole training split, lr x kappa grid)")
  group.add_argument("--scale", action="store_true", help="a larger run for an accelerator")
  parser.add_argument("--sizes", default=None,
                      help=f"comma-separated of {sorted(SIZES)} (None: the configuration's)")
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps per run (None: the configuration's)")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds, >= 3 (None: the configuration's)")
  parser.add_argument("--kappa", type=float, nargs="+", default=None,
                      help="lr x weight decay; several values: tuned per optimizer (None: the "
                      "configuration's)")
  parser.add_argument("--jobs", type=int, default=None,
                      help="parallel processes (None: the configuration's)")
  parser.add_argument("--out", default=None,
                      help="results JSON; None: results/char_lm_<configuration>.json")
  parser.add_argument("--cache", default=None,
                      help="folder keeping every finished training call, so an interrupted "
                           "run resumes; None: results/cache/char_lm_<configuration> "
                           "for --full and --scale, no cache otherwise")
  parser.add_argument("--no-cache", action="store_true", help="train everything afresh")
  args = parser.parse_args(argv)
  args.configuration = ("quick" if args.quick else "full" if args.full
                        else "scale" if args.scale else "reduced")
  return args


def config_from_args(args) -> dict:
  config = dict(CONFIGS[args.configuration])
  if args.sizes:
    config["sizes"] = tuple(args.sizes.split(","))
  if args.steps:
    config["steps"] = args.steps
    config["warmup"] = max(1, args.steps // 10)
  if args.seeds:
    config["seeds"] = tuple(range(args.seeds))
  if args.kappa:
    config["kappa"] = tuple(args.kappa)
  if args.jobs:
    config["jobs"] = args.jobs
  config["corpus_sha256"] = CORPUS_SHA256
  config["block"] = BLOCK
  config["start_lr"] = dict(START_LR)
  config["lr_grids"] = {name: protocol.log_grid(START_LR[name]) for name in OPTIMIZERS}
  return config


def candidates_for(config: dict) -> list[dict]:
  run_keys = ("steps", "warmup", "batch_size", "context", "train_chars", "eval_every",
              "eval_batches")
  out = []
  kappas = list(config["kappa"])
  for size in config["sizes"]:
    for name in OPTIMIZERS:
      options = {"optimizer": name, "size": size, **{k: config[k] for k in run_keys}}
      cand = {"name": f"{name}/{size}", "options": options,
              "learning_rates": protocol.log_grid(START_LR[name])}
      if len(kappas) == 1:
        options["kappa"] = kappas[0]
      else:
        cand["weight_decays"] = kappas
      out.append(cand)
  return out


def cached_evaluate(args):
  """``evaluate``, wrapped so that finished calls are kept on disk (``--cache``; on by
  default for the long configurations). The cache is keyed by this file, the protocol,
  the library's sources and the JAX/optax/flax versions, so edited code trains afresh."""
  folder = args.cache
  if folder is None and args.configuration in ("full", "scale"):
    folder = os.path.join("results", "cache", f"char_lm_{args.configuration}")
  if args.no_cache or not folder:
    return evaluate
  library = os.path.join(os.path.dirname(_HERE), "novograd_optax")
  sources = [os.path.abspath(__file__), protocol.__file__,
             *(os.path.join(root, name) for root, _, names in os.walk(library)
               for name in names if name.endswith(".py"))]
  versions = " ".join(f"{name} {importlib.metadata.version(name)}"
                      for name in ("jax", "jaxlib", "optax", "flax"))
  version = f"{protocol.source_version(*sources)} {versions}"
  print(f"finished training calls are kept in {folder} (--no-cache to train afresh)")
  return protocol.CachedEvaluate(evaluate, folder, version)


def main(argv=None) -> dict:
  args = parse_args(argv)
  config = config_from_args(args)
  start = time.perf_counter()
  train_b, valid_b, test_b, alphabet = _data(config["train_chars"])
  print(f"{args.configuration} configuration: {train_b.size} training, {valid_b.size} "
        f"validation, {test_b.size} test characters, {len(alphabet)} symbols")
  results = protocol.run_protocol(
      cached_evaluate(args), candidates_for(config), seeds=config["seeds"], score_key="valid_loss",
      higher_is_better=False, report_keys=("train_loss", "valid_loss", "test_loss", "gap"),
      jobs=config["jobs"])
  comparisons = []
  for size in config["sizes"]:
    for key in ("valid_loss", "test_loss", "gap"):
      comparisons.append(protocol.compare(results, f"novograd/{size}", f"adamw/{size}",
                                          key, higher_is_better=False))
  seconds = time.perf_counter() - start
  for r in results:
    s = r["summary"]
    print(f"{r['name']}: lr {r['best_lr']:.3g} (interior {r['interior']}); train "
          f"{s['train_loss']['mean']:.3f}±{s['train_loss']['std']:.3f}, valid "
          f"{s['valid_loss']['mean']:.3f}±{s['valid_loss']['std']:.3f}, gap "
          f"{s['gap']['mean']:+.3f}±{s['gap']['std']:.3f}")
  for c in comparisons:
    print(f"{c['a']} vs {c['b']} on {c['key']}: {c['verdict']}")
  out = args.out or os.path.join("results", f"char_lm_{args.configuration}.json")
  protocol.write_results(out, "char_lm", args.configuration, config,
                         {"results": results, "comparisons": comparisons},
                         argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                         seconds=seconds)
  print(f"wrote {out} ({seconds:.0f} s)")
  return {"config": config, "results": results, "comparisons": comparisons}


if __name__ == "__main__":
  main(sys.argv[1:])
