"""Package a fitted pipeline as an MLflow model: the pyfunc for MLflow, the pipeline for serving.

The logged model holds ``artifacts/sklearn_pipeline.joblib`` (the fitted
scikit-learn pipeline that serving scores directly on numpy arrays),
``artifacts/metadata.json`` (features, threshold, spec, data fingerprint) and
``artifacts/feature_reference.json`` (training distributions and the
near-cut-off profile). The pyfunc flavour (``pyfunc_model.py``, logged as
code) returns the probability of a good outcome. The signature lists the
features in order (doubles; strings for categorical ones), the requirements
are pinned explicitly so logging never spends seconds inferring them.
"""
from __future__ import annotations

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import yaml
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
PIPELINE_FILE = "sklearn_pipeline.joblib"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "feature_reference.json"
REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "scipy", "joblib")


def pip_requirements() -> list[str]:
    """Return the model's pinned requirements (the versions installed here)."""
    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def signature(numeric: list[str], categorical: list[str] | None = None):
    """Return the model signature: one double per numeric feature, strings for categorical, a double out."""
    inputs = [ColSpec("double", name) for name in numeric]
    inputs += [ColSpec("string", name) for name in categorical or []]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double", "score")]))


def log_model(pipeline, metadata: dict, reference: dict, input_example: pd.DataFrame, name: str = "model"):
    """Log the pipeline as an MLflow pyfunc model in the active run; return MLflow's ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        joblib.dump(pipeline, folder / PIPELINE_FILE)
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
        (folder / REFERENCE_FILE).write_text(json.dumps(reference, indent=2))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(PYFUNC_CODE),
            artifacts={
                "sklearn_pipeline": str(folder / PIPELINE_FILE),
                "metadata": str(folder / METADATA_FILE),
                "feature_reference": str(folder / REFERENCE_FILE),
            },
            signature=signature(metadata["numeric"], metadata["categorical"]),
            input_example=input_example,
            pip_requirements=pip_requirements(),
            metadata={"threshold": metadata["threshold"], "features": metadata["features"],
                      "score": metadata.get("score", "")},
        )


def read_signature(path: str | Path) -> list[dict] | None:
    """Return the input columns of a downloaded model's signature (name, type), or None without one."""
    signature = yaml.safe_load((Path(path) / "MLmodel").read_text()).get("signature") or {}
    return json.loads(signature["inputs"]) if signature.get("inputs") else None


def read_input_example(path: str | Path) -> list[dict] | None:
    """Return a downloaded model's input example as rows ({column: value}), or None without one."""
    path = Path(path)
    info = yaml.safe_load((path / "MLmodel").read_text()).get("saved_input_example_info") or {}
    if not info.get("artifact_path") or not (path / info["artifact_path"]).exists():
        return None
    example = json.loads((path / info["artifact_path"]).read_text())
    if isinstance(example, dict) and "data" in example:  # pandas "split" orient, as MLflow saves a DataFrame
        return [dict(zip(example["columns"], row)) for row in example["data"]]
    return example if isinstance(example, list) else None


def read_model_dir(path: str | Path) -> tuple[object, dict, dict]:
    """Return (pipeline, metadata, reference) from a downloaded model folder."""
    path = Path(path)
    mlmodel = yaml.safe_load((path / "MLmodel").read_text())
    artifacts = mlmodel["flavors"]["python_function"]["artifacts"]
    pipeline = joblib.load(path / artifacts["sklearn_pipeline"]["path"])
    metadata = json.loads((path / artifacts["metadata"]["path"]).read_text())
    reference = json.loads((path / artifacts["feature_reference"]["path"]).read_text())
    return pipeline, metadata, reference
