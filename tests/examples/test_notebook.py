"""notebooks/novograd_tour.ipynb runs end to end (small settings) and stays stripped."""

import pathlib

import nbclient
import nbformat

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "novograd_tour.ipynb"


def test_committed_notebook_has_no_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


def test_notebook_runs_end_to_end(monkeypatch):
  # The kernel inherits the environment: small grids, one CPU device, no GUI backend.
  monkeypatch.setenv("NOVOGRAD_TOUR_QUICK", "1")
  monkeypatch.setenv("XLA_FLAGS", "")
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(
      notebook, timeout=300, kernel_name="python3",
      resources={"metadata": {"path": str(NOTEBOOK.parent)}})
  client.execute()

  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  # 4 scenario figures, the robustness heatmaps and the MNIST-1D plot.
  assert len(images) >= 6, len(images)
  text = "\n".join(
      o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
  assert "quick settings" in text
  assert "flat (-1,-1)" in text and "Test accuracy" in text
