"""SGDP against a NumPy transcription of the PyTorch reference (and of the paper's
Algorithm 1, an option) and against optax's SGD."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import sgdp
from tests.reference import numpy_adamp_sgdp as ref

NUM_STEPS = 50


def run(opt, update, num_steps, layout="flax"):
  """Weights (PyTorch layout) and optimizer states after each step of ``opt`` on the
  reference problem, whose gradients are defined in PyTorch layout."""
  to_opt = ref.torch_to_flax if layout == "flax" else np.asarray
  from_opt = ref.flax_to_torch if layout == "flax" else np.asarray
  params = {k: jnp.asarray(to_opt(v), jnp.float32) for k, v in ref.initial_params().items()}
  state = opt.init(params)
  weights, states = [], []
  for t in range(num_steps):
    torch_w = {k: from_opt(v) for k, v in params.items()}
    grads = {k: jnp.asarray(to_opt(v), jnp.float32)
             for k, v in ref.gradients(t, torch_w).items()}
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    weights.append({k: from_opt(v) for k, v in params.items()})
    states.append(state)
  return weights, states


def momentum_buffer(state):
  traces = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(
      x, optax.TraceState)) if isinstance(s, optax.TraceState)]
  assert len(traces) == 1
  return {k: ref.flax_to_torch(v) for k, v in traces[0].trace.items()}


class SgdpTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True)
  @parameterized.named_parameters(
      ("flax_layout", "flax", -1, dict(weight_decay=0.1)),
      # Every other argument at its default (the reference's weight_decay=0 included).
      ("flax_defaults", "flax", -1, dict()),
      ("torch_layout_dampening", "torch", 0, dict(weight_decay=0.1, dampening=0.3)),
      ("flax_nesterov", "flax", -1, dict(weight_decay=0.05, nesterov=True, momentum=0.8)),
      ("torch_nesterov", "torch", 0, dict(weight_decay=0.05, nesterov=True, momentum=0.8)),
  )
  def test_matches_numpy_transcription(self, layout, channel_axis, kwargs):
    """50 steps against the float64 transcription of the reference, to float32 round-off."""
    lr = 0.05
    expected, views, _ = ref.numpy_sgdp(ref.initial_params(), ref.gradients, NUM_STEPS,
                                        lr, **kwargs)
    self.assertEqual(views[0], ref.EXPECTED_VIEWS)
    self.assertEqual(views[-1], ref.EXPECTED_VIEWS)
    opt = sgdp(lr, channel_axis=channel_axis, **kwargs)
    got, _ = run(opt, self.variant(opt.update), NUM_STEPS, layout)
    for step_got, step_want in zip(got, expected, strict=True):
      chex.assert_trees_all_close(step_got, step_want, rtol=2e-5, atol=2e-6)

  @parameterized.parameters(False, True)
  def test_bfloat16_momentum_keeps_its_dtype(self, nesterov):
    """bfloat16 params: the momentum buffer (into which the projected step is written
    without Nesterov) stays bfloat16 after update, as at init."""
    params = {"kernel": jnp.ones((3, 4), jnp.bfloat16), "bias": jnp.ones((4,), jnp.bfloat16)}
    opt = sgdp(0.1, weight_decay=0.1, nesterov=nesterov)
    state = opt.init(params)
    grads = jax.tree.map(lambda p: 0.5 * p, params)
    _, new_state = opt.update(grads, state, params)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)

  def test_momentum_buffer_projected_by_default_and_unprojected_as_an_option(self):
    """The reference projects its buffer in place (default); ``project_momentum=False``
    keeps it unprojected, as the paper's Algorithm 1 is printed."""
    lr, kwargs, steps = 0.05, dict(weight_decay=0.1), 3
    paper, _, paper_buffers = ref.numpy_sgdp(
        ref.initial_params(), ref.gradients, steps, lr, buffer_projected=False, **kwargs)
    pytorch, _, pytorch_buffers = ref.numpy_sgdp(
        ref.initial_params(), ref.gradients, steps, lr, **kwargs)
    for opt, weights, buffers in ((sgdp(lr, **kwargs), pytorch, pytorch_buffers),
                                  (sgdp(lr, project_momentum=False, **kwargs), paper,
                                   paper_buffers)):
      got, states = run(opt, jax.jit(opt.update), steps)
      chex.assert_trees_all_close(momentum_buffer(states[-1]), buffers[-1],
                                  rtol=2e-5, atol=2e-6)
      chex.assert_trees_all_close(got[-1], weights[-1], rtol=2e-5, atol=2e-6)
    # The two conventions differ on this problem by far more than the tolerances
    # above (else the test could not tell them apart).
    for k in ("conv", "dense_channel", "dense_layer"):
      buffer_gap = np.abs(pytorch_buffers[-1][k] - paper_buffers[-1][k]).max()
      weight_gap = np.abs(pytorch[-1][k] - paper[-1][k]).max()
      self.assertGreater(buffer_gap, 1e-2, k)
      self.assertGreater(weight_gap, 1e-4, k)

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(False, True)
  def test_generic_kernel_equals_optax_sgd_with_decoupled_decay(self, nesterov):
    lr = optax.cosine_decay_schedule(0.05, 10)
    momentum, wd = 0.9, optax.linear_schedule(0.01, 0.001, 10)
    rng = np.random.default_rng(4)
    params = {"kernel": jnp.float32(rng.normal(size=(3, 3, 2, 4))),
              "dense": jnp.float32(rng.normal(size=(5, 3))),
              "bias": jnp.float32(rng.normal(size=(3,)))}
    ours = sgdp(lr, momentum, weight_decay=wd, nesterov=nesterov)
    # optax.sgd = trace + learning rate; decoupled decay wd/(1-momentum) in between.
    theirs = optax.chain(optax.trace(momentum, nesterov=nesterov),
                         optax.add_decayed_weights(lambda c: wd(c) / (1 - momentum)),
                         optax.scale_by_learning_rate(lr))
    update = self.variant(ours.update)
    p_ours, s_ours = params, ours.init(params)
    p_theirs, s_theirs = params, theirs.init(params)
    for t in range(3):
      grads = jax.tree.map(lambda w, t=t: 2.0 * w + 0.1 * t, p_ours)
      u_ours, s_ours = update(grads, s_ours, p_ours)
      u_theirs, s_theirs = theirs.update(grads, s_theirs, p_theirs)
      p_ours = optax.apply_updates(p_ours, u_ours)
      p_theirs = optax.apply_updates(p_theirs, u_theirs)
      chex.assert_trees_all_close(p_ours, p_theirs, rtol=1e-6, atol=1e-7)

  @chex.variants(with_jit=True, without_jit=True)
  def test_orthogonal_conv_kernel_projects_and_reduces_decay(self):
    lr, momentum, wd, wd_ratio = 0.1, 0.9, 0.5, 0.1
    shape = (3, 3, 2, 4)  # Flax Conv kernel (kh, kw, in, out)
    rng = np.random.default_rng(3)
    w = rng.normal(size=shape)
    wc = np.moveaxis(w, -1, 0).reshape(shape[-1], -1)
    opt = sgdp(lr, momentum, weight_decay=wd, wd_ratio=wd_ratio)
    update = self.variant(opt.update)
    params = {"kernel": jnp.float32(w)}
    state = opt.init(params)
    for _ in range(2):  # the second step's momentum holds the first gradient
      g = rng.normal(size=(shape[-1], wc.shape[1]))
      g = g - wc * np.sum(g * wc, 1, keepdims=True) / np.sum(wc * wc, 1, keepdims=True)
      g = np.moveaxis(g.reshape((shape[-1],) + shape[:-1]), 0, -1)
      updates, state = update({"kernel": jnp.float32(g)}, state, params)
    u = np.moveaxis(np.float64(updates["kernel"]), -1, 0).reshape(shape[-1], -1)
    norms = np.linalg.norm(wc, axis=1)
    radial = np.sum(u * wc, axis=1) / norms
    np.testing.assert_allclose(radial, -lr * wd * wd_ratio / (1 - momentum) * norms,
                               rtol=1e-4, atol=1e-6)

  def test_rejects_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "learning_rate"):
      sgdp(-0.1)
    with self.assertRaisesRegex(ValueError, "momentum"):
      sgdp(0.1, momentum=1.0)
    with self.assertRaisesRegex(ValueError, "dampening"):
      sgdp(0.1, dampening=-0.5)
    with self.assertRaisesRegex(ValueError, "nesterov"):
      sgdp(0.1, dampening=0.1, nesterov=True)
    with self.assertRaisesRegex(ValueError, "eps"):
      sgdp(0.1, eps=-1.0)
    with self.assertRaisesRegex(TypeError, "channel_axis"):
      sgdp(0.1, channel_axis="last")
    with self.assertRaisesRegex(TypeError, "project_momentum"):
      sgdp(0.1, project_momentum=None)


if __name__ == "__main__":
  absltest.main()
