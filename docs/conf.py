"""Sphinx configuration of the novograd-optax documentation.

Build (from the repository root, warnings are errors):

    pip install -e ".[docs]"
    python -m sphinx -W -b html docs docs/_build/html

The notebook tour is executed during the build with its full settings, so the
published tour shows a full run (about 4 minutes on two CPU cores, measured
2026-12-02); ``NOVOGRAD_TOUR_QUICK=1`` selects its quick settings (about a
minute). Set ``NOVOGRAD_DOCS_EXECUTE=off`` to render it without outputs instead:
the docs test does that, since ``tests/examples/test_notebook.py`` executes the
notebook with its quick settings.
"""

import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

import novograd_optax  # noqa: E402

project = "novograd-optax"
author = "The novograd-optax authors"
copyright = "2026, The novograd-optax authors"
release = novograd_optax.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    # MathJax served from the built site's _static, not a CDN: math renders offline.
    "sphinx-mathjax-offline",
]

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
templates_path = ["_templates"]  # autosummary/class.rst: NamedTuple fields listed once
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# The API reference: one page per public name, from the docstrings.
autosummary_generate = True
autodoc_typehints = "none"  # the Args sections say what each argument accepts
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# "Attributes:" as field lists: NamedTuple fields are documented once, as members.
napoleon_use_ivar = True
add_module_names = False

# The API page (api.md, not tracked) is generated from ``novograd_optax.__all__``
# and the documented submodules, so that a name added to the package cannot be
# missing from the reference. The presets module is documented once it exists.
_API_INTRO = """# API reference

The public API is `novograd_optax.__all__` plus the documented submodules
`novograd_optax.monitoring`, `novograd_optax.sharding` and `novograd_optax.presets`;
everything under `novograd_optax._src` is private. Every page links to its source
(`[source]`), and the docstrings link each formula to its section of {doc}`algorithms`.

"""
_GROUPS = [  # (title, predicate on the object)
    ("Optimizers", lambda obj: obj.__module__ == "novograd_optax._src.alias"),
    ("Transformations", lambda obj: obj.__module__.startswith("novograd_optax._src")
     and not isinstance(obj, type)),
    ("States", lambda obj: obj.__module__.startswith("novograd_optax._src")),
    ("Monitoring: `novograd_optax.monitoring`",
     lambda obj: obj.__module__ == "novograd_optax.monitoring"),
    ("Sharding: `novograd_optax.sharding`",
     lambda obj: obj.__module__ == "novograd_optax.sharding"),
    ("Other", lambda obj: True),
]


def _presets_section() -> str:
  if not (DOCS.parent / "novograd_optax" / "presets.py").exists():
    return "The presets module is not part of this version yet.\n"
  import novograd_optax.presets as presets

  # Module-level data (e.g. the table of peers) has no docstring of its own for
  # autodoc to find: list it explicitly, without its long value.
  data = [n for n in getattr(presets, "__all__", [])
          if not callable(getattr(presets, n)) and not isinstance(getattr(presets, n), type)]
  text = "```{eval-rst}\n.. automodule:: novograd_optax.presets\n   :members:\n"
  if data:
    text += f"   :exclude-members: {', '.join(data)}\n"
  for name in data:
    text += f"\n.. autodata:: novograd_optax.presets.{name}\n   :no-value:\n"
  return text + "```\n"


def _api_lists() -> str:
  remaining = sorted(novograd_optax.__all__)
  parts = []
  for title, belongs in _GROUPS:
    names = [n for n in remaining if belongs(getattr(novograd_optax, n))]
    remaining = [n for n in remaining if n not in names]
    if names:
      entries = "\n".join(f"   {n}" for n in names)
      parts.append(f"## {title}\n\n```{{eval-rst}}\n.. currentmodule:: novograd_optax\n\n.. autosummary::\n   :toctree: _autosummary\n"
                   f"   :nosignatures:\n\n{entries}\n```\n")
  parts.append("## Presets: `novograd_optax.presets`\n\n" + _presets_section())
  return _API_INTRO + "\n".join(parts)


def _write_if_changed(path: pathlib.Path, text: str) -> None:
  # Rewriting an unchanged file would make Sphinx rebuild every page.
  if not path.exists() or path.read_text() != text:
    path.write_text(text)


_write_if_changed(DOCS / "api.md", _api_lists())

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
# Markdown outputs of the notebook (display(Markdown(table))) are parsed as MyST, which
# has tables; the default, CommonMark, shows a table's "|" text.
nb_render_markdown_format = "myst"
myst_heading_anchors = 3

# The notebook runs from its own folder (docs/notebooks links to ../notebooks),
# in a kernel that inherits this environment.
nb_execution_mode = os.environ.get("NOVOGRAD_DOCS_EXECUTE", "force")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
os.environ.setdefault("NOVOGRAD_TOUR_QUICK", "0")  # the site shows the full run
os.environ["XLA_FLAGS"] = ""  # one CPU device is enough for the tour
os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")

html_theme = "sphinx_book_theme"
html_title = "novograd-optax"
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


def _skip_namedtuple_field_aliases(app, what, name, obj, skip, options):
  """A NamedTuple's fields are documented in its docstring's Attributes; the
  generated "Alias for field number N" members would list each a second time."""
  if what == "class" and (getattr(obj, "__doc__", None) or "").startswith(
      "Alias for field number"):
    return True
  return None


def setup(app):
  app.connect("autodoc-skip-member", _skip_namedtuple_field_aliases)
