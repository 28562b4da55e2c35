"""``layer_axes`` read from Flax's partitioning metadata, prefix dicts on ``nnx.State``,
and ``decay_mask``.

The expected results are independent of the code under test: layouts and masks
written out by hand, and the *unrolled* model (one module per layer, each leaf one
layer, masked by ``x.ndim > 1``, which is right once nothing is stacked) trained
with the same data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import novograd_optax as nvg

nnx = pytest.importorskip("flax.nnx")
nn = pytest.importorskip("flax.linen")

NUM_LAYERS, WIDTH, STEPS = 3, 8, 4
OPTIONS = dict(b1=0.9, b2=0.5, weight_decay=0.1)


def data():
  rng = np.random.default_rng(0)
  return (jnp.asarray(rng.normal(size=(16, WIDTH)), jnp.float32),
          jnp.asarray(rng.normal(size=(16, 2)), jnp.float32))


def unrolled_mask(params):
  # Correct for an unrolled model (no leaf is stacked): decay kernels only.
  return jax.tree.map(lambda x: x.ndim > 1, params)


# --- Flax NNX -------------------------------------------------------------------------

class Block(nnx.Module):
  def __init__(self, rngs, annotate_norm=True):
    self.dense = nnx.Linear(WIDTH, WIDTH, rngs=rngs,
                            kernel_metadata={"out_sharding": (None, "model")},
                            bias_metadata={"out_sharding": ("model",)})
    norm_metadata = {"out_sharding": ("model",)} if annotate_norm else {}
    self.norm = nnx.LayerNorm(WIDTH, rngs=rngs, scale_metadata=norm_metadata,
                              bias_metadata=norm_metadata)

  def __call__(self, x):
    return x + self.norm(jax.nn.tanh(self.dense(x)))


class Scanned(nnx.Module):
  def __init__(self, rngs, annotate_norm=True):
    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make_blocks(key):
      return Block(nnx.Rngs(key), annotate_norm)

    self.blocks = make_blocks(jax.random.split(rngs.params(), NUM_LAYERS))
    self.head = nnx.Linear(WIDTH, 2, rngs=rngs)  # not annotated: one layer

  def __call__(self, x):
    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def run(x, block):
      return block(x)

    return self.head(run(x, self.blocks))


class Unrolled(nnx.Module):
  def __init__(self, rngs):
    self.blocks = nnx.List([Block(rngs) for _ in range(NUM_LAYERS)])
    self.head = nnx.Linear(WIDTH, 2, rngs=rngs)

  def __call__(self, x):
    for block in self.blocks:
      x = block(x)
    return self.head(x)


def make_scanned(annotate_norm=True):
  # Without a mesh, annotated Variables must not be sharded eagerly.
  with nnx.use_eager_sharding(False):
    return Scanned(nnx.Rngs(0), annotate_norm)


def unrolled_copy(scanned):
  """An unrolled model whose layer i holds slice i of the scanned model's params."""
  with nnx.use_eager_sharding(False):
    unrolled = Unrolled(nnx.Rngs(1))
  stacked = nnx.state(scanned, nnx.Param)
  for i, block in enumerate(unrolled.blocks):
    nnx.update(block, jax.tree.map(lambda a, i=i: a[i], nnx.as_pure(stacked["blocks"])))
  nnx.update(unrolled.head, nnx.as_pure(stacked["head"]))
  return unrolled


def train_nnx(model, tx):
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer, x, y):
    grads = nnx.grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
    optimizer.update(model, grads)

  x, y = data()
  for _ in range(STEPS):
    step(model, optimizer, x, y)
  return optimizer


def assert_nnx_equal_to_unrolled(scanned, unrolled):
  stacked = nnx.as_pure(nnx.state(scanned, nnx.Param))
  for i, block in enumerate(unrolled.blocks):
    jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6),
                 stacked["blocks"], nnx.as_pure(nnx.state(block, nnx.Param)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
               stacked["head"], nnx.as_pure(nnx.state(unrolled.head, nnx.Param)))


def test_nnx_layer_axes_read_from_metadata():
  layer_axes = nvg.layer_axes_from_flax(nnx.state(make_scanned(), nnx.Param), "layers")
  expected = {"blocks": {"dense": {"kernel": 0, "bias": 0}, "norm": {"scale": 0, "bias": 0}},
              "head": {"kernel": None, "bias": None}}
  assert nnx.to_pure_dict(layer_axes) == expected
  # The model itself: its nnx.Param state is read.
  assert nnx.to_pure_dict(nvg.layer_axes_from_flax(make_scanned(), "layers")) == expected


@pytest.mark.parametrize("form", ["from_metadata", "prefix_dict"])
def test_nnx_scanned_trains_like_unrolled(form):
  scanned = make_scanned()
  unrolled = unrolled_copy(scanned)
  if form == "from_metadata":
    layer_axes = nvg.layer_axes_from_flax(nnx.state(scanned, nnx.Param), "layers")
  else:  # a plain dict against nnx.State, both at init (Variables) and update (arrays)
    layer_axes = {"blocks": 0, "head": None}
  optimizer = train_nnx(scanned, nvg.novograd(
      0.05, layer_axes=layer_axes, weight_decay_mask=nvg.decay_mask(layer_axes), **OPTIONS))
  train_nnx(unrolled, nvg.novograd(0.05, weight_decay_mask=unrolled_mask, **OPTIONS))
  nu = nnx.as_pure(optimizer.opt_state)[0].nu.per_layer()
  assert nu["blocks"]["dense"]["kernel"].shape == (NUM_LAYERS,)
  assert nu["head"]["kernel"].shape == ()
  assert_nnx_equal_to_unrolled(scanned, unrolled)


def test_nnx_without_layer_axes_differs_from_unrolled():
  # The comparison above can fail: one norm over the whole stack is not the unrolled model.
  scanned = make_scanned()
  unrolled = unrolled_copy(scanned)
  train_nnx(scanned, nvg.novograd(0.05, weight_decay_mask=unrolled_mask, **OPTIONS))
  train_nnx(unrolled, nvg.novograd(0.05, weight_decay_mask=unrolled_mask, **OPTIONS))
  with pytest.raises(AssertionError):
    assert_nnx_equal_to_unrolled(scanned, unrolled)


def test_nnx_unannotated_leaf_in_stacked_subtree_is_refused():
  state = nnx.state(make_scanned(annotate_norm=False), nnx.Param)
  with pytest.raises(ValueError, match=r"\['blocks'\]\['norm'\]\['bias'\].*Annotate it"):
    nvg.layer_axes_from_flax(state, "layers")


def test_prefix_key_that_matches_nothing_is_named():
  with pytest.raises(ValueError, match=r"the key 'blokcs' .* keys there are 'blocks', 'head'"):
    nnx.Optimizer(make_scanned(), nvg.novograd(0.1, layer_axes={"blokcs": 0, "head": None}),
                  wrt=nnx.Param)
  with pytest.raises(ValueError, match=r"the key 'dens' \(at \['blocks'\]\['dens'\]\)"):
    nnx.Optimizer(make_scanned(), nvg.novograd(
        0.1, layer_axes={"blocks": {"dens": 0, "norm": 0}, "head": None}), wrt=nnx.Param)
  with pytest.raises(ValueError, match=r"no entry covers the params leaf \['head'\]"):
    nnx.Optimizer(make_scanned(), nvg.novograd(0.1, layer_axes={"blocks": 0}),
                  wrt=nnx.Param)


def test_no_metadata_and_bad_axis_name():
  plain = {"w": jnp.ones((3, 2))}
  with pytest.raises(ValueError, match="no parameter names the axis 'layers'"):
    nvg.layer_axes_from_flax(plain, "layers")
  with pytest.raises(ValueError, match=r"annotated ones name \['layers', 'model'\]"):
    nvg.layer_axes_from_flax(nnx.state(make_scanned(), nnx.Param), "stack")
  with pytest.raises(TypeError, match="axis_name must be a string"):
    nvg.layer_axes_from_flax(plain, 0)


def test_string_layer_axes_points_to_the_helper():
  with pytest.raises(TypeError, match="layer_axes_from_flax"):
    nvg.novograd(0.1, layer_axes="layers")


# --- Flax Linen -----------------------------------------------------------------------

def partitioned(init, names):
  return nn.with_partitioning(init, names)


class LinenBlock(nn.Module):
  @nn.compact
  def __call__(self, x, _):
    h = nn.Dense(WIDTH, kernel_init=partitioned(nn.initializers.lecun_normal(),
                                                (None, "model")),
                 bias_init=partitioned(nn.initializers.normal(0.1), ("model",)))(x)
    h = nn.LayerNorm(scale_init=partitioned(nn.initializers.ones, ("model",)),
                     bias_init=partitioned(nn.initializers.zeros, ("model",)))(jnp.tanh(h))
    return x + h, None


class LinenScanned(nn.Module):
  @nn.compact
  def __call__(self, x):
    blocks = nn.scan(LinenBlock, variable_axes={"params": 0}, split_rngs={"params": True},
                     length=NUM_LAYERS, metadata_params={nn.PARTITION_NAME: "layers"})
    x, _ = blocks(name="blocks")(x, None)
    return nn.Dense(2, name="head")(x)


class LinenUnrolled(nn.Module):
  @nn.compact
  def __call__(self, x):
    for i in range(NUM_LAYERS):
      x, _ = LinenBlock(name=f"block_{i}")(x, None)
    return nn.Dense(2, name="head")(x)


def train_linen(model, params, tx):
  x, y = data()
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    grads = jax.grad(lambda p: jnp.mean((model.apply({"params": p}, x) - y) ** 2))(params)
    updates, state = tx.update(grads, state, params)
    return jax.tree.map(lambda p, u: p + u, params, updates), state

  for _ in range(STEPS):
    params, state = step(params, state)
  return params


def test_linen_scanned_trains_like_unrolled():
  x, _ = data()
  boxed = LinenScanned().init(jax.random.key(0), x)["params"]
  layer_axes = nvg.layer_axes_from_flax(boxed, "layers")
  assert layer_axes == {
      "blocks": {"Dense_0": {"kernel": 0, "bias": 0}, "LayerNorm_0": {"scale": 0, "bias": 0}},
      "head": {"kernel": None, "bias": None}}
  params = nn.unbox(boxed)
  unrolled = {f"block_{i}": jax.tree.map(lambda a, i=i: a[i], params["blocks"])
              for i in range(NUM_LAYERS)} | {"head": params["head"]}
  # The unrolled model computes the same function from the sliced params.
  np.testing.assert_allclose(LinenScanned().apply({"params": params}, x),
                             LinenUnrolled().apply({"params": unrolled}, x), rtol=1e-5)

  ours = train_linen(LinenScanned(), params, nvg.novograd(
      0.05, layer_axes=layer_axes, weight_decay_mask=nvg.decay_mask(layer_axes), **OPTIONS))
  expected = train_linen(LinenUnrolled(), unrolled,
                         nvg.novograd(0.05, weight_decay_mask=unrolled_mask, **OPTIONS))
  for i in range(NUM_LAYERS):
    jax.tree.map(lambda a, b, i=i: np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6),
                 ours["blocks"], expected[f"block_{i}"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
               ours["head"], expected["head"])


def test_linen_boxed_params_train_with_the_same_layout():
  # Training on the boxed params themselves: the plain-dict layout is a prefix of them.
  x, _ = data()
  boxed = LinenScanned().init(jax.random.key(0), x)["params"]
  layer_axes = nvg.layer_axes_from_flax(boxed, "layers")
  state = nvg.novograd(0.05, layer_axes=layer_axes).init(boxed)
  assert state[0].nu.per_layer()["blocks"]["Dense_0"]["kernel"].value.shape == (NUM_LAYERS,)


# --- decay_mask -----------------------------------------------------------------------

PARAMS = {"blocks": {"kernel": jnp.ones((4, 8, 8)), "bias": jnp.ones((4, 8)),
                     "scale": jnp.ones((4, 8)), "gate": jnp.ones((4,))},
          "conv": jnp.ones((3, 3, 2, 4)), "embed": jnp.ones((10, 8)),
          "head": {"kernel": jnp.ones((8, 2)), "bias": jnp.ones(2)}}


@pytest.mark.parametrize("layer_axes,min_ndim,expected", [
    # Nothing stacked: the rank of the leaf decides.
    (None, 2, {"blocks": {"kernel": True, "bias": True, "scale": True, "gate": False},
               "conv": True, "embed": True, "head": {"kernel": True, "bias": False}}),
    # Stacked blocks: a (4, 8) bias is four vectors, not a matrix.
    ({"blocks": 0, "conv": None, "embed": None, "head": None}, 2,
     {"blocks": {"kernel": True, "bias": False, "scale": False, "gate": False},
      "conv": True, "embed": True, "head": {"kernel": True, "bias": False}}),
    # Two stacking axes of the conv kernel leave (2, 4) slices; min_ndim=3 spares them.
    ({"blocks": 0, "conv": (0, 1), "embed": None, "head": None}, 3,
     {"blocks": {"kernel": False, "bias": False, "scale": False, "gate": False},
      "conv": False, "embed": False, "head": {"kernel": False, "bias": False}}),
    ({"blocks": 0, "conv": (0, 1), "embed": None, "head": None}, 1,
     {"blocks": {"kernel": True, "bias": True, "scale": True, "gate": False},
      "conv": True, "embed": True, "head": {"kernel": True, "bias": True}}),
])
def test_decay_mask_matches_hand_written(layer_axes, min_ndim, expected):
  assert nvg.decay_mask(layer_axes, min_ndim=min_ndim)(PARAMS) == expected


def test_decay_mask_with_callable_layer_axes():
  all_stacked = lambda params: jax.tree.map(lambda x: 0, params)
  mask = nvg.decay_mask(all_stacked)({"kernel": jnp.ones((4, 8, 8)), "bias": jnp.ones((4, 8))})
  assert mask == {"kernel": True, "bias": False}


@pytest.mark.parametrize("min_ndim,error", [(1.5, TypeError), (True, TypeError),
                                            (-1, ValueError)])
def test_decay_mask_bad_min_ndim(min_ndim, error):
  with pytest.raises(error, match="min_ndim"):
    nvg.decay_mask(None, min_ndim=min_ndim)


def test_decay_mask_bad_layer_axes():
  with pytest.raises(TypeError, match="layer_axes"):
    nvg.decay_mask({"blocks": "layers"})
