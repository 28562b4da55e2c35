r"""NovoGrad on a two-layer deep linear network (Ginsburg et al., 2019, §4, Appendix A).

The model :math:`y = (w_1 w_2)\,x` should map ``x = 1`` to ``1``; training it is the
minimization of :math:`L(w_1, w_2) = (w_1 w_2 - 1)^2`. The minima lie on the hyperbola
:math:`w_1 w_2 = 1`: those near (1, 1) and (-1, -1) are flat, those near the axes sharp.

Four optimizers with the same learning rate, weight decay and initialization, 500 steps,
``b1 = 0.95``, ``b2 = 0.5`` (the paper's Appendix A):

* ``sgd``: SGD with "gradient averaging" ``m = b1 m + (1 - b1)(g + wd w)`` (L2 decay);
* ``adam``: optax's Adam with L2 decay added to the gradient;
* ``adamw``: ``optax.adamw`` (decoupled decay);
* ``novograd``: ``novograd(..., grad_averaging=True)``; each weight is one layer.

Scenarios (Figures 6-9): the baseline (lr 0.2, wd 0.1), lr 1.0, wd 0.5 and a bad
initialization. The paper does not give its initial points; ours are in ``SCENARIOS``.
Then a robustness grid (learning rate x weight decay x initializations) counts, per
optimizer, the runs that end in a flat minimum, reported per *region* of the grid
(moderate / high learning rate x low / high weight decay), because a single share
depends on where the grid stops.

**What counts as a failure**: a run that diverges (non-finite or ``|w| > 100``), ends off
every minimum, or ends in a sharp minimum. SGD and Adam here add an L2 term
``wd / 2 * ||w||^2`` to the loss, whose minimum is *shifted* off the hyperbola (for
``w1 = w2 = a``: ``a^2 = 1 - wd / 2``; at ``wd = 1`` the loss is 0.25). A run that reaches
that regularized minimum has done what it was asked: it counts as ``flat, L2-shifted``
(a success) when its regularized gradient is below ``L2_STATIONARY`` and its weights
are balanced, never as a divergence.

No learning rate is tuned here: the claim is robustness over the grid itself, so every
optimizer sees the same grid (the tuning protocol's ``write_results`` records it).

Run ``python examples/deep_linear_network.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from novograd_optax import novograd

OPTIMIZERS = ("sgd", "adam", "adamw", "novograd")
B1, B2 = 0.95, 0.5
STEPS = 500
# Outcome thresholds: a run "reached a minimum" when its final loss is below
# CONVERGED_LOSS (loose enough for the L2-regularized optimum of SGD at wd 0.5,
# w1 = w2 = 0.87, loss 0.06); the minimum is "flat" when neither weight is more
# than FLAT_RATIO times the other, i.e. it lies between w2 = 2 w1 and w2 = w1 / 2.
CONVERGED_LOSS = 0.1
FLAT_RATIO = 2.0
DIVERGED_NORM = 100.0
L2_STATIONARY = 0.05  # gradient norm of the L2-regularized loss at its minimum
L2_OPTIMIZERS = ("sgd", "adam")  # L2 decay coupled into the gradient
# Grid regions: learning rate up to / above LR_SPLIT, weight decay up to / above WD_SPLIT.
LR_SPLIT, WD_SPLIT = 0.2, 0.1


@dataclasses.dataclass(frozen=True)
class Scenario:
  name: str
  learning_rate: float
  weight_decay: float
  init: tuple[float, float]
  title: str


SCENARIOS = (
    Scenario("baseline", 0.2, 0.1, (-2.5, 1.0), "baseline: lr 0.2, wd 0.1"),
    Scenario("high_lr", 1.0, 0.1, (-2.5, 1.0), "lr 0.2 -> 1.0"),
    Scenario("high_wd", 0.2, 0.5, (-2.5, 1.0), "wd 0.1 -> 0.5"),
    Scenario("bad_init", 0.2, 0.1, (7.0, 9.0), "bad init (7, 9)"),
)


def loss_fn(params: dict) -> jax.Array:
  return (params["w1"] * params["w2"] - 1.0) ** 2


def make_optimizer(name: str, learning_rate, weight_decay) -> optax.GradientTransformation:
  """The four optimizers of Appendix A. ``learning_rate``/``weight_decay`` may be
  traced arrays, so one compiled run serves a whole grid under ``jax.vmap``."""
  if name == "sgd":
    # Footnote 3: SGD's first moment averages gradients as Adam's does, so all
    # four optimizers share one learning rate.
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.ema(B1, debias=False),
        optax.scale_by_learning_rate(learning_rate))
  if name == "adam":
    # Adam's weight decay is an L2 term of the loss (its gradient wd * w is
    # added before the moments); AdamW is the decoupled version.
    return optax.chain(
        optax.add_decayed_weights(weight_decay),
        optax.scale_by_adam(B1, B2),
        optax.scale_by_learning_rate(learning_rate))
  if name == "adamw":
    return optax.adamw(learning_rate, B1, B2, weight_decay=weight_decay)
  if name == "novograd":
    return novograd(learning_rate, B1, B2, weight_decay=weight_decay, grad_averaging=True)
  raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")


def trajectory(name: str, learning_rate, weight_decay, init, steps: int = STEPS) -> jax.Array:
  """The points (w1, w2) visited in ``steps`` steps, shape ``(steps + 1, 2)``."""
  optimizer = make_optimizer(name, learning_rate, weight_decay)
  params = {"w1": init[0], "w2": init[1]}

  def step(carry, _):
    params, state = carry
    grads = jax.grad(loss_fn)(params)
    updates, state = optimizer.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    return (params, state), jnp.stack([params["w1"], params["w2"]])

  _, points = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
  return jnp.concatenate([jnp.stack([init[0], init[1]])[None], points])


# One compilation per optimizer (and number of steps); a grid is one vmapped call.
batched_trajectories = jax.jit(
    jax.vmap(trajectory, in_axes=(None, 0, 0, 0, None)), static_argnums=(0, 4))


def classify(w1: float, w2: float, l2: float = 0.0) -> str:
  """Where a run ended: ``flat (1,1)``, ``flat (-1,-1)``, ``sharp, w1~0`` (near the
  w2 axis), ``sharp, w2~0``, ``loss > 0.1`` (off the hyperbola) or ``diverged``; with
  ``l2 > 0`` (the L2 coefficient of an optimizer that minimizes ``L + l2/2 ||w||^2``)
  also ``flat, L2-shifted`` at that objective's balanced minimum."""
  if not (np.isfinite(w1) and np.isfinite(w2)) or max(abs(w1), abs(w2)) > DIVERGED_NORM:
    return "diverged"
  if (w1 * w2 - 1.0) ** 2 > CONVERGED_LOSS:
    if l2 > 0:
      g1 = 2 * (w1 * w2 - 1) * w2 + l2 * w1
      g2 = 2 * (w1 * w2 - 1) * w1 + l2 * w2
      balanced = max(abs(w1), abs(w2)) <= FLAT_RATIO * min(abs(w1), abs(w2))
      if np.hypot(g1, g2) < L2_STATIONARY and balanced and w1 * w2 > 0:
        return "flat, L2-shifted"
    return "loss > 0.1"
  if max(abs(w1), abs(w2)) <= FLAT_RATIO * min(abs(w1), abs(w2)):
    return "flat (1,1)" if w1 > 0 else "flat (-1,-1)"
  return "sharp, w1~0" if abs(w1) < abs(w2) else "sharp, w2~0"


def run_scenario(scenario: Scenario, steps: int = STEPS) -> dict[str, np.ndarray]:
  """Trajectories of every optimizer for one scenario, each ``(steps + 1, 2)``."""
  one = lambda x: jnp.asarray([x], jnp.float32)
  return {
      name: np.asarray(batched_trajectories(
          name, one(scenario.learning_rate), one(scenario.weight_decay),
          jnp.asarray([scenario.init], jnp.float32), steps)[0])
      for name in OPTIMIZERS}


def scenario_rows(trajectories: dict[str, np.ndarray]) -> list[tuple]:
  """(optimizer, w1, w2, final loss, where it ends) per optimizer."""
  rows = []
  for name, points in trajectories.items():
    w1, w2 = (float(v) for v in points[-1])
    rows.append((name, w1, w2, (w1 * w2 - 1.0) ** 2, classify(w1, w2)))
  return rows


def robustness_grid(learning_rates: Sequence[float], weight_decays: Sequence[float],
                    num_inits: int, seed: int = 0, steps: int = STEPS):
  """Final points for every (optimizer, lr, wd, init); initial points are drawn
  uniformly from [-3, 3]^2. Returns ``{name: array (n_lr, n_wd, n_init, 2)}``."""
  inits = np.random.default_rng(seed).uniform(-3.0, 3.0, size=(num_inits, 2))
  lr, wd, w0 = np.meshgrid(learning_rates, weight_decays, np.arange(num_inits), indexing="ij")
  shape = lr.shape
  args = (jnp.asarray(lr.ravel(), jnp.float32), jnp.asarray(wd.ravel(), jnp.float32),
          jnp.asarray(inits[w0.ravel()], jnp.float32))
  finals = {}
  for name in tqdm(OPTIMIZERS, desc="robustness grid", leave=False):
    points = batched_trajectories(name, *args, steps)
    finals[name] = np.asarray(points[:, -1]).reshape(*shape, 2)
  return finals


def outcome_grid(name: str, finals: np.ndarray, weight_decays: Sequence[float]) -> np.ndarray:
  """``classify`` of every final point ``(n_lr, n_wd, n_init, 2)``, with the L2
  coefficient of the optimizer (its weight decay for SGD and Adam, else 0)."""
  out = np.empty(finals.shape[:-1], dtype=object)
  for idx in np.ndindex(*finals.shape[:-1]):
    l2 = weight_decays[idx[1]] if name in L2_OPTIMIZERS else 0.0
    out[idx] = classify(float(finals[idx][0]), float(finals[idx][1]), l2)
  return out


def flat_counts(finals: dict[str, np.ndarray],
                weight_decays: Optional[Sequence[float]] = None) -> dict[str, np.ndarray]:
  """Per optimizer, the number of runs ending in a flat minimum (the L2-shifted one
  included when ``weight_decays`` is given), per (lr, wd)."""
  out = {}
  for name, f in finals.items():
    wds = weight_decays if weight_decays is not None else [0.0] * f.shape[1]
    kinds = outcome_grid(name, f, wds) if weight_decays is not None else outcome_grid(
        "none", f, wds)
    out[name] = np.vectorize(lambda k: k.startswith("flat"))(kinds).sum(axis=-1)
  return out


def region_shares(kinds: np.ndarray, learning_rates: Sequence[float],
                  weight_decays: Sequence[float]) -> list[dict]:
  """Share of successes (flat, incl. L2-shifted) and of each failure kind per region
  of the grid: lr <= / > LR_SPLIT x wd <= / > WD_SPLIT."""
  lr = np.asarray(learning_rates)
  wd = np.asarray(weight_decays)
  rows = []
  for lr_name, lr_sel in ((f"lr <= {LR_SPLIT:g}", lr <= LR_SPLIT),
                          (f"lr > {LR_SPLIT:g}", lr > LR_SPLIT)):
    for wd_name, wd_sel in ((f"wd <= {WD_SPLIT:g}", wd <= WD_SPLIT),
                            (f"wd > {WD_SPLIT:g}", wd > WD_SPLIT)):
      cell = kinds[np.ix_(lr_sel, wd_sel)].ravel()
      if cell.size == 0:
        continue
      rows.append({
          "region": f"{lr_name}, {wd_name}", "runs": int(cell.size),
          "flat": float(np.mean([k.startswith("flat") for k in cell])),
          "l2_shifted": float(np.mean([k == "flat, L2-shifted" for k in cell])),
          "sharp": float(np.mean([k.startswith("sharp") for k in cell])),
          "off_minimum": float(np.mean([k == "loss > 0.1" for k in cell])),
          "diverged": float(np.mean([k == "diverged" for k in cell]))})
  return rows


def plot_scenario(scenario: Scenario, trajectories: dict[str, np.ndarray], path=None):
  """Trajectories over the log-loss contour, one panel per optimizer."""
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(trajectories), figsize=(4 * len(trajectories), 4))
  extent = max(3.0, 1.15 * max(abs(v) for v in scenario.init))
  grid = np.linspace(-extent, extent, 401)
  w1, w2 = np.meshgrid(grid, grid)
  for ax, (name, points) in zip(axes, trajectories.items(), strict=True):
    ax.contourf(w1, w2, np.log10((w1 * w2 - 1.0) ** 2 + 1e-3), levels=30, cmap="viridis")
    branch = grid[grid > 1 / extent]
    for sign in (1.0, -1.0):  # the two branches of w1 w2 = 1, drawn apart
      ax.plot(sign * branch, sign / branch, "w--", lw=0.8)
    shown = np.clip(np.nan_to_num(points, nan=1e3), -1e3, 1e3)
    ax.plot(shown[:, 0], shown[:, 1], "r.-", lw=0.8, ms=2)
    ax.plot(*scenario.init, "wo", ms=5)
    w1_end, w2_end = points[-1]
    ax.set_title(f"{name}: {classify(float(w1_end), float(w2_end))}", fontsize=10)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_xlabel("w1")
  axes[0].set_ylabel("w2")
  fig.suptitle(f"Deep linear network, {scenario.title}, {len(points) - 1} steps")
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=90)
  return fig


def format_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  cells = [list(map(str, header))] + [
      [f"{c:.4g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
  lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
           for r in cells]
  lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
  return "\n".join(lines)


def parse_args(argv):
  parser = argparse.ArgumentParser(
      description=" ".join(__doc__.split("\n\n")[0].split()),
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--steps", type=int, default=STEPS, help="steps per run (paper: 500)")
  parser.add_argument("--learning-rates", type=float, nargs="+",
                      default=[0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0],
                      help="learning rates of the robustness grid")
  parser.add_argument("--weight-decays", type=float, nargs="+",
                      default=[0.0, 0.01, 0.1, 0.3, 0.5, 1.0],
                      help="weight decays of the robustness grid")
  parser.add_argument("--num-inits", type=int, default=32,
                      help="initial points per (lr, wd) cell of the robustness grid")
  parser.add_argument("--seed", type=int, default=0, help="seed of the grid's initial points")
  parser.add_argument("--out-dir", default=os.path.join("outputs", "deep_linear_network"),
                      help="where the PNG figures go")
  parser.add_argument("--no-plots", action="store_true", help="skip the figures")
  parser.add_argument("--results", default=os.path.join("results", "deep_linear_network.json"),
                      help="results JSON ('' = none)")
  parser.add_argument("--quick", action="store_true",
                      help="a small robustness grid (for tests); the scenarios are unchanged")
  args = parser.parse_args(argv)
  if args.quick:
    args.learning_rates, args.weight_decays, args.num_inits = [0.2, 1.0], [0.1, 0.5], 4
    args.results = ""
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  start = time.perf_counter()
  if not args.no_plots:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(args.out_dir, exist_ok=True)
  outcomes, losses = {}, {}
  for scenario in tqdm(SCENARIOS, desc="scenarios"):
    trajectories = run_scenario(scenario, args.steps)
    rows = scenario_rows(trajectories)
    outcomes[scenario.name] = {row[0]: row[4] for row in rows}
    losses[scenario.name] = {
        name: ((p[0, 0] * p[0, 1] - 1) ** 2, (p[-1, 0] * p[-1, 1] - 1) ** 2)
        for name, p in trajectories.items()}
    print(f"\n{scenario.title}, init {scenario.init}, {args.steps} steps")
    print(format_table(("optimizer", "w1", "w2", "final loss", "ends at"), rows))
    if not args.no_plots:
      fig = plot_scenario(scenario, trajectories,
                          os.path.join(args.out_dir, f"dln_{scenario.name}.png"))
      plt.close(fig)

  finals = robustness_grid(args.learning_rates, args.weight_decays, args.num_inits,
                           args.seed, args.steps)
  kinds = {name: outcome_grid(name, finals[name], args.weight_decays) for name in OPTIMIZERS}
  counts = {name: np.vectorize(lambda k: k.startswith("flat"))(kinds[name]).sum(axis=-1)
            for name in OPTIMIZERS}
  total = len(args.learning_rates) * len(args.weight_decays) * args.num_inits
  print(f"\nRobustness: runs ending in a flat minimum (out of {total}:"
        f" lr {args.learning_rates} x wd {args.weight_decays} x {args.num_inits} inits"
        f" from U[-3, 3]^2); the L2-shifted minimum of SGD and Adam counts as flat")
  summary = []
  for name in OPTIMIZERS:
    k = list(kinds[name].ravel())
    summary.append((name, int(counts[name].sum()), f"{counts[name].sum() / total:.0%}",
                    k.count("flat, L2-shifted"), sum(x.startswith("sharp") for x in k),
                    k.count("loss > 0.1"), k.count("diverged")))
  print(format_table(("optimizer", "flat", "share", "of which L2-shifted", "sharp",
                      "loss > 0.1", "diverged"), summary))
  regions = {name: region_shares(kinds[name], args.learning_rates, args.weight_decays)
             for name in OPTIMIZERS}
  print("\nShare of flat minima per region of the grid:")
  region_names = [r["region"] for r in regions[OPTIMIZERS[0]]]
  print(format_table(["optimizer", *region_names],
                     [[name, *(f"{r['flat']:.0%}" for r in regions[name])]
                      for name in OPTIMIZERS]))
  for name in OPTIMIZERS:
    print(f"\n{name}: flat minima per (lr, wd), out of {args.num_inits} inits")
    rows = [[f"lr {lr:g}"] + list(counts[name][i]) for i, lr in enumerate(args.learning_rates)]
    print(format_table(["", *(f"wd {wd:g}" for wd in args.weight_decays)], rows))
  if args.results:
    protocol = _load_protocol()
    config = {k: v for k, v in vars(args).items() if k not in ("out_dir", "results")}
    config.update(b1=B1, b2=B2, converged_loss=CONVERGED_LOSS, flat_ratio=FLAT_RATIO,
                  diverged_norm=DIVERGED_NORM, l2_stationary=L2_STATIONARY,
                  l2_optimizers=L2_OPTIMIZERS, lr_split=LR_SPLIT, wd_split=WD_SPLIT)
    payload = {
        "scenarios": {s: {"outcomes": outcomes[s],
                          "losses": {n: list(map(float, v)) for n, v in losses[s].items()}}
                      for s in outcomes},
        "totals": {row[0]: dict(zip(("flat", "share", "l2_shifted", "sharp", "off_minimum",
                                     "diverged"), row[1:], strict=True)) for row in summary},
        "regions": regions,
        "flat_counts": {n: c.tolist() for n, c in counts.items()},
        "runs_per_cell": args.num_inits}
    protocol.write_results(args.results, "deep_linear_network",
                           "quick" if args.quick else "full", config, payload,
                           argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                           seconds=time.perf_counter() - start)
    print(f"wrote {args.results}")
  return {"outcomes": outcomes, "losses": losses, "flat_counts": counts, "total": total,
          "regions": regions}


def _load_protocol():
  import importlib.util

  if "protocol" not in sys.modules:
    spec = importlib.util.spec_from_file_location(
        "protocol", os.path.join(os.path.dirname(os.path.abspath(__file__)), "protocol.py"))
    sys.modules["protocol"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules["protocol"])
  return sys.modules["protocol"]


if __name__ == "__main__":
  main(sys.argv[1:])
