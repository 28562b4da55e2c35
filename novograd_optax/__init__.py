"""NovoGrad and its family as composable optax transformations.

Where code lives, one rule:

* ``novograd_optax`` (this module) exports the public API, and the documented
  submodules :mod:`novograd_optax.monitoring`, :mod:`novograd_optax.sharding` and
  :mod:`novograd_optax.presets` add to it; nothing else is public.
* ``_src/alias.py``: the aliases users call (:func:`novograd`, :func:`sngm`,
  :func:`adamp`, :func:`sgdp`), each a short chain.
* ``_src/<transformation>.py``: the new math, one transformation and its state per
  module (``layerwise_norm``, ``norm_average``, ``global_norm``, ``trust_ratio``,
  ``projection``).
* ``_src/layers.py``, ``_src/layer_moments.py``, ``_src/layer_layout.py``,
  ``_src/wrappers.py``, ``_src/validation.py``: what they share (what a layer is and its
  norm; how per-layer moments are stored and updated, one vector per dtype; wrappers that
  change no math; argument checks).
* ``_src/flax_metadata.py``: layer layouts read from Flax's partitioning metadata
  (Flax stays optional: nothing here imports it).
"""

from novograd_optax import presets  # noqa: F401  (a documented submodule)
from novograd_optax._src.alias import adamp, novograd, sgdp, sngm
from novograd_optax._src.flax_metadata import layer_axes_from_flax
from novograd_optax._src.global_norm import normalize_by_global_norm
from novograd_optax._src.layer_moments import LayerMoments
from novograd_optax._src.layers import decay_mask
from novograd_optax._src.layerwise_norm import (
    ScaleByLayerwiseNormState,
    scale_by_layerwise_norm,
)
from novograd_optax._src.norm_average import (
    NormalizeByNormAverageState,
    normalize_by_norm_average,
)
from novograd_optax._src.projection import (
    ProjectScaleInvariantState,
    project_scale_invariant,
)
from novograd_optax._src.trust_ratio import (
    ClipByLayerwiseTrustRatioState,
    clip_by_layerwise_trust_ratio,
)
from novograd_optax.monitoring import (
    LayerwiseStatistics,
    flatten_for_logging,
    layerwise_statistics,
)
from novograd_optax.sharding import optimizer_state_shardings

__version__ = "0.2.0"

__all__ = [
    "ClipByLayerwiseTrustRatioState",
    "LayerMoments",
    "LayerwiseStatistics",
    "NormalizeByNormAverageState",
    "ProjectScaleInvariantState",
    "ScaleByLayerwiseNormState",
    "adamp",
    "clip_by_layerwise_trust_ratio",
    "decay_mask",
    "flatten_for_logging",
    "layer_axes_from_flax",
    "layerwise_statistics",
    "normalize_by_global_norm",
    "normalize_by_norm_average",
    "novograd",
    "optimizer_state_shardings",
    "project_scale_invariant",
    "scale_by_layerwise_norm",
    "sgdp",
    "sngm",
]
