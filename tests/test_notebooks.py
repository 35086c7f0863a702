"""The notebooks are stored without outputs, run from top to bottom, and say what they show."""
from __future__ import annotations

import json
import re
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


# A number the prose quotes, followed by the name of the claim it shows: 0.828 (`auc_last_year`), 70.8 % (`x`).
QUOTED = re.compile(r"(\d[\d,]*(?:\.\d+)?)( %)? \(`(\w+)`\)")


def quoted_numbers(nb: nbformat.NotebookNode) -> list[tuple[str, bool, str]]:
    """Return (number as written, is a percentage, claim name) for every number the markdown quotes."""
    return [(m.group(1), bool(m.group(2)), m.group(3))
            for c in nb.cells if c.cell_type == "markdown" for m in QUOTED.finditer(c.source)]


def test_the_exploration_notebook_runs_and_its_prose_quotes_its_own_numbers(monkeypatch, tmp_path):
    monkeypatch.setenv("VAR_DIR", str(tmp_path))
    monkeypatch.delenv("NOTEBOOK_CUSTOMERS", raising=False)
    monkeypatch.delenv("NOTEBOOK_SEED", raising=False)
    nb = execute(ROOT / "notebooks" / "01_explore_simulated_data.ipynb")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "1,000 customers" in text and "percentage method at 80 %" in text
    claims = json.loads(next(line for line in text.splitlines() if line.startswith("CLAIMS "))[len("CLAIMS "):])

    quoted = quoted_numbers(nb)
    assert {name for _, _, name in quoted} == set(claims), "every claim is quoted, and only claims are"
    for written, percent, name in quoted:
        value = claims[name] * (100 if percent else 1)
        digits = len(written.split(".")[1]) if "." in written else 0
        assert round(value, digits) == float(written.replace(",", "")), f"{name}: prose says {written}, is {value}"
    # What the prose says in words, checked too.
    singles = ("auc_mean_5y", "auc_rule", "auc_oldest_year")
    assert all(claims["auc_last_year"] > claims[k] for k in singles), "the last year alone does best"
    assert claims["auc_oldest_year"] < 0.65, "the oldest year alone is weak"
    assert claims["corr_last_two"] > claims["corr_oldest_latest"], "the correlation fades with distance"
    assert claims["auc_true_probability"] > claims["auc_last_year"]


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
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "pipeline.run" in html and "first champion" in html  # the audited history of the alias
    assert "paired" in html and "auc_lift_over_baseline" in html  # intervals, paired comparisons
    assert quoted_numbers(nbformat.read(ROOT / "notebooks" / "02_registered_model_evaluation.ipynb", 4)) == []


@pytest.fixture(autouse=True)
def _kernel_needs_ipykernel():
    pytest.importorskip("ipykernel")
