r"""A character-level Transformer with scanned layers: NovoGrad vs AdamW.

The NovoGrad paper (Ginsburg et al., 2019, §5.3, Figure 4, Table 6) trains
Transformer-XL on WikiText-103 and reports that NovoGrad ends with a higher training
loss but a lower validation loss than Adam: a smaller generalization gap. This example
asks the same question at laptop scale, on English text that ships with Python (the
help topics of ``pydoc_data.topics``, about 465K characters; the first 90% are for
training, the rest validate). By default only the first 60K training characters are used,
so that a few minutes of training reach the regime where the model overfits.

The model is a small pre-norm decoder in Flax NNX whose ``num_layers`` blocks are
created with ``nnx.vmap`` and run with ``nnx.scan``: every parameter of the blocks is
one leaf with a leading layer axis. NovoGrad must then take one norm per layer, not one
per stack: ``novograd(..., layer_axes=stacked_layer_axes)`` marks axis 0 of those leaves.

Both optimizers get the same model, batches, warmup + cosine schedule and decoupled
weight decay on the matrices (not on biases, norms or positions).

Run ``python examples/char_lm.py --help``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm import tqdm

from novograd_optax import novograd


def load_text(validation_fraction: float = 0.1):
  """Train and validation ids of the pydoc topics text, and the alphabet."""
  from pydoc_data.topics import topics

  text = "\n\n".join(topics[key] for key in sorted(topics))
  alphabet = sorted(set(text))
  code_points = np.frombuffer(text.encode("utf-32-le"), np.uint32)
  ids = np.searchsorted(np.array([ord(c) for c in alphabet]), code_points).astype(np.int32)
  split = int(len(ids) * (1 - validation_fraction))
  return ids[:split], ids[split:], alphabet


class Block(nnx.Module):
  """Pre-norm Transformer block: causal self-attention, then a GELU MLP."""

  def __init__(self, width: int, num_heads: int, rngs: nnx.Rngs):
    self.attention_norm = nnx.LayerNorm(width, rngs=rngs)
    self.attention = nnx.MultiHeadAttention(
        num_heads=num_heads, in_features=width, decode=False, rngs=rngs)
    self.mlp_norm = nnx.LayerNorm(width, rngs=rngs)
    self.mlp_in = nnx.Linear(width, 4 * width, rngs=rngs)
    self.mlp_out = nnx.Linear(4 * width, width, rngs=rngs)

  def __call__(self, x, mask):
    x = x + self.attention(self.attention_norm(x), mask=mask)
    return x + self.mlp_out(nnx.gelu(self.mlp_in(self.mlp_norm(x))))


class CharTransformer(nnx.Module):
  """Token + position embeddings, ``num_layers`` scanned blocks, a linear head."""

  def __init__(self, vocab_size: int, width: int, num_heads: int, num_layers: int,
               context: int, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab_size, width, rngs=rngs)
    self.positions = nnx.Param(0.02 * jax.random.normal(rngs.params(), (context, width)))

    @nnx.split_rngs(splits=num_layers)
    @nnx.vmap(in_axes=(0,), out_axes=0)
    def make_blocks(rngs):
      return Block(width, num_heads, rngs)

    self.blocks = make_blocks(rngs)  # every leaf: (num_layers, ...)
    self.final_norm = nnx.LayerNorm(width, rngs=rngs)
    self.head = nnx.Linear(width, vocab_size, rngs=rngs)

  def __call__(self, tokens):
    x = self.embed(tokens) + self.positions[: tokens.shape[-1]]
    mask = nnx.make_causal_mask(tokens)

    @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
    def through_blocks(x, block):
      return block(x, mask)

    return self.head(self.final_norm(through_blocks(x, self.blocks)))


def stacked_layer_axes(params):
  """``layer_axes`` for NovoGrad: axis 0 indexes layers in the scanned blocks."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: 0 if jax.tree_util.keystr(path).startswith("['blocks']") else None,
      params)


def decay_mask(params):
  """Weight decay on the matrices (kernels, embeddings) only."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(k in jax.tree_util.keystr(path) for k in ("kernel", "embedding")),
      params)


def make_optimizer(name: str, peak_lr: float, weight_decay: float, steps: int, warmup: int):
  schedule = optax.warmup_cosine_decay_schedule(0.0, peak_lr, warmup, steps)
  if name == "novograd":
    return novograd(schedule, b1=0.95, b2=0.98, weight_decay=weight_decay,
                    weight_decay_mask=decay_mask, grad_averaging=True,
                    layer_axes=stacked_layer_axes)
  if name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=0.98, weight_decay=weight_decay, mask=decay_mask)
  raise ValueError(f"optimizer must be 'novograd' or 'adamw'; got {name!r}.")


def cross_entropy(graphdef, params, rest, batch):
  model = nnx.merge(graphdef, params, rest)
  logits = model(batch[:, :-1])
  return optax.softmax_cross_entropy_with_integer_labels(logits, batch[:, 1:]).mean()


def random_crops(ids, rng, batch_size, length):
  starts = rng.integers(0, len(ids) - length - 1, size=batch_size)
  return jnp.asarray(np.stack([ids[s:s + length + 1] for s in starts]))


def train(name: str, args, train_ids, valid_ids, vocab_size: int, progress: bool = True):
  """Trains one model; returns the loss curves (nats per character)."""
  model = CharTransformer(vocab_size, args.width, args.num_heads, args.num_layers,
                          args.context, nnx.Rngs(args.seed))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  lr = args.novograd_lr if name == "novograd" else args.adamw_lr
  optimizer = make_optimizer(name, lr, args.weight_decay, args.steps, args.warmup)
  opt_state = optimizer.init(params)

  @jax.jit
  def train_step(params, opt_state, batch):
    loss, grads = jax.value_and_grad(cross_entropy, argnums=1)(graphdef, params, rest, batch)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  evaluate = jax.jit(lambda params, batches: cross_entropy(
      graphdef, params, rest, batches.reshape(-1, batches.shape[-1])))
  # Fixed evaluation batches: the same crops for every optimizer and every evaluation.
  eval_rng = np.random.default_rng(1234)
  eval_train = jnp.stack([random_crops(train_ids, eval_rng, args.batch_size, args.context)
                          for _ in range(args.eval_batches)])
  eval_valid = jnp.stack([random_crops(valid_ids, eval_rng, args.batch_size, args.context)
                          for _ in range(args.eval_batches)])
  rng = np.random.default_rng(args.seed)  # same training batches for every optimizer
  curves = {"step": [], "train": [], "valid": []}
  start = time.perf_counter()
  for step in tqdm(range(1, args.steps + 1), desc=name, disable=not progress):
    batch = random_crops(train_ids, rng, args.batch_size, args.context)
    params, opt_state, _ = train_step(params, opt_state, batch)
    if step % args.eval_every == 0 or step == args.steps or step == 1:
      curves["step"].append(step)
      curves["train"].append(float(evaluate(params, eval_train)))
      curves["valid"].append(float(evaluate(params, eval_valid)))
  curves["seconds"] = time.perf_counter() - start
  curves["initial"] = float(np.log(vocab_size))
  return curves


def plot_curves(results: dict, path=None):
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(6, 4))
  for (name, curves), color in zip(results.items(), ("C0", "C1"), strict=False):
    ax.plot(curves["step"], curves["train"], color=color, ls="--", label=f"{name} train")
    ax.plot(curves["step"], curves["valid"], color=color, label=f"{name} validation")
  ax.set_xlabel("step")
  ax.set_ylabel("cross-entropy (nats / character)")
  ax.set_ylim(top=min(4.0, ax.get_ylim()[1]))
  ax.legend()
  ax.set_title("Character-level Transformer on pydoc topics")
  fig.tight_layout()
  if path is not None:
    fig.savefig(path, dpi=90)
  return fig


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--warmup", type=int, default=40)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--train-chars", type=int, default=60_000,
                      help="train on the first N characters only (0: all ~419K), so that"
                           " the model can overfit and the train/validation gap shows")
  parser.add_argument("--context", type=int, default=64, help="characters per sequence")
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--num-heads", type=int, default=4)
  parser.add_argument("--num-layers", type=int, default=4)
  parser.add_argument("--novograd-lr", type=float, default=0.2)
  parser.add_argument("--adamw-lr", type=float, default=3e-3)
  parser.add_argument("--weight-decay", type=float, default=0.01)
  parser.add_argument("--eval-every", type=int, default=50)
  parser.add_argument("--eval-batches", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out-dir", default=os.path.join("outputs", "char_lm"))
  parser.add_argument("--no-plots", action="store_true")
  parser.add_argument("--quick", action="store_true", help="a tiny run in seconds (for tests)")
  args = parser.parse_args(argv)
  if args.quick:
    args.steps, args.warmup, args.width, args.num_layers = 30, 5, 32, 2
    args.batch_size, args.context, args.eval_every, args.eval_batches = 16, 32, 15, 2
  return args


def main(argv=None) -> dict:
  args = parse_args(argv)
  train_ids, valid_ids, alphabet = load_text()
  if args.train_chars:
    train_ids = train_ids[:args.train_chars]
  print(f"{len(train_ids)} training and {len(valid_ids)} validation characters,"
        f" {len(alphabet)} symbols")
  results = {name: train(name, args, train_ids, valid_ids, len(alphabet))
             for name in ("novograd", "adamw")}
  print(f"\nAfter {args.steps} steps of {args.batch_size} x {args.context} characters"
        f" ({args.num_layers} scanned layers of width {args.width}); nats per character")
  print("| optimizer | peak lr | train loss | validation loss | gap (valid - train) | seconds |")
  print("|---|---|---|---|---|---|")
  for name, curves in results.items():
    lr = args.novograd_lr if name == "novograd" else args.adamw_lr
    print(f"| {name} | {lr:g} | {curves['train'][-1]:.3f} | {curves['valid'][-1]:.3f} |"
          f" {curves['valid'][-1] - curves['train'][-1]:+.3f} | {curves['seconds']:.0f} |")
  if not args.no_plots:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(args.out_dir, exist_ok=True)
    plt.close(plot_curves(results, os.path.join(args.out_dir, "char_lm_curves.png")))
  return results


if __name__ == "__main__":
  main(sys.argv[1:])
