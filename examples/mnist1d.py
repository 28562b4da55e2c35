r"""Large-batch training on MNIST-1D: NovoGrad, SNGM and LARS vs SGD-momentum, AdamW and
LAMB.

The NovoGrad paper (Ginsburg et al., 2019, §5.1.1 and §5.2.1) reports that NovoGrad
holds its accuracy as the batch grows to 32K at a fixed number of epochs; the SNGM paper
(Zhao et al., 2020) that normalizing the whole gradient before momentum lets training use
larger batches than momentum SGD and matches or beats LARS (You et al., 2017). This
example asks both questions at CPU scale: MNIST-1D (Greydanus, 2020), generated locally
with ``mnist1d.data.make_dataset`` (nothing is downloaded), a small MLP or 1-D CNN in
Flax NNX, a fixed number of epochs, several batch sizes.

Every optimizer x batch size is tuned with the protocol of ``examples/protocol.py``: a
5-point learning-rate grid a factor ``sqrt(10)`` apart around a scaled starting rate
``START_LR[name] * sqrt(B / 128)``, widened until the best validation accuracy is
interior; with ``--seeds 3`` the best rate and its neighbours are re-run with 3 seeds
(model init and batch order). The table reports *test* accuracy, mean ± std over seeds.

Weight decay is tuned jointly with the learning rate, the same way for every optimizer
(each applies it as its recipe does: NovoGrad to the normalized gradient, AdamW and LAMB
decoupled, SGD, SNGM and LARS as L2 in the gradient): the grid is 0 and three values a
decade apart around the optimizer's usual value ``WEIGHT_DECAY[name]`` (``c/10, c,
10c``), one learning-rate search per decay on the tuning seed, and the (decay, rate)
with the best validation accuracy is kept. While the best decay is the grid's largest,
the grid grows by another factor 10 (at most ``DECAY_WIDENINGS`` times); the results
record every decay's search and whether the chosen decay ended at that edge.

Fixed settings, stated (not tuned, the same rule for all): each optimizer's usual
momentum -- SGD 0.9, NovoGrad ``b1 = 0.95, b2 = 0.98`` (the paper's defaults), AdamW
and LAMB ``b1 = 0.9, b2 = 0.999``, SNGM ``beta = 0.9``, LARS momentum 0.9 with trust
coefficient 0.001 (``optax.lars`` defaults); linear warmup over the first 10% of the
steps, then cosine decay to 0. The same initial weights and batches for every optimizer
at a given seed.

SNGM's learning rate: the part of its paper we could read (the abstract) states no
learning-rate rule, so none is taken from it; we scale the grid centre with ``sqrt(B)``
like every other optimizer here and let the protocol tune around it, so no optimizer
depends on a rule being right.

Speed on a 2-core CPU: each (optimizer, batch size, grid length) is one compiled program,
reused across seeds and weight decays (the decay is an argument, not a constant); inside
it ``jax.lax.scan`` runs the epochs and the steps and
``jax.vmap`` trains the whole learning-rate grid at once.

Run ``python examples/mnist1d.py --help``. To use the functions elsewhere, load this
file by path (its name would shadow the ``mnist1d`` package on ``sys.path``)::

    spec = importlib.util.spec_from_file_location("mnist1d_example", "examples/mnist1d.py")
    example = importlib.util.module_from_spec(spec); spec.loader.exec_module(example)
    data = example.load_data(num_samples=4000, seed=0)
    result = example.train("novograd", 0.01, 256, 5, data=data)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any, Callable, Optional, Sequence

# This file shares its name with the `mnist1d` package: run as a script, its folder is
# first on sys.path and `import mnist1d` would import this file again. Drop the folder.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import importlib.util  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import tqdm  # noqa: E402
from flax import nnx  # noqa: E402

from novograd_optax import novograd, sngm  # noqa: E402

# The shared tuning protocol, loaded by path (this folder is off sys.path, see above) and
# registered so that spawned worker processes can unpickle its functions.
if "protocol" not in sys.modules:
  _spec = importlib.util.spec_from_file_location("protocol", os.path.join(_HERE, "protocol.py"))
  sys.modules["protocol"] = importlib.util.module_from_spec(_spec)
  _spec.loader.exec_module(sys.modules["protocol"])
protocol = sys.modules["protocol"]

OPTIMIZERS = ("novograd", "sgd", "adamw", "lamb", "sngm", "lars")
MODELS = ("mlp", "cnn")
REFERENCE_BATCH = 128
# Starting learning rates at REFERENCE_BATCH (centres of the first grids). The protocol
# widens a grid whose best point is at an edge, so these only set where the search starts.
BASE_LR = {"novograd": 0.08, "sgd": 0.3, "adamw": 0.01, "lamb": 0.01, "sngm": 0.1,
           "lars": 3.0}
# Every optimizer's best rate grew about as the square root of the batch in earlier
# tuning runs (2-4x from 128 to 2048); the same rule centres every grid.
LR_SCALING = {name: "sqrt" for name in OPTIMIZERS}
# Centre of each optimizer's weight-decay grid: its usual value where the NovoGrad paper
# gives one (Table 1, ResNet-50: NovoGrad 0.002, SGD 1e-4, AdamW 0.12, rounded to 0.1);
# LAMB's paper default 0.01; SNGM and LARS add their decay to the gradient as SGD does, so
# they start from SGD's 1e-4. The grid is 0 and c/10, c, 10c (3 values over 2 decades),
# widened upward while its largest value is the best, so the centre only sets where the
# search starts.
WEIGHT_DECAY = {"novograd": 2e-3, "sgd": 1e-4, "adamw": 0.1, "lamb": 0.01, "sngm": 1e-4,
                "lars": 1e-4}
WEIGHT_DECAYS = {name: (0.0, c / 10, c, 10 * c) for name, c in WEIGHT_DECAY.items()}
DECAY_WIDENINGS = 2
MOMENTUM = {"novograd": "b1 0.95, b2 0.98", "sgd": "0.9", "adamw": "b1 0.9, b2 0.999",
            "lamb": "b1 0.9, b2 0.999", "sngm": "0.9", "lars": "0.9, trust 0.001"}
LR_GRID = tuple(protocol.log_grid(1.0))  # multipliers of the scaled starting rate
BATCH_SIZES = (64, 256, 1024, 4096)
WARMUP_FRACTION = 0.1
NUM_CLASSES = 10


# ----------------------------------------------------------------------------- data


def load_data(
    num_samples: int = 25_000,
    seed: int = 0,
    val_fraction: float = 0.1,
    cache_dir: Optional[str] = None,
) -> dict[str, np.ndarray]:
  """Generates MNIST-1D locally: ``x_train, y_train, x_val, y_val, x_test, y_test``.

  ``mnist1d.data.make_dataset`` builds the signals from the ten templates with
  NumPy; unlike ``get_dataset`` it never downloads. 80% of the samples are for
  training (the package's split), of which ``val_fraction`` is held out for choosing
  the learning rate; 20% are the test set. The same ``(num_samples, seed)`` gives the
  same arrays. With ``cache_dir``, the arrays are kept in ``mnist1d_<n>_<seed>.npz``
  there (6 MB for 40k samples) to skip the ~10 s generation next time.
  """
  cache_path = None
  if cache_dir is not None:
    cache_path = os.path.join(cache_dir, f"mnist1d_{num_samples}_{seed}_{val_fraction}.npz")
    if os.path.exists(cache_path):
      with np.load(cache_path) as cached:
        return {k: cached[k] for k in cached.files}

  from mnist1d.data import get_dataset_args, make_dataset

  args = get_dataset_args()
  args.num_samples = num_samples
  args.seed = seed
  # make_dataset seeds NumPy's global generator; restore it for the caller.
  saved_state = np.random.get_state()
  try:
    raw = make_dataset(args)
  finally:
    np.random.set_state(saved_state)
  x, y = raw["x"].astype(np.float32), raw["y"].astype(np.int32)
  num_val = int(round(len(y) * val_fraction))
  data = {
      "x_train": x[num_val:], "y_train": y[num_val:],
      "x_val": x[:num_val], "y_val": y[:num_val],
      "x_test": raw["x_test"].astype(np.float32), "y_test": raw["y_test"].astype(np.int32),
  }
  if cache_path is not None:
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(cache_path, **data)
  return data


# ---------------------------------------------------------------------------- models


class MLP(nnx.Module):
  """Two hidden ReLU layers on the 40 samples of a signal."""

  def __init__(self, hidden: int = 128, *, rngs: nnx.Rngs):
    self.hidden1 = nnx.Linear(40, hidden, rngs=rngs)
    self.hidden2 = nnx.Linear(hidden, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.hidden1(x))
    x = jax.nn.relu(self.hidden2(x))
    return self.out(x)


class CNN(nnx.Module):
  """Three stride-2 convolutions then a linear layer, like the MNIST-1D paper's CNN."""

  def __init__(self, channels: int = 32, *, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(1, channels, kernel_size=5, strides=2, rngs=rngs)
    self.conv2 = nnx.Conv(channels, channels, kernel_size=3, strides=2, rngs=rngs)
    self.conv3 = nnx.Conv(channels, channels, kernel_size=3, strides=2, rngs=rngs)
    self.out = nnx.Linear(5 * channels, NUM_CLASSES, rngs=rngs)

  def __call__(self, x):
    x = x[..., None]  # (batch, 40) -> (batch, 40, 1 channel)
    x = jax.nn.relu(self.conv1(x))  # length 20
    x = jax.nn.relu(self.conv2(x))  # length 10
    x = jax.nn.relu(self.conv3(x))  # length 5
    return self.out(x.reshape(x.shape[:-2] + (-1,)))


def make_model(kind: str = "mlp", width: Optional[int] = None, seed: int = 0) -> nnx.Module:
  """``"mlp"`` (``width`` hidden units, default 128) or ``"cnn"`` (``width`` channels,
  default 32), initialized from ``seed``."""
  rngs = nnx.Rngs(seed)
  if kind == "mlp":
    return MLP(width or 128, rngs=rngs)
  if kind == "cnn":
    return CNN(width or 32, rngs=rngs)
  raise ValueError(f"model kind must be one of {MODELS}, got {kind!r}")


# ------------------------------------------------------------------------ optimizers


def scaled_learning_rate(optimizer_name: str, batch_size: int, scaling: Optional[str] = None):
  """The centre of the learning-rate grid at ``batch_size``: ``BASE_LR`` scaled
  ``"linear"``-ly or by ``"sqrt"`` from ``REFERENCE_BATCH`` (``None``: the default
  rule of the optimizer, ``LR_SCALING``; ``"none"``: unscaled)."""
  scaling = scaling or LR_SCALING[optimizer_name]
  ratio = batch_size / REFERENCE_BATCH
  factor = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[scaling]
  return BASE_LR[optimizer_name] * factor


def make_schedule(peak_lr, total_steps: int, warmup_fraction: float = WARMUP_FRACTION):
  """Linear warmup over ``warmup_fraction`` of the steps, then cosine decay to 0.

  ``peak_lr`` may be a traced scalar (the grid is vmapped), so the schedule is
  optax's unit-peak schedule times ``peak_lr``.
  """
  warmup = int(round(warmup_fraction * total_steps))
  unit = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=1.0, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1))
  return lambda count: peak_lr * unit(count)


def make_optimizer(name: str, learning_rate, weight_decay=0.0):
  """optax's SGD, AdamW, LAMB and LARS, or our NovoGrad and SNGM, with the fixed
  momentum settings of ``MOMENTUM`` and ``weight_decay`` (a float or a traced scalar;
  default 0) applied as each optimizer's recipe does."""
  if name not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
  wd = 0.0 if weight_decay is None else weight_decay
  if name == "novograd":
    return novograd(learning_rate, b1=0.95, b2=0.98, weight_decay=wd)
  if name == "sgd":
    sgd = optax.sgd(learning_rate, momentum=0.9)
    static_zero = isinstance(wd, (int, float)) and wd == 0
    return sgd if static_zero else optax.chain(optax.add_decayed_weights(wd), sgd)
  if name == "adamw":
    return optax.adamw(learning_rate, weight_decay=wd)
  if name == "sngm":
    return sngm(learning_rate, momentum=0.9, weight_decay=wd)
  if name == "lars":
    return optax.lars(learning_rate, weight_decay=wd, momentum=0.9)
  return optax.lamb(learning_rate, weight_decay=wd)


# -------------------------------------------------------------------------- training


def _cross_entropy(logits, labels):
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _accuracy(apply: Callable, params, x, y, chunk: int = 4096):
  """Accuracy over ``x`` in chunks (bounded memory for the CNN)."""
  correct = 0
  for start in range(0, x.shape[0], chunk):
    logits = apply(params, x[start:start + chunk])
    correct += jnp.sum(jnp.argmax(logits, -1) == y[start:start + chunk])
  return correct / x.shape[0]


_TRAIN_CACHE: dict = {}


def train(
    optimizer_name: str,
    lr,
    batch_size: int,
    epochs: int,
    *,
    data: Optional[dict[str, np.ndarray]] = None,
    model: str = "mlp",
    width: Optional[int] = None,
    seed: int = 0,
    weight_decay: Optional[float] = None,
    warmup_fraction: float = WARMUP_FRACTION,
) -> dict[str, Any]:
  """Trains one model per learning rate in ``lr`` (a float or a sequence) at once, with
  ``weight_decay`` (``None``: 0) for all of them.

  All learning rates start from the same weights (``seed``) and see the same
  batches; a partial last batch of each epoch is dropped. Returns NumPy arrays with
  a leading learning-rate axis (dropped when ``lr`` is a float): ``train_loss``
  (mean loss of each epoch, ``[lr, epoch]``), ``val_accuracy`` (after each epoch),
  ``test_accuracy`` (at the end); and ``lr``, ``steps``, ``seconds``.
  """
  if data is None:
    data = load_data()
  scalar_lr = np.ndim(lr) == 0
  lrs = jnp.atleast_1d(jnp.asarray(lr, jnp.float32))
  arrays = {k: jnp.asarray(v) for k, v in data.items()}
  num_train = arrays["x_train"].shape[0]
  if not 0 < batch_size <= num_train:
    raise ValueError(f"batch_size must be in [1, {num_train}], got {batch_size}")
  steps_per_epoch = num_train // batch_size
  total_steps = steps_per_epoch * epochs

  graphdef, params0 = nnx.split(make_model(model, width, seed))

  def apply(params, x):
    return nnx.merge(graphdef, params)(x)

  def loss_fn(params, x, y):
    return _cross_entropy(apply(params, x), y)

  def run(lrs, wd, params0, arrays, key):
    epoch_keys = jax.random.split(key, epochs)
    # The batch order depends only on the key: every lr sees the same batches.
    orders = jax.vmap(lambda k: jax.random.permutation(k, num_train))(epoch_keys)
    orders = orders[:, :steps_per_epoch * batch_size].reshape(
        epochs, steps_per_epoch, batch_size)

    def one_learning_rate(peak_lr):
      tx = make_optimizer(
          optimizer_name, make_schedule(peak_lr, total_steps, warmup_fraction), wd)

      def step(carry, batch_indices):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(
            params, arrays["x_train"][batch_indices], arrays["y_train"][batch_indices])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

      def epoch(carry, order):
        carry, losses = jax.lax.scan(step, carry, order)
        val_acc = _accuracy(apply, carry[0], arrays["x_val"], arrays["y_val"])
        return carry, (losses.mean(), val_acc)

      (params, _), (train_loss, val_acc) = jax.lax.scan(
          epoch, (params0, tx.init(params0)), orders)
      test_acc = _accuracy(apply, params, arrays["x_test"], arrays["y_test"])
      return train_loss, val_acc, test_acc

    return jax.vmap(one_learning_rate)(lrs)

  # One compile per program; seeds and weight decays only change the arguments.
  cache_key = (optimizer_name, batch_size, epochs, model, width, len(lrs),
               warmup_fraction, tuple((k, v.shape) for k, v in sorted(arrays.items())))
  if cache_key not in _TRAIN_CACHE:
    _TRAIN_CACHE[cache_key] = jax.jit(run)
  start = time.perf_counter()
  wd = jnp.asarray(0.0 if weight_decay is None else weight_decay, jnp.float32)
  outputs = _TRAIN_CACHE[cache_key](lrs, wd, params0, arrays, jax.random.key(seed))
  train_loss, val_acc, test_acc = (np.asarray(o) for o in outputs)
  seconds = time.perf_counter() - start
  result = {"train_loss": train_loss, "val_accuracy": val_acc, "test_accuracy": test_acc,
            "lr": np.asarray(lrs)}
  if scalar_lr:
    result = {k: v[0] for k, v in result.items()}
  result.update(steps=total_steps, seconds=seconds)
  return result


_DATA: dict = {}


def _cached_data(num_samples: int, data_seed: int = 0) -> dict[str, np.ndarray]:
  if (num_samples, data_seed) not in _DATA:
    _DATA[(num_samples, data_seed)] = load_data(num_samples, data_seed)
  return _DATA[(num_samples, data_seed)]


def evaluate(options: dict, lrs: list, seed: int) -> list[dict]:
  """The protocol's ``evaluate``: trains the rates ``lrs`` with ``seed`` (model init and
  batch order); ``options`` holds the optimizer, batch size, epochs and data settings.
  Calls are padded to ``len(LR_GRID)`` rates so that a program compiles once."""
  data = _cached_data(options["num_samples"], options.get("data_seed", 0))
  padded = list(lrs) + [lrs[-1]] * (len(LR_GRID) - len(lrs))
  r = train(options["optimizer"], padded, options["batch_size"], options["epochs"],
            data=data, model=options.get("model", "mlp"), width=options.get("width"),
            seed=seed, weight_decay=options.get("weight_decay"),
            warmup_fraction=options.get("warmup_fraction", WARMUP_FRACTION))
  out = []
  for i in range(len(lrs)):
    val = float(r["val_accuracy"][i, -1])
    out.append({"val_accuracy": val if np.isfinite(val) else None,
                "test_accuracy": float(np.nan_to_num(r["test_accuracy"][i], nan=0.0)),
                "train_loss": [float(v) for v in r["train_loss"][i]]})
  return out


def candidates(optimizers: Sequence[str], batch_sizes: Sequence[int], epochs: int, *,
               num_samples: int, model: str = "mlp", width: Optional[int] = None,
               warmup_fraction: float = WARMUP_FRACTION, scaling: Optional[str] = None,
               tag: str = "", tune_decay: bool = True) -> list[dict]:
  """One protocol candidate per optimizer x batch size, named ``name@B<batch><tag>``,
  with its weight-decay grid ``WEIGHT_DECAYS[name]`` (``tune_decay=False``: decay 0)."""
  out = []
  for name in optimizers:
    for b in batch_sizes:
      centre = scaled_learning_rate(name, b, scaling)
      out.append({"name": f"{name}@B{b}{tag}",
                  "options": {"optimizer": name, "batch_size": b, "epochs": epochs,
                              "num_samples": num_samples, "model": model, "width": width,
                              "warmup_fraction": warmup_fraction},
                  "learning_rates": [centre * m for m in LR_GRID],
                  "weight_decays": list(WEIGHT_DECAYS[name]) if tune_decay else [0.0]})
  return out


def sweep(
    optimizers: Sequence[str] = OPTIMIZERS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    epochs: int = 15,
    *,
    seeds: Sequence[int] = (0,),
    num_samples: int = 25_000,
    model: str = "mlp",
    width: Optional[int] = None,
    warmup_fraction: float = WARMUP_FRACTION,
    scaling: Optional[str] = None,
    extra_epochs: int = 0,
    jobs: int = 1,
    progress: bool = True,
    tune_decay: bool = True,
    decay_widenings: int = DECAY_WIDENINGS,
) -> list[dict[str, Any]]:
  """Every optimizer x batch size through the tuning protocol (learning rate x weight
  decay, see the module docstring); with ``extra_epochs`` also every optimizer at the
  largest batch trained that many epochs. One row each: ``optimizer``, ``batch_size``,
  ``epochs``, ``updates`` (optimizer steps per run), ``lr``, ``interior``,
  ``weight_decay``, ``decay_at_edge`` and the protocol's ``summary`` / ``searches``
  (one learning-rate search per decay)."""
  num_train = len(_cached_data(num_samples)["y_train"])
  cands = candidates(optimizers, batch_sizes, epochs, num_samples=num_samples, model=model,
                     width=width, warmup_fraction=warmup_fraction, scaling=scaling,
                     tune_decay=tune_decay)
  if extra_epochs:
    cands += candidates(optimizers, [max(batch_sizes)], extra_epochs,
                        num_samples=num_samples, model=model, width=width,
                        warmup_fraction=warmup_fraction, scaling=scaling,
                        tag=f"x{extra_epochs}ep", tune_decay=tune_decay)
  # One tick per tuned cell: the count and an estimate of the time left (on stderr),
  # with each cell's result printed above the bar.
  bar = tqdm.tqdm(total=len(cands), desc="tuning", unit="cell", disable=not progress)

  def report(message: str) -> None:
    bar.update(1)
    bar.write(message)

  try:
    results = protocol.run_protocol(
        evaluate, cands, seeds=seeds, score_key="val_accuracy", higher_is_better=True,
        report_keys=("test_accuracy", "val_accuracy"), jobs=jobs,
        decay_widenings=decay_widenings if tune_decay else 0,
        progress=report if progress else None)
  finally:
    bar.close()
  rows = []
  for r in results:
    o = r["options"]
    rows.append({"name": r["name"], "optimizer": o["optimizer"],
                 "batch_size": o["batch_size"], "epochs": o["epochs"],
                 "updates": (num_train // o["batch_size"]) * o["epochs"],
                 "lr": r["best_lr"], "interior": r["interior"],
                 "test_accuracy": r["summary"]["test_accuracy"]["mean"],
                 "train_loss": r["runs"][0]["train_loss"], **r})
  return rows


def largest_batch_within(rows: Sequence[dict], name: str, points: float = 1.0,
                         epochs: Optional[int] = None) -> Optional[int]:
  """The largest batch whose mean test accuracy is within ``points`` (percentage
  points) of the smallest batch's, scanning up from the smallest and stopping at the
  first batch that falls further behind."""
  mine = sorted((r for r in rows if r["optimizer"] == name
                 and (epochs is None or r["epochs"] == epochs)), key=lambda r: r["batch_size"])
  if not mine:
    return None
  reference = mine[0]["summary"]["test_accuracy"]["mean"]
  best = None
  for r in mine:
    if 100 * (reference - r["summary"]["test_accuracy"]["mean"]) > points:
      break
    best = r["batch_size"]
  return best


def comparisons(rows: Sequence[dict]) -> list[dict]:
  """Verdicts on test accuracy at every batch: NovoGrad vs SGD and AdamW, SNGM vs SGD
  and LARS (the papers' claims)."""
  pairs = (("novograd", "sgd"), ("novograd", "adamw"), ("novograd", "lamb"),
           ("sngm", "sgd"), ("sngm", "lars"))
  names = {r["name"] for r in rows}
  out = []
  for r in rows:
    for a, b in pairs:
      if r["optimizer"] != a:
        continue
      other = r["name"].replace(f"{a}@", f"{b}@", 1)
      if other in names:
        out.append(protocol.compare(rows, r["name"], other, "test_accuracy", True))
  return out


# --------------------------------------------------------------------------- reports


def _cell(r: dict[str, Any]) -> str:
  s = r["summary"]["test_accuracy"]
  text = f"{100 * s['mean']:.1f}"
  if s["n"] > 1:
    text += f" ± {100 * s['std']:.1f}"
  return text + ("" if r["interior"] else "*")


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  """Test accuracy (%) per optimizer (rows) x batch size (columns), mean ± std over
  seeds; ``*`` marks a learning rate still at the edge of its widened grid. The first
  row gives the optimizer steps (updates) per run."""
  optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
  cols = sorted({(r["epochs"], r["batch_size"]) for r in rows})
  cell = {(r["optimizer"], r["epochs"], r["batch_size"]): r for r in rows}
  updates = {(r["epochs"], r["batch_size"]): r["updates"] for r in rows}
  lines = ["| optimizer | " + " | ".join(f"B={b}, {e} ep" for e, b in cols) + " |",
           "|---|" + "---:|" * len(cols),
           "| updates per run | " + " | ".join(str(updates[c]) for c in cols) + " |"]
  for name in optimizers:
    cells = [_cell(cell[(name, *c)]) if (name, *c) in cell else "" for c in cols]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def lr_table(rows: Sequence[dict[str, Any]]) -> str:
  """The chosen (peak) learning rate per optimizer x batch size."""
  optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
  cols = sorted({(r["epochs"], r["batch_size"]) for r in rows})
  cell = {(r["optimizer"], r["epochs"], r["batch_size"]): r for r in rows}
  lines = ["| optimizer | " + " | ".join(f"B={b}, {e} ep" for e, b in cols) + " |",
           "|---|" + "---:|" * len(cols)]
  for name in optimizers:
    lines.append(f"| {name} | " + " | ".join(
        f"{cell[(name, *c)]['lr']:.3g}" if (name, *c) in cell else "" for c in cols) + " |")
  return "\n".join(lines)


def decay_table(rows: Sequence[dict[str, Any]]) -> str:
  """The chosen weight decay per optimizer x batch size; ``(edge)`` when it is the
  largest value of its (widened) grid."""
  optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
  cols = sorted({(r["epochs"], r["batch_size"]) for r in rows})
  cell = {(r["optimizer"], r["epochs"], r["batch_size"]): r for r in rows}

  def text(r):
    return f"{r['weight_decay']:g}" + (" (edge)" if r.get("decay_at_edge") else "")

  lines = ["| optimizer | " + " | ".join(f"B={b}, {e} ep" for e, b in cols) + " |",
           "|---|" + "---:|" * len(cols)]
  for name in optimizers:
    lines.append(f"| {name} | " + " | ".join(
        text(cell[(name, *c)]) if (name, *c) in cell else "" for c in cols) + " |")
  return "\n".join(lines)


def plot_results(rows: Sequence[dict[str, Any]], title: str = ""):
  """Test accuracy vs batch size (main epochs), mean with min-max bars, one line per
  optimizer; a matplotlib Figure (made without pyplot, so no GUI backend is needed)."""
  from matplotlib.figure import Figure

  epochs = min(r["epochs"] for r in rows)
  rows = [r for r in rows if r["epochs"] == epochs]
  fig = Figure(figsize=(6, 4), dpi=120)
  ax = fig.subplots()
  for name in dict.fromkeys(r["optimizer"] for r in rows):
    mine = sorted((r for r in rows if r["optimizer"] == name), key=lambda r: r["batch_size"])
    s = [r["summary"]["test_accuracy"] for r in mine]
    mean = np.array([100 * x["mean"] for x in s])
    err = np.array([[100 * (x["mean"] - x["min"]) for x in s],
                    [100 * (x["max"] - x["mean"]) for x in s]])
    ax.errorbar([r["batch_size"] for r in mine], mean, yerr=err, marker="o", capsize=3,
                label=name)
  ax.set_xscale("log", base=2)
  batch_sizes = sorted({r["batch_size"] for r in rows})
  ax.set_xticks(batch_sizes, labels=[str(b) for b in batch_sizes])
  ax.minorticks_off()
  ax.set_xlabel("batch size")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(title)
  ax.grid(True, alpha=0.3)
  ax.legend()
  fig.tight_layout()
  return fig


# ------------------------------------------------------------------------------- CLI


def _int_list(text: str) -> list[int]:
  return [int(t) for t in text.split(",") if t]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description="MNIST-1D large-batch sweep: NovoGrad, SNGM and LARS vs SGD-momentum, "
      "AdamW and LAMB, each tuned by examples/protocol.py. Prints test accuracy per "
      "optimizer x batch size (lr chosen on validation), and writes results JSON and a "
      "plot under outputs/ (ignored by git); --update-results rewrites the committed "
      "results/ file instead.",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--model", choices=MODELS, default="mlp", help="the network trained")
  parser.add_argument("--width", type=int, default=None,
                      help="hidden units (mlp) or channels (cnn); None: 128 or 32")
  parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                      help="comma-separated subset of " + ",".join(OPTIMIZERS))
  parser.add_argument("--batch-sizes", type=_int_list,
                      default=",".join(map(str, BATCH_SIZES)), help="comma-separated")
  parser.add_argument("--epochs", type=int, default=15, help="epochs per run")
  parser.add_argument("--extra-epochs", type=int, default=0,
                      help="also train every optimizer this many epochs at the largest batch")
  parser.add_argument("--seeds", type=int, default=1,
                      help="seeds at the best rate and its neighbours (3 for the README)")
  parser.add_argument("--num-samples", type=int, default=25_000,
                      help="MNIST-1D samples generated (80%% train incl. validation, 20%% test)")
  parser.add_argument("--lr-scaling", choices=("auto", "linear", "sqrt", "none"),
                      default="auto",
                      help="centre of each grid: auto = each optimizer's LR_SCALING (sqrt)")
  parser.add_argument("--warmup-fraction", type=float, default=WARMUP_FRACTION,
                      help="fraction of the steps with linear warmup (all optimizers)")
  parser.add_argument("--decay-widenings", type=int, default=DECAY_WIDENINGS,
                      help="times a weight-decay grid whose best value is its largest is "
                      "extended by a factor 10")
  parser.add_argument("--no-decay-tuning", action="store_true",
                      help="weight decay 0 for every optimizer instead of the joint "
                      "learning-rate x decay grid")
  parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
  parser.add_argument("--configuration", default=None,
                      help="label written to the results; None: quick with --quick, "
                      "full with >= 3 seeds, else main")
  parser.add_argument("--out", default=None,
                      help="results JSON ('' = none); None: "
                      "outputs/mnist1d_<model>_<configuration>.json, or results/... with "
                      "--update-results")
  parser.add_argument("--plot", default=None,
                      help="PNG path ('' = none); None: outputs/mnist1d_<model>_"
                      "<configuration>.png")
  parser.add_argument("--update-results", action="store_true",
                      help="write the results JSON into results/, replacing the committed "
                      "file the README and docs are made from, instead of outputs/ (which "
                      "git ignores)")
  parser.add_argument("--quick", action="store_true",
                      help="tiny run for tests: 4000 samples, 3 epochs, batches 32 and 512")
  args = parser.parse_args(argv)
  args.optimizers = [o for o in args.optimizers.split(",") if o]
  unknown = set(args.optimizers) - set(OPTIMIZERS)
  if unknown:
    parser.error(f"unknown optimizers {sorted(unknown)}; choose from {OPTIMIZERS}")
  if args.seeds < 1:
    parser.error("--seeds must be >= 1")
  if args.quick:
    args.num_samples, args.epochs, args.batch_sizes = 4000, 3, [32, 512]
  if args.configuration is None:
    args.configuration = ("quick" if args.quick else "full" if args.seeds >= 3
                          else "main")
  stem = f"mnist1d_{args.model}_{args.configuration}"
  if args.out is None:
    args.out = os.path.join("results" if args.update_results else "outputs", stem + ".json")
  if args.plot is None:
    args.plot = os.path.join("outputs", stem + ".png")
  return args


def main(argv: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
  args = parse_args(argv)
  start = time.perf_counter()
  data = _cached_data(args.num_samples)
  print(f"MNIST-1D: {len(data['y_train'])} train, {len(data['y_val'])} validation, "
        f"{len(data['y_test'])} test samples; {args.model}, {args.epochs} epochs, "
        f"{args.seeds} seed(s), {jax.device_count()} {jax.default_backend()} device(s)")
  rows = sweep(args.optimizers, args.batch_sizes, args.epochs, seeds=range(args.seeds),
               num_samples=args.num_samples, model=args.model, width=args.width,
               warmup_fraction=args.warmup_fraction,
               scaling=None if args.lr_scaling == "auto" else args.lr_scaling,
               extra_epochs=args.extra_epochs, jobs=args.jobs,
               tune_decay=not args.no_decay_tuning, decay_widenings=args.decay_widenings)
  print(f"\nTest accuracy (%), {args.model}, mean ± std over {args.seeds} seed(s); learning "
        "rate chosen on validation (* = still at the edge of the widened grid):\n")
  print(markdown_table(rows))
  print("\nChosen peak learning rates:\n")
  print(lr_table(rows))
  print("\nChosen weight decays (edge = the largest of the widened grid):\n")
  print(decay_table(rows))
  within = {name: largest_batch_within(rows, name, epochs=args.epochs)
            for name in args.optimizers}
  print("\nLargest batch within 1 point of the smallest batch's accuracy: "
        + ", ".join(f"{k} {v}" for k, v in within.items()))
  verdicts = comparisons(rows)
  for c in verdicts:
    print(f"  {c['a']} vs {c['b']}: {c['verdict']}")
  seconds = time.perf_counter() - start
  if args.plot:
    fig = plot_results(rows, f"MNIST-1D {args.model}, {args.epochs} epochs, best lr per cell")
    os.makedirs(os.path.dirname(args.plot) or os.curdir, exist_ok=True)
    fig.savefig(args.plot)
    print(f"\nSaved the plot to {args.plot}")
  if args.out:
    out = args.out
    config = {k: v for k, v in vars(args).items()
              if k not in ("out", "plot", "update_results")}
    tuned = not args.no_decay_tuning
    config.update(num_train=len(data["y_train"]), momentum=MOMENTUM,
                  weight_decay=(WEIGHT_DECAY if tuned
                                else {name: 0.0 for name in OPTIMIZERS}),
                  weight_decays=(WEIGHT_DECAYS if tuned
                                 else {name: [0.0] for name in OPTIMIZERS}),
                  tune_decay=tuned, start_lr=BASE_LR, reference_batch=REFERENCE_BATCH)
    slim = [{k: v for k, v in r.items() if k not in ("runs",)} for r in rows]
    protocol.write_results(out, "mnist1d", args.configuration, config,
                           {"rows": slim, "largest_batch_within_1_point": within,
                            "comparisons": verdicts},
                           argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                           seconds=seconds)
    print(f"wrote {out}")
  print(f"Total time {seconds:.0f} s")
  return rows


if __name__ == "__main__":
  main()
