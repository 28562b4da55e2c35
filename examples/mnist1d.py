r"""Large-batch training on MNIST-1D: NovoGrad vs SGD-momentum, AdamW and LAMB.

The NovoGrad paper (Ginsburg et al., 2019, §5.1.1 and §5.2.1) reports that NovoGrad
holds its accuracy as the batch grows to 32K at a fixed number of epochs, with the
learning rate scaled with the batch. This example asks the same question at laptop
scale: MNIST-1D (Greydanus, 2020), generated locally with ``mnist1d.data.make_dataset``
(nothing is downloaded), a small MLP or 1-D CNN in Flax NNX, a fixed number of epochs,
batch sizes 64 to 4096 (``--batch-sizes``), and for every optimizer x batch size a small
learning-rate grid centred on a scaled base rate:

.. code-block:: text

    lr(B) = base_lr * sqrt(B / 128)    ("sqrt" scaling; --lr-scaling linear for B / 128)
    grid  = lr(B) * {1/4, 1/2, 1, 2, 4}

The best grid point is chosen by validation accuracy; the table reports its *test*
accuracy. Every optimizer gets the same schedule (linear warmup over the first 10% of
the steps, then cosine decay to zero), the same initial weights and the same batches.

Speed on a 2-core CPU: each (optimizer, batch size) is one compiled program; inside
it, ``jax.lax.scan`` runs the epochs and the steps, and ``jax.vmap`` trains the whole
learning-rate grid at once. The model is used through NNX's functional API
(``nnx.split`` / ``nnx.merge``) so that the parameters can be vmapped.

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

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from tqdm import tqdm  # noqa: E402

from novograd_optax import novograd  # noqa: E402

OPTIMIZERS = ("novograd", "sgd", "adamw", "lamb")
MODELS = ("mlp", "cnn")
REFERENCE_BATCH = 128
# Base learning rates at REFERENCE_BATCH (centres of the grids), from tuning runs of the
# MLP (15 epochs, 7-point grids at batches 128 and 2048); the grid around them is what
# makes the comparison fair.
BASE_LR = {"novograd": 0.08, "sgd": 0.3, "adamw": 0.01, "lamb": 0.01}
# In those tuning runs every optimizer's best rate grew by 2-4x from batch 128 to 2048,
# i.e. about as the square root of the batch. Linear scaling (Goyal et al., 2017) put
# SGD's grid at 2048 where it diverges, so the square root is the default for all.
LR_SCALING = {"novograd": "sqrt", "sgd": "sqrt", "adamw": "sqrt", "lamb": "sqrt"}
WEIGHT_DECAY = {"novograd": 1e-3, "sgd": 0.0, "adamw": 1e-3, "lamb": 1e-3}
LR_GRID = (0.25, 0.5, 1.0, 2.0, 4.0)
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


def make_optimizer(name: str, learning_rate, weight_decay: Optional[float] = None):
  """optax's SGD (momentum 0.9), AdamW and LAMB, or our NovoGrad (b1 0.95, b2 0.5,
  the paper's ranges), with ``WEIGHT_DECAY[name]`` unless ``weight_decay`` is given."""
  if name not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
  wd = WEIGHT_DECAY[name] if weight_decay is None else weight_decay
  if name == "novograd":
    return novograd(learning_rate, b1=0.95, b2=0.5, weight_decay=wd)
  if name == "sgd":
    sgd = optax.sgd(learning_rate, momentum=0.9)
    return optax.chain(optax.add_decayed_weights(wd), sgd) if wd else sgd
  if name == "adamw":
    return optax.adamw(learning_rate, weight_decay=wd)
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
  """Trains one model per learning rate in ``lr`` (a float or a sequence) at once.

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

  def run(lrs, params0, arrays, key):
    epoch_keys = jax.random.split(key, epochs)
    # The batch order depends only on the key: every lr sees the same batches.
    orders = jax.vmap(lambda k: jax.random.permutation(k, num_train))(epoch_keys)
    orders = orders[:, :steps_per_epoch * batch_size].reshape(
        epochs, steps_per_epoch, batch_size)

    def one_learning_rate(peak_lr):
      tx = make_optimizer(
          optimizer_name, make_schedule(peak_lr, total_steps, warmup_fraction),
          weight_decay)

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

  start = time.perf_counter()
  outputs = jax.jit(run)(lrs, params0, arrays, jax.random.key(seed))
  train_loss, val_acc, test_acc = (np.asarray(o) for o in outputs)
  seconds = time.perf_counter() - start
  result = {"train_loss": train_loss, "val_accuracy": val_acc, "test_accuracy": test_acc,
            "lr": np.asarray(lrs)}
  if scalar_lr:
    result = {k: v[0] for k, v in result.items()}
  result.update(steps=total_steps, seconds=seconds)
  return result


def sweep(
    optimizers: Sequence[str] = OPTIMIZERS,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    epochs: int = 15,
    *,
    data: Optional[dict[str, np.ndarray]] = None,
    lr_grid: Sequence[float] = LR_GRID,
    scaling: Optional[str] = None,
    progress: bool = True,
    **train_kwargs,
) -> list[dict[str, Any]]:
  """Every optimizer x batch size over its learning-rate grid; one row each with the
  learning rate of best final validation accuracy and its test accuracy."""
  rows = []
  runs = [(o, b) for o in optimizers for b in batch_sizes]
  for name, batch_size in tqdm(runs, desc="optimizer x batch", disable=not progress):
    centre = scaled_learning_rate(name, batch_size, scaling)
    lrs = [centre * m for m in lr_grid]
    result = train(name, lrs, batch_size, epochs, data=data, **train_kwargs)
    final_val = np.nan_to_num(result["val_accuracy"][:, -1], nan=0.0)
    best = int(np.argmax(final_val))
    rows.append({
        "optimizer": name, "batch_size": batch_size, "lr": lrs[best],
        "lr_at_grid_edge": best in (0, len(lrs) - 1) and len(lrs) > 1,
        "val_accuracy": float(final_val[best]),
        "test_accuracy": float(result["test_accuracy"][best]),
        "train_loss": result["train_loss"][best],
        "all_val_accuracy": final_val, "all_lr": np.asarray(lrs),
        "steps": result["steps"], "seconds": result["seconds"],
    })
  return rows


# --------------------------------------------------------------------------- reports


def _optimizer_by_batch_table(
    rows: Sequence[dict[str, Any]], format_cell: Callable[[dict[str, Any]], str]
) -> str:
  """A markdown table: one row per optimizer, one column per batch size."""
  optimizers = list(dict.fromkeys(r["optimizer"] for r in rows))
  batch_sizes = sorted({r["batch_size"] for r in rows})
  cell = {(r["optimizer"], r["batch_size"]): r for r in rows}
  lines = ["| optimizer | " + " | ".join(f"B={b}" for b in batch_sizes) + " |",
           "|---|" + "---:|" * len(batch_sizes)]
  for name in optimizers:
    cells = [format_cell(cell[(name, b)]) if (name, b) in cell else "" for b in batch_sizes]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
  """Test accuracy (%) per optimizer (rows) x batch size (columns); ``*`` marks a
  chosen learning rate at the edge of its grid (the grid may be too narrow there)."""
  return _optimizer_by_batch_table(
      rows, lambda r: f"{100 * r['test_accuracy']:.1f}" + ("*" if r["lr_at_grid_edge"] else ""))


def lr_table(rows: Sequence[dict[str, Any]]) -> str:
  """The chosen (peak) learning rate per optimizer x batch size."""
  return _optimizer_by_batch_table(rows, lambda r: f"{r['lr']:.3g}")


def plot_results(rows: Sequence[dict[str, Any]], title: str = ""):
  """Test accuracy vs batch size, one line per optimizer; a matplotlib Figure
  (made without pyplot, so no GUI backend is needed)."""
  from matplotlib.figure import Figure

  fig = Figure(figsize=(6, 4), dpi=120)
  ax = fig.subplots()
  for name in dict.fromkeys(r["optimizer"] for r in rows):
    mine = sorted((r for r in rows if r["optimizer"] == name), key=lambda r: r["batch_size"])
    ax.plot([r["batch_size"] for r in mine], [100 * r["test_accuracy"] for r in mine],
            marker="o", label=name)
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


def _float_list(text: str) -> list[float]:
  return [float(t) for t in text.split(",") if t]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description="MNIST-1D large-batch sweep: NovoGrad vs SGD-momentum, AdamW, LAMB. "
      "Prints test accuracy per optimizer x batch size (lr chosen on validation) and "
      "saves a plot.",
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--model", choices=MODELS, default="mlp")
  parser.add_argument("--width", type=int, default=None,
                      help="hidden units (mlp, default 128) or channels (cnn, default 32)")
  parser.add_argument("--optimizers", default=",".join(OPTIMIZERS),
                      help="comma-separated subset of " + ",".join(OPTIMIZERS))
  parser.add_argument("--batch-sizes", type=_int_list,
                      default=list(BATCH_SIZES), help="comma-separated")
  parser.add_argument("--epochs", type=int, default=15)
  parser.add_argument("--num-samples", type=int, default=25_000,
                      help="MNIST-1D samples generated (80%% train incl. validation, 20%% test)")
  parser.add_argument("--lr-grid", type=_float_list, default=list(LR_GRID),
                      help="multipliers of the scaled base learning rate")
  parser.add_argument("--lr-scaling", choices=("auto", "linear", "sqrt", "none"),
                      default="auto",
                      help="auto: each optimizer's rule in LR_SCALING (sqrt for all)")
  parser.add_argument("--warmup-fraction", type=float, default=WARMUP_FRACTION,
                      help="fraction of the steps with linear warmup (all optimizers)")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--cache-dir", default=None,
                      help="keep the generated data set in this folder")
  parser.add_argument("--plot", default="mnist1d_batch_sweep.png", help="PNG path")
  parser.add_argument("--quick", action="store_true",
                      help="tiny run for tests: 4000 samples, 3 epochs, batches 32 and "
                      "512, a 2-point grid")
  args = parser.parse_args(argv)
  args.optimizers = [o for o in args.optimizers.split(",") if o]
  unknown = set(args.optimizers) - set(OPTIMIZERS)
  if unknown:
    parser.error(f"unknown optimizers {sorted(unknown)}; choose from {OPTIMIZERS}")
  if args.quick:
    args.num_samples, args.epochs = 4000, 3
    args.batch_sizes, args.lr_grid = [32, 512], [0.5, 2.0]
  return args


def main(argv: Optional[Sequence[str]] = None) -> list[dict[str, Any]]:
  args = parse_args(argv)
  start = time.perf_counter()
  data = load_data(args.num_samples, args.seed, cache_dir=args.cache_dir)
  print(f"MNIST-1D: {len(data['y_train'])} train, {len(data['y_val'])} validation, "
        f"{len(data['y_test'])} test samples; {args.model}, {args.epochs} epochs, "
        f"{jax.device_count()} {jax.default_backend()} device(s)")
  rows = sweep(args.optimizers, args.batch_sizes, args.epochs, data=data,
               lr_grid=args.lr_grid,
               scaling=None if args.lr_scaling == "auto" else args.lr_scaling,
               model=args.model, width=args.width, seed=args.seed,
               warmup_fraction=args.warmup_fraction)
  print(f"\nTest accuracy (%), {args.model}, {args.epochs} epochs; learning rate chosen on "
        "validation (* = at the edge of the grid):\n")
  print(markdown_table(rows))
  print("\nChosen peak learning rates:\n")
  print(lr_table(rows))
  if args.plot:
    fig = plot_results(rows, f"MNIST-1D {args.model}, {args.epochs} epochs, best lr per cell")
    fig.savefig(args.plot)
    print(f"\nSaved the plot to {args.plot}")
  print(f"Total time {time.perf_counter() - start:.0f} s")
  return rows


if __name__ == "__main__":
  main()
