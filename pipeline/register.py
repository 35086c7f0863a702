"""Stage 4, register: log the run to MLflow and register the model as a new ``credit-approval`` version.

A run records:

* params: the training knobs, the threshold, the dataset spec, the gate's bars;
* metrics: everything ``pipeline.evaluate`` measured on the held-out rows
  (model, percentage rule, champion, Bayes ceiling), plus stage timings;
* tags and ``data/fingerprint.json``: rows, content hash, decision years;
* artifacts: ``evaluation/*.png`` (ROC, calibration, score histogram),
  ``evaluation/comparison.csv``, ``evaluation/fairness_by_age.csv``,
  ``training/candidates.csv``, ``feature_reference.json``;
* the model (see ``model_registry.package``): the pyfunc, the fitted pipeline
  as a plain joblib artifact, signature, input example, pinned requirements.

``model_metadata`` and ``input_example`` are pure; ``log_run`` and
``register_version`` are the MLflow edge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import pandas as pd
import sklearn

import model_registry
from model_registry import package
from pipeline.dataset import Dataset, DatasetSpec
from pipeline.evaluate import Evaluation, plots
from pipeline.features import feature_labels
from pipeline.train import TrainParams, TrainResult

SCORE_MEANING = "probability of a good outcome (result = 1): approve when score >= threshold"


def model_metadata(spec: DatasetSpec, training: TrainResult, fingerprint: dict, threshold: float,
                   params: TrainParams) -> dict:
    """Return the metadata stored inside the model (read back by ``model_registry.load_champion``)."""
    return {
        "name": "credit-approval",
        "features": spec.features,
        "feature_labels": feature_labels(spec.features),
        "numeric": list(spec.numeric),
        "categorical": list(spec.categorical),
        "threshold": float(threshold),
        "score": SCORE_MEANING,
        "kind": training.kind,
        "spec": spec.to_dict(),
        "data": fingerprint,
        "train_params": params.to_dict(),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sklearn_version": sklearn.__version__,
    }


def input_example(frame: pd.DataFrame, spec: DatasetSpec, rows: int = 3) -> pd.DataFrame:
    """Return a few complete training rows, features only, in model order and types."""
    complete = frame.dropna(subset=spec.features)
    example = (complete if len(complete) else frame).head(rows)[spec.features].copy()
    for name in spec.numeric:
        example[name] = example[name].astype(float)
    for name in spec.categorical:
        example[name] = example[name].astype(str)
    return example.reset_index(drop=True)


def run_tags(dataset: Dataset, training: TrainResult, fingerprint: dict, threshold: float) -> dict[str, str]:
    """Return the tags that identify a run's data and model (also put on the model version)."""
    tags = {
        "model_kind": training.kind,
        "threshold": f"{threshold:g}",
        "data_source": dataset.source,
        "data_rows": str(fingerprint["rows"]),
        "data_sha256": fingerprint["sha256"],
        "features": ",".join(dataset.spec.features),
    }
    if "decision_year_min" in fingerprint:
        tags["data_decision_years"] = f"{fingerprint['decision_year_min']}-{fingerprint['decision_year_max']}"
    if "history_years" in fingerprint:
        tags["data_history_years"] = fingerprint["history_years"]
    return tags


@dataclass
class Logged:
    """Where a run and its model went."""

    run_id: str
    model_uri: str
    experiment_id: str


def log_run(*, dataset: Dataset, training: TrainResult, evaluation: Evaluation, fingerprint: dict,
            reference: dict, params: TrainParams, threshold: float, extra_params: dict | None = None,
            split_sizes: dict | None = None, timings: dict | None = None) -> Logged:
    """Log params, metrics, plots, fingerprint, reference and the model to the active MLflow run."""
    run = mlflow.active_run()
    spec = dataset.spec
    logged_params = {**params.to_dict(), "threshold": threshold, "model_kind": training.kind,
                     "target": spec.target, "features": ",".join(spec.features),
                     "categorical": ",".join(spec.categorical) or "-", "table": spec.table,
                     **{f"rows_{k}": v for k, v in (split_sizes or {}).items()}, **(extra_params or {})}
    mlflow.log_params({k: str(v)[:6000] for k, v in logged_params.items()})
    metrics = {k: float(v) for k, v in evaluation.metrics.items() if v is not None and math.isfinite(float(v))}
    for row in training.candidates:
        metrics[f"candidate_{row['kind']}_calibration_auc"] = row["calibration_auc"]
        metrics[f"candidate_{row['kind']}_calibration_log_loss"] = row["calibration_log_loss"]
    metrics.update({f"seconds_{k}": float(v) for k, v in (timings or {}).items()})
    mlflow.log_metrics(metrics)
    mlflow.set_tags(run_tags(dataset, training, fingerprint, threshold))

    mlflow.log_dict(fingerprint, "data/fingerprint.json")
    mlflow.log_dict(reference, "feature_reference.json")
    mlflow.log_dict(spec.to_dict(), "data/spec.json")
    mlflow.log_text(evaluation.comparison.to_csv(), "evaluation/comparison.csv")
    mlflow.log_text(evaluation.fairness.to_csv(index=False), "evaluation/fairness_by_age.csv")
    mlflow.log_text(pd.DataFrame(training.candidates).to_csv(index=False), "training/candidates.csv")
    for name, figure in plots(evaluation).items():
        mlflow.log_figure(figure, f"evaluation/{name}")

    metadata = model_metadata(spec, training, fingerprint, threshold, params)
    info = package.log_model(training.model, metadata, reference, input_example(dataset.frame, spec))
    return Logged(run_id=run.info.run_id, model_uri=info.model_uri, experiment_id=run.info.experiment_id)


def register_version(logged: Logged, tags: dict[str, str], tracking_uri: str | None = None) -> str:
    """Register the logged model as a new ``credit-approval`` version; return its number."""
    return model_registry.register(logged.model_uri, run_id=logged.run_id, tags=tags, tracking_uri=tracking_uri)
