"""Every JAX parallelism mode checked against a one-device run (issue 4)."""
