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
optimizer, the runs that end in a flat minimum: the paper's claim as one number.

Run ``python examples/deep_linear_network.py --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

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


def classify(w1: float, w2: float) -> str:
  """Where a run ended: ``flat (1,1)``, ``flat (-1,-1)``, ``sharp, w1~0`` (near the
  w2 axis), ``sharp, w2~0``, ``loss > 0.1`` (off the hyperbola) or ``diverged``."""
  if not (np.isfinite(w1) and np.isfinite(w2)) or max(abs(w1), abs(w2)) > DIVERGED_NORM:
    return "diverged"
  if (w1 * w2 - 1.0) ** 2 > CONVERGED_LOSS:
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


def flat_counts(finals: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Per optimizer, the number of runs ending in a flat minimum, per (lr, wd)."""
  return {name: np.vectorize(lambda a, b: classify(a, b).startswith("flat"))(
      f[..., 0], f[..., 1]).sum(axis=-1) for name, f in finals.items()}


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
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=STEPS, help="steps per run (paper: 500)")
  parser.add_argument("--learning-rates", type=float, nargs="+",
                      default=[0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0])
  parser.add_argument("--weight-decays", type=float, nargs="+",
                      default=[0.0, 0.01, 0.1, 0.3, 0.5, 1.0])
  parser.add_argument("--num-inits", type=int, default=32,
                      help="initial points per (lr, wd) cell of the robustness grid")
  parser.add_argument("--seed", type=int, default=0, help="seed of the grid's initial points")
  parser.add_argument("--out-dir", default=os.path.join("outputs", "deep_linear_network"),
                      help="where the PNG figures go")
  parser.add_argument("--no-plots", action="store_true", help="skip the figures")
  parser.add_argument("--quick", action="store_true",
                      help="a small robustness grid (for tests); the scenarios are unchanged")
  args = parser.parse_args(argv)
  if args.quick:
    args.learning_rates, args.weight_decays, args.num_inits = [0.2, 1.0], [0.1, 0.5], 4
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
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
  counts = flat_counts(finals)
  total = len(args.learning_rates) * len(args.weight_decays) * args.num_inits
  print(f"\nRobustness: runs ending in a flat minimum (out of {total}:"
        f" lr {args.learning_rates} x wd {args.weight_decays} x {args.num_inits} inits"
        f" from U[-3, 3]^2)")
  summary = []
  for name in OPTIMIZERS:
    kinds = [classify(*map(float, p)) for p in finals[name].reshape(-1, 2)]
    summary.append((name, int(counts[name].sum()), f"{counts[name].sum() / total:.0%}",
                     sum(k.startswith("sharp") for k in kinds),
                     kinds.count("loss > 0.1"), kinds.count("diverged")))
  print(format_table(("optimizer", "flat", "share", "sharp", "loss > 0.1", "diverged"),
                     summary))
  for name in OPTIMIZERS:
    print(f"\n{name}: flat minima per (lr, wd), out of {args.num_inits} inits")
    rows = [[f"lr {lr:g}"] + list(counts[name][i]) for i, lr in enumerate(args.learning_rates)]
    print(format_table(["", *(f"wd {wd:g}" for wd in args.weight_decays)], rows))
  return {"outcomes": outcomes, "losses": losses, "flat_counts": counts, "total": total}


if __name__ == "__main__":
  main(sys.argv[1:])
