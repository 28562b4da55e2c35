"""The documented submodules show their API and nothing else in ``dir()`` (what tab
completion lists), while every public name stays importable."""

import importlib

import pytest

# Written out by hand: a name added to a module must be added here on purpose.
EXPECTED = {
    "novograd_optax.monitoring": {"LayerwiseStatistics", "flatten_for_logging",
                                  "layerwise_statistics"},
    "novograd_optax.sharding": {"optimizer_state_shardings"},
    "novograd_optax.presets": {"PEERS", "Peer", "apex", "nemo", "openseq2seq", "optax",
                               "tf_addons", "timm", "torch_optimizer"},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dir_lists_only_the_api(name):
  module = importlib.import_module(name)
  assert set(dir(module)) == EXPECTED[name]
  assert set(module.__all__) == EXPECTED[name]
  for attribute in EXPECTED[name]:
    assert getattr(module, attribute) is not None
