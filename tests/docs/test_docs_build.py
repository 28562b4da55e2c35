"""The documentation builds with warnings as errors, and its API reference covers
every public name.

The notebook tour is rendered without executing it here
(``NOVOGRAD_DOCS_EXECUTE=off``): ``tests/examples/test_notebook.py`` already
executes it, and the documented build command (``python -m sphinx -W -b html docs
docs/_build/html``) executes it with its quick settings.
"""

import importlib
import os
import pathlib
import re
import subprocess
import sys

import novograd_optax

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUBMODULES = ["monitoring", "sharding", "presets"]


def build_html(out: pathlib.Path) -> pathlib.Path:
  env = dict(os.environ, NOVOGRAD_DOCS_EXECUTE="off", JAX_PLATFORMS="cpu")
  result = subprocess.run(
      [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
       "-d", str(out / "doctrees"), "docs", str(out / "html")],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-5000:]
  return out / "html"


def test_docs_build(tmp_path):
  # One test for the build and its checks: pytest-xdist could otherwise run a shared
  # fixture, i.e. the whole build, once per worker.
  html = build_html(tmp_path)
  check_every_public_name_is_documented_with_a_source_link(html)
  check_pages_and_navigation_are_built(html)
  check_named_tuples_and_data_are_documented_once(html)
  check_math_renders_offline(html)


def public_names() -> list[str]:
  """``novograd_optax.X`` for X in ``__all__``, and ``novograd_optax.<sub>.X`` for
  the public names defined in each documented submodule."""
  names = [f"novograd_optax.{name}" for name in novograd_optax.__all__]
  for sub in SUBMODULES:
    try:
      module = importlib.import_module(f"novograd_optax.{sub}")
    except ImportError:
      continue  # not part of this version yet
    exported = getattr(module, "__all__", None) or [
        n for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__]
    names += [f"novograd_optax.{sub}.{n}" for n in exported
              if f"novograd_optax.{n}" not in names]
  return names


def check_every_public_name_is_documented_with_a_source_link(html):
  ids = set()
  for page in html.rglob("*.html"):
    ids.update(re.findall(r'<dt class="sig sig-object py" id="([^"]+)"', page.read_text()))
  missing = [name for name in public_names() if name not in ids]
  assert not missing, missing
  page = (html / "_autosummary" / "novograd_optax.novograd.html").read_text()
  assert "_modules/novograd_optax/_src/alias.html#novograd" in page


def check_pages_and_navigation_are_built(html):
  for page in ["index", "algorithms", "optimizers", "layer_axes", "scaling", "monitoring",
               "checkpointing", "migration", "experiments", "performance", "reliability",
               "api", "changelog", "notebooks/novograd_tour"]:
    assert (html / f"{page}.html").exists(), page
  index = (html / "index.html").read_text()
  assert 'href="algorithms.html"' in index and 'href="api.html"' in index


def check_named_tuples_and_data_are_documented_once(html):
  # A NamedTuple's fields: once, from its docstring; not again as "Alias for field
  # number N" members, and without tuple's own count() and index() methods.
  page = (html / "_autosummary" / "novograd_optax.ScaleByLayerwiseNormState.html").read_text()
  assert "Alias for field number" not in page
  assert page.count('<strong>nu_max</strong>') == 1, page.count('<strong>nu_max</strong>')
  assert "ScaleByLayerwiseNormState.index" not in page
  for state in html.glob("_autosummary/*State.html"):
    assert "Alias for field number" not in state.read_text(), state.name
  # Module data has its own docstring, not the one of its type (tuple's).
  api = (html / "api.html").read_text()
  assert "Built-in immutable sequence" not in api
  assert "Every peer implementation this module reproduces" in api


def check_math_renders_offline(html):
  """The algorithm page loads MathJax from the site itself, never from a CDN."""
  page = (html / "algorithms.html").read_text()
  scripts = re.findall(r'<script[^>]*src="([^"]*mathjax[^"]*)"', page, flags=re.IGNORECASE)
  assert scripts, "the algorithm page loads no MathJax"
  for src in scripts:
    assert not src.startswith(("http:", "https:", "//")), src
    assert (html / src.split("?")[0]).exists(), src
