"""NovoGrad and its family as composable optax transformations."""

from novograd_optax.adamp import adamp
from novograd_optax.layer_axes import LeafLayers, resolve_layer_axes
from novograd_optax.layerwise_norm import (
    ScaleByLayerwiseNormState,
    scale_by_layerwise_norm,
)
from novograd_optax.monitoring import (
    LayerwiseStatistics,
    flatten_for_logging,
    layerwise_statistics,
)
from novograd_optax.novograd import novograd
from novograd_optax.scale_invariant_projection import (
    ProjectScaleInvariantState,
    project_scale_invariant,
)
from novograd_optax.sgdp import sgdp
from novograd_optax.sharding import optimizer_state_shardings
from novograd_optax.sngm import normalize_by_global_norm, sngm
from novograd_optax.update_clipping import (
    ClipByLayerwiseTrustRatioState,
    clip_by_layerwise_trust_ratio,
)

__version__ = "0.1.0"

__all__ = [
    "ClipByLayerwiseTrustRatioState",
    "LayerwiseStatistics",
    "LeafLayers",
    "ProjectScaleInvariantState",
    "ScaleByLayerwiseNormState",
    "adamp",
    "clip_by_layerwise_trust_ratio",
    "flatten_for_logging",
    "layerwise_statistics",
    "normalize_by_global_norm",
    "novograd",
    "optimizer_state_shardings",
    "project_scale_invariant",
    "resolve_layer_axes",
    "scale_by_layerwise_norm",
    "sgdp",
    "sngm",
]
