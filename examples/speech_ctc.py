r"""A small Jasper-like CTC model on spoken-digit-like sequences: is NovoGrad with
layer-wise update clipping on par with or better than SGD with momentum and AdamW?

The NovoGrad paper (Ginsburg et al., 2019, §5.2, Table 4) trains Jasper-10x5, a deep
1-D convolutional acoustic model with CTC loss, on LibriSpeech and reports that NovoGrad
(with layer-wise update clipping, polynomial learning-rate decay; Table 5: lr 0.015 and
weight decay 0.001 at batch 512) reaches a lower word error rate than SGD with
momentum and than Adam. This example tests that claim at CPU scale with the tuning
protocol of ``examples/protocol.py``:

* **Data**, generated offline and fixed: MNIST-1D signals (``examples/mnist1d.py``'s
  ``load_data``, 40 samples per signal, digit labels 0-9). One input sequence is ``K``
  signals of one split concatenated end to end, ``K`` uniform in {2, 3}, the signals
  drawn uniformly with replacement from that split; its label sequence is their ``K``
  digits in order (CTC classes: blank 0, digit ``d`` is class ``d + 1``). Inputs are
  zero-padded to ``3 * 40 = 120`` samples and carry their length. Training sequences
  use MNIST-1D's training signals, validation sequences its held-out 10% of them, test
  sequences its test signals: no signal is shared between splits. The data do not
  depend on the run's seed (``DATA_SEED``).
* **Model**, Jasper-like: a stride-4 prologue convolution, ``blocks`` residual blocks of
  two ``Conv1D -> LayerNorm -> ReLU`` sub-blocks (the residual added before the second
  ReLU, as in Jasper), a 1x1 epilogue and a 1x1 classifier; padded frames are zeroed
  after every layer (masked convolutions). One output frame per 4 input samples, so
  10 frames per digit.
* **Optimizers.** NovoGrad with the Jasper recipe: ``b1 = 0.95, b2 = 0.98`` (Jasper's
  settings; the NovoGrad paper gives b1 in [0.9, 0.95] and names no b2 for speech),
  decay inside the moment, layer-wise update clipping (``trust_coefficient=1e-3``, the
  speech toolkit's value), polynomial (power 2) decay after a linear warmup of 5% of
  the steps (the paper's Table 5 warmup). SGD with momentum 0.9 (L2 decay added to the
  gradient) and AdamW (``b1 = 0.9, b2 = 0.999``, decoupled decay) get the same schedule.
  The paper applied LARC to all three optimizers; here only NovoGrad clips (its recipe).
  Weight decay on convolution kernels only.
* **Equal tuning**: per optimizer a grid of 4 weight decays (0 and 3 values over 2
  decades, centred on each optimizer's usual value) and for each a 5-point
  learning-rate grid (x sqrt(10)) widened until interior; then 3 seeds (each seed sets
  the initialization and the order of the batches) at the best rate and its
  neighbours. Selection by validation label error rate; the test split is reported.
* **Metric**: greedy CTC decoding (argmax per frame, repeats merged, blanks removed) and
  the label error rate, the edit distance summed over sequences divided by the summed
  reference lengths (the WER of the paper, on digits).

The learning-rate grid of one optimizer is trained at once under ``jax.vmap``; the
weight decay is an argument of the compiled program, so the decay grid reuses it.

``python examples/speech_ctc.py --full`` runs the configuration of the results file
(``results/speech_ctc_full.json``; it resumes from its cache when interrupted);
``--quick`` a seconds-long smoke test.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
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


def _load(name: str, filename: str):
  # Loaded by path rather than by putting this folder on sys.path: there,
  # examples/mnist1d.py would shadow the mnist1d package.
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, filename))
    sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[name])
  return sys.modules[name]


protocol = _load("protocol", "protocol.py")

# "novograd" is the Jasper recipe (with update clipping); "novograd_noluc" the same
# without it, to separate the clipping's effect from NovoGrad's.
OPTIMIZERS = ("novograd", "novograd_noluc", "sgd", "adamw")
START_LR = {"novograd": 0.3, "novograd_noluc": 0.03, "sgd": 0.1,
            "adamw": 0.03}  # centres of the starting grids
# 0 and 3 values over 2 decades, centred on each optimizer's usual decay (the paper's
# 1e-3 for NovoGrad on Jasper).
WEIGHT_DECAYS = {"novograd": (0.0, 1e-4, 1e-3, 1e-2), "novograd_noluc": (0.0, 1e-4, 1e-3, 1e-2),
                 "sgd": (0.0, 1e-5, 1e-4, 1e-3), "adamw": (0.0, 1e-3, 1e-2, 1e-1)}
MOMENTUM = {"novograd": "b1 0.95, b2 0.98, LUC trust 1e-3",
            "novograd_noluc": "b1 0.95, b2 0.98, no update clipping", "sgd": "0.9",
            "adamw": "b1 0.9, b2 0.999"}
TRUST = 1e-3
WARMUP_FRACTION = 0.05
POLY_POWER = 2.0
SIGNAL = 40  # samples per MNIST-1D signal
MAX_DIGITS, MIN_DIGITS = 3, 2
STRIDE = 4  # input samples per output frame
NUM_CLASSES = 11  # blank + 10 digits
DATA_SEED = 0

CONFIGS = {
    # about 30 min of one CPU core shared with other jobs, single-threaded XLA
    "full": dict(num_samples=10_000, train_sequences=6000, valid_sequences=1000,
                 test_sequences=2000, channels=24, blocks=2, kernel=5, steps=1200,
                 batch_size=32, eval_every=100, seeds=(0, 1, 2), pad=3),
    "quick": dict(num_samples=1000, train_sequences=256, valid_sequences=64,
                  test_sequences=64, channels=8, blocks=1, kernel=5, steps=8,
                  batch_size=8, eval_every=4, seeds=(0, 1, 2),
                  weight_decays={name: (0.0, WEIGHT_DECAYS[name][2]) for name in OPTIMIZERS},
                  max_widenings=1, pad=5),
}


# ------------------------------------------------------------------------------ data


def make_sequences(x: np.ndarray, y: np.ndarray, num: int, rng: np.random.Generator,
                   min_digits: int = MIN_DIGITS, max_digits: int = MAX_DIGITS):
  """``num`` sequences of ``K`` (uniform in ``[min_digits, max_digits]``) signals of
  ``x`` concatenated, drawn with replacement.

  Returns ``inputs (num, max_digits * L)`` (zero-padded), ``lengths (num,)`` in samples,
  ``labels (num, max_digits)`` (class ``digit + 1``, 0-padded) and
  ``label_lengths (num,)``.
  """
  length = x.shape[1]
  counts = rng.integers(min_digits, max_digits + 1, num)
  picks = rng.integers(0, len(x), (num, max_digits))
  inputs = np.zeros((num, max_digits * length), np.float32)
  labels = np.zeros((num, max_digits), np.int32)
  for i, (k, pick) in enumerate(zip(counts, picks, strict=True)):
    inputs[i, :k * length] = x[pick[:k]].reshape(-1)
    labels[i, :k] = y[pick[:k]] + 1
  return inputs, (counts * length).astype(np.int32), labels, counts.astype(np.int32)


_DATA: dict = {}


def load_splits(num_samples: int, train_sequences: int, valid_sequences: int,
                test_sequences: int, data_seed: int = DATA_SEED) -> dict[str, tuple]:
  """``{"train", "valid", "test"}``: the sequences of :func:`make_sequences` built from
  MNIST-1D's training, held-out and test signals respectively."""
  key = (num_samples, train_sequences, valid_sequences, test_sequences, data_seed)
  if key not in _DATA:
    raw = _load("mnist1d_example", "mnist1d.py").load_data(num_samples, data_seed)
    rng = np.random.default_rng(data_seed)
    _DATA[key] = {
        "train": make_sequences(raw["x_train"], raw["y_train"], train_sequences, rng),
        "valid": make_sequences(raw["x_val"], raw["y_val"], valid_sequences, rng),
        "test": make_sequences(raw["x_test"], raw["y_test"], test_sequences, rng)}
  return _DATA[key]


# -------------------------------------------------------------------------- decoding


def greedy_decode(frame_ids: np.ndarray, frame_counts: np.ndarray, blank: int = 0
                  ) -> list[list[int]]:
  """Best-path CTC decoding: per sequence, the argmax classes of its first
  ``frame_counts[i]`` frames with repeats merged and blanks removed."""
  out = []
  for ids, n in zip(np.asarray(frame_ids), np.asarray(frame_counts), strict=True):
    seq, previous = [], None
    for c in ids[:int(n)].tolist():
      if c != previous and c != blank:
        seq.append(c)
      previous = c
    out.append(seq)
  return out


def edit_distance(a: Sequence, b: Sequence) -> int:
  """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
  row = list(range(len(b) + 1))
  for i, ca in enumerate(a, 1):
    diagonal, row[0] = row[0], i
    for j, cb in enumerate(b, 1):
      diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ca != cb))
  return row[-1]


def label_error_rate(hypotheses: Sequence[Sequence], references: Sequence[Sequence]
                     ) -> float:
  """Summed edit distances over summed reference lengths (corpus-level, like WER)."""
  errors = sum(edit_distance(h, r) for h, r in zip(hypotheses, references, strict=True))
  return errors / sum(len(r) for r in references)


def references(labels: np.ndarray, label_lengths: np.ndarray) -> list[list[int]]:
  return [row[:n].tolist() for row, n in zip(labels, label_lengths, strict=True)]


# ----------------------------------------------------------------------------- model


class Conv1D(nnx.Module):
  """A 'SAME'-padded 1-D convolution computed as one matrix product over the stacked
  shifted inputs (im2col): the same function as ``nnx.Conv``, but a grid of weights
  under ``jax.vmap`` stays a batched matrix product instead of a grouped convolution,
  which XLA runs far slower on a CPU."""

  def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, rngs: nnx.Rngs):
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (kernel * c_in, c_out)))
    self.bias = nnx.Param(jnp.zeros((c_out,)))
    self.size, self.stride = kernel, stride

  def __call__(self, x):
    length = x.shape[1]
    out_length = -(-length // self.stride)
    pad = max((out_length - 1) * self.stride + self.size - length, 0)
    x = jnp.pad(x, ((0, 0), (pad // 2, pad - pad // 2), (0, 0)))
    taps = [x[:, k:k + (out_length - 1) * self.stride + 1:self.stride]
            for k in range(self.size)]
    return jnp.concatenate(taps, -1) @ self.kernel + self.bias


class SubBlock(nnx.Module):
  """``Conv1D -> LayerNorm`` (the ReLU is applied by the caller, after a residual)."""

  def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, rngs: nnx.Rngs):
    self.conv = Conv1D(c_in, c_out, kernel, stride, rngs)
    self.norm = nnx.LayerNorm(c_out, rngs=rngs)

  def __call__(self, x):
    return self.norm(self.conv(x))


class JasperLike(nnx.Module):
  """Prologue (stride ``STRIDE``), ``blocks`` residual blocks of two sub-blocks, 1x1 epilogue,
  1x1 classifier to ``NUM_CLASSES`` (Li et al., 2019, scaled down)."""

  def __init__(self, channels: int, blocks: int, kernel: int, rngs: nnx.Rngs):
    self.prologue = SubBlock(1, channels, 11, STRIDE, rngs)
    self.blocks = nnx.List([
        nnx.List([SubBlock(channels, channels, kernel, 1, rngs) for _ in range(2)])
        for _ in range(blocks)])
    self.residual = nnx.List([Conv1D(channels, channels, 1, 1, rngs)
                              for _ in range(blocks)])
    self.epilogue = SubBlock(channels, channels, 1, 1, rngs)
    self.classifier = Conv1D(channels, NUM_CLASSES, 1, 1, rngs)

  def __call__(self, inputs, frame_mask):
    """``inputs (B, T)``; ``frame_mask (B, T // STRIDE)`` is 1 on real frames."""
    mask = frame_mask[..., None]
    x = jax.nn.relu(self.prologue(inputs[..., None])) * mask
    for (first, second), residual in zip(self.blocks, self.residual, strict=True):
      h = jax.nn.relu(first(x)) * mask
      x = jax.nn.relu(second(h) + residual(x)) * mask
    x = jax.nn.relu(self.epilogue(x)) * mask
    return self.classifier(x)


def frame_counts(lengths):
  return -(-lengths // STRIDE)


def decay_mask(params):
  """Weight decay on the convolution kernels only."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: "kernel" in jax.tree_util.keystr(path), params)


def make_schedule(peak_lr, steps: int):
  """Linear warmup over ``WARMUP_FRACTION`` of the steps, then polynomial (power 2)
  decay to 0, times ``peak_lr`` (which may be traced)."""
  warmup = max(1, int(round(WARMUP_FRACTION * steps)))
  unit = optax.join_schedules(
      [optax.linear_schedule(0.0, 1.0, warmup),
       optax.polynomial_schedule(1.0, 0.0, POLY_POWER, steps - warmup)], [warmup])
  return lambda count: peak_lr * unit(count)


def make_optimizer(name: str, peak_lr, weight_decay, steps: int):
  """The three optimizers with the schedule of :func:`make_schedule`."""
  schedule = make_schedule(peak_lr, steps)
  if name in ("novograd", "novograd_noluc"):
    return novograd(schedule, b1=0.95, b2=0.98, weight_decay=weight_decay,
                    weight_decay_mask=decay_mask,
                    trust_coefficient=TRUST if name == "novograd" else None)
  if name == "sgd":
    return optax.chain(optax.masked(optax.add_decayed_weights(weight_decay), decay_mask),
                       optax.sgd(schedule, momentum=0.9))
  if name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=0.999, weight_decay=weight_decay,
                       mask=decay_mask)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")


# -------------------------------------------------------------------------- training


_RUN_CACHE: dict = {}


def _make_run(name, graphdef, *, steps, eval_every):
  def forward(params, inputs, lengths):
    frames = -(-inputs.shape[1] // STRIDE)
    mask = (jnp.arange(frames)[None] < frame_counts(lengths)[:, None]).astype(inputs.dtype)
    return nnx.merge(graphdef, params)(inputs, mask), mask

  def ctc(params, inputs, lengths, labels, label_lengths):
    """Per-sequence CTC loss divided by the label length, and the argmax frames."""
    logits, mask = forward(params, inputs, lengths)
    label_pad = (jnp.arange(labels.shape[1])[None] >= label_lengths[:, None])
    per = optax.ctc_loss(logits, 1.0 - mask, labels, label_pad.astype(logits.dtype))
    return per / label_lengths, jnp.argmax(logits, -1)

  def run(lrs, weight_decay, params0, train, valid, test, batches):
    def one(peak_lr):
      tx = make_optimizer(name, peak_lr, weight_decay, steps)

      def loss(params, idx):
        return ctc(params, *(a[idx] for a in train))[0].mean()

      def step(carry, idx):
        params, state = carry
        value, grads = jax.value_and_grad(loss)(params, idx)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), value

      (params, _), losses = jax.lax.scan(step, (params0, tx.init(params0)), batches)
      n_train = min(len(valid[0]), len(train[0]))
      train_loss = ctc(params, *(a[:n_train] for a in train))[0].mean()
      valid_loss, valid_ids = ctc(params, *valid)
      test_loss, test_ids = ctc(params, *test)
      curve = losses.reshape(-1, eval_every).mean(-1)
      return train_loss, valid_loss.mean(), test_loss.mean(), valid_ids, test_ids, curve

    return jax.vmap(one)(lrs)

  return run


def train_grid(name: str, lrs, *, seed: int, weight_decay: float, num_samples: int,
               train_sequences: int, valid_sequences: int, test_sequences: int,
               channels: int, blocks: int, kernel: int, steps: int, batch_size: int,
               eval_every: int) -> list[dict[str, Any]]:
  """Trains one model per learning rate in ``lrs`` (vmapped; same init and batches).

  Returns per learning rate ``valid_ler`` / ``test_ler`` (greedy decoding, label error
  rate), ``train_loss`` (on a fixed subset of the training sequences), ``valid_loss``,
  ``test_loss`` (CTC per label) and the training-loss curve ``curve_step`` /
  ``curve_train`` (mean over each ``eval_every`` steps).
  """
  if steps % eval_every:
    raise ValueError(f"steps ({steps}) must be a multiple of eval_every ({eval_every})")
  data = load_splits(num_samples, train_sequences, valid_sequences, test_sequences)
  model = JasperLike(channels, blocks, kernel, nnx.Rngs(seed))
  graphdef, params0 = nnx.split(model, nnx.Param)
  # the batch order: a fresh permutation of the training sequences per epoch, from seed
  order_rng = np.random.default_rng(1000 + seed)
  per_epoch = train_sequences // batch_size
  epochs = -(-steps // per_epoch)
  batches = np.concatenate([
      order_rng.permutation(train_sequences)[:per_epoch * batch_size].reshape(
          per_epoch, batch_size) for _ in range(epochs)])[:steps]
  key = (name, len(lrs), steps, eval_every, channels, blocks, kernel, batch_size,
         train_sequences, valid_sequences, test_sequences)
  if key not in _RUN_CACHE:
    _RUN_CACHE[key] = jax.jit(_make_run(name, graphdef, steps=steps, eval_every=eval_every))
  outputs = _RUN_CACHE[key](
      jnp.asarray(lrs, jnp.float32), jnp.float32(weight_decay), params0,
      *(tuple(jnp.asarray(a) for a in data[s]) for s in ("train", "valid", "test")),
      jnp.asarray(batches, jnp.int32))
  train_loss, valid_loss, test_loss, valid_ids, test_ids, curve = map(np.asarray, outputs)
  refs = {s: references(data[s][2], data[s][3]) for s in ("valid", "test")}
  counts = {s: frame_counts(data[s][1]) for s in ("valid", "test")}
  out = []
  for i in range(len(lrs)):
    ler = {s: label_error_rate(greedy_decode(ids[i], counts[s]), refs[s])
           for s, ids in (("valid", valid_ids), ("test", test_ids))}
    finite = bool(np.isfinite(valid_loss[i]) and np.isfinite(train_loss[i]))
    out.append({"valid_ler": ler["valid"] if finite else None,
                "test_ler": ler["test"] if finite else None,
                "train_loss": float(train_loss[i]), "valid_loss": float(valid_loss[i]),
                "test_loss": float(test_loss[i]),
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


RUN_KEYS = ("num_samples", "train_sequences", "valid_sequences", "test_sequences",
            "channels", "blocks", "kernel", "steps", "batch_size", "eval_every", "pad")


def candidates_for(config: dict) -> list[dict]:
  return [{"name": name,
           "options": {"optimizer": name, **{k: config[k] for k in RUN_KEYS}},
           "learning_rates": protocol.log_grid(START_LR[name]),
           "weight_decays": list(config["weight_decays"][name])}
          for name in config["optimizers"]]


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
  parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                      help="comma-separated subset of the optimizers")
  parser.add_argument("--out", default=None,
                      help="results JSON; None: results/speech_ctc_<configuration>.json")
  parser.add_argument("--cache", default=None,
                      help="folder keeping every finished training call, so an interrupted "
                           "run resumes; None: results/cache/speech_ctc_full for --full, "
                           "no cache otherwise")
  parser.add_argument("--no-cache", action="store_true", help="train everything afresh")
  args = parser.parse_args(argv)
  args.configuration = "quick" if args.quick else "full"
  return args


def config_from_args(args) -> dict:
  config = dict(CONFIGS[args.configuration])
  if args.steps:
    config["steps"] = args.steps
  config["optimizers"] = tuple(args.optimizers.split(","))
  unknown = set(config["optimizers"]) - set(OPTIMIZERS)
  if unknown:
    raise SystemExit(f"--optimizers: unknown {sorted(unknown)}; choose from {OPTIMIZERS}")
  config.setdefault("weight_decays", WEIGHT_DECAYS)
  config.setdefault("max_widenings", 3)
  config.update(weight_decays={k: list(v) for k, v in config["weight_decays"].items()},
                start_lr=dict(START_LR), momentum=dict(MOMENTUM), trust_coefficient=TRUST,
                warmup_fraction=WARMUP_FRACTION, poly_power=POLY_POWER,
                digits=(MIN_DIGITS, MAX_DIGITS), data_seed=DATA_SEED,
                lr_grids={n: protocol.log_grid(START_LR[n]) for n in OPTIMIZERS})
  return config


def cached_evaluate(args):
  """``evaluate`` with finished calls kept on disk, keyed by this file, the protocol,
  the MNIST-1D loader, the library's sources and the JAX/optax/flax versions."""
  folder = args.cache
  if folder is None and args.configuration == "full":
    folder = os.path.join("results", "cache", "speech_ctc_full")
  if args.no_cache or not folder:
    return evaluate
  library = os.path.join(os.path.dirname(_HERE), "novograd_optax")
  sources = [os.path.abspath(__file__), protocol.__file__, os.path.join(_HERE, "mnist1d.py"),
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
  data = load_splits(*(config[k] for k in ("num_samples", "train_sequences",
                                           "valid_sequences", "test_sequences")))
  print(f"{args.configuration} configuration: "
        + ", ".join(f"{len(v[0])} {k} sequences" for k, v in data.items()))
  results = protocol.run_protocol(
      cached_evaluate(args), candidates_for(config), seeds=config["seeds"],
      score_key="valid_ler", higher_is_better=False,
      report_keys=("valid_ler", "test_ler", "train_loss", "valid_loss"),
      max_widenings=config["max_widenings"])
  comparisons = [protocol.compare(results, a, b, key, higher_is_better=False)
                 for a in ("novograd", "novograd_noluc") if a in config["optimizers"]
                 for b in ("sgd", "adamw") if b in config["optimizers"]
                 for key in ("test_ler", "valid_ler")]
  seconds = time.perf_counter() - start
  for r in results:
    s = r["summary"]
    print(f"{r['name']}: lr {r['best_lr']:.3g}, wd {r['weight_decay']:g} (interior "
          f"{r['interior']}); valid LER {s['valid_ler']['mean']:.4f}±"
          f"{s['valid_ler']['std']:.4f}, test LER {s['test_ler']['mean']:.4f}±"
          f"{s['test_ler']['std']:.4f}")
  for c in comparisons:
    print(f"{c['a']} vs {c['b']} on {c['key']}: {c['verdict']}")
  out = args.out or os.path.join("results", f"speech_ctc_{args.configuration}.json")
  protocol.write_results(out, "speech_ctc", args.configuration, config,
                         {"results": results, "comparisons": comparisons},
                         argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                         seconds=seconds)
  print(f"wrote {out} ({seconds:.0f} s)")
  return {"config": config, "results": results, "comparisons": comparisons}


if __name__ == "__main__":
  main(sys.argv[1:])
