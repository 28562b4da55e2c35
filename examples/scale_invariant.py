r"""AdamP and SGDP on scale-invariant weights: do they keep weight norms small, and
does that help accuracy?

Heo et al. (*AdamP: Slowing Down the Slowdown for Momentum Optimizers on
Scale-invariant Weights*, ICLR 2021) argue that for a weight followed by a
normalization layer, momentum inflates the weight norm, which shrinks the effective
step ``||dw|| / ||w||``; removing the radial component of each step keeps the norm
small and improves accuracy. This example measures the mechanism directly:

* **Model**: an MLP on MNIST-1D (generated offline, see ``examples/mnist1d.py``) whose
  two hidden layers are ``Linear (no bias) -> LayerNorm -> ReLU``: scaling either hidden
  kernel leaves the output unchanged (whole-layer scale invariance). The output layer is
  an ordinary ``Linear``.
* **Pairs**: AdamP vs ``optax.adamw`` and SGDP vs SGD with momentum 0.9 (optax's
  ``trace`` with the same decoupled decay), at their best learning rates by the
  protocol of ``examples/protocol.py`` (5-point grid widened to an interior optimum,
  3 seeds at the best and its neighbours). Weight decay is tuned jointly with the
  learning rate, the same grid for both members of a pair: 0 and ``c/10, c, 10c`` with
  ``c = WEIGHT_DECAY[name]`` (0.1 for AdamW/AdamP, 1e-4 for SGD/SGDP), one
  learning-rate search per decay, widened by a factor 10 while the largest decay is best
  (at most ``DECAY_WIDENINGS`` times); so a baseline may use decay to hold its norms down
  too. Stated fixed settings: Adam ``b1 = 0.9, b2 = 0.999``; momentum 0.9; AdamP/SGDP
  ``delta = 0.1, wd_ratio = 0.1`` (the paper's defaults); warmup over the first 10% of
  the steps then cosine decay.
* **Recorded per step** for every 2-D kernel: its norm, the effective step
  ``||w_{t+1} - w_t|| / ||w_t||``, and whether the AdamP/SGDP test *would* fire: a
  re-evaluation here of the paper's cosine test (per output channel
  ``max_j |cos(w_j, g_j)| < delta / sqrt(n_in)``, else whole layer
  ``|cos(W, G)| < delta / sqrt(n_in * n_out)``), independent of the library code. The
  share of kernels on which it fires is reported per step for all four optimizers.

``python examples/scale_invariant.py`` runs the default (minutes); ``--quick`` a smoke
test; ``--seeds`` and ``--epochs`` scale it up.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from novograd_optax import adamp, sgdp

_HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name: str, filename: str):
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, filename))
    sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[name])
  return sys.modules[name]


protocol = _load("protocol", "protocol.py")
OPTIMIZERS = ("adamw", "adamp", "sgd", "sgdp")
PAIRS = (("adamp", "adamw"), ("sgdp", "sgd"))
START_LR = {"adamw": 3e-3, "adamp": 3e-3, "sgd": 0.1, "sgdp": 0.1}
# Centres of the weight-decay grids, the same within a pair: AdamW's 0.1 (the NovoGrad
# paper's AdamW recipe, 0.12, rounded, as in examples/mnist1d.py) and SGD's usual 1e-4
# (SGDP's usage example). Grid: 0 and c/10, c, 10c, widened upward while its top is best.
WEIGHT_DECAY = {"adamw": 0.1, "adamp": 0.1, "sgd": 1e-4, "sgdp": 1e-4}
WEIGHT_DECAYS = {name: (0.0, c / 10, c, 10 * c) for name, c in WEIGHT_DECAY.items()}
DECAY_WIDENINGS = 2
DELTA, WD_RATIO, MOMENTUM = 0.1, 0.1, 0.9
NUM_CLASSES = 10


class NormalizedMLP(nnx.Module):
  """Two ``Linear (no bias) -> LayerNorm -> ReLU`` layers, then a linear head."""

  def __init__(self, hidden: int = 128, *, rngs: nnx.Rngs):
    self.hidden1 = nnx.Linear(40, hidden, use_bias=False, rngs=rngs)
    self.norm1 = nnx.LayerNorm(hidden, rngs=rngs)
    self.hidden2 = nnx.Linear(hidden, hidden, use_bias=False, rngs=rngs)
    self.norm2 = nnx.LayerNorm(hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

  def __call__(self, x):
    x = jax.nn.relu(self.norm1(self.hidden1(x)))
    x = jax.nn.relu(self.norm2(self.hidden2(x)))
    return self.out(x)


def make_optimizer(name: str, learning_rate, weight_decay=0.0):
  """AdamP / SGDP from this library; AdamW and SGD-momentum from optax parts.
  ``weight_decay``: a float or a traced scalar."""
  if name == "adamw":
    return optax.adamw(learning_rate, b1=0.9, b2=0.999, weight_decay=weight_decay)
  if name == "adamp":
    return adamp(learning_rate, b1=0.9, b2=0.999, weight_decay=weight_decay, delta=DELTA,
                 wd_ratio=WD_RATIO)
  if name == "sgd":
    # SGDP without projection: momentum, decoupled decay d / (1 - momentum).
    return optax.chain(optax.trace(MOMENTUM),
                       optax.add_decayed_weights(weight_decay / (1 - MOMENTUM)),
                       optax.scale_by_learning_rate(learning_rate))
  if name == "sgdp":
    return sgdp(learning_rate, momentum=MOMENTUM, weight_decay=weight_decay, delta=DELTA,
                wd_ratio=WD_RATIO)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def cosine_test_fires(w: jax.Array, g: jax.Array, delta: float = DELTA,
                      eps: float = 1e-8) -> jax.Array:
  """The paper's scale-invariance test for a kernel ``(n_in, n_out)`` (Flax layout):
  per output channel, then for the whole layer. Written from Heo et al., Algorithm 1."""
  n_in, n_out = w.shape
  dot = jnp.sum(w * g, axis=0)
  cos = jnp.abs(dot) / (jnp.linalg.norm(w, axis=0) * jnp.linalg.norm(g, axis=0) + eps)
  per_channel = jnp.max(cos) < delta / math.sqrt(n_in)
  whole = (jnp.abs(jnp.sum(w * g)) / (jnp.linalg.norm(w) * jnp.linalg.norm(g) + eps)
           < delta / math.sqrt(n_in * n_out))
  return jnp.logical_or(per_channel, whole)


def _kernels(params) -> list:
  return [leaf for leaf in jax.tree.leaves(params) if leaf.ndim == 2]


def kernel_names(params) -> list[str]:
  return [jax.tree_util.keystr(path) for path, leaf in
          jax.tree_util.tree_leaves_with_path(params) if leaf.ndim == 2]


_TRAIN_CACHE: dict = {}
_DATA: dict = {}


def _data(num_samples: int):
  if num_samples not in _DATA:
    _DATA[num_samples] = _load("mnist1d_example", "mnist1d.py").load_data(num_samples, 0)
  return _DATA[num_samples]


def train_grid(name: str, lrs: Sequence[float], *, seed: int, epochs: int, batch_size: int,
               num_samples: int, hidden: int = 128, weight_decay: float = 0.0,
               log_every: int = 10) -> list[dict[str, Any]]:
  """Trains one model per learning rate (vmapped; same init and batches). Returns per
  rate: validation and test accuracy, and every ``log_every`` steps per kernel the norm,
  the effective step and whether the cosine test fired (the mean over those steps)."""
  data = _data(num_samples)
  arrays = {k: jnp.asarray(v) for k, v in data.items()}
  num_train = arrays["x_train"].shape[0]
  steps_per_epoch = num_train // batch_size
  total = steps_per_epoch * epochs
  graphdef, params0 = nnx.split(NormalizedMLP(hidden, rngs=nnx.Rngs(seed)))

  def apply(params, x):
    return nnx.merge(graphdef, params)(x)

  def loss_fn(params, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(apply(params, x), y).mean()

  def accuracy(params, x, y):
    return jnp.mean(jnp.argmax(apply(params, x), -1) == y)

  def run(lrs, weight_decay, params0, arrays, key):
    keys = jax.random.split(key, epochs)
    orders = jax.vmap(lambda k: jax.random.permutation(k, num_train))(keys)
    orders = orders[:, :steps_per_epoch * batch_size].reshape(total, batch_size)

    def one(peak_lr):
      unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, max(1, total // 10), total)
      tx = make_optimizer(name, lambda c: peak_lr * unit(c), weight_decay)

      def step(carry, idx):
        params, state = carry
        grads = jax.grad(loss_fn)(params, arrays["x_train"][idx], arrays["y_train"][idx])
        updates, state = tx.update(grads, state, params)
        new = optax.apply_updates(params, updates)
        ws, gs, dws = _kernels(params), _kernels(grads), _kernels(updates)
        norms = jnp.stack([jnp.linalg.norm(w) for w in ws])
        eff = jnp.stack([jnp.linalg.norm(d) for d in dws]) / norms
        fired = jnp.stack([cosine_test_fires(w, g) for w, g in zip(ws, gs, strict=True)])
        return (new, state), (norms, eff, fired.astype(jnp.float32))

      (params, _), (norms, eff, fired) = jax.lax.scan(step, (params0, tx.init(params0)),
                                                      orders)
      return (accuracy(params, arrays["x_val"], arrays["y_val"]),
              accuracy(params, arrays["x_test"], arrays["y_test"]), norms, eff, fired)

    return jax.vmap(one)(lrs)

  # one compile per program: the seed and the weight decay are arguments
  key = (name, len(lrs), epochs, batch_size, num_samples, hidden)
  if key not in _TRAIN_CACHE:
    _TRAIN_CACHE[key] = jax.jit(run)
  val, test, norms, eff, fired = (np.asarray(x) for x in _TRAIN_CACHE[key](
      jnp.asarray(lrs, jnp.float32), jnp.asarray(weight_decay, jnp.float32), params0,
      arrays, jax.random.key(seed)))
  out = []
  for i in range(len(lrs)):
    sel = slice(log_every - 1, None, log_every)
    v = float(val[i])
    out.append({
        "val_accuracy": v if np.isfinite(v) else None,
        "test_accuracy": float(np.nan_to_num(test[i], nan=0.0)),
        "steps": list(range(log_every, total + 1, log_every)),
        "kernel_norm": norms[i][sel].T.tolist(),          # [kernel][logged step]
        "effective_step": eff[i][sel].T.tolist(),
        "fired_share": fired[i].mean(axis=1)[sel].tolist(),  # share of kernels, per step
        "fired_rate": fired[i].mean(axis=0).tolist(),      # per kernel, over all steps
        "final_norm": norms[i][-1].tolist(),
    })
  return out


def evaluate(options: dict, lrs: list, seed: int) -> list[dict]:
  """The protocol's ``evaluate``; calls are padded to 5 rates (one compile)."""
  opts = dict(options)
  name = opts.pop("optimizer")
  padded = list(lrs) + [lrs[-1]] * (5 - len(lrs))
  return train_grid(name, padded, seed=seed, **opts)[:len(lrs)]


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=" ".join(__doc__.split("\n\n")[0].split()),
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--epochs", type=int, default=20, help="training epochs per run")
  parser.add_argument("--batch-size", type=int, default=128, help="batch size")
  parser.add_argument("--num-samples", type=int, default=10_000,
                      help="MNIST-1D samples generated")
  parser.add_argument("--hidden", type=int, default=128, help="hidden units per layer")
  parser.add_argument("--seeds", type=int, default=3,
                      help="seeds at the best rate and its neighbours")
  parser.add_argument("--decay-widenings", type=int, default=DECAY_WIDENINGS,
                      help="times a weight-decay grid whose best value is its largest is "
                      "extended by a factor 10")
  parser.add_argument("--no-decay-tuning", action="store_true",
                      help="weight decay 0 for every optimizer instead of the joint "
                      "learning-rate x decay grid")
  parser.add_argument("--jobs", type=int, default=1, help="parallel processes")
  parser.add_argument("--configuration", default=None,
                      help="label in the results; None: quick with --quick, else main")
  parser.add_argument("--out", default=None,
                      help="results JSON; None: results/scale_invariant_<configuration>.json")
  parser.add_argument("--quick", action="store_true", help="a seconds-long smoke test")
  args = parser.parse_args(argv)
  if args.quick:
    args.epochs, args.num_samples, args.hidden, args.batch_size = 2, 2000, 32, 64
  if args.configuration is None:
    args.configuration = "quick" if args.quick else "main"
  return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
  args = parse_args(argv if argv is not None else sys.argv[1:])
  start = time.perf_counter()
  opts = {"epochs": args.epochs, "batch_size": args.batch_size,
          "num_samples": args.num_samples, "hidden": args.hidden}
  tuned = not args.no_decay_tuning
  grids = {n: list(WEIGHT_DECAYS[n]) if tuned else [0.0] for n in OPTIMIZERS}
  cands = [{"name": n, "options": {"optimizer": n, **opts},
            "learning_rates": protocol.log_grid(START_LR[n]), "weight_decays": grids[n]}
           for n in OPTIMIZERS]
  results = protocol.run_protocol(
      evaluate, cands, seeds=range(args.seeds), score_key="val_accuracy",
      higher_is_better=True, report_keys=("test_accuracy", "val_accuracy"), jobs=args.jobs,
      decay_widenings=args.decay_widenings if tuned else 0)
  names = kernel_names(nnx.split(NormalizedMLP(args.hidden, rngs=nnx.Rngs(0)))[1])
  # The grid searches keep their scalar metrics only; the per-step curves of the chosen
  # setting stay in "runs" (every decay's whole curves would make the file megabytes).
  for r in results:
    for search in r["searches"]:
      search["points"] = [{k: v for k, v in p.items() if not isinstance(v, (list, tuple))}
                          for p in search["points"]]
  comparisons = []
  for a, b in PAIRS:
    comparisons.append(protocol.compare(results, a, b, "test_accuracy", True))
    # final norm of the scale-invariant kernels (the first two), one value per seed
    for r in results:
      if r["name"] in (a, b):
        r["summary"]["final_invariant_norm"] = protocol.summarize(
            [float(np.mean(run["final_norm"][:2])) for run in r["runs"]])
    comparisons.append(protocol.compare(results, a, b, "final_invariant_norm", False))
  seconds = time.perf_counter() - start
  for r in results:
    s = r["summary"]
    fired = np.mean([np.mean(run["fired_share"]) for run in r["runs"]])
    print(f"{r['name']}: lr {r['best_lr']:.3g} (interior {r['interior']}), weight decay "
          f"{r['weight_decay']:g}" + (" (largest of its grid)" if r["decay_at_edge"] else "")
          + ", test "
          f"{100 * s['test_accuracy']['mean']:.1f} ± {100 * s['test_accuracy']['std']:.1f}, "
          f"final norm of invariant kernels {s['final_invariant_norm']['mean']:.2f} ± "
          f"{s['final_invariant_norm']['std']:.2f}, test fires on {100 * fired:.0f}% of "
          "kernel-steps")
  for c in comparisons:
    print(f"{c['a']} vs {c['b']} on {c['key']}: {c['verdict']}")
  out = args.out or os.path.join("results", f"scale_invariant_{args.configuration}.json")
  config = {**opts, "seeds": args.seeds, "delta": DELTA, "wd_ratio": WD_RATIO,
            "tune_decay": tuned, "weight_decays": grids,
            "decay_widenings": args.decay_widenings if tuned else 0,
            "weight_decay": WEIGHT_DECAY if tuned else 0.0, "momentum": MOMENTUM,
            "kernels": names,
            "scale_invariant_kernels": names[:2], "start_lr": START_LR}
  protocol.write_results(out, "scale_invariant", args.configuration, config,
                         {"results": results, "comparisons": comparisons},
                         argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                         seconds=seconds)
  print(f"wrote {out} ({seconds:.0f} s)")
  return {"results": results, "comparisons": comparisons}


if __name__ == "__main__":
  main()
