"""Test suite of novograd_optax (a package, so tests can share `tests.reference`)."""
