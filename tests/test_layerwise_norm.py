"""scale_by_layerwise_norm against a NumPy transcription of the paper's eq. (1)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import ScaleByLayerwiseNormState, scale_by_layerwise_norm
from tests.reference.numpy_novograd import numpy_novograd, random_problem

NAMES = ("kernel", "matrix", "scalar", "vector")  # jax.tree.leaves order of a dict.
SHAPES = ((3, 3, 2, 4), (5, 3), (), (7,))
# The scalar's gradients are tiny (||g||^2 ~ 1e-6), so where eps sits matters.
LEAF_SCALES = (1.0, 1.0, 1e-3, 1.0)
NUM_STEPS = 20

DTYPES = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
    "complex64": jnp.complex64,
}
# Tolerances of the normalized gradient, which is rounded to the gradient dtype.
OUTPUT_RTOL = {"float32": 1e-5, "bfloat16": 1e-2, "float16": 2e-3, "complex64": 1e-5}

# Options of the normalization alone, per variant of the paper.
VARIANTS = {
    "default": {},
    "amsgrad": dict(amsgrad=True),
    "linf": dict(norm="linf"),
    "zero_init": dict(nu_init="zero"),
    "b2_zero": dict(b2=0.0),
    "paper_eps": dict(eps=0.0, eps_root=1e-6),
    "all_options": dict(b2=0.5, eps=1e-4, eps_root=1e-5, amsgrad=True, norm="linf", nu_init="zero"),
}


def as_tree(leaves):
  return dict(zip(NAMES, leaves, strict=True))


def widen(x):
  x = np.asarray(x)
  return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


class ScaleByLayerwiseNormTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(dtype=tuple(DTYPES), variant=tuple(VARIANTS))
  def test_matches_numpy_reference(self, dtype, variant):
    kwargs = VARIANTS[variant]
    params, grads = random_problem(SHAPES, NUM_STEPS, DTYPES[dtype], seed=1,
                                   leaf_scales=LEAF_SCALES)
    reference = numpy_novograd(params, grads, **kwargs)
    tx = scale_by_layerwise_norm(**kwargs)
    update = self.variant(tx.update)
    state = tx.init(as_tree(params))
    for step in range(NUM_STEPS):
      out, state = update(as_tree(grads[step]), state)
      for name, ours, expected, nu in zip(
          NAMES, jax.tree.leaves(out), reference.normalized[step], reference.nu[step],
          strict=True):
        self.assertEqual(ours.dtype, DTYPES[dtype], name)
        np.testing.assert_allclose(
            widen(ours), expected, rtol=OUTPUT_RTOL[dtype], atol=1e-7,
            err_msg=f"{variant} {dtype} step {step + 1} {name}")
        # The moment is float32 whatever the gradient dtype.
        self.assertEqual(state.nu.per_layer()[name].dtype, jnp.float32)
        np.testing.assert_allclose(state.nu.per_layer()[name], nu, rtol=2e-5, atol=0,
                                   err_msg=f"nu, step {step + 1} {name}")
    self.assertEqual(int(state.count), NUM_STEPS)

  def test_variants_differ_from_default(self):
    # Guards the test above: each variant must change the reference's output on
    # this problem, or matching it would prove nothing about that option.
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=1,
                                   leaf_scales=LEAF_SCALES)
    default = numpy_novograd(params, grads).normalized
    for variant, kwargs in VARIANTS.items():
      if variant == "default":
        continue
      other = numpy_novograd(params, grads, **kwargs).normalized
      difference = max(np.max(np.abs(a - b))
                       for a, b in zip(sum(default, []), sum(other, []), strict=True))
      self.assertGreater(difference, 1e-3, variant)

  @chex.variants(with_jit=True, without_jit=True)
  def test_float16_layer_with_squared_norm_above_float16_max(self):
    # ||g||^2 = 100 * 30^2 = 90000 > 65504, the largest float16.
    grads = {"w": jnp.full((100,), 30.0, jnp.float16)}
    tx = scale_by_layerwise_norm()
    state = tx.init(grads)
    out, state = self.variant(tx.update)(grads, state)
    self.assertEqual(out["w"].dtype, jnp.float16)
    self.assertTrue(bool(jnp.all(jnp.isfinite(out["w"]))))
    np.testing.assert_allclose(state.nu.per_layer()["w"], 90000.0, rtol=1e-6)
    # g / ||g|| = 30 / 300.
    np.testing.assert_allclose(np.asarray(out["w"], np.float32), 0.1, rtol=1e-3)

  def test_optax_scale_by_novograd_overflows_in_float16(self):
    # The documented peer behaviour the test above guards against: optax 0.2.8
    # keeps nu in float16, gets inf and returns a zero update.
    grads = {"w": jnp.full((100,), 30.0, jnp.float16)}
    tx = optax.scale_by_novograd()
    state = tx.init(grads)
    out, state = tx.update(grads, state, grads)
    self.assertTrue(bool(jnp.isinf(state.nu["w"])))
    np.testing.assert_array_equal(np.asarray(out["w"], np.float32), 0.0)

  def test_state_layout(self):
    params = {"a": jnp.ones((3, 4), jnp.bfloat16), "b": jnp.ones((2,), jnp.float16),
              "c": jnp.ones((5,), jnp.complex64)}
    state = scale_by_layerwise_norm().init(params)
    self.assertIsInstance(state, ScaleByLayerwiseNormState)
    self.assertIsNone(state.nu_max)  # no AMSGrad storage unless asked for.
    for name in params:
      self.assertEqual(state.nu.per_layer()[name].shape, ())
      self.assertEqual(state.nu.per_layer()[name].dtype, jnp.float32)
    self.assertEqual(state.count.dtype, jnp.int32)
    amsgrad_state = scale_by_layerwise_norm(amsgrad=True).init(params)
    chex.assert_trees_all_equal_shapes_and_dtypes(amsgrad_state.nu_max, state.nu)

  @chex.variants(with_jit=True, without_jit=True)
  def test_complex_gradients_use_sum_of_squared_magnitudes(self):
    g = jnp.array([3 + 4j, 1j, -2.0], jnp.complex64)  # sum |g|^2 = 25 + 1 + 4 = 30.
    tx = scale_by_layerwise_norm(b2=0.0, eps=0.0)
    out, state = self.variant(tx.update)({"w": g}, tx.init({"w": g}))
    np.testing.assert_allclose(state.nu.per_layer()["w"], 30.0, rtol=1e-6)
    np.testing.assert_allclose(out["w"], np.asarray(g) / np.sqrt(30.0), rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_zero_gradient_stays_finite(self):
    # A frozen layer (all-zero gradient) with the default eps gives 0, not nan.
    grads = {"w": jnp.zeros((4,)), "b": jnp.ones((2,))}
    tx = scale_by_layerwise_norm()
    out, _ = self.variant(tx.update)(grads, tx.init(grads))
    np.testing.assert_array_equal(out["w"], 0.0)

  def test_many_leaves_of_mixed_dtypes_and_layouts(self):
    # More leaves than one batched vector of per-layer norms holds, in two dtypes and
    # two layouts (stacked layers on axis 0 for the "stack" leaves), over 3 steps of
    # v = b2 v + (1 - b2) ||g||^2 from v_1 = ||g_1||^2, in float64 NumPy.
    rng = np.random.default_rng(0)
    names = [f"leaf{i:03d}" for i in range(150)]
    shapes = {n: ((3, 4, 2) if i % 7 == 0 else (5,) if i % 2 else (2, 3))
              for i, n in enumerate(names)}
    dtypes = {n: (jnp.bfloat16 if i % 3 == 0 else jnp.float32) for i, n in enumerate(names)}
    layer_axes = {n: (0 if len(shapes[n]) == 3 else None) for n in names}
    b2, eps = 0.4, 1e-6
    tx = jax.jit(scale_by_layerwise_norm(b2=b2, eps=eps, layer_axes=layer_axes).update)
    grads_0 = {n: jnp.zeros(shapes[n], dtypes[n]) for n in names}
    state = scale_by_layerwise_norm(layer_axes=layer_axes).init(grads_0)
    nu = {}
    for step in range(3):
      grads = {n: jnp.asarray(rng.normal(size=shapes[n]) * (1 + i % 5), dtypes[n])
               for i, n in enumerate(names)}
      out, state = tx(grads, state)
      for n in names:
        g = np.asarray(grads[n], np.float64)
        axes = tuple(range(1, g.ndim)) if layer_axes[n] == 0 else None
        squared = np.sum(g * g, axis=axes)
        nu[n] = squared if step == 0 else b2 * nu[n] + (1 - b2) * squared
        denominator = np.sqrt(nu[n]) + eps
        if layer_axes[n] == 0:
          denominator = denominator.reshape((-1,) + (1,) * (g.ndim - 1))
        self.assertEqual(out[n].dtype, dtypes[n])
        self.assertEqual(state.nu.per_layer()[n].shape, np.shape(nu[n]))
        np.testing.assert_allclose(state.nu.per_layer()[n], nu[n], rtol=2e-6, err_msg=f"{n} {step}")
        np.testing.assert_allclose(
            np.asarray(out[n], np.float64), g / denominator,
            rtol=1e-2 if dtypes[n] == jnp.bfloat16 else 2e-6, err_msg=f"{n} {step}")

  def test_float64_and_float32_leaves_each_keep_their_precision(self):
    # With jax_enable_x64: a float64 leaf has a float64 moment and float64 arithmetic
    # (the float64 formula to 1e-14), and a float32 leaf beside it stays in float32
    # arithmetic throughout: its update is the float32 formula bit for bit. The squared
    # norm 142 is exact in float32, and this gradient's update computed in float64 and
    # rounded once to float32 differs in 3 of 4 elements, so mixing the two precisions
    # (e.g. one reciprocal vector for both leaves) is caught.
    g32 = np.float32([-4.0, 6.0, 3.0, -9.0])
    g64 = np.random.default_rng(3).normal(size=(2, 3))
    eps = 1e-6
    with jax.enable_x64(True):
      grads = {"a": jnp.asarray(g32), "b": jnp.asarray(g64, jnp.float64)}
      tx = scale_by_layerwise_norm(b2=0.5, eps=eps)
      out, state = jax.jit(tx.update)(grads, tx.init(grads))
      self.assertEqual(state.nu.per_layer()["a"].dtype, jnp.float32)
      self.assertEqual(state.nu.per_layer()["b"].dtype, jnp.float64)
      self.assertEqual(out["b"].dtype, jnp.float64)
      expected32 = g32 * (np.float32(1.0) / (np.sqrt(np.float32(142.0)) + np.float32(eps)))
      in_float64 = np.float32(np.float64(g32) / (np.sqrt(142.0) + eps))
      self.assertTrue(np.any(in_float64 != expected32))
      np.testing.assert_array_equal(np.asarray(out["a"]), expected32)
      np.testing.assert_allclose(np.asarray(out["b"]),
                                 g64 / (np.sqrt(np.sum(g64 ** 2)) + eps), rtol=1e-14)

  def test_bfloat16_update_is_the_float32_product_rounded_to_bfloat16(self):
    # A bfloat16 gradient is multiplied by its float32 reciprocal in float32, then
    # rounded to bfloat16, also under jax_enable_x64: bit for bit the float32 NumPy
    # formula. These integers have an exact float32 squared norm, and element 1 is a
    # case where rounding matters: its exact product rounded once to bfloat16 differs
    # (0.38086 vs 0.38281). (XLA:CPU converts float64 to bfloat16 through float32, so
    # a float64 multiply gives the same bits there; see the reliability page.)
    g = np.float32([68.0, 168.0, 132.0, 89.0, 252.0, 33.0, 186.0, 188.0])
    eps = 0.9738445281982422  # a float32 number
    inverse = np.float32(1.0) / (np.sqrt(np.float32(np.sum(g ** 2))) + np.float32(eps))
    expected = (g * inverse).astype(jnp.bfloat16)
    once = (np.float64(g) * np.float64(inverse)).astype(jnp.bfloat16)
    self.assertNotEqual(float(expected[1]), float(once[1]))
    for x64 in (False, True):
      with jax.enable_x64(x64):
        grads = {"w": jnp.asarray(g, jnp.bfloat16)}
        tx = scale_by_layerwise_norm(b2=0.5, eps=eps)
        out, _ = jax.jit(tx.update)(grads, tx.init(grads))
        np.testing.assert_array_equal(np.asarray(out["w"]), expected, err_msg=f"x64={x64}")


if __name__ == "__main__":
  absltest.main()
