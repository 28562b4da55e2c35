"""Hand-made bugs: realistic mistakes in the math, each applied alone to a copy of
the package, with the module's tests (the selection of ``run_mutations.py``) run on it.

mutmut's mutants are mechanical (an operator, a constant); these are the bugs a person
porting an optimizer makes: an epsilon inside the root, a step count off by one, a
chain in the wrong order, a norm taken of the wrong tensor. Each entry names its file,
the exact text it replaces (it must occur exactly once, which
``tests/mutation/test_hand_bugs.py`` checks on every run of the suite, so the catalogue
follows the code) and what a user would see. The docs' reliability page lists the
results.

Usage (from the repository root)::

    python tests/mutation/hand_bugs.py              # every bug
    python tests/mutation/hand_bugs.py --list
    python tests/mutation/hand_bugs.py 3 17         # some of them, by number

Exit status 1 if a bug survives (no selected test fails on it) or the unmutated copy
fails its tests.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mutation"))
from run_mutations import TESTS, copy_checkout  # noqa: E402  (the same selection and copy)


@dataclasses.dataclass(frozen=True)
class Bug:
  module: str  # novograd_optax/_src/<module>.py
  description: str
  edits: tuple[tuple[str, str], ...]  # (original text, buggy text), each applied once
  tests_of: str = ""  # whose test selection runs, if not the module's own

  @property
  def tests(self) -> list[str]:
    return TESTS[self.tests_of or self.module]


def bug(module: str, description: str, *edits: tuple[str, str], tests_of: str = "") -> Bug:
  return Bug(module, description, edits, tests_of)


BUGS = [
    # NovoGrad's layer-wise moment (eq. 1 of the NovoGrad paper, Algorithm 1).
    bug("layerwise_norm", "eps inside the square root",
        ("jnp.sqrt(moment + eps_root) + eps", "jnp.sqrt(moment + eps_root + eps)")),
    bug("layerwise_norm", "first-step initialization on the second step (count off by one)",
        ("jnp.where(count == 1, 0.0, b2)", "jnp.where(count == 2, 0.0, b2)")),
    bug("layerwise_norm", "b2 and 1 - b2 swapped in the moving average",
        ("d * previous + (1 - d) * squared", "(1 - d) * previous + d * squared")),
    bug("layerwise_norm", "an overflowed (inf) moment is not restarted",
        ("restart = jnp.isposinf(previous)\n", "restart = jnp.isnan(previous)\n")),
    bug("layerwise_norm", "AMSGrad maximum taken with the previous moment, not its maximum",
        ("jnp.maximum(previous_max, new)", "jnp.maximum(previous, new)")),
    bug("layers", "L-inf norm all-reduced with psum instead of pmax",
        ("return jax.lax.pmax(per_layer, axis_name)",
         "return jax.lax.psum(per_layer, axis_name)")),
    bug("layerwise_norm", "nu_init='first_nonzero' never restarts at a zero moment",
        ("restart = restart | (previous == 0)", "restart = restart | (previous < 0)")),
    bug("layerwise_norm", "the update not cast back to the gradient's dtype",
        ("return (g.astype(compute) * inverse).astype(g.dtype)",
         "return g.astype(compute) * inverse")),
    bug("layers", "a negative layer axis not normalized (layer_axes=-1)",
        ("normalized.append(axis % ndim)", "normalized.append(axis)")),
    bug("layers", "a complex layer's norm from its real part only",
        ("jnp.square(g.real.astype(acc)) + jnp.square(g.imag.astype(acc))",
         "jnp.square(g.real.astype(acc))")),
    bug("layers", "an fp16 gradient squared before the upcast (overflows above 256)",
        ("return jnp.square(g.astype(acc))", "return jnp.square(g).astype(acc)")),
    # SNGM (normalized gradient with momentum).
    bug("global_norm", "divided by the squared norm",
        ("norm = jnp.sqrt(global_squared_norm(updates, axis_name))",
         "norm = global_squared_norm(updates, axis_name)")),
    bug("global_norm", "eps inside the square root",
        ("norm = jnp.sqrt(global_squared_norm(updates, axis_name))",
         "norm = jnp.sqrt(global_squared_norm(updates, axis_name) + eps)")),
    bug("alias", "SNGM: weight decay added after the normalization",
        ("      optax.identity() if validation.is_static_zero(weight_decay)\n"
         "      else add_decayed_weights_requiring_params(weight_decay, weight_decay_mask,"
         " who=\"sngm\"),\n"
         "      normalize_by_global_norm(eps, axis_name=axis_name),\n",
         "      normalize_by_global_norm(eps, axis_name=axis_name),\n"
         "      optax.identity() if validation.is_static_zero(weight_decay)\n"
         "      else add_decayed_weights_requiring_params(weight_decay, weight_decay_mask,"
         " who=\"sngm\"),\n")),
    # Layer-wise trust ratio (LARS/LARC, NovoGrad's LUC).
    bug("trust_ratio", "clip mode without the cap at 1",
        ("factor = jnp.minimum(jnp.maximum(ratio, min_ratio), 1.0)",
         "factor = jnp.maximum(ratio, min_ratio)")),
    bug("trust_ratio", "scale mode ignores min_ratio",
        ("factor = jnp.maximum(local, min_ratio)", "factor = local")),
    bug("trust_ratio", "skip_zero_norms skips only layers where both norms are zero",
        ("(w_norm == 0) | (x_norm == 0)", "(w_norm == 0) & (x_norm == 0)")),
    bug("trust_ratio", "weight decay in the ratio but not added to the update",
        ("decayed = x.astype(compute) + decay * w.astype(compute)",
         "decayed = x.astype(compute)")),
    bug("trust_ratio", "weight norm taken of the update (copy-paste)",
        ("w_norm = jnp.sqrt(layers_lib.layer_squared_norms(w, lay",
         "w_norm = jnp.sqrt(layers_lib.layer_squared_norms(x, lay")),
    bug("trust_ratio", "learning-rate schedule read one step ahead",
        ("lr = learning_rate(state.count) if", "lr = learning_rate(state.count + 1) if")),
    # AdamP/SGDP projection.
    bug("projection", "cosine's norms get eps added instead of floored at eps",
        ("w_norm = jnp.maximum(jnp.sqrt(_real_inner(w32, w32, rows)), eps)",
         "w_norm = jnp.sqrt(_real_inner(w32, w32, rows)) + eps")),
    bug("projection", "wd_ratio applied only when the per-channel view fires",
        ("jnp.where(jnp.logical_or(by_channel, by_layer), wd_ratio, 1.0)",
         "jnp.where(by_channel, wd_ratio, 1.0)")),
    bug("projection", "the gradient's radial part removed from the step",
        ("w_hat * _real_inner(w_hat, p32, rows", "w_hat * _real_inner(w_hat, g32, rows")),
    bug("projection", "biases (1-D leaves) projected too",
        ("if w.ndim <= 1 or w.size == 0:", "if w.ndim < 1 or w.size == 0:")),
    bug("projection", "weight decay of the unscaled weights (wd_ratio dropped)",
        ("lambda w, f: (w * f).astype(w.dtype)", "lambda w, f: w")),
    # The optimizers' chains.
    bug("alias", "NovoGrad: decay placement inverted (decay_inside_moment ignored)",
        ("if decay_inside_moment\n", "if not decay_inside_moment\n")),
    bug("alias", "NovoGrad: grad_averaging inverted",
        ("  if grad_averaging:\n", "  if not grad_averaging:\n")),
    bug("alias", "NovoGrad LUC: trust ratio without the learning rate it is scaled by",
        ("trust_coefficient, learning_rate, eps=1e-8", "trust_coefficient, 1.0, eps=1e-8")),
    bug("alias", "AdamP Nesterov: the lookahead without 1 - b1",
        ("b1 * m + (1 - b1) * g", "b1 * m + g")),
    bug("alias", "AdamP Nesterov: nu debiased with b1",
        ("nu_hat = optax.tree.bias_correction(nu, b2, count)",
         "nu_hat = optax.tree.bias_correction(nu, b1, count)")),
    bug("alias", "SGDP: decay not divided by 1 - momentum",
        ("    decay = weight_decay / (1.0 - momentum)\n", "    decay = weight_decay\n")),
    bug("alias", "SGDP: scaled by dampening instead of 1 - dampening",
        ("optax.scale(1.0 - dampening)", "optax.scale(dampening)")),
    bug("alias", "SGDP: the Nesterov step written into the momentum buffer",
        ("if project_momentum and not nesterov else None", "if project_momentum else None")),
    # A second batch (2026-12-02).
    bug("layer_moments", "a leaf's moment read back from the slot of another leaf",
        ("      for i, piece in zip(indices, split(vector,",
         "      for i, piece in zip(indices[::-1], split(vector,")),
    bug("layerwise_norm", "eps_root dropped",
        ("jnp.sqrt(moment + eps_root) + eps", "jnp.sqrt(moment) + eps")),
    bug("layerwise_norm", "the step count not incremented (every step is the first)",
        ("count=count, nu=", "count=state.count, nu=")),
    bug("layers", "stacked layers share one norm (the layer axes reduced too)",
        ("reduce = tuple(a for a in range(ndim) if a not in layer)",
         "reduce = tuple(range(ndim))")),
    bug("alias", "NovoGrad: weight decay before the normalization",
        ("      scale_by_layerwise_norm(\n"
         "          b2, eps, eps_root, norm=norm, nu_init=nu_init, amsgrad=amsgrad,\n"
         "          layer_axes=layer_axes, axis_name=axis_name),\n"
         "      *((weight_decay_step, momentum) if decay_inside_moment\n"
         "        else (momentum, weight_decay_step)),\n",
         "      weight_decay_step,\n"
         "      scale_by_layerwise_norm(\n"
         "          b2, eps, eps_root, norm=norm, nu_init=nu_init, amsgrad=amsgrad,\n"
         "          layer_axes=layer_axes, axis_name=axis_name),\n"
         "      momentum,\n")),
    bug("wrappers", "NovoGrad: weight_decay_mask ignored",
        ("optax.add_decayed_weights(weight_decay, mask)",
         "optax.add_decayed_weights(weight_decay)"),
        tests_of="alias"),
    bug("alias", "SNGM: an EMA of the normalized gradients instead of heavy-ball momentum",
        ("      optax.trace(momentum),\n      optax.scale_by_learning_rate(learning_rate),\n  ))",
         "      optax.ema(momentum),\n      optax.scale_by_learning_rate(learning_rate),\n  ))")),
    bug("trust_ratio", "eps dropped from the ratio's denominator",
        ("(x_norm + decay * w_norm + eps)", "(x_norm + decay * w_norm)")),
    bug("trust_ratio", "the step count not incremented (a schedule stays at step 0)",
        ("ClipByLayerwiseTrustRatioState(optax.safe_increment(state.count))",
         "ClipByLayerwiseTrustRatioState(state.count)")),
    bug("projection", "channel_axis defaults to PyTorch's output axis 0",
        ("  if channel_axis is None:\n    channel_axis = -1",
         "  if channel_axis is None:\n    channel_axis = 0")),
    bug("projection", "cosine taken with the step instead of the gradient",
        ("dot = _real_inner(w32, g32, rows)", "dot = _real_inner(w32, p32, rows)"),
        ("g_norm = jnp.maximum(jnp.sqrt(_real_inner(g32, g32, rows)), eps)",
         "g_norm = jnp.maximum(jnp.sqrt(_real_inner(p32, p32, rows)), eps)")),
    bug("projection", "the weight direction not normalized",
        ("w_hat = w32 / jnp.where(denominator == 0, 1, denominator)", "w_hat = w32")),
    bug("projection", "wd_ratio applied to the unprojected leaves instead",
        ("jnp.where(jnp.logical_or(by_channel, by_layer), wd_ratio, 1.0)",
         "jnp.where(jnp.logical_or(by_channel, by_layer), 1.0, wd_ratio)")),
    bug("alias", "SGDP: Nesterov ignored",
        ("optax.trace(momentum, nesterov=nesterov)", "optax.trace(momentum)")),
    bug("alias", "AdamP: b1 and b2 swapped",
        ("optax.scale_by_adam(b1, b2, eps, mu_dtype=mu_dtype, nesterov=nesterov)",
         "optax.scale_by_adam(b2, b1, eps, mu_dtype=mu_dtype, nesterov=nesterov)")),
    # A third batch (issue 23: complex weights, 16-bit gradients).
    bug("projection", "complex inner product without the conjugate",
        ("product = jnp.real(a) * jnp.real(b) + jnp.imag(a) * jnp.imag(b)",
         "product = jnp.real(a * b)")),
    bug("projection", "complex rows counted as one coordinate per entry in the threshold",
        ("coordinates_per_entry = 2 if", "coordinates_per_entry = 1 if")),
    bug("global_norm", "a float16 tree divided by its norm in float16 (inf above 65504)",
        ("compute = jnp.promote_types(g.dtype, norm.dtype)", "compute = g.dtype")),
    bug("wrappers", "16-bit params' moments created in 16 bits",
        ("return inner.init(_at_least_float32(params))", "return inner.init(params)"),
        tests_of="alias"),
    # A fourth batch (2026-12-02, issue 21): the stacked layout (layer_layout.stacked) and
    # the moments stored as one vector per dtype (layer_moments).
    bug("layer_layout", "AMSGrad: normalized by the moment, not its running maximum",
        ("reciprocal(new[-1])", "reciprocal(new[0])")),
    bug("layer_layout", "stacked values split back in the wrong order",
        ("for i, piece in zip(indices, pieces, strict=True):",
         "for i, piece in zip(indices[::-1], pieces, strict=True):")),
    bug("layer_moments", "float32 and float64 moments stored together (one cast)",
        ("      name = jnp.dtype(leaf.dtype).name\n", "      name = \"float32\"\n")),
    # A fifth batch (2026-12-03, issue 21; rewritten for the grouped norms on 2026-12-03):
    # the norms reduced per platform (layer_norms).
    bug("layer_norms", "the GPU's norms (stacked leaves grouped) lowered for the CPU and TPU",
        ('"cuda": grouped, "rocm": grouped,',
         '"cuda": grouped_stacked_alone, "rocm": grouped_stacked_alone,'),
        ('"default": grouped_stacked_alone}', '"default": grouped}')),
    bug("layer_norms", "grouped norms: a group's results handed to its members in reverse",
        ("for i, r in zip(chunk, reduced, strict=True):",
         "for i, r in zip(chunk[::-1], reduced, strict=True):")),
    bug("layer_norms", "grouped norms: the L-inf maxima of a group summed instead",
        ('combine = jnp.add if norm == "l2" else jnp.maximum', "combine = jnp.add")),
]


def source(module: str, root: pathlib.Path = ROOT) -> pathlib.Path:
  return root / "novograd_optax" / "_src" / f"{module}.py"


def apply(b: Bug, text: str) -> str:
  """The module's text with the bug; refuses an edit whose original is not there once."""
  for original, buggy in b.edits:
    count = text.count(original)
    if count != 1:
      raise ValueError(
          f"hand bug {b.description!r}: {original!r} occurs {count} times in"
          f" {b.module}.py, not once; update the catalogue to the code.")
    text = text.replace(original, buggy)
  return text


def copy_env(workdir: pathlib.Path) -> dict[str, str]:
  """The environment of a process that imports the copy: PYTHONPATH puts it before
  the editable install of the checkout."""
  return {**os.environ, "PYTHONPATH": str(workdir)}


def first_failure(workdir: pathlib.Path, tests: list[str]) -> str | None:
  """The first failing test of the selection in the copy (pytest -x), or None."""
  command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
             "-n", "2", *tests]
  run = subprocess.run(command, cwd=workdir, env=copy_env(workdir), capture_output=True,
                       text=True)
  if run.returncode == 0:
    return None
  failed = [line.split()[1] for line in run.stdout.splitlines() if line.startswith("FAILED ")]
  return failed[0] if failed else f"pytest exit status {run.returncode}"


def check_copy_is_imported(workdir: pathlib.Path) -> None:
  where = subprocess.run(
      [sys.executable, "-c", "import novograd_optax; print(novograd_optax.__file__)"],
      cwd=workdir, env=copy_env(workdir), capture_output=True, text=True, check=True).stdout
  if not pathlib.Path(where.strip()).is_relative_to(workdir):
    raise RuntimeError(f"the tests would import {where.strip()}, not the mutated copy")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("numbers", nargs="*", type=int, help="bugs to run (default: all)")
  parser.add_argument("--list", action="store_true")
  args = parser.parse_args()
  chosen = args.numbers or range(1, len(BUGS) + 1)
  if args.list:
    for n in chosen:
      print(f"{n:2d} {BUGS[n - 1].module}: {BUGS[n - 1].description}")
    return 0
  survived = []
  with tempfile.TemporaryDirectory(prefix="hand-bugs-") as tmp:
    workdir = pathlib.Path(tmp)
    copy_checkout(workdir)
    check_copy_is_imported(workdir)
    for tests in sorted({tuple(BUGS[n - 1].tests) for n in chosen}):
      failure = first_failure(workdir, list(tests))
      if failure:
        print(f"the unmutated copy fails {failure}; fix that first")
        return 1
    for n in chosen:
      b = BUGS[n - 1]
      path = source(b.module, workdir)
      original = path.read_text()
      path.write_text(apply(b, original))
      start = time.perf_counter()
      try:
        failure = first_failure(workdir, b.tests)
      finally:
        path.write_text(original)
      if failure is None:
        survived.append(n)
      print(f"{n:2d} {'caught  ' if failure else 'SURVIVED'} {time.perf_counter() - start:5.0f} s"
            f"  {b.module}: {b.description}" + (f"  [{failure}]" if failure else ""), flush=True)
  print(f"{len(chosen) - len(survived)} of {len(chosen)} caught"
        + (f"; survived: {survived}" if survived else ""))
  return 1 if survived else 0


if __name__ == "__main__":
  sys.exit(main())
