"""Suite-wide set-up. Eight fake CPU devices must be requested before jax is
imported anywhere, so that the distributed tests can build meshes on CPU."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
