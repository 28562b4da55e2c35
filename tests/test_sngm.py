"""SNGM and normalize_by_global_norm against a NumPy transcription of the paper's rule."""

import unittest

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import normalize_by_global_norm, sngm

SHAPES = {"kernel": (3, 4), "bias": (4,), "scale": ()}


def numpy_sngm(params, grads_per_step, lr, momentum, weight_decay, eps):
  """Zhao et al. (2020): u <- beta u + g/||g|| (global norm), w <- w - lr u;
  weight decay is an L2 term added to g first. lr and weight_decay are callables
  of the step index; float64 throughout."""
  w = {k: np.asarray(v, np.float64) for k, v in params.items()}
  u = {k: np.zeros_like(v) for k, v in w.items()}
  trajectory = []
  for t, grads in enumerate(grads_per_step):
    g = {k: np.asarray(grads[k], np.float64) + weight_decay(t) * w[k] for k in w}
    norm = np.sqrt(sum(np.sum(v ** 2) for v in g.values()))
    for k in w:
      u[k] = momentum * u[k] + g[k] / (norm + eps)
      w[k] = w[k] - lr(t) * u[k]
    trajectory.append({k: v.copy() for k, v in w.items()})
  return trajectory


def random_tree(seed, scale=1.0):
  rng = np.random.default_rng(seed)
  return {k: (scale * rng.normal(size=s)).astype(np.float32) for k, s in SHAPES.items()}


class SngmTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("plain", 0.1, 0.9, 0.0, False, 1e-8),
      ("weight_decay", 0.05, 0.8, 0.01, False, 1e-8),
      ("schedules", 0.1, 0.9, 0.01, True, 1e-8),
      # An eps comparable to the norms (0.1 to 100 here), so where it enters shows.
      ("large_eps", 0.1, 0.9, 0.0, False, 0.5),
  )
  def test_matches_numpy_transcription(self, lr, momentum, weight_decay, schedules, eps):
    if schedules:
      lr_fn = optax.linear_schedule(lr, lr / 4, 3)
      wd_fn = optax.linear_schedule(weight_decay, 0.0, 3)
      opt = sngm(lr_fn, momentum, wd_fn, eps=eps)
    else:
      lr_fn, wd_fn = (lambda t: lr), (lambda t: weight_decay)
      opt = sngm(lr, momentum, weight_decay, eps=eps)
    params = random_tree(0)
    grads_per_step = [random_tree(s, scale=10.0 ** (s - 2)) for s in range(1, 5)]
    expected = numpy_sngm(params, grads_per_step, lambda t: float(lr_fn(t)), momentum,
                          lambda t: float(wd_fn(t)), eps)

    update = self.variant(opt.update)
    p, state = jax.tree.map(jnp.asarray, params), opt.init(params)
    for grads, want in zip(grads_per_step, expected, strict=True):
      # Without weight decay SNGM needs no params in update (as optax's sgd).
      updates, state = update(grads, state, p if weight_decay else None)
      p = optax.apply_updates(p, updates)
      chex.assert_trees_all_close(p, want, rtol=1e-5, atol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(1e-6, 1.0, 1e4)
  def test_first_update_norm_equals_learning_rate(self, grad_scale):
    lr = optax.cosine_decay_schedule(0.3, 100)
    opt = sngm(lr, momentum=0.9)
    params = random_tree(1)
    updates, _ = self.variant(opt.update)(random_tree(2, grad_scale), opt.init(params),
                                          params)
    norm = np.sqrt(sum(np.sum(np.square(np.float64(u))) for u in jax.tree.leaves(updates)))
    # ||g|| / (||g|| + eps) with eps = 1e-8: within 1e-2 of 1 even for ||g|| ~ 3e-6.
    np.testing.assert_allclose(norm, 0.3, rtol=5e-3 if grad_scale < 1e-3 else 1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_float16_tree_with_large_norm_stays_finite(self):
    # ||g||^2 = 1000 * 100^2 = 1e7 > 65504, the float16 maximum.
    grads = {"a": jnp.full((1000,), 100.0, jnp.float16), "b": jnp.ones((3,), jnp.float32)}
    tx = normalize_by_global_norm()
    out, _ = self.variant(tx.update)(grads, tx.init(grads))
    norm = np.sqrt(1000 * 100.0 ** 2 + 3)
    self.assertEqual(out["a"].dtype, jnp.float16)
    np.testing.assert_allclose(np.float64(out["a"]), 100.0 / norm, rtol=1e-3)
    np.testing.assert_allclose(out["b"], 1.0 / norm, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_float32_tree_keeps_float32_arithmetic_under_x64(self):
    # With jax_enable_x64 a float32 tree is normalized in float32: bit for bit the
    # float32 NumPy formula. The squared norm of these integers (445) is exact in
    # float32 whatever the summation order, and sqrt and the division are correctly
    # rounded. XLA:CPU divides by a scalar as a multiply by its reciprocal, so either
    # float32 form is accepted; the same quotient in float64 rounded once to float32
    # differs from both in 8 of the 12 entries, so an accidental float64 (the default
    # dtype under x64) is caught.
    g = np.float32([-1, 0, 5, 9, -9, -7, 6, 9, -5, -4, 7, -1])
    eps = 0.1
    denominator = np.sqrt(np.float32(445.0)) + np.float32(eps)
    float32_forms = [g / denominator, g * (np.float32(1.0) / denominator)]
    in_float64 = np.float32(np.float64(g) / (np.float64(np.sqrt(np.float32(445.0))) + eps))
    for form in float32_forms:
      self.assertTrue(np.any(in_float64 != form))
    with jax.enable_x64(True):
      grads = {"a": jnp.asarray(g[:5]), "b": jnp.asarray(g[5:])}
      tx = normalize_by_global_norm(eps)
      out, _ = self.variant(tx.update)(grads, tx.init(None))
      self.assertEqual(out["a"].dtype, jnp.float32)
      flat = np.concatenate([out["a"], out["b"]])
      self.assertTrue(any(np.array_equal(flat, form) for form in float32_forms), flat)

  def test_zero_tree_gives_zero_update(self):
    tx = normalize_by_global_norm()
    out, _ = tx.update({"a": jnp.zeros(3)}, tx.init(None))
    np.testing.assert_array_equal(out["a"], np.zeros(3))

  @unittest.skipIf(
      jax.device_count() < 8,
      "needs 8 devices; run with JAX_PLATFORMS=cpu"
      " XLA_FLAGS=--xla_force_host_platform_device_count=8 to get them")
  def test_axis_name_under_shard_map_equals_unsharded(self):
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    spec = jax.sharding.PartitionSpec("data")
    grads = {"a": jnp.arange(16.0), "b": jnp.arange(8.0) - 3.0}
    tx_sharded = normalize_by_global_norm(axis_name="data")
    sharded = jax.jit(jax.shard_map(
        lambda g: tx_sharded.update(g, optax.EmptyState())[0],
        mesh=mesh, in_specs=(spec,), out_specs=spec))(grads)
    tx = normalize_by_global_norm()
    chex.assert_trees_all_close(sharded, tx.update(grads, optax.EmptyState())[0],
                                rtol=1e-6)

  def test_rejects_bad_hyperparameters(self):
    with self.assertRaisesRegex(ValueError, "learning_rate"):
      sngm(-0.1)
    with self.assertRaisesRegex(ValueError, "momentum"):
      sngm(0.1, momentum=1.0)
    with self.assertRaisesRegex(ValueError, "weight_decay"):
      sngm(0.1, weight_decay=-1e-4)
    with self.assertRaisesRegex(ValueError, "eps"):
      normalize_by_global_norm(eps=-1.0)
    with self.assertRaisesRegex(TypeError, "axis_name"):
      normalize_by_global_norm(axis_name=0)


if __name__ == "__main__":
  absltest.main()
