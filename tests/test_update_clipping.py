"""LARC / LUC trust-ratio clipping against NumPy transcriptions and optax's trust ratio."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl.testing import absltest, parameterized

from novograd_optax import clip_by_layerwise_trust_ratio, novograd


def numpy_larc_sgd(params, grads_per_step, lr, momentum, trust, weight_decay, eps):
  """NVIDIA's LARC in clip mode wrapping momentum SGD (no decay of its own):
  local = trust ||w|| / (||g|| + wd ||w|| + eps); g <- (g + wd w) min(local / lr, 1)
  (unscaled when ||w|| or ||g|| is 0); buf = momentum buf + g; w -= lr buf."""
  w = {k: np.float64(v) for k, v in params.items()}
  buf = {k: np.zeros_like(v) for k, v in w.items()}
  trajectory = []
  for t, grads in enumerate(grads_per_step):
    for k in w:
      g = np.float64(grads[k])
      w_norm, g_norm = np.linalg.norm(w[k]), np.linalg.norm(g)
      factor = 1.0
      if w_norm > 0 and g_norm > 0:
        local = trust * w_norm / (g_norm + weight_decay * w_norm + eps)
        factor = min(local / lr(t), 1.0)
      buf[k] = momentum * buf[k] + (g + weight_decay * w[k]) * factor
      w[k] = w[k] - lr(t) * buf[k]
    trajectory.append({k: v.copy() for k, v in w.items()})
  return trajectory


def numpy_novograd_luc(params, grads_per_step, lr, b1, b2, eps, weight_decay, trust,
                       stacked):
  """NovoGrad (Algorithm 1) with the speech toolkit's layer-wise update clipping:
  step = min(trust ||w|| / (||m|| + 1e-8), lr) m, per layer. Leaves named in
  ``stacked`` hold one layer per index of their axis 0."""
  def layers(tree):
    out = {}
    for k, v in tree.items():
      if k in stacked:
        out.update({(k, i): v[i] for i in range(v.shape[0])})
      else:
        out[(k, None)] = v
    return out

  w = layers({k: np.float64(v) for k, v in params.items()})
  m = {k: np.zeros_like(v) for k, v in w.items()}
  nu = {}
  steps = []
  for t, grads in enumerate(grads_per_step):
    g = layers({k: np.float64(v) for k, v in grads.items()})
    clipped = {}
    for key in w:
      squared = np.sum(g[key] ** 2)
      nu[key] = squared if t == 0 else b2 * nu[key] + (1 - b2) * squared
      m[key] = b1 * m[key] + g[key] / (np.sqrt(nu[key]) + eps) + weight_decay * w[key]
      w_norm, m_norm = np.linalg.norm(w[key]), np.linalg.norm(m[key])
      rate = min(trust * w_norm / (m_norm + 1e-8), lr) if w_norm > 0 else lr
      w[key] = w[key] - rate * m[key]
      clipped[key] = rate < lr
    steps.append(({k: v.copy() for k, v in w.items()}, clipped))
  return steps


def random_tree(seed, shapes, scale=1.0):
  rng = np.random.default_rng(seed)
  return {k: np.float32(scale * rng.normal(size=s)) for k, s in shapes.items()}


class ClipByLayerwiseTrustRatioTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_larc_clip_mode_matches_numpy_transcription(self):
    shapes = {"big": (4, 3), "small": (5,), "zero": (3,)}
    params = random_tree(0, shapes)
    params["zero"] = np.zeros(3, np.float32)  # ||w|| = 0: left unscaled
    lr = optax.linear_schedule(0.5, 0.1, 3)
    trust, wd, momentum = 0.02, 1e-3, 0.9
    grads_per_step = []
    for t in range(3):
      grads = random_tree(10 + t, shapes)
      grads["small"] *= 1e-4  # local / lr > 1: not clipped
      grads_per_step.append(grads)
    expected = numpy_larc_sgd(params, grads_per_step, lambda t: float(lr(t)), momentum,
                              trust, wd, 1e-8)
    opt = optax.chain(
        clip_by_layerwise_trust_ratio(trust, learning_rate=lr, weight_decay=wd),
        optax.sgd(lr, momentum=momentum))
    update = self.variant(opt.update)
    p, state = jax.tree.map(jnp.asarray, params), opt.init(params)
    for grads, want in zip(grads_per_step, expected, strict=True):
      updates, state = update(grads, state, p)
      p = optax.apply_updates(p, updates)
      chex.assert_trees_all_close(p, want, rtol=1e-5, atol=1e-7)

  @chex.variants(with_jit=True, without_jit=True)
  def test_scale_mode_equals_optax_scale_by_trust_ratio(self):
    shapes = {"a": (4, 3), "b": (5,)}
    params, grads = random_tree(1, shapes), random_tree(2, shapes)
    params["c"], grads["c"] = np.zeros(2, np.float32), np.ones(2, np.float32)
    ours = clip_by_layerwise_trust_ratio(0.3, mode="scale", eps=1e-4)
    theirs = optax.scale_by_trust_ratio(trust_coefficient=0.3, eps=1e-4)
    got, _ = self.variant(ours.update)(grads, ours.init(params), params)
    want, _ = theirs.update(grads, theirs.init(params), params)
    chex.assert_trees_all_close(got, want, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_step_after_any_optimizer_never_exceeds_trust_times_weight_norm(self):
    shapes = {"kernel": (6, 4), "vector": (8,), "scalar": ()}
    trust = 1e-2
    opt = optax.chain(optax.adam(optax.constant_schedule(1.0)),
                      clip_by_layerwise_trust_ratio(trust))
    update = self.variant(opt.update)
    p = jax.tree.map(jnp.asarray, random_tree(3, shapes))
    state = opt.init(p)
    for t in range(4):
      updates, state = update(random_tree(20 + t, shapes, scale=10.0 ** t), state, p)
      for k in shapes:
        step, w_norm = np.linalg.norm(updates[k]), np.linalg.norm(p[k])
        self.assertLessEqual(step, trust * w_norm * (1 + 1e-6), k)
        # Adam with lr 1 moves every coordinate by ~1: the cap is what binds.
        self.assertGreater(step, 0.99 * trust * w_norm, k)
      p = optax.apply_updates(p, updates)

  @chex.variants(with_jit=True, without_jit=True)
  def test_novograd_trust_coefficient_matches_speech_toolkit_luc(self):
    shapes = {"kernel": (6, 4), "stack": (3, 2, 5), "bias": (4,)}
    # trust != lr ** 2: at trust = lr ** 2 a trust ratio given (lr, 1) instead of
    # (trust, lr) computes the same clip factor, and that mix-up would pass.
    lr, b1, b2, eps, wd, trust = 0.1, 0.95, 0.5, 1e-6, 1e-3, 2e-2
    params = random_tree(4, shapes)
    params["kernel"] *= 10.0  # trust ||w|| / ||m|| > lr: this layer is not clipped
    grads_per_step = [random_tree(30 + t, shapes, scale=3.0 ** -t) for t in range(4)]
    expected = numpy_novograd_luc(params, grads_per_step, lr, b1, b2, eps, wd, trust,
                                  stacked=("stack",))
    opt = novograd(lr, b1, b2, eps, weight_decay=wd, trust_coefficient=trust,
                   layer_axes={"kernel": (), "stack": 0, "bias": ()})
    update = self.variant(opt.update)
    p, state = jax.tree.map(jnp.asarray, params), opt.init(params)
    for grads, (want, _) in zip(grads_per_step, expected, strict=True):
      old = p
      updates, state = update(grads, state, p)
      p = optax.apply_updates(p, updates)
      for k in shapes:
        if k == "stack":
          for i in range(shapes[k][0]):
            np.testing.assert_allclose(p[k][i], want[(k, i)], rtol=1e-5, atol=1e-6)
            step = np.linalg.norm(updates[k][i])
            self.assertLessEqual(step, trust * np.linalg.norm(old[k][i]) * (1 + 1e-5))
        else:
          np.testing.assert_allclose(p[k], want[(k, None)], rtol=1e-5, atol=1e-6)
          self.assertLessEqual(np.linalg.norm(updates[k]),
                               trust * np.linalg.norm(old[k]) * (1 + 1e-5))
    # The problem has clipped and unclipped layer steps, so both branches are checked.
    flags = [f for _, clipped in expected for f in clipped.values()]
    self.assertTrue(any(flags))
    self.assertFalse(all(flags))

  def test_novograd_without_clipping_keeps_its_chain(self):
    params = {"w": jnp.ones((2, 3))}
    plain = novograd(0.1).init(params)
    self.assertEqual(jax.tree.structure(novograd(0.1, trust_coefficient=None).init(params)),
                     jax.tree.structure(plain))
    self.assertNotEqual(jax.tree.structure(novograd(0.1, trust_coefficient=1e-3).init(params)),
                        jax.tree.structure(plain))

  def test_defaults_are_larcs(self):
    """The defaults are NVIDIA LARC's: trust 0.02, clip mode against a learning rate of 1,
    eps = 1e-8 in the denominator, no decay, no floor, zero layers left unscaled; the step
    count is an int32 that counts updates. A layer with ||w|| = 1e-7 and ||x|| = 1e-8
    shows eps (local = 0.02e-7 / 2e-8 = 0.1, 0.2 without it)."""
    rng = np.random.default_rng(40)
    unit = lambda v: v / np.linalg.norm(v)
    params = {"w": np.float32(rng.normal(size=(4, 3))), "tiny": np.float32(1e-7 * unit(
        rng.normal(size=5))), "zero": np.zeros(3, np.float32)}
    grads = {"w": np.float32(rng.normal(size=(4, 3))), "tiny": np.float32(1e-8 * unit(
        rng.normal(size=5))), "zero": np.float32(rng.normal(size=3))}
    tx = clip_by_layerwise_trust_ratio()
    state = tx.init(params)
    self.assertEqual(state.count.dtype, jnp.int32)
    self.assertEqual(state.count.shape, ())
    out, state = tx.update(grads, state, params)
    for k in params:
      w, x = np.float64(params[k]), np.float64(grads[k])
      w_norm, x_norm = np.linalg.norm(w), np.linalg.norm(x)
      factor = min(0.02 * w_norm / (x_norm + 1e-8), 1.0) if w_norm > 0 else 1.0
      np.testing.assert_allclose(np.asarray(out[k]), x * factor, rtol=1e-5, err_msg=k)
    np.testing.assert_allclose(float(out["tiny"][0] / grads["tiny"][0]), 0.1, rtol=1e-5)
    self.assertEqual(state.count.dtype, jnp.int32)
    self.assertEqual(int(state.count), 1)

  @chex.variants(with_jit=True, without_jit=True)
  def test_weight_decay_and_learning_rate_schedules(self):
    """weight_decay and learning_rate schedules are read at the step count (0, 1, 2):
    NumPy transcription of LARC's clip mode with d_t and lr_t."""
    shapes = {"a": (4, 3), "b": (6,)}
    params = random_tree(41, shapes)
    lr = optax.linear_schedule(0.5, 0.1, 3)
    wd = optax.linear_schedule(0.1, 0.4, 2)
    trust, eps = 0.05, 1e-8
    tx = clip_by_layerwise_trust_ratio(trust, learning_rate=lr, weight_decay=wd, eps=eps)
    update = self.variant(tx.update)
    state = tx.init(params)
    for t in range(3):
      grads = random_tree(42 + t, shapes)
      out, state = update(grads, state, params)
      lr_t, wd_t = 0.5 - 0.4 * min(t, 3) / 3, 0.1 + 0.3 * min(t, 2) / 2
      for k in shapes:
        w, x = np.float64(params[k]), np.float64(grads[k])
        w_norm = np.linalg.norm(w)
        local = trust * w_norm / (np.linalg.norm(x) + wd_t * w_norm + eps)
        expected = (x + wd_t * w) * min(local / lr_t, 1.0)
        np.testing.assert_allclose(np.asarray(out[k]), expected, rtol=1e-5,
                                   err_msg=f"{k} step {t}")

  def test_complex_and_half_precision_leaves(self):
    """Complex leaves use ||x||^2 = sum |x|^2 and keep their imaginary part through the
    decay and the scaling; bfloat16 and float16 leaves are scaled in float32 and keep
    their dtype. NumPy in complex128 / float64 on the same numbers."""
    rng = np.random.default_rng(43)
    cplx = lambda *s: np.complex64(rng.normal(size=s) + 1j * rng.normal(size=s))
    params = {"z": cplx(4, 3), "bf": jnp.asarray(rng.normal(size=(5,)), jnp.bfloat16),
              "h": np.float16(rng.normal(size=(3, 2)))}
    grads = {"z": cplx(4, 3), "bf": jnp.asarray(rng.normal(size=(5,)), jnp.bfloat16),
             "h": np.float16(rng.normal(size=(3, 2)))}
    trust, lr, wd, eps = 0.05, 0.5, 0.1, 1e-8
    for mode in ("clip", "scale"):
      tx = clip_by_layerwise_trust_ratio(trust, learning_rate=lr, weight_decay=wd, eps=eps,
                                         mode=mode)
      out, _ = tx.update(grads, tx.init(params), params)
      for k in params:
        x, w = (np.asarray(t[k]).astype(np.complex128 if k == "z" else np.float64)
                for t in (grads, params))
        w_norm, x_norm = np.linalg.norm(w), np.linalg.norm(x)
        local = trust * w_norm / (x_norm + wd * w_norm + eps)
        factor = min(local / lr, 1.0) if mode == "clip" else local
        self.assertEqual(out[k].dtype, jnp.asarray(params[k]).dtype, k)
        np.testing.assert_allclose(np.asarray(out[k]).astype(x.dtype), (x + wd * w) * factor,
                                   rtol=1e-5 if k == "z" else 1e-2, err_msg=f"{mode} {k}")

  def test_rejects_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "eps"):
      clip_by_layerwise_trust_ratio(0.02, eps=0.0, skip_zero_norms=False)
    with self.assertRaisesRegex(ValueError, "trust_coefficient"):
      clip_by_layerwise_trust_ratio(0.0)
    with self.assertRaisesRegex(ValueError, "learning_rate"):
      clip_by_layerwise_trust_ratio(0.02, learning_rate=-1.0)
    with self.assertRaisesRegex(ValueError, "mode"):
      clip_by_layerwise_trust_ratio(0.02, mode="lars")
    with self.assertRaisesRegex(ValueError, "eps"):
      clip_by_layerwise_trust_ratio(0.02, eps=-1.0)
    with self.assertRaisesRegex(ValueError, "trust_coefficient"):
      novograd(0.1, trust_coefficient=-1e-3)
    with self.assertRaisesRegex(TypeError, "trust_coefficient"):
      novograd(0.1, trust_coefficient="1e-3")
    opt = novograd(0.1, trust_coefficient=1e-3)
    params = {"w": jnp.ones(3)}
    with self.assertRaisesRegex(ValueError, "trust_coefficient"):
      opt.update(params, opt.init(params))


if __name__ == "__main__":
  absltest.main()
