"""NovoGrad and its family as composable optax transformations."""

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

__version__ = "0.1.0"

__all__ = [
    "LayerwiseStatistics",
    "LeafLayers",
    "ScaleByLayerwiseNormState",
    "flatten_for_logging",
    "layerwise_statistics",
    "novograd",
    "resolve_layer_axes",
    "scale_by_layerwise_norm",
]
