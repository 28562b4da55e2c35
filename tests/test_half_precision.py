"""float16 and bfloat16: every optimizer and preset keeps its moments in float32 and
computes in float32, so its 16-bit update is the float32 computation rounded once.

The reference is the same optimizer on the same numbers in float32 (16-bit params and
gradients cast up), i.e. the exact arithmetic of the float32 path; the property is
that the 16-bit update is finite and within a small multiple of the 16-bit rounding
of that float32 update, for gradients of every size from 1e-6 to 6e4 (float16's
largest finite value is 65504; optax's Adam and SGD with float16 moments give 0, inf
or NaN at the ends of this range).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import novograd_optax as nvg
from novograd_optax import presets

LEARNING_RATE = 0.01
CASES = {
    "novograd": lambda: nvg.novograd(LEARNING_RATE),
    "novograd_decay_averaging_amsgrad": lambda: nvg.novograd(
        LEARNING_RATE, weight_decay=0.01, grad_averaging=True, amsgrad=True),
    "novograd_luc_linf": lambda: nvg.novograd(LEARNING_RATE, norm="linf", trust_coefficient=1e-2),
    "sngm": lambda: nvg.sngm(LEARNING_RATE, weight_decay=1e-3),
    "adamp": lambda: nvg.adamp(LEARNING_RATE, weight_decay=0.01),
    "adamp_nesterov": lambda: nvg.adamp(LEARNING_RATE, nesterov=True),
    "sgdp": lambda: nvg.sgdp(LEARNING_RATE, weight_decay=0.01),
    "sgdp_nesterov": lambda: nvg.sgdp(LEARNING_RATE, nesterov=True),
    **{f"presets.{peer.preset.__name__}": (lambda peer=peer: peer.preset(LEARNING_RATE))
       for peer in presets.PEERS},
    "presets.nemo_luc": lambda: presets.nemo(LEARNING_RATE, luc=True),
    "presets.apex_inside_linf": lambda: presets.apex(
        LEARNING_RATE, reg_inside_moment=True, norm_type=0, weight_decay=0.01),
    "presets.openseq2seq_larc": lambda: presets.openseq2seq(LEARNING_RATE, larc_eta=1e-2),
}
SHAPES = {"kernel": (4, 3), "bias": (3,), "scale": ()}
STEPS = 3
# |u16 - u32| <= ULPS * spacing of the 16-bit dtype at |u32|, + RELATIVE * max|u32| of
# the leaf (rounding of intermediate 16-bit inputs: params, decay): measured worst
# cases are 1 ulp and 5e-4 (float16), 1 ulp and 4e-3 (bfloat16).
ULPS = 2
RELATIVE = {"float16": 2e-3, "bfloat16": 1.6e-2}
DTYPES = {"float16": jnp.float16, "bfloat16": jnp.bfloat16}


@functools.cache
def _jitted(name):
  opt = CASES[name]()

  @jax.jit
  def run(params, grads):
    state = opt.init(params)
    for g in grads:
      updates, state = opt.update(g, state, params)
    return updates, state

  return run


def _spacing(x, dtype):
  """The distance from |x| to the next representable number of ``dtype``."""
  finfo = jnp.finfo(dtype)
  tiny_step = float(finfo.smallest_subnormal)
  exponent = np.floor(np.log2(np.maximum(np.abs(x), float(finfo.smallest_normal))))
  return np.maximum(2.0 ** (exponent - finfo.nmant), tiny_step)


@st.composite
def problems(draw):
  dtype = draw(st.sampled_from(sorted(DTYPES)))
  seed = draw(st.integers(0, 2**16))
  # One order of magnitude per leaf and step, log-uniform over [1e-6, 6e4].
  exponents = draw(st.lists(
      st.lists(st.floats(-6.0, np.log10(6e4)), min_size=len(SHAPES), max_size=len(SHAPES)),
      min_size=STEPS, max_size=STEPS))
  return dtype, seed, exponents


@settings(max_examples=12, deadline=None, derandomize=True, print_blob=True)
@given(problem=problems())
def test_every_optimizer_in_16_bits_is_the_float32_computation_rounded(problem):
  dtype_name, seed, exponents = problem
  dtype = DTYPES[dtype_name]
  rng = np.random.default_rng(seed)
  params = {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in SHAPES.items()}
  grads = [{k: jnp.asarray(10.0 ** e * rng.uniform(0.5, 1.0, size=s)
                           * rng.choice([-1.0, 1.0], size=s), dtype)
            for (k, s), e in zip(SHAPES.items(), step, strict=True)}
           for step in exponents]
  wide = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)
  failures = []
  for name in CASES:
    run = _jitted(name)
    u16, state16 = run(params, grads)
    u32, _ = run(wide(params), [wide(g) for g in grads])
    for (k, got), want in zip(u16.items(), u32.values(), strict=True):
      assert got.dtype == dtype, (name, k, got.dtype)
      got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
      if not np.all(np.isfinite(got)):
        failures.append(f"{name}[{k}]: non-finite {got}")
        continue
      bound = ULPS * _spacing(want, dtype) + RELATIVE[dtype_name] * np.max(np.abs(want))
      if np.any(np.abs(got - want) > bound):
        failures.append(f"{name}[{k}]: {got} vs float32 {want}")
    # The moments are float32: nothing in the state is 16-bit.
    half = [leaf.dtype for leaf in jax.tree.leaves(state16)
            if leaf.dtype in (jnp.float16, jnp.bfloat16)]
    if half:
      failures.append(f"{name}: state in {half[0]}")
  assert not failures, "\n".join(failures)


def test_sngm_global_norm_above_float16_range():
  """A float16 tree whose norm itself exceeds 65504 (each entry finite): the division
  must happen in float32 (in float16 the norm is inf and the update 0)."""
  g = {"a": jnp.full((4,), 6e4, jnp.float16), "b": jnp.full((2,), -3e4, jnp.float16)}
  wide = {k: np.asarray(v, np.float64) for k, v in g.items()}
  norm = np.sqrt(sum(np.sum(v ** 2) for v in wide.values()))
  assert norm > 65504
  # normalize_by_global_norm gives g / ||g||; sngm with lr 1 and no momentum its negative.
  for tx, sign in ((nvg.normalize_by_global_norm(), 1.0), (nvg.sngm(1.0, momentum=0.0), -1.0)):
    updates, _ = tx.update(g, tx.init(g), g)
    for k in g:
      np.testing.assert_allclose(np.asarray(updates[k], np.float64), sign * wide[k] / norm,
                                 rtol=2e-3)
