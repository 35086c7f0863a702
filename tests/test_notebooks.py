"""The notebooks are stored without outputs and run from top to bottom."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def execute(path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    return nb


def test_there_are_two_notebooks_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_explore_simulated_data.ipynb", "02_registered_model_evaluation.ipynb"]
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


def test_the_exploration_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    nb = execute(ROOT / "notebooks" / "01_explore_simulated_data.ipynb")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "1,000 customers" in text and "percentage method at 80 %" in text


def test_the_model_notebook_shows_the_champion(trained_store, monkeypatch, tmp_path):
    uri, outcome = trained_store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.delenv("MODEL_VERSION", raising=False)
    nb = execute(ROOT / "notebooks" / "02_registered_model_evaluation.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert f"credit-approval version 1 ({outcome.kind})" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3


@pytest.fixture(autouse=True)
def _kernel_needs_ipykernel():
    pytest.importorskip("ipykernel")
