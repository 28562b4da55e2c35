"""Property-based tests: random pytrees (scalars and zero-size leaves included), dtypes
and hyperparameters, against the NumPy transcription of the paper in
tests/reference/numpy_novograd.py. Derandomized, so CI sees the same examples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from hypothesis import given, settings
from hypothesis import strategies as st

from novograd_optax import novograd
from tests.optimizer_cases import ALL_CASES
from tests.reference.numpy_novograd import numpy_novograd, random_problem

PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                             print_blob=True)

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16,
          "complex64": jnp.complex64}
# (rtol, atol) of the params after a few steps, from the rounding of each dtype: the
# reference computes in float64 from the same rounded inputs.
TOLERANCE = {"float32": (2e-5, 2e-6), "complex64": (2e-5, 2e-6),
             "float16": (1e-2, 1e-2), "bfloat16": (5e-2, 5e-2)}

shapes = st.lists(st.integers(0, 3), min_size=0, max_size=3).map(tuple)


@st.composite
def leaves(draw):
  """One leaf: its shape, dtype name and layer axes (None or a stacking axis)."""
  shape = draw(shapes)
  dtype = draw(st.sampled_from(sorted(DTYPES)))
  layer_axes = draw(st.sampled_from([None, 0])) if shape else None
  return shape, dtype, layer_axes


hyperparameters = st.fixed_dictionaries({
    "learning_rate": st.sampled_from([1e-3, 0.05, 0.3]),
    "b1": st.sampled_from([0.0, 0.5, 0.9, 0.98]),
    "b2": st.sampled_from([0.0, 0.25, 0.5, 0.99]),
    # At least one epsilon is positive, so an all-zero layer is defined.
    "eps_pair": st.sampled_from([(1e-6, 0.0), (0.0, 1e-8), (1e-6, 1e-6)]),
    "weight_decay": st.sampled_from([0.0, 1e-3, 0.1]),
    "grad_averaging": st.booleans(),
    "amsgrad": st.booleans(),
    "norm": st.sampled_from(["l2", "linf"]),
    "nu_init": st.sampled_from(["first", "zero"]),
})


@PROPERTY_SETTINGS
@given(layer_specs=st.lists(leaves(), min_size=1, max_size=4),
       hp=hyperparameters, num_steps=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_novograd_matches_numpy_reference(layer_specs, hp, num_steps, seed):
  params, grads = [], [[] for _ in range(num_steps)]
  for i, (shape, dtype, _) in enumerate(layer_specs):
    p, gs = random_problem([shape], num_steps, DTYPES[dtype], seed=seed + i)
    params += p
    for t in range(num_steps):
      grads[t] += gs[t]
  layer_axes = [axes for _, _, axes in layer_specs]
  eps, eps_root = hp.pop("eps_pair")

  expected = numpy_novograd(params, grads, eps=eps, eps_root=eps_root,
                            layer_axes=layer_axes, **hp)
  opt = novograd(eps=eps, eps_root=eps_root, layer_axes=layer_axes, **hp)
  current = [jnp.asarray(p) for p in params]
  state = opt.init(current)
  for g in grads:
    updates, state = opt.update([jnp.asarray(x) for x in g], state, current)
    current = optax.apply_updates(current, updates)

  for got, want, p, (_, dtype, _) in zip(
      current, expected.params[-1], params, layer_specs, strict=True):
    assert got.dtype == p.dtype and got.shape == p.shape
    rtol, atol = TOLERANCE[dtype]
    got = np.asarray(got).astype(np.complex128 if dtype == "complex64" else np.float64)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(layer_shapes=st.lists(shapes, min_size=0, max_size=4),
       dtype=st.sampled_from(["float32", "bfloat16", "float16"]),
       seed=st.integers(0, 2**16))
def test_every_optimizer_keeps_shapes_dtypes_and_finiteness(layer_shapes, dtype, seed):
  params, grads = random_problem(layer_shapes, 2, DTYPES[dtype], seed=seed)
  tree = {f"leaf{i}": jnp.asarray(p) for i, p in enumerate(params)}
  for case in ALL_CASES:
    opt = case.build()
    state = opt.init(tree)
    current = tree
    for g in grads:
      g = {f"leaf{i}": jnp.asarray(x) for i, x in enumerate(g)}
      updates, state = opt.update(g, state, current)
      assert jax.tree.map(lambda u: (u.shape, u.dtype), updates) == jax.tree.map(
          lambda p: (p.shape, p.dtype), current), case.name
      assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates)), case.name
      current = optax.apply_updates(current, updates)
