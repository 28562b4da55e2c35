"""Private implementation of novograd_optax; import from the package instead."""
