"""Suite-wide set-up. Eight fake CPU devices must be requested before jax is
imported anywhere, so that the distributed tests can build meshes on CPU."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402  (after the environment, before any test imports jax)


def pytest_configure(config):
  config.addinivalue_line(
      "markers",
      "requires_devices(n): the test builds a mesh or pmap over n devices; skipped, with"
      " the reason, where jax.device_count() < n (e.g. a one-GPU machine)")


def pytest_runtest_setup(item):
  marker = item.get_closest_marker("requires_devices")
  if marker is None:
    return
  import jax

  needed = marker.args[0]
  if jax.device_count() < needed:
    pytest.skip(
        f"needs {needed} devices, {jax.default_backend()} has {jax.device_count()};"
        " run with JAX_PLATFORMS=cpu"
        f" XLA_FLAGS=--xla_force_host_platform_device_count={needed} to get them")
