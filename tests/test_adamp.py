"""AdamP against a NumPy transcription of the PyTorch reference and against optax.adamw."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import adamp, project_scale_invariant
from tests.optimizer_cases import scale_by_extra_arg
from tests.reference import numpy_adamp_sgdp as ref

NUM_STEPS = 50


def run_flax_layout(opt, update, num_steps, channel_axis_layout="flax"):
  """Runs ``opt`` with Flax-layout kernels on the reference problem (whose
  gradients are defined in PyTorch layout) and returns PyTorch-layout weights."""
  to_opt = ref.torch_to_flax if channel_axis_layout == "flax" else np.asarray
  from_opt = ref.flax_to_torch if channel_axis_layout == "flax" else np.asarray
  params = {k: jnp.asarray(to_opt(v), jnp.float32) for k, v in ref.initial_params().items()}
  state = opt.init(params)
  trajectory = []
  for t in range(num_steps):
    torch_w = {k: from_opt(v) for k, v in params.items()}
    grads = {k: jnp.asarray(to_opt(v), jnp.float32)
             for k, v in ref.gradients(t, torch_w).items()}
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    trajectory.append({k: from_opt(v) for k, v in params.items()})
  return trajectory


def radial_components(update, w, channel_axis):
  """<u_c, w_c> / ||w_c|| for every output channel c."""
  u, w = np.moveaxis(np.float64(update), channel_axis, 0), np.moveaxis(np.float64(w),
                                                                        channel_axis, 0)
  u, w = u.reshape(u.shape[0], -1), w.reshape(w.shape[0], -1)
  return np.sum(u * w, axis=1) / np.linalg.norm(w, axis=1), np.linalg.norm(w, axis=1)


class AdamPTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True)
  @parameterized.named_parameters(
      ("flax_layout", "flax", -1, False, {}),
      ("torch_layout", "torch", 0, False, {}),
      ("flax_layout_nesterov", "flax", -1, True, {}),
      ("torch_layout_nesterov", "torch", 0, True, {}),
      # Other betas and an eps that matters next to sqrt(v), with and without Nesterov.
      ("flax_betas_eps", "flax", -1, False, dict(b1=0.8, b2=0.95, eps=1e-3)),
      ("flax_betas_eps_nesterov", "flax", -1, True, dict(b1=0.8, b2=0.95, eps=1e-3)),
  )
  def test_matches_numpy_transcription(self, layout, channel_axis, nesterov, kwargs):
    """50 steps against the float64 transcription of the reference, to float32 round-off."""
    lr, weight_decay = 0.01, 0.1
    expected, views = ref.numpy_adamp(ref.initial_params(), ref.gradients, NUM_STEPS, lr,
                                      weight_decay=weight_decay, nesterov=nesterov, **kwargs)
    # The problem exercises every branch: per-channel, whole-layer, none, 1-D.
    self.assertEqual(views[0], ref.EXPECTED_VIEWS)
    self.assertEqual(views[-1], ref.EXPECTED_VIEWS)
    opt = adamp(lr, weight_decay=weight_decay, channel_axis=channel_axis, nesterov=nesterov,
                **kwargs)
    got = run_flax_layout(opt, self.variant(opt.update), NUM_STEPS, layout)
    for step_got, step_want in zip(got, expected, strict=True):
      chex.assert_trees_all_close(step_got, step_want, rtol=2e-5, atol=2e-6)

  def test_nadam_debiasing_is_an_option_and_differs(self):
    """``nesterov_debias="nadam"`` is optax's NAdam step (``optax.adamw(nesterov=True)``
    on a layer that is never projected) and is far from the reference's."""
    lr, b1 = 0.01, 0.9
    rng = np.random.default_rng(6)
    params = {"bias": jnp.float32(rng.normal(size=(5,)))}
    nadam = adamp(lr, b1=b1, nesterov=True, nesterov_debias="nadam")
    theirs = optax.adamw(lr, b1=b1, weight_decay=0.0, nesterov=True)
    reference = adamp(lr, b1=b1, nesterov=True)
    p_nadam, s_nadam = params, nadam.init(params)
    p_theirs, s_theirs = params, theirs.init(params)
    p_ref, s_ref = params, reference.init(params)
    for t in range(30):
      g = {"bias": jnp.float32(np.random.default_rng(t).normal(size=(5,)))}
      u, s_nadam = nadam.update(g, s_nadam, p_nadam)
      p_nadam = optax.apply_updates(p_nadam, u)
      u, s_theirs = theirs.update(g, s_theirs, p_theirs)
      p_theirs = optax.apply_updates(p_theirs, u)
      u, s_ref = reference.update(g, s_ref, p_ref)
      p_ref = optax.apply_updates(p_ref, u)
    chex.assert_trees_all_close(p_nadam, p_theirs, rtol=1e-6, atol=1e-7)
    moved_nadam = np.float64(p_nadam["bias"]) - np.float64(params["bias"])
    moved_ref = np.float64(p_ref["bias"]) - np.float64(params["bias"])
    self.assertGreater(np.max(np.abs(moved_nadam - moved_ref)), 1e-3)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(
      ("dense", (6, 4)),          # Flax Dense kernel (in, out)
      ("conv", (3, 3, 2, 4)),     # Flax Conv kernel (kh, kw, in, out)
  )
  def test_orthogonal_gradient_projects_and_reduces_decay(self, shape):
    lr, wd, wd_ratio = 0.1, 0.5, 0.1
    rng = np.random.default_rng(3)
    w = rng.normal(size=shape)
    # A scale-invariant layer: each output channel's gradient is orthogonal to it.
    g = np.moveaxis(rng.normal(size=shape), -1, 0).reshape(shape[-1], -1)
    wc = np.moveaxis(w, -1, 0).reshape(shape[-1], -1)
    g = g - wc * np.sum(g * wc, 1, keepdims=True) / np.sum(wc * wc, 1, keepdims=True)
    g = np.moveaxis(g.reshape((shape[-1],) + shape[:-1]), 0, -1)
    params, grads = {"kernel": jnp.float32(w)}, {"kernel": jnp.float32(g)}
    for nesterov in (False, True):
      opt = adamp(lr, weight_decay=wd, wd_ratio=wd_ratio, nesterov=nesterov)
      updates, _ = self.variant(opt.update)(grads, opt.init(params), params)
      radial, norms = radial_components(updates["kernel"], w, -1)
      # Only the (reduced) decay moves the kernel along w: -lr * wd * wd_ratio * ||w_c||.
      np.testing.assert_allclose(radial, -lr * wd * wd_ratio * norms, rtol=1e-4, atol=1e-6)
      # Without projection Adam's first step is lr*sign(g)-like: strongly radial.
      plain, _ = optax.adamw(lr, weight_decay=wd, nesterov=nesterov).update(
          grads, optax.adamw(lr).init(params), params)
      plain_radial, _ = radial_components(plain["kernel"], w, -1)
      self.assertGreater(np.max(np.abs(plain_radial + lr * wd * norms)), 1e-3)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(False, True)
  def test_generic_kernel_equals_optax_adamw(self, nesterov):
    """Without projection: optax.adamw; with Nesterov that is NAdam's debiasing."""
    lr = optax.cosine_decay_schedule(0.01, 10)
    wd = optax.linear_schedule(0.1, 0.01, 10)
    rng = np.random.default_rng(4)
    params = {"kernel": jnp.float32(rng.normal(size=(3, 3, 2, 4))),
              "dense": jnp.float32(rng.normal(size=(5, 3))),
              "bias": jnp.float32(rng.normal(size=(3,)))}
    ours = adamp(lr, b1=0.8, b2=0.99, weight_decay=wd, nesterov=nesterov,
                 nesterov_debias="nadam")
    theirs = optax.adamw(lr, b1=0.8, b2=0.99, weight_decay=wd, nesterov=nesterov)
    update = self.variant(ours.update)
    p_ours, s_ours = params, ours.init(params)
    p_theirs, s_theirs = params, theirs.init(params)
    for t in range(3):
      # Gradients aligned with the weights: every cosine is far above delta/sqrt(n).
      grads = jax.tree.map(lambda w, t=t: 2.0 * w + 0.1 * t, p_ours)
      u_ours, s_ours = update(grads, s_ours, p_ours)
      u_theirs, s_theirs = theirs.update(grads, s_theirs, p_theirs)
      p_ours = optax.apply_updates(p_ours, u_ours)
      p_theirs = optax.apply_updates(p_theirs, u_theirs)
      chex.assert_trees_all_close(p_ours, p_theirs, rtol=1e-6, atol=1e-7)

  def test_channel_axis_follows_the_layout(self):
    """A Flax kernel whose gradient is orthogonal to each output column: with
    channel_axis=-1 the step loses its radial part per column; with
    channel_axis=0 (rows mix output channels) only the whole-layer test fires,
    so only the kernel-wide radial part is removed."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(6, 4))
    g = rng.normal(size=(6, 4))
    g = g - w * np.sum(g * w, 0) / np.sum(w * w, 0)  # orthogonal per output column
    params, grads = {"k": jnp.float32(w)}, {"k": jnp.float32(g)}
    # sign(g) is a step with radial components in every column.
    for channel_axis in (-1, 0):
      tx = project_scale_invariant(optax.scale_by_sign(), channel_axis=channel_axis)
      projected, _ = tx.update(grads, tx.init(params), params)
      per_column, _ = radial_components(projected["k"], w, -1)
      whole = np.sum(np.float64(projected["k"]) * w)
      np.testing.assert_allclose(whole, 0.0, atol=1e-5)
      if channel_axis == -1:
        np.testing.assert_allclose(per_column, 0.0, atol=1e-5)
      else:
        self.assertGreater(np.max(np.abs(per_column)), 1e-2)

  @parameterized.product(nesterov_debias=["reference", "nadam"],
                          dtypes=[(jnp.float32, jnp.bfloat16, jnp.bfloat16),
                                  (jnp.bfloat16, jnp.bfloat16, jnp.bfloat16),
                                  (jnp.bfloat16, None, jnp.float32)])
  def test_nesterov_keeps_the_momentum_dtype(self, nesterov_debias, dtypes):
    """The momentum has mu_dtype (bfloat16 here, for float32 or bfloat16 params), or
    float32 for bfloat16 params and mu_dtype=None (16-bit moments lose the small
    gradients), from init on, and keeps it after update (a state whose dtype changed
    would break lax.scan and fori_loop carries)."""
    param_dtype, mu_dtype, expected = dtypes
    params = {"kernel": jnp.ones((3, 4), param_dtype), "bias": jnp.ones((4,), param_dtype)}
    opt = adamp(1e-2, nesterov=True, nesterov_debias=nesterov_debias, mu_dtype=mu_dtype)
    state = opt.init(params)
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    _, new_state = opt.update(grads, state, params)
    for s in (state, new_state):
      for leaf in jax.tree.leaves(s[0].inner_state.mu):
        self.assertEqual(leaf.dtype, expected)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)

  def test_inner_gets_params_and_extra_args(self):
    """The wrapped optimizer is called as optax calls a transformation: with params
    (an inner L2 term 0.5 w needs them) and the extra keyword arguments of update
    (here a `scale` the inner step multiplies by). A bias is never projected, so its
    step is the inner step exactly: scale * (g + 0.5 w)."""
    inner = optax.chain(optax.add_decayed_weights(0.5), scale_by_extra_arg())
    tx = project_scale_invariant(inner)
    w, g = np.float32([1.0, -2.0, 3.0]), np.float32([0.5, 0.25, -1.0])
    params = {"bias": jnp.asarray(w)}
    out, _ = tx.update({"bias": jnp.asarray(g)}, tx.init(params), params, scale=3.0)
    np.testing.assert_allclose(np.asarray(out["bias"]), 3.0 * (g + 0.5 * w), rtol=1e-6)

  def test_rejects_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "learning_rate"):
      adamp(-1e-3)
    with self.assertRaisesRegex(ValueError, "b2"):
      adamp(1e-3, b2=1.0)
    with self.assertRaisesRegex(ValueError, "delta"):
      adamp(1e-3, delta=-0.1)
    with self.assertRaisesRegex(ValueError, "wd_ratio"):
      adamp(1e-3, wd_ratio=-1.0)
    with self.assertRaisesRegex(ValueError, "weight_decay"):
      adamp(1e-3, weight_decay=-1.0)
    with self.assertRaisesRegex(TypeError, "channel_axis"):
      adamp(1e-3, channel_axis=1.0)
    with self.assertRaisesRegex(TypeError, "nesterov"):
      adamp(1e-3, nesterov=1)
    with self.assertRaisesRegex(ValueError, "nesterov_debias"):
      adamp(1e-3, nesterov=True, nesterov_debias="dozat")
    opt = adamp(1e-3, channel_axis=2)
    params = {"k": jnp.ones((3, 2))}
    with self.assertRaisesRegex(ValueError, "channel_axis=2"):
      opt.update(params, opt.init(params), params)
    with self.assertRaisesRegex(ValueError, "parameters"):
      opt.update(params, opt.init(params))


if __name__ == "__main__":
  absltest.main()
