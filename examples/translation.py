r"""A tiny encoder-decoder Transformer on a synthetic translation task: is NovoGrad on
par with or better than AdamW?

The NovoGrad paper (Ginsburg et al., 2019, §5.4, Table 7) trains Transformer-big on
WMT'14 English-German (4K warmup steps then cosine annealing; NovoGrad lr 0.04, weight
decay 1e-4; AdamW lr 6e-4, weight decay 5e-3) and reports a higher BLEU for NovoGrad
(SacreBLEU 28.80 against 28.24). This example tests that claim at CPU scale with the
tuning protocol of ``examples/protocol.py``:

* **Task**, generated offline with a fixed seed (``DATA_SEED``): translate a number
  written in digits into English words, e.g. ``4 0 0 1 7`` -> ``forty thousand
  seventeen``. Numbers are drawn with a digit count uniform in 1-9 and then uniform
  among the numbers of that many digits; duplicates are dropped and the distinct
  numbers split at random into train / validation / test, so no number is in two
  splits. Source: one token per digit; target: one token per word (31 words: zero to
  nineteen, the tens, ``hundred``, ``thousand``, ``million``; no "and", no hyphens),
  then an end token. The training split is small (3000 pairs for up to 9-digit
  numbers), so that the held-out scores measure generalization rather than recall: with
  numbers of up to 6 digits and 10,000 pairs both optimizers reached BLEU 100 on
  validation in a trial, which could not separate them.
* **Model**: pre-norm encoder-decoder Transformer (``layers`` encoder and ``layers``
  decoder blocks, learned positions, no dropout), trained teacher-forced with
  cross-entropy and label smoothing 0.1 (Vaswani et al., 2017).
* **Optimizers.** NovoGrad as in Algorithm 1 (``b1 = 0.95``, the top of the paper's
  [0.9, 0.95]; ``b2 = 0.98``: the paper names no b2 for translation, 0.98 is the value
  of its speech and language-model setups; decay added inside the moment); AdamW
  ``b1 = 0.9, b2 = 0.98`` (Vaswani et al.), decoupled decay. Both: linear warmup over 4%
  of the steps (the paper's 4K of 100K) then cosine decay to 0; weight decay on
  matrices (kernels, embeddings) only.
* **Equal tuning**: per optimizer a grid of 5 weight decays (0 and 4 values over 3
  decades, from about the paper's value upwards) and for each a 5-point learning-rate grid
  (x sqrt(10)) widened until interior; then 3 seeds (each seed sets the initialization
  and the order of the batches) at the best rate and its neighbours. Selection by
  validation BLEU; the test split is reported.
* **Metrics** on greedy decodes of the held-out splits: corpus BLEU-4 (Papineni et al.,
  2002: clipped n-gram precisions for n = 1..4 summed over the corpus, geometric mean,
  brevity penalty; no smoothing; x 100) over words, token accuracy (the share of
  reference tokens, end token included, that the decode has at the same position) and
  exact-match accuracy.

The learning-rate grid of one optimizer is trained at once under ``jax.vmap``; the
weight decay is an argument of the compiled program, so the decay grid reuses it.

``python examples/translation.py --full`` runs the configuration of the results file
(``results/translation_full.json``; it resumes from its cache when interrupted);
``--quick`` a seconds-long smoke test.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import importlib.util
import math
import os
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from novograd_optax import novograd

_HERE = os.path.dirname(os.path.abspath(__file__))
if "protocol" not in sys.modules:
  _spec = importlib.util.spec_from_file_location("protocol", os.path.join(_HERE, "protocol.py"))
  sys.modules["protocol"] = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(sys.modules["protocol"])
protocol = sys.modules["protocol"]

OPTIMIZERS = ("novograd", "adamw")
START_LR = {"novograd": 0.01, "adamw": 3e-3}  # centres of the starting grids
# 0 and 4 values over 3 decades from about the paper's (NovoGrad 1e-4, AdamW 5e-3)
# upwards: a first run with 3 values over 2 decades chose the largest decay for both.
WEIGHT_DECAYS = {"novograd": (0.0, 1e-4, 1e-3, 1e-2, 1e-1),
                 "adamw": (0.0, 1e-3, 1e-2, 1e-1, 1.0)}
MOMENTUM = {"novograd": "b1 0.95, b2 0.98", "adamw": "b1 0.9, b2 0.98"}
WARMUP_FRACTION = 0.04
LABEL_SMOOTHING = 0.1
DATA_SEED = 0
MAX_DIGITS = 9

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
        "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty",
        "ninety"]
WORDS = ONES + TENS[2:] + ["hundred", "thousand", "million"]
PAD, BOS, EOS = 0, 1, 2
TARGET_VOCAB = ["<pad>", "<s>", "</s>", *WORDS]
SOURCE_VOCAB = ["<pad>", *"0123456789"]
SOURCE_LENGTH = MAX_DIGITS
TARGET_LENGTH = MAX_DIGITS // 3 * 4 + MAX_DIGITS // 3 - 1 + 2  # most words, end, start

CONFIGS = {
    # about 30 min of one CPU core shared with other jobs, single-threaded XLA
    "full": dict(train_size=3000, valid_size=500, test_size=500, width=32, heads=4,
                 layers=2, steps=1000, batch_size=32, eval_every=100, seeds=(0, 1, 2),
                 pad=3),
    "quick": dict(train_size=512, valid_size=64, test_size=64, width=16, heads=2, layers=1,
                  steps=8, batch_size=16, eval_every=4, seeds=(0, 1, 2), pad=5,
                  weight_decays={"novograd": (0.0, 1e-4), "adamw": (0.0, 1e-2)},
                  max_widenings=1),
}


# ------------------------------------------------------------------------------ data


def number_to_words(n: int) -> list[str]:
  """English words of ``0 <= n < 10**9``: ``1017`` -> ``one thousand seventeen``
  (the task uses ``n < 10**MAX_DIGITS``)."""
  if not 0 <= n < 10 ** 9:
    raise ValueError(f"number_to_words: 0 <= n < 1e9, got {n}")
  if n == 0:
    return ["zero"]

  def below_thousand(k):
    words = []
    if k >= 100:
      words += [ONES[k // 100], "hundred"]
      k %= 100
    if k >= 20:
      words.append(TENS[k // 10])
      k %= 10
      if k:
        words.append(ONES[k])
    elif k:
      words.append(ONES[k])
    return words

  words = []
  for scale, name in ((10 ** 6, "million"), (10 ** 3, "thousand"), (1, None)):
    group = n // scale % 1000
    if group:
      words += below_thousand(group) + ([name] if name else [])
  return words


def make_splits(train_size: int, valid_size: int, test_size: int,
                seed: int = DATA_SEED) -> dict[str, np.ndarray]:
  """Distinct numbers (digit count uniform in 1..9, then uniform) split at random
  into ``train`` / ``valid`` / ``test`` arrays of ints."""
  rng = np.random.default_rng(seed)
  total = train_size + valid_size + test_size
  seen: dict[int, None] = {}
  while len(seen) < total:
    digits = rng.integers(1, MAX_DIGITS + 1, 2 * total)
    low = np.where(digits == 1, 0, 10 ** (digits - 1))
    for n in rng.integers(low, 10 ** digits):
      seen.setdefault(int(n))
      if len(seen) == total:
        break
  numbers = rng.permutation(np.fromiter(seen, np.int64))
  return {"train": numbers[:train_size],
          "valid": numbers[train_size:train_size + valid_size],
          "test": numbers[train_size + valid_size:]}


def encode(numbers: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
  """Source ids ``(n, SOURCE_LENGTH)`` (digit ``d`` is ``d + 1``, 0-padded) and target
  ids ``(n, TARGET_LENGTH)``: start, words, end, padding."""
  index = {w: i for i, w in enumerate(TARGET_VOCAB)}
  source = np.zeros((len(numbers), SOURCE_LENGTH), np.int32)
  target = np.zeros((len(numbers), TARGET_LENGTH), np.int32)
  for i, n in enumerate(numbers):
    digits = [int(c) + 1 for c in str(int(n))]
    source[i, :len(digits)] = digits
    ids = [BOS, *(index[w] for w in number_to_words(int(n))), EOS]
    target[i, :len(ids)] = ids
  return source, target


def strip(ids: Sequence[int]) -> list[int]:
  """The word ids of a decode: everything after the start token, up to the first end
  token (or padding)."""
  out = []
  for t in list(ids)[1:] if ids and ids[0] == BOS else list(ids):
    if t in (EOS, PAD):
      break
    out.append(int(t))
  return out


# --------------------------------------------------------------------------- metrics


def corpus_bleu(hypotheses: Sequence[Sequence], references: Sequence[Sequence],
                max_n: int = 4) -> float:
  """Corpus BLEU (Papineni et al., 2002) with one reference per sentence, x 100.

  ``p_n`` = clipped n-gram matches summed over the corpus / hypothesis n-grams summed
  over the corpus; ``BLEU = BP * exp(mean_n log p_n)`` with ``BP = 1`` if the summed
  hypothesis length ``c`` exceeds the summed reference length ``r``, else
  ``exp(1 - r / c)``. No smoothing: 0 when some ``p_n`` is 0.
  """
  matches, totals = [0] * max_n, [0] * max_n
  hyp_len = ref_len = 0
  for hyp, ref in zip(hypotheses, references, strict=True):
    hyp, ref = list(hyp), list(ref)
    hyp_len, ref_len = hyp_len + len(hyp), ref_len + len(ref)
    for n in range(1, max_n + 1):
      h = collections.Counter(tuple(hyp[i:i + n]) for i in range(len(hyp) - n + 1))
      r = collections.Counter(tuple(ref[i:i + n]) for i in range(len(ref) - n + 1))
      matches[n - 1] += sum(min(c, r[g]) for g, c in h.items())
      totals[n - 1] += max(len(hyp) - n + 1, 0)
  if hyp_len == 0 or min(matches) == 0:
    return 0.0
  log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / max_n
  brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
  return 100.0 * brevity * math.exp(log_precision)


def token_accuracy(decoded: np.ndarray, target: np.ndarray) -> float:
  """The share of reference tokens after the start token, end token included, that
  ``decoded`` (same layout: start token first) has at the same position."""
  decoded, target = np.asarray(decoded)[:, 1:], np.asarray(target)[:, 1:]
  real = target != PAD
  return float(((decoded == target) & real).sum() / real.sum())


# ----------------------------------------------------------------------------- model


class EncoderBlock(nnx.Module):
  def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(width, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(width, rngs=rngs)
    self.mlp_in = nnx.Linear(width, 4 * width, rngs=rngs)
    self.mlp_out = nnx.Linear(4 * width, width, rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attention(self.norm1(x), mask=mask)
    return x + self.mlp_out(nnx.relu(self.mlp_in(self.norm2(x))))


class DecoderBlock(nnx.Module):
  def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
    self.norm1 = nnx.LayerNorm(width, rngs=rngs)
    self.self_attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(width, rngs=rngs)
    self.cross_attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
    self.norm3 = nnx.LayerNorm(width, rngs=rngs)
    self.mlp_in = nnx.Linear(width, 4 * width, rngs=rngs)
    self.mlp_out = nnx.Linear(4 * width, width, rngs=rngs)

  def __call__(self, y, memory, self_mask, cross_mask):
    y = y + self.self_attention(self.norm1(y), mask=self_mask)
    y = y + self.cross_attention(self.norm2(y), memory, mask=cross_mask)
    return y + self.mlp_out(nnx.relu(self.mlp_in(self.norm3(y))))


class Seq2Seq(nnx.Module):
  """Pre-norm encoder-decoder Transformer with learned positions and a linear head."""

  def __init__(self, width: int, heads: int, layers: int, rngs: nnx.Rngs):
    self.source_embed = nnx.Embed(len(SOURCE_VOCAB), width, rngs=rngs)
    self.target_embed = nnx.Embed(len(TARGET_VOCAB), width, rngs=rngs)
    init = nnx.initializers.normal(0.02)
    self.source_positions = nnx.Param(init(rngs.params(), (SOURCE_LENGTH, width)))
    self.target_positions = nnx.Param(init(rngs.params(), (TARGET_LENGTH, width)))
    self.encoder = nnx.List([EncoderBlock(width, heads, rngs) for _ in range(layers)])
    self.decoder = nnx.List([DecoderBlock(width, heads, rngs) for _ in range(layers)])
    self.encoder_norm = nnx.LayerNorm(width, rngs=rngs)
    self.decoder_norm = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, len(TARGET_VOCAB), rngs=rngs)

  def __call__(self, source, target_in):
    """Logits ``(B, T, vocab)`` for the target positions given ``target_in``."""
    source_real = source != PAD
    x = self.source_embed(source) + self.source_positions[: source.shape[1]]
    mask = nnx.make_attention_mask(source_real, source_real)
    for block in self.encoder:
      x = block(x, mask)
    memory = self.encoder_norm(x)
    y = self.target_embed(target_in) + self.target_positions[: target_in.shape[1]]
    self_mask = nnx.make_causal_mask(target_in)
    cross_mask = nnx.make_attention_mask(jnp.ones(target_in.shape, bool), source_real)
    for block in self.decoder:
      y = block(y, memory, self_mask, cross_mask)
    return self.head(self.decoder_norm(y))


def decay_mask(params):
  """Weight decay on matrices (kernels, embeddings) only."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(k in jax.tree_util.keystr(path) for k in ("kernel", "embedding")),
      params)


def make_optimizer(name: str, peak_lr, weight_decay, steps: int):
  """NovoGrad or AdamW with linear warmup then cosine decay (``peak_lr`` and
  ``weight_decay`` may be traced)."""
  warmup = max(1, int(round(WARMUP_FRACTION * steps)))
  unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, steps)
  schedule = lambda count: peak_lr * unit(count)  # noqa: E731
  if name == "novograd":
    return novograd(schedule, b1=0.95, b2=0.98, weight_decay=weight_decay,
                    weight_decay_mask=decay_mask)
  if name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=weight_decay,
                       mask=decay_mask)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")


# -------------------------------------------------------------------------- training


_RUN_CACHE: dict = {}
_DATA: dict = {}


def load_data(train_size: int, valid_size: int, test_size: int) -> dict[str, tuple]:
  key = (train_size, valid_size, test_size)
  if key not in _DATA:
    splits = make_splits(*key)
    _DATA[key] = {name: (numbers, *encode(numbers)) for name, numbers in splits.items()}
  return _DATA[key]


def _make_run(name, graphdef, *, steps, eval_every):
  def logits_of(params, source, target):
    return nnx.merge(graphdef, params)(source, target[:, :-1])

  def loss_of(params, source, target):
    logits = logits_of(params, source, target)
    labels = target[:, 1:]
    smooth = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), LABEL_SMOOTHING)
    per = optax.softmax_cross_entropy(logits, smooth)
    real = labels != PAD
    return (per * real).sum() / real.sum()

  def greedy(params, source):
    """Decodes ``TARGET_LENGTH - 1`` tokens after the start token, one at a time."""
    def body(t, out):
      logits = nnx.merge(graphdef, params)(source, out[:, :-1])
      return out.at[:, t + 1].set(jnp.argmax(logits[:, t], -1).astype(out.dtype))

    start = jnp.zeros((source.shape[0], TARGET_LENGTH), jnp.int32).at[:, 0].set(BOS)
    return jax.lax.fori_loop(0, TARGET_LENGTH - 1, body, start)

  def run(lrs, weight_decay, params0, train, valid, test, batches):
    def one(peak_lr):
      tx = make_optimizer(name, peak_lr, weight_decay, steps)

      def step(carry, idx):
        params, state = carry
        value, grads = jax.value_and_grad(loss_of)(params, train[0][idx], train[1][idx])
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

      (params, _), losses = jax.lax.scan(step, (params0, tx.init(params0)), batches)
      return (loss_of(params, *valid), greedy(params, valid[0]), greedy(params, test[0]),
              losses.reshape(-1, eval_every).mean(-1))

    return jax.vmap(one)(lrs)

  return run


def train_grid(name: str, lrs, *, seed: int, weight_decay: float, train_size: int,
               valid_size: int, test_size: int, width: int, heads: int, layers: int,
               steps: int, batch_size: int, eval_every: int) -> list[dict[str, Any]]:
  """Trains one model per learning rate in ``lrs`` (vmapped; same init and batches).

  Returns per learning rate ``valid_bleu`` / ``test_bleu``, ``valid_token_acc`` /
  ``test_token_acc``, ``valid_exact`` / ``test_exact`` (greedy decodes),
  ``valid_loss`` (label-smoothed cross-entropy per token), ``train_loss`` (the same
  over the last ``eval_every`` training batches) and the training-loss curve
  ``curve_step`` / ``curve_train`` (means over each ``eval_every`` steps).
  """
  if steps % eval_every:
    raise ValueError(f"steps ({steps}) must be a multiple of eval_every ({eval_every})")
  data = load_data(train_size, valid_size, test_size)
  model = Seq2Seq(width, heads, layers, nnx.Rngs(seed))
  graphdef, params0 = nnx.split(model, nnx.Param)
  order_rng = np.random.default_rng(1000 + seed)
  per_epoch = train_size // batch_size
  epochs = -(-steps // per_epoch)
  batches = np.concatenate([
      order_rng.permutation(train_size)[:per_epoch * batch_size].reshape(
          per_epoch, batch_size) for _ in range(epochs)])[:steps]
  key = (name, len(lrs), steps, eval_every, width, heads, layers, batch_size, train_size,
         valid_size, test_size)
  if key not in _RUN_CACHE:
    _RUN_CACHE[key] = jax.jit(_make_run(name, graphdef, steps=steps, eval_every=eval_every))
  outputs = _RUN_CACHE[key](
      jnp.asarray(lrs, jnp.float32), jnp.float32(weight_decay), params0,
      *(tuple(jnp.asarray(a) for a in data[s][1:]) for s in ("train", "valid", "test")),
      jnp.asarray(batches, jnp.int32))
  valid_loss, valid_out, test_out, curve = map(np.asarray, outputs)
  train_loss = curve[:, -1]  # the mean over the last eval_every training batches
  out = []
  for i in range(len(lrs)):
    metrics = {}
    for split, decoded in (("valid", valid_out[i]), ("test", test_out[i])):
      target = data[split][2]
      hyps = [strip(row) for row in decoded.tolist()]
      refs = [strip(row) for row in target.tolist()]
      metrics[f"{split}_bleu"] = corpus_bleu(hyps, refs)
      metrics[f"{split}_token_acc"] = token_accuracy(decoded, target)
      metrics[f"{split}_exact"] = float(np.mean([h == r for h, r in zip(hyps, refs,
                                                                         strict=True)]))
    finite = bool(np.isfinite(valid_loss[i]) and np.isfinite(train_loss[i]))
    if not finite:
      metrics = {k: None for k in metrics}
    out.append({**metrics, "train_loss": float(train_loss[i]),
                "valid_loss": float(valid_loss[i]),
                "curve_step": [eval_every * (j + 1) for j in range(len(curve[i]))],
                "curve_train": curve[i].tolist()})
  return out


def evaluate(options: dict, lrs: list, seed: int) -> list[dict]:
  """The protocol's ``evaluate``: ``options`` holds the optimizer, the weight decay
  and the run settings."""
  opts = dict(options)
  name = opts.pop("optimizer")
  # Widening adds 2 rates and the seed runs take 3: pad to ``pad`` rates (3, or 5 where
  # compiling costs more than training) so that calls share one compiled program.
  pad = opts.pop("pad", 3)
  padded = list(lrs) + [lrs[-1]] * (max(pad, 3) - len(lrs))
  return train_grid(name, padded, seed=seed, **opts)[:len(lrs)]


# --------------------------------------------------------------------------------- CLI


RUN_KEYS = ("train_size", "valid_size", "test_size", "width", "heads", "layers", "steps",
            "batch_size", "eval_every", "pad")
REPORT_KEYS = ("valid_bleu", "test_bleu", "valid_token_acc", "test_token_acc", "test_exact",
               "train_loss", "valid_loss")


def candidates_for(config: dict) -> list[dict]:
  return [{"name": name,
           "options": {"optimizer": name, **{k: config[k] for k in RUN_KEYS}},
           "learning_rates": protocol.log_grid(START_LR[name]),
           "weight_decays": list(config["weight_decays"][name])}
          for name in OPTIMIZERS]


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=" ".join(__doc__.split("\n\n")[0].split()),
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  group = parser.add_mutually_exclusive_group()
  group.add_argument("--quick", action="store_true", help="seconds-long smoke test")
  group.add_argument("--full", action="store_true",
                     help="the configuration of the results file (the default)")
  parser.add_argument("--steps", type=int, default=None,
                      help="training steps per run (None: the configuration's)")
  parser.add_argument("--out", default=None,
                      help="results JSON; None: results/translation_<configuration>.json")
  parser.add_argument("--cache", default=None,
                      help="folder keeping every finished training call, so an interrupted "
                           "run resumes; None: results/cache/translation_full for --full, "
                           "no cache otherwise")
  parser.add_argument("--no-cache", action="store_true", help="train everything afresh")
  args = parser.parse_args(argv)
  args.configuration = "quick" if args.quick else "full"
  return args


def config_from_args(args) -> dict:
  config = dict(CONFIGS[args.configuration])
  if args.steps:
    config["steps"] = args.steps
  config.setdefault("weight_decays", WEIGHT_DECAYS)
  config.setdefault("max_widenings", 3)
  config.update(weight_decays={k: list(v) for k, v in config["weight_decays"].items()},
                start_lr=dict(START_LR), momentum=dict(MOMENTUM),
                warmup_fraction=WARMUP_FRACTION, label_smoothing=LABEL_SMOOTHING,
                data_seed=DATA_SEED, max_digits=MAX_DIGITS,
                lr_grids={n: protocol.log_grid(START_LR[n]) for n in OPTIMIZERS})
  return config


def cached_evaluate(args):
  """``evaluate`` with finished calls kept on disk, keyed by this file, the protocol,
  the library's sources and the JAX/optax/flax versions."""
  folder = args.cache
  if folder is None and args.configuration == "full":
    folder = os.path.join("results", "cache", "translation_full")
  if args.no_cache or not folder:
    return evaluate
  library = os.path.join(os.path.dirname(_HERE), "novograd_optax")
  sources = [os.path.abspath(__file__), protocol.__file__,
             *(os.path.join(root, name) for root, _, names in os.walk(library)
               for name in names if name.endswith(".py"))]
  versions = " ".join(f"{name} {importlib.metadata.version(name)}"
                      for name in ("jax", "jaxlib", "optax", "flax"))
  print(f"finished training calls are kept in {folder} (--no-cache to train afresh)")
  return protocol.CachedEvaluate(evaluate, folder,
                                 f"{protocol.source_version(*sources)} {versions}")


def main(argv=None) -> dict:
  args = parse_args(argv)
  config = config_from_args(args)
  start = time.perf_counter()
  data = load_data(config["train_size"], config["valid_size"], config["test_size"])
  print(f"{args.configuration} configuration: "
        + ", ".join(f"{len(v[0])} {k} pairs" for k, v in data.items()))
  results = protocol.run_protocol(
      cached_evaluate(args), candidates_for(config), seeds=config["seeds"],
      score_key="valid_bleu", higher_is_better=True, report_keys=REPORT_KEYS,
      max_widenings=config["max_widenings"])
  comparisons = [protocol.compare(results, "novograd", "adamw", key, higher_is_better=True)
                 for key in ("test_bleu", "test_token_acc", "valid_bleu")]
  seconds = time.perf_counter() - start
  for r in results:
    s = r["summary"]
    print(f"{r['name']}: lr {r['best_lr']:.3g}, wd {r['weight_decay']:g} (interior "
          f"{r['interior']}); valid BLEU {s['valid_bleu']['mean']:.2f}±"
          f"{s['valid_bleu']['std']:.2f}, test BLEU {s['test_bleu']['mean']:.2f}±"
          f"{s['test_bleu']['std']:.2f}, test token acc {s['test_token_acc']['mean']:.4f}")
  for c in comparisons:
    print(f"{c['a']} vs {c['b']} on {c['key']}: {c['verdict']}")
  out = args.out or os.path.join("results", f"translation_{args.configuration}.json")
  protocol.write_results(out, "translation", args.configuration, config,
                         {"results": results, "comparisons": comparisons},
                         argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                         seconds=seconds)
  print(f"wrote {out} ({seconds:.0f} s)")
  return {"config": config, "results": results, "comparisons": comparisons}


if __name__ == "__main__":
  main(sys.argv[1:])
