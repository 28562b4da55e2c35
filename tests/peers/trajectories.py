"""A model-shaped problem shared by the preset tests: 50 steps of fixed gradients on
a tree with a dense kernel, a conv kernel, a bias vector and a scalar.

The bias starts at zero (a zero layer meets update clipping's ``||w|| = 0`` rule) and
the scalar's first two gradients are zero (a zero moment meets each peer's
first-step rule). The gradients do not depend on the params, so every
implementation sees the same sequence and differences are the rules' alone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

STEPS = 50
NAMES = ("dense_kernel", "conv_kernel", "bias", "scale")
SHAPES = ((8, 6), (3, 3, 4, 5), (6,), ())
GRADIENT_SCALES = (1.0, 0.1, 3.0, 0.5)
# float32 round-off over 50 steps: a step adds terms of up to lr / (1 - b1) times a
# normalized gradient, so the error is relative to the largest weight the leaf
# reaches, not to its final value (which may be a cancellation). Any difference of
# rule (first step, eps placement, a missing factor) is 1e-3 or more.
RTOL = 2e-5


def initial_params() -> list[np.ndarray]:
  rng = np.random.default_rng(0)
  params = [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]
  params[NAMES.index("bias")] = np.zeros(SHAPES[NAMES.index("bias")], np.float32)
  return params


def gradient_sequence(steps: int = STEPS) -> list[list[np.ndarray]]:
  rng = np.random.default_rng(1)
  sequence = []
  for step in range(steps):
    grads = [(scale * rng.normal(size=shape)).astype(np.float32)
             for shape, scale in zip(SHAPES, GRADIENT_SCALES, strict=True)]
    if step < 2:
      grads[NAMES.index("scale")] = np.zeros((), np.float32)
    sequence.append(grads)
  return sequence


def as_tree(leaves) -> dict:
  return {
      "dense": {"kernel": leaves[0]},
      "conv": {"kernel": leaves[1], "bias": leaves[2]},
      "norm": {"scale": leaves[3]},
  }


def as_leaves(tree) -> list:
  return [tree["dense"]["kernel"], tree["conv"]["kernel"], tree["conv"]["bias"],
          tree["norm"]["scale"]]


def run_optax(transformations, params, grads) -> list[list[list[np.ndarray]]]:
  """For each transformation, the params after each step.

  All of them run in one jit-compiled function (a scan over the steps each):
  compiling once for many switch combinations is several times faster than once
  per combination.
  """
  tree = as_tree([jnp.asarray(p) for p in params])
  stacked = as_tree([jnp.asarray(np.stack([g[i] for g in grads])) for i in range(len(NAMES))])

  def trajectory(tx, tree, stacked):
    def step(carry, g):
      p, state = carry
      updates, state = tx.update(g, state, p)
      p = jax.tree.map(lambda w, u: w + u, p, updates)
      return (p, state), p
    return jax.lax.scan(step, (tree, tx.init(tree)), stacked)[1]

  run = jax.jit(lambda tree, stacked: [trajectory(tx, tree, stacked) for tx in transformations])
  results = []
  for result in jax.device_get(run(tree, stacked)):
    leaves = as_leaves(result)
    results.append([[np.asarray(leaf[t]) for leaf in leaves] for t in range(len(grads))])
  return results


def assert_trajectories_close(ours, reference, rtol=RTOL) -> None:
  """Every leaf after every step within ``rtol`` of the reference, relative to the
  leaf's value and to the largest magnitude it takes over the run (at least 1)."""
  assert len(ours) == len(reference)
  for i, name in enumerate(NAMES):
    scale = max(1.0, max(float(np.max(np.abs(step[i]))) for step in reference))
    for t, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
      np.testing.assert_allclose(
          mine[i], np.asarray(theirs[i], np.float64), rtol=rtol, atol=rtol * scale,
          err_msg=f"{name} after step {t + 1} (largest |w| of the run: {scale:.3g})")
