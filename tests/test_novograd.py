"""novograd() against a NumPy transcription of Algorithm 1 and against optax.novograd."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import novograd
from tests.reference.numpy_novograd import numpy_novograd, random_problem

NAMES = ("kernel", "matrix", "scalar", "vector")  # jax.tree.leaves order of a dict.
SHAPES = ((3, 3, 2, 4), (5, 3), (), (7,))
LEAF_SCALES = (1.0, 1.0, 1e-3, 1.0)  # tiny scalar gradients: eps placement matters.
NUM_STEPS = 20
LEARNING_RATE = 0.05

DTYPES = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
    "complex64": jnp.complex64,
}
# Weights over 20 steps. In bfloat16/float16 the momentum and the weights are
# themselves rounded at every step (as in any low-precision training) while the
# reference is fed the same rounded inputs but keeps float64 throughout, so the
# error grows like a random walk of rounding errors: about 5 ulps (finfo.eps) of
# max(|w|, 1) after 20 steps. Every variant moves the weights by > 0.1 (see
# test_variants_differ_from_default), far above these tolerances.
PARAMS_TOL = {
    "float32": dict(rtol=1e-5, atol=1e-5),
    "bfloat16": dict(rtol=4e-2, atol=4e-2),
    "float16": dict(rtol=4e-3, atol=4e-3),
    "complex64": dict(rtol=1e-5, atol=1e-5),
}

VARIANTS = {
    "default": {},
    "weight_decay": dict(weight_decay=0.1),
    "grad_averaging": dict(grad_averaging=True),
    "amsgrad": dict(amsgrad=True),
    "linf": dict(norm="linf"),
    # A large b2 so the zero start is remembered long enough to be measurable.
    "zero_init": dict(nu_init="zero", b2=0.9),
    "b2_zero": dict(b2=0.0),
    "paper_eps": dict(eps=0.0, eps_root=1e-6),
    "all_options": dict(b1=0.95, b2=0.5, eps=1e-4, eps_root=1e-5, weight_decay=0.05,
                        grad_averaging=True, amsgrad=True, norm="linf", nu_init="zero"),
}


def as_tree(leaves):
  return dict(zip(NAMES, leaves, strict=True))


def widen(x):
  x = np.asarray(x)
  return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def run(opt, params, grads, update=None):
  """The weights after each step of ``opt`` on fixed gradients."""
  update = update or opt.update
  params = as_tree([jnp.asarray(p) for p in params])
  state = opt.init(params)
  trajectory = []
  for g in grads:
    updates, state = update(as_tree([jnp.asarray(x) for x in g]), state, params)
    params = optax.apply_updates(params, updates)
    trajectory.append(params)
  return trajectory, state


def assert_matches_reference(trajectory, reference, **tol):
  for step, (ours, expected) in enumerate(zip(trajectory, reference.params, strict=True)):
    for name, a, b in zip(NAMES, jax.tree.leaves(ours), expected, strict=True):
      np.testing.assert_allclose(widen(a), b, err_msg=f"step {step + 1}, {name}", **tol)


class NovogradReferenceTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.product(dtype=tuple(DTYPES), variant=tuple(VARIANTS))
  def test_matches_numpy_reference(self, dtype, variant):
    kwargs = VARIANTS[variant]
    params, grads = random_problem(SHAPES, NUM_STEPS, DTYPES[dtype], seed=2,
                                   leaf_scales=LEAF_SCALES)
    reference = numpy_novograd(params, grads, learning_rate=LEARNING_RATE, **kwargs)
    opt = novograd(LEARNING_RATE, **kwargs)
    trajectory, _ = run(opt, params, grads, self.variant(opt.update))
    for leaf in jax.tree.leaves(trajectory[-1]):
      self.assertEqual(leaf.dtype, DTYPES[dtype])
    assert_matches_reference(trajectory, reference, **PARAMS_TOL[dtype])

  def test_variants_differ_from_default(self):
    # Each variant must move the reference's weights on this problem, or
    # matching it would prove nothing about that option.
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=2,
                                   leaf_scales=LEAF_SCALES)
    for variant, kwargs in VARIANTS.items():
      if variant == "default":
        continue
      # zero_init is compared with the same b2 and the paper's init.
      baseline = {"b2": 0.9} if variant == "zero_init" else {}
      default = numpy_novograd(params, grads, learning_rate=LEARNING_RATE, **baseline).params
      other = numpy_novograd(params, grads, learning_rate=LEARNING_RATE, **kwargs).params
      difference = max(np.max(np.abs(a - b) / (1 + np.abs(b)))
                       for a_t, b_t in zip(other, default, strict=True)
                       for a, b in zip(a_t, b_t, strict=True))
      self.assertGreater(difference, 0.1, variant)

  @chex.variants(with_jit=True, without_jit=True)
  def test_learning_rate_schedule(self):
    schedule = optax.warmup_cosine_decay_schedule(0.0, 0.1, 5, NUM_STEPS)
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=3)
    reference = numpy_novograd(params, grads, learning_rate=schedule, weight_decay=0.01)
    opt = novograd(schedule, weight_decay=0.01)
    trajectory, _ = run(opt, params, grads, self.variant(opt.update))
    assert_matches_reference(trajectory, reference, **PARAMS_TOL["float32"])

  @chex.variants(with_jit=True, without_jit=True)
  def test_weight_decay_schedule(self):
    schedule = optax.linear_schedule(0.2, 0.0, NUM_STEPS)
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=4)
    reference = numpy_novograd(params, grads, learning_rate=LEARNING_RATE,
                               weight_decay=schedule)
    opt = novograd(LEARNING_RATE, weight_decay=schedule)
    trajectory, _ = run(opt, params, grads, self.variant(opt.update))
    assert_matches_reference(trajectory, reference, **PARAMS_TOL["float32"])

  def test_optax_novograd_rejects_weight_decay_schedule(self):
    # The documented peer limitation the test above lifts (optax 0.2.8).
    opt = optax.novograd(LEARNING_RATE, weight_decay=optax.constant_schedule(0.1))
    params = {"w": jnp.ones(3)}
    with self.assertRaises(TypeError):
      opt.update(params, opt.init(params), params)

  @chex.variants(with_jit=True, without_jit=True)
  def test_weight_decay_mask(self):
    mask = {"kernel": True, "matrix": True, "scalar": False, "vector": False}
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=5)
    reference = numpy_novograd(params, grads, learning_rate=LEARNING_RATE, weight_decay=0.1,
                               weight_decay_mask=[mask[n] for n in NAMES])
    for weight_decay_mask in (mask, lambda p: jax.tree.map(lambda x: x.ndim >= 2, p)):
      opt = novograd(LEARNING_RATE, weight_decay=0.1, weight_decay_mask=weight_decay_mask)
      trajectory, _ = run(opt, params, grads, self.variant(opt.update))
      assert_matches_reference(trajectory, reference, **PARAMS_TOL["float32"])

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(False, True)
  def test_mu_dtype_bfloat16(self, grad_averaging):
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=6)
    reference = numpy_novograd(params, grads, learning_rate=LEARNING_RATE,
                               grad_averaging=grad_averaging)
    opt = novograd(LEARNING_RATE, mu_dtype=jnp.bfloat16, grad_averaging=grad_averaging)
    trajectory, state = run(opt, params, grads, self.variant(opt.update))
    # The momentum: optax.trace's TraceState, or optax.ema's EmaState with averaging.
    momentum = state[2].ema if grad_averaging else state[2].trace
    for leaf in jax.tree.leaves(momentum):
      self.assertEqual(leaf.dtype, jnp.bfloat16)
    for leaf in jax.tree.leaves(trajectory[-1]):
      self.assertEqual(leaf.dtype, jnp.float32)
    # Only the momentum is rounded to bfloat16 (relative error 2^-9 per step).
    assert_matches_reference(trajectory, reference, rtol=0, atol=2e-2)

  @chex.variants(with_jit=True, without_jit=True)
  def test_float16_layer_with_squared_norm_above_float16_max(self):
    params = [np.ones((100,), np.float16), np.zeros((2,), np.float16)]
    grads = [[np.full((100,), 30.0, np.float16), np.ones((2,), np.float16)]] * 3
    reference = numpy_novograd(params, grads, learning_rate=0.01)
    opt = novograd(0.01)
    tree = lambda leaves: {"big": jnp.asarray(leaves[0]), "small": jnp.asarray(leaves[1])}
    state = opt.init(tree(params))
    p = tree(params)
    update = self.variant(opt.update)
    for step in range(3):
      updates, state = update(tree(grads[step]), state, p)
      self.assertTrue(bool(jnp.all(jnp.isfinite(updates["big"]))))
      self.assertTrue(bool(jnp.all(updates["big"] != 0)))
      p = optax.apply_updates(p, updates)
      np.testing.assert_allclose(widen(p["big"]), reference.params[step][0], rtol=0, atol=2e-3)

  def test_optax_novograd_float16_overflow(self):
    # The documented peer behaviour (optax 0.2.8): nu = inf, zero update.
    params = {"big": jnp.ones((100,), jnp.float16)}
    grads = {"big": jnp.full((100,), 30.0, jnp.float16)}
    opt = optax.novograd(0.01)
    updates, state = opt.update(grads, opt.init(params), params)
    self.assertTrue(bool(jnp.isinf(state[0].nu["big"])))
    np.testing.assert_array_equal(np.asarray(updates["big"], np.float32), 0.0)


OPTAX_ARGUMENT_SETS = {
    "defaults": dict(learning_rate=0.1),
    "weight_decay": dict(learning_rate=0.03, weight_decay=0.2),
    "betas": dict(learning_rate=0.1, b1=0.5, b2=0.9),
    "eps_root": dict(learning_rate=0.1, eps=0.0, eps_root=1e-4),
    "everything": dict(learning_rate=optax.exponential_decay(0.1, 5, 0.5), b1=0.95, b2=0.4,
                       eps=1e-3, eps_root=1e-5, weight_decay=0.01),
}


class OptaxNovogradEquivalenceTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      *[dict(testcase_name=name, kwargs=kwargs) for name, kwargs in OPTAX_ARGUMENT_SETS.items()])
  def test_same_results_as_optax_novograd(self, kwargs):
    params, grads = random_problem(SHAPES, NUM_STEPS, np.float32, seed=7,
                                   leaf_scales=LEAF_SCALES)
    theirs = optax.novograd(**kwargs)
    ours = novograd(**kwargs)
    ours_trajectory, _ = run(ours, params, grads, self.variant(ours.update))
    theirs_trajectory, _ = run(theirs, params, grads, self.variant(theirs.update))
    # Not bitwise: optax takes ||g|| with jnp.linalg.norm and squares it.
    chex.assert_trees_all_close(ours_trajectory, theirs_trajectory, rtol=1e-6, atol=1e-6)


class StateSizeTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.params = {"kernel": jnp.ones((3, 3, 8, 16)), "dense": {"w": jnp.ones((64, 10)),
                                                                 "b": jnp.ones((10,))}}
    self.num_layers = 3

  def state_bytes(self, opt):
    return sum(x.nbytes for x in jax.tree.leaves(opt.init(self.params)))

  def test_first_moment_plus_four_bytes_per_layer_plus_counter(self):
    param_bytes = sum(x.nbytes for x in jax.tree.leaves(self.params))
    counter = 4
    for opt in (novograd(0.1), novograd(0.1, weight_decay=0.1)):
      self.assertEqual(self.state_bytes(opt), param_bytes + 4 * self.num_layers + counter)
    adam_bytes = self.state_bytes(optax.adam(0.1))
    self.assertEqual(adam_bytes, 2 * param_bytes + counter)
    ours = self.state_bytes(novograd(0.1))
    self.assertEqual(2 * (ours - 4 * self.num_layers - counter), adam_bytes - counter)
    bf16 = self.state_bytes(novograd(0.1, mu_dtype=jnp.bfloat16))
    self.assertEqual(4 * (bf16 - 4 * self.num_layers - counter), adam_bytes - counter)

  def test_amsgrad_adds_four_bytes_per_layer(self):
    self.assertEqual(self.state_bytes(novograd(0.1, amsgrad=True)),
                     self.state_bytes(novograd(0.1)) + 4 * self.num_layers)


class InjectHyperparamsTest(chex.TestCase):

  HYPERPARAMS = dict(b1=0.8, b2=0.5, eps=1e-3, eps_root=1e-4, weight_decay=0.1)

  def setUp(self):
    super().setUp()
    self.params, self.grads = random_problem(SHAPES, 10, np.float32, seed=8,
                                             leaf_scales=LEAF_SCALES)

  @parameterized.parameters("learning_rate", *HYPERPARAMS)
  def test_injected_hyperparameter_equals_plain_run(self, name):
    kwargs = {"learning_rate": 0.1}
    if name != "learning_rate":
      kwargs[name] = self.HYPERPARAMS[name]
    injected = optax.inject_hyperparams(novograd)(**kwargs)
    plain, _ = run(novograd(**kwargs), self.params, self.grads)
    ours, state = run(injected, self.params, self.grads, jax.jit(injected.update))
    self.assertIn(name, state.hyperparams)
    chex.assert_trees_all_close(ours, plain, rtol=1e-6, atol=1e-7)

  @chex.variants(with_jit=True, without_jit=True)
  def test_all_hyperparameters_injected_together(self):
    kwargs = dict(learning_rate=0.1, **self.HYPERPARAMS)
    injected = optax.inject_hyperparams(novograd)(**kwargs)
    plain, _ = run(novograd(**kwargs), self.params, self.grads)
    ours, _ = run(injected, self.params, self.grads, self.variant(injected.update))
    chex.assert_trees_all_close(ours, plain, rtol=1e-6, atol=1e-7)

  @parameterized.parameters("learning_rate", *HYPERPARAMS)
  def test_changing_injected_hyperparameter_takes_effect(self, name):
    # Changing a value in the state must give the run with the new value.
    start = dict(learning_rate=0.1, b1=0.9, b2=0.25, eps=1e-6, eps_root=0.0, weight_decay=0.0)
    changed = dict(start, **{name: self.HYPERPARAMS.get(name, 0.02)})
    injected = optax.inject_hyperparams(novograd)(**start)
    state = injected.init(as_tree(self.params))
    state.hyperparams[name] = jnp.asarray(changed[name], state.hyperparams[name].dtype)
    params = as_tree([jnp.asarray(p) for p in self.params])
    update = jax.jit(injected.update)
    for g in self.grads:
      updates, state = update(as_tree([jnp.asarray(x) for x in g]), state, params)
      params = optax.apply_updates(params, updates)
    expected, _ = run(novograd(**changed), self.params, self.grads)
    before, _ = run(novograd(**start), self.params, self.grads)
    chex.assert_trees_all_close(params, expected[-1], rtol=1e-6, atol=1e-7)
    difference = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
        jax.tree.leaves(before[-1]), jax.tree.leaves(expected[-1]), strict=True))
    self.assertGreater(difference, 1e-4)  # the change was visible.


if __name__ == "__main__":
  absltest.main()
