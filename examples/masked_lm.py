r"""BERT-style masked-language-model pretraining at CPU scale: does NovoGrad match or
beat Adam(W) and LAMB?

The NovoGrad paper (Ginsburg et al., 2019, arXiv 1905.11286) lists BERT pre-training
among its §5 experiments with large networks, comparing NovoGrad with Adam and LAMB.
The version of the paper among this project's sources (the ICLR 2020 submission, §5.1 to
§5.4) has no BERT section, so the NovoGrad recipe used here is the one of the authors'
public BERT-pretraining script. This example tests the claim at CPU scale with the
tuning protocol of ``examples/protocol.py``:

* **Corpus**, pinned: ``examples/data/pydoc_topics.txt``, loaded, checked and split by
  ``examples/char_lm.py`` (blocks of 1024 characters; ``i % 10 == 8`` validate,
  ``== 9`` test, the rest train). Tokens are characters plus one ``[MASK]`` token;
  sequences are ``context`` characters long.
* **The BERT masking rule** (Devlin et al., 2019, §3.1): each position is chosen with
  probability 15%; of the chosen, 80% become ``[MASK]``, 10% a random character, 10%
  stay. The loss and accuracy count the chosen positions only. Training masks are
  drawn afresh every step from the seed; validation and test masks are drawn once with
  a fixed key, so every run is scored on the same task. Validation and test use the
  non-overlapping windows of their splits in whole chunks of 64 windows (704 of 720 in
  the full configuration).
* **Model**: a bidirectional pre-norm Transformer encoder, the blocks of
  ``char_lm.py`` run with ``nnx.scan`` without the causal mask; NovoGrad and LAMB take
  one norm (NovoGrad) or trust ratio (LAMB) per layer of the stack.
* **Optimizers**, momentum settings fixed and stated: NovoGrad with the authors' BERT
  recipe (``b1 = 0.95, b2 = 0.25``, no gradient averaging, decay inside the moment;
  the defaults of their public BERT-pretraining script, whose ``b2`` is also the
  library's default), AdamW and LAMB with BERT's and LAMB's ``b1 = 0.9, b2 = 0.999, eps = 1e-6``.
  All three: linear warmup over 5% of the steps, then cosine decay (the authors'
  script's schedule), the same large batch, steps and evaluations.
* **Equal tuning**: the learning rate (5-point grid, factor ``sqrt(10)``, widened
  until interior) jointly with the weight decay (one learning-rate search per value of
  the same decay grid for every optimizer: 0 and values over several decades); then 3
  seeds (initialization, masks and batch order) at the best setting and its
  neighbours. Selection by masked-token validation loss; reported: training loss,
  validation and test masked-token loss and accuracy. Decay applies to matrices only.

The learning-rate grid of one optimizer is trained at once under ``jax.vmap``.

``python examples/masked_lm.py`` runs the full configuration (it resumes from its cache
when interrupted); ``--quick`` a smoke test of the whole pipeline (a tiny model, 4
steps).
"""

from __future__ import annotations

import argparse
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
# The character-LM example (corpus, splits, Transformer blocks, layer axes, decay mask)
# and, through it, the shared protocol; loaded by path (see char_lm.py for why).
if "char_lm" not in sys.modules:
  _spec = importlib.util.spec_from_file_location("char_lm", os.path.join(_HERE, "char_lm.py"))
  sys.modules["char_lm"] = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(sys.modules["char_lm"])
char_lm = sys.modules["char_lm"]
protocol = char_lm.protocol

OPTIMIZERS = ("novograd", "adamw", "lamb")
START_LR = {"novograd": 1e-2, "adamw": 1e-3, "lamb": 1e-2}  # centres of the starting grids
MASK_RATE, MASK_TOKEN_SHARE, RANDOM_TOKEN_SHARE = 0.15, 0.8, 0.1
EVAL_MASK_SEED = 1234  # one fixed draw of validation / test / training-loss masks

CONFIGS = {
    # width 32, 2 layers, 2 heads; 64 sequences of 64 characters per step (4096 tokens,
    # about 600 of them targets: the largest batch the budget allowed), 200 steps; 31 min
    # on 2 CPU cores shared with other jobs (load about 8), single-threaded XLA
    # (2026-12-02). `pad_lrs`: every call trains at least this many rates (repeats of
    # the last), so few shapes are compiled.
    "full": dict(width=32, heads=2, layers=2, context=64, batch_size=64, steps=200,
                 warmup_share=0.05, eval_every=50, eval_windows=256,
                 weight_decays=(0.0, 1e-3, 1e-2, 1e-1), seeds=(0, 1, 2), pad_lrs=3),
    "quick": dict(width=8, heads=1, layers=1, context=8, batch_size=4, steps=4,
                  warmup_share=0.25, eval_every=2, eval_windows=8,
                  weight_decays=(0.0, 1e-2), seeds=(0, 1, 2), pad_lrs=5),
}


# ------------------------------------------------------------------------------ data


def load_data():
  """``(train, valid, test, alphabet)`` blocks of character ids (``char_lm``'s split);
  ``[MASK]`` is id ``len(alphabet)``."""
  return char_lm.split_blocks(char_lm.load_corpus())


def mask_tokens(key, tokens, num_chars: int):
  """The BERT masking rule on ``tokens`` (ids in ``[0, num_chars)``).

  Returns ``(inputs, targets)``: ``targets`` is True at the chosen positions (15%);
  there ``inputs`` holds ``[MASK]`` (id ``num_chars``) with probability 80%, a random
  character with 10% and the original with 10%; elsewhere the original.
  """
  k_choose, k_kind, k_random = jax.random.split(key, 3)
  targets = jax.random.uniform(k_choose, tokens.shape) < MASK_RATE
  kind = jax.random.uniform(k_kind, tokens.shape)
  random_chars = jax.random.randint(k_random, tokens.shape, 0, num_chars)
  inputs = jnp.where(kind < MASK_TOKEN_SHARE, num_chars,
                     jnp.where(kind < MASK_TOKEN_SHARE + RANDOM_TOKEN_SHARE, random_chars,
                               tokens))
  return jnp.where(targets, inputs, tokens).astype(tokens.dtype), targets


def masked_loss_and_accuracy(logits, tokens, targets):
  """Cross-entropy and accuracy averaged over the chosen positions only."""
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, tokens)
  hit = (jnp.argmax(logits, -1) == tokens)
  weight = targets.astype(logits.dtype)
  count = jnp.maximum(weight.sum(), 1.0)
  return (ce * weight).sum() / count, (hit * weight).sum() / count


# ----------------------------------------------------------------------------- model


class Encoder(char_lm.CharTransformer):
  """``char_lm``'s Transformer, bidirectional: the scanned blocks without a causal
  mask; the head predicts characters (never ``[MASK]``)."""

  def __call__(self, tokens):
    x = self.embed(tokens) + self.positions[: tokens.shape[-1]]

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def through_blocks(x, block):
      return block(x, None)

    return self.head(self.final_norm(through_blocks(x, self.blocks)))


def make_encoder(num_chars: int, width: int, heads: int, layers: int, context: int, seed: int):
  """Embeddings for the characters and ``[MASK]``, a head over the characters."""
  model = Encoder(num_chars + 1, width, heads, layers, context, nnx.Rngs(seed))
  model.head = nnx.Linear(width, num_chars, rngs=nnx.Rngs(seed + 10_000))
  return model


def scale_by_layerwise_trust_ratio(layer_axes):
  """``optax.scale_by_trust_ratio`` with one ratio per layer of a stacked leaf (axis
  ``layer_axes(params)`` is 0 there; ``None``: one ratio for the whole leaf), so LAMB
  treats the scanned blocks as the separate layers they are."""
  inner = optax.scale_by_trust_ratio()

  def update(updates, state, params):
    leaves, treedef = jax.tree.flatten(updates)
    axes = treedef.flatten_up_to(layer_axes(params))
    f = lambda u, p: inner.update(u, state, p)[0]  # noqa: E731
    out = [jax.vmap(f)(u, p) if axis == 0 else f(u, p)
           for u, p, axis in zip(leaves, treedef.flatten_up_to(params), axes, strict=True)]
    return treedef.unflatten(out), state

  return optax.GradientTransformation(inner.init, update)


def lamb(learning_rate, weight_decay, mask):
  """LAMB (You et al., 2020) as ``optax.lamb`` chains it, with per-layer trust ratios."""
  return optax.chain(
      optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-6),
      optax.add_decayed_weights(weight_decay, mask),
      scale_by_layerwise_trust_ratio(char_lm.stacked_layer_axes),
      optax.scale_by_learning_rate(learning_rate))


def make_optimizer(name: str, peak_lr, weight_decay, steps: int, warmup: int):
  """One of ``OPTIMIZERS`` with warmup + cosine decay to ``peak_lr`` (may be traced)."""
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps)
  schedule = lambda count: peak_lr * unit(count)  # noqa: E731
  if name == "novograd":
    return novograd(schedule, b1=0.95, b2=0.25, weight_decay=weight_decay,
                    weight_decay_mask=char_lm.decay_mask, grad_averaging=False,
                    layer_axes=char_lm.stacked_layer_axes)
  if name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-6, weight_decay=weight_decay,
                       mask=char_lm.decay_mask)
  if name == "lamb":
    return lamb(schedule, weight_decay, char_lm.decay_mask)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")


# -------------------------------------------------------------------------- training


_DATA: list = []
_RUNS: dict = {}


def _data():
  if not _DATA:
    _DATA.extend(load_data())
  return _DATA


def _make_run(name, graphdef, rest, num_chars, *, steps, warmup, batch_size, context,
              eval_every):
  num_evals = steps // eval_every

  def apply(params, inputs):
    return nnx.merge(graphdef, params, rest)(inputs)

  def scores(params, tokens, inputs, targets):
    def one(p, chunk):
      t, i, m = chunk
      return p, masked_loss_and_accuracy(apply(p, i), t, m)

    # params travel in the carry: nnx.merge inside the scan needs them at its trace level
    _, (loss, acc) = jax.lax.scan(one, params, (tokens, inputs, targets))
    return loss.mean(), acc.mean()

  def run(lrs, weight_decay, params0, train_dev, evals, key):
    step_keys = jax.random.split(key, steps).reshape(num_evals, eval_every, -1)

    def batch_of(k):
      kb, ks, km = jax.random.split(jax.random.wrap_key_data(k), 3)
      b = jax.random.randint(kb, (batch_size,), 0, train_dev.shape[0])
      s = jax.random.randint(ks, (batch_size,), 0, train_dev.shape[1] - context)
      tokens = train_dev[b[:, None], s[:, None] + jnp.arange(context)[None]]
      inputs, targets = mask_tokens(km, tokens, num_chars)
      return tokens, inputs, targets

    def loss(params, k):
      tokens, inputs, targets = batch_of(k)
      return masked_loss_and_accuracy(apply(params, inputs), tokens, targets)[0]

    def one(peak_lr):
      tx = make_optimizer(name, peak_lr, weight_decay, steps, warmup)

      def step(carry, k):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params, k)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

      def segment(carry, keys):
        carry, values = jax.lax.scan(step, carry, keys)
        return carry, (values.mean(), scores(carry[0], *evals["curve"])[0])

      (params, _), (curve_train, curve_valid) = jax.lax.scan(
          segment, (params0, tx.init(params0)), step_keys)
      finals = {split: scores(params, *evals[split]) for split in ("train", "valid", "test")}
      return curve_train, curve_valid, finals

    return jax.vmap(one)(lrs)

  return run


def eval_sets(context: int, eval_windows: int, chunk: int = 64):
  """Fixed masked windows: the validation and test splits, ``eval_windows`` of the
  training split (the training loss) and of validation (the curves); each
  ``(tokens, inputs, targets)`` in chunks of ``chunk`` windows (a last partial chunk
  is left out)."""
  train_b, valid_b, test_b, alphabet = _data()
  rng = np.random.default_rng(EVAL_MASK_SEED)

  def windows(blocks):
    per = blocks.shape[1] // context
    return blocks[:, :per * context].reshape(-1, context)

  def pick(w, n):
    return w[np.sort(rng.choice(len(w), min(n, len(w)), replace=False))]

  out = {"train": pick(windows(train_b), eval_windows), "valid": windows(valid_b),
         "test": windows(test_b), "curve": pick(windows(valid_b), eval_windows)}
  key = jax.random.key(EVAL_MASK_SEED)
  for i, (split, w) in enumerate(out.items()):
    w = w[:len(w) // min(chunk, len(w)) * min(chunk, len(w))]  # whole chunks
    tokens = jnp.asarray(w).reshape(-1, min(chunk, len(w)), context)
    inputs, targets = mask_tokens(jax.random.fold_in(key, i), tokens, len(alphabet))
    out[split] = (tokens, inputs, targets)
  return out


def train_grid(name: str, lrs, *, seed: int, weight_decay: float, width: int, heads: int,
               layers: int, context: int, batch_size: int, steps: int, warmup_share: float,
               eval_every: int, eval_windows: int) -> list[dict[str, Any]]:
  """Trains one encoder per learning rate in ``lrs`` (vmapped; same init, batches and
  masks). Returns per rate ``train_loss`` / ``train_acc`` (fixed masked windows of the
  training split), ``valid_loss``, ``valid_acc``, ``test_loss``, ``test_acc`` (masked
  positions of the splits' windows, see :func:`eval_sets`), and the curves
  ``curve_step``, ``curve_train`` (mean loss of the training batches since the previous
  point) and ``curve_valid`` (fixed validation windows)."""
  train_b, _, _, alphabet = _data()
  if steps % eval_every:
    raise ValueError(f"steps ({steps}) must be a multiple of eval_every ({eval_every})")
  model = make_encoder(len(alphabet), width, heads, layers, context, seed)
  graphdef, params0, rest = nnx.split(model, nnx.Param, ...)
  warmup = max(1, int(round(warmup_share * steps)))
  key = (name, len(lrs), width, heads, layers, context, batch_size, steps, warmup,
         eval_every, eval_windows)
  if key not in _RUNS:
    _RUNS[key] = (jax.jit(_make_run(name, graphdef, rest, len(alphabet), steps=steps,
                                    warmup=warmup, batch_size=batch_size, context=context,
                                    eval_every=eval_every)),
                  eval_sets(context, eval_windows))
  run, evals = _RUNS[key]
  ct, cv, finals = run(jnp.asarray(lrs, jnp.float32), jnp.float32(weight_decay), params0,
                       jnp.asarray(train_b), evals,
                       jax.random.key_data(jax.random.key(seed)))
  ct, cv = np.asarray(ct), np.asarray(cv)
  finals = jax.tree.map(np.asarray, finals)
  out = []
  for i in range(len(lrs)):
    m = {"curve_step": [eval_every * (j + 1) for j in range(steps // eval_every)],
         "curve_train": ct[i].tolist(), "curve_valid": cv[i].tolist()}
    for split in ("train", "valid", "test"):
      loss, acc = (float(v[i]) for v in finals[split])
      m[f"{split}_loss"], m[f"{split}_acc"] = loss, acc
    out.append(m)
  return out


def evaluate(options: dict, lrs: list, seed: int) -> list[dict]:
  """The protocol's ``evaluate``; ``options`` holds the optimizer, the run settings,
  ``pad_lrs`` and the ``weight_decay`` of the tuned grid."""
  opts = dict(options)
  name = opts.pop("optimizer")
  # Widening adds 2 rates and the seed runs take 3: padded, they reuse one compile.
  padded = list(lrs) + [lrs[-1]] * (opts.pop("pad_lrs") - len(lrs))
  out = train_grid(name, padded, seed=seed, **opts)[:len(lrs)]
  return [{k: (v if not isinstance(v, float) or np.isfinite(v) else None)
           for k, v in m.items()} for m in out]


# --------------------------------------------------------------------------------- CLI


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=" ".join(__doc__.split("\n\n")[0].split()),
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--quick", action="store_true",
                      help="smoke test of the pipeline (a tiny model, 4 steps)")
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps per run (None: the configuration's)")
  parser.add_argument("--out", default=None,
                      help="results JSON; None: results/masked_lm_<configuration>.json")
  parser.add_argument("--cache", default=None,
                      help="folder keeping every finished training call, so an interrupted "
                           "run resumes; None: results/cache/masked_lm_full for the full "
                           "configuration, no cache for --quick")
  parser.add_argument("--no-cache", action="store_true", help="train everything afresh")
  args = parser.parse_args(argv)
  args.configuration = "quick" if args.quick else "full"
  return args


def config_from_args(args) -> dict:
  config = dict(CONFIGS[args.configuration])
  if args.steps:
    config["steps"] = args.steps
    config["eval_every"] = max(1, args.steps // 4)
    config["steps"] -= config["steps"] % config["eval_every"]
  config["corpus_sha256"] = char_lm.CORPUS_SHA256
  config["masking"] = {"rate": MASK_RATE, "mask_token": MASK_TOKEN_SHARE,
                       "random_token": RANDOM_TOKEN_SHARE, "eval_seed": EVAL_MASK_SEED}
  config["start_lr"] = dict(START_LR)
  config["lr_grids"] = {name: protocol.log_grid(START_LR[name]) for name in OPTIMIZERS}
  config["momentum"] = {"novograd": "b1=0.95, b2=0.25, no gradient averaging",
                        "adamw": "b1=0.9, b2=0.999, eps=1e-6",
                        "lamb": "b1=0.9, b2=0.999, eps=1e-6, per-layer trust ratio"}
  return config


RUN_KEYS = ("width", "heads", "layers", "context", "batch_size", "steps", "warmup_share",
            "eval_every", "eval_windows", "pad_lrs")


def candidates_for(config: dict) -> list[dict]:
  return [{"name": name, "options": {"optimizer": name, **{k: config[k] for k in RUN_KEYS}},
           "learning_rates": protocol.log_grid(START_LR[name]),
           "weight_decays": list(config["weight_decays"])} for name in OPTIMIZERS]


def cached_evaluate(args):
  """``evaluate`` with finished calls kept on disk, keyed by this file, ``char_lm.py``,
  the protocol, the library's sources and the JAX/optax/flax versions."""
  folder = args.cache
  if folder is None and args.configuration == "full":
    folder = os.path.join("results", "cache", "masked_lm_full")
  if args.no_cache or not folder:
    return evaluate
  library = os.path.join(os.path.dirname(_HERE), "novograd_optax")
  sources = [os.path.abspath(__file__), char_lm.__file__, protocol.__file__,
             *(os.path.join(root, name) for root, _, names in os.walk(library)
               for name in names if name.endswith(".py"))]
  versions = " ".join(f"{name} {importlib.metadata.version(name)}"
                      for name in ("jax", "jaxlib", "optax", "flax"))
  print(f"finished training calls are kept in {folder} (--no-cache to train afresh)")
  return protocol.CachedEvaluate(evaluate, folder,
                                 f"{protocol.source_version(*sources)} {versions}")


REPORT_KEYS = ("train_loss", "valid_loss", "valid_acc", "test_loss", "test_acc")


def main(argv=None) -> dict:
  args = parse_args(argv)
  config = config_from_args(args)
  start = time.perf_counter()
  train_b, valid_b, test_b, alphabet = _data()
  print(f"{args.configuration} configuration: {train_b.size} training, {valid_b.size} "
        f"validation, {test_b.size} test characters, {len(alphabet)} symbols + [MASK]")
  results = protocol.run_protocol(
      cached_evaluate(args), candidates_for(config), seeds=config["seeds"],
      score_key="valid_loss", higher_is_better=False, report_keys=REPORT_KEYS)
  comparisons = []
  for baseline in OPTIMIZERS[1:]:
    for key, higher in (("valid_loss", False), ("test_loss", False), ("test_acc", True),
                        ("train_loss", False)):
      comparisons.append(protocol.compare(results, "novograd", baseline, key, higher))
  seconds = time.perf_counter() - start
  for r in results:
    s = r["summary"]
    print(f"{r['name']}: lr {r['best_lr']:.3g}, wd {r['weight_decay']:g} (interior "
          f"{r['interior']}); train {s['train_loss']['mean']:.3f}±{s['train_loss']['std']:.3f}"
          f", valid {s['valid_loss']['mean']:.3f}±{s['valid_loss']['std']:.3f}, test "
          f"{s['test_loss']['mean']:.3f}±{s['test_loss']['std']:.3f}, test acc "
          f"{s['test_acc']['mean']:.3f}±{s['test_acc']['std']:.3f}")
  for c in comparisons:
    print(f"{c['a']} vs {c['b']} on {c['key']}: {c['verdict']}")
  out = args.out or os.path.join("results", f"masked_lm_{args.configuration}.json")
  protocol.write_results(out, "masked_lm", args.configuration, config,
                         {"results": results, "comparisons": comparisons},
                         argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                         seconds=seconds)
  print(f"wrote {out} ({seconds:.0f} s)")
  return {"config": config, "results": results, "comparisons": comparisons}


if __name__ == "__main__":
  main(sys.argv[1:])
