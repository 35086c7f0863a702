"""Stage 4, register: log the run to MLflow and register the model as a new version of the spec's model.

The ledger's model is ``credit-approval``; another table's is its spec's
``model_name``, with runs in an MLflow experiment of the same name.

A run records:

* params: the training knobs, the threshold, the dataset spec, the gate's bars;
* metrics: everything ``pipeline.evaluate`` measured on the held-out rows, each
  with ``_low``/``_high`` (its bootstrap 95 % interval): model, percentage rule,
  single-feature baselines, champion, true probabilities, the paired lifts, the
  bad rates at matched approval rates, the out-of-time check and each
  candidate's cross-validation, plus stage timings;
* the training data as an MLflow dataset input (``mlflow.log_input``: name,
  digest = the data's SHA-256, source, schema, rows; never the rows themselves);
* tags and ``data/fingerprint.json``: rows, content hash, decision years;
* artifacts: ``model_card.md``, ``evaluation/*.png`` (ROC, calibration, score
  histogram), ``evaluation/intervals.csv``, ``evaluation/comparison.csv``,
  ``evaluation/fairness_by_age.csv``, ``evaluation/holdout_scores.csv`` (each
  held-out row's outcome, the model's score and the rule's: no feature, no id;
  the workbench draws a version's ROC and calibration curves from it),
  ``training/candidates.csv``,
  ``training/cv_folds.csv``, ``training/cv_comparisons.csv``,
  ``feature_reference.json``;
* the model (see ``model_registry.package``): the pyfunc, the fitted pipeline
  as a plain joblib artifact, signature, a synthetic input example (quantiles
  of each feature, never a customer's row), pinned requirements.

The registered version gets a one-paragraph description (``description``).
``model_metadata``, ``input_example``, ``model_card`` and ``description`` are
pure; ``log_run`` and ``register_version`` are the MLflow edge.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
import sklearn
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.data.pandas_dataset import from_pandas

import model_registry
from model_registry import package
from pipeline.dataset import Dataset, DatasetSpec, labels
from pipeline.evaluate import LABELS, Evaluation, plots
from pipeline.features import feature_labels
from pipeline.gate import GateDecision
from pipeline.train import TrainParams, TrainResult

SCORE_MEANING = "probability of a good outcome (result = 1): approve when score >= threshold"


def model_metadata(spec: DatasetSpec, training: TrainResult, fingerprint: dict, threshold: float,
                   params: TrainParams) -> dict:
    """Return the metadata stored inside the model (read back by ``model_registry.load_champion``)."""
    return {
        "name": spec.model_name,
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


EXAMPLE_QUANTILES = (0.1, 0.5, 0.9)


def input_example(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Return three synthetic rows: each numeric feature at its 10th, 50th and 90th percentile.

    No row is a customer's: every value is a quantile of one feature on its
    own (a categorical feature takes its most common value).
    """
    example = pd.DataFrame(index=range(len(EXAMPLE_QUANTILES)))
    for name in spec.numeric:
        values = pd.to_numeric(frame[name], errors="coerce").dropna()
        example[name] = [round(float(np.quantile(values, q)), 1) if len(values) else 0.0 for q in EXAMPLE_QUANTILES]
    for name in spec.categorical:
        common = frame[name].dropna().astype(str).mode()
        example[name] = common.iloc[0] if len(common) else "missing"
    return example[spec.features]


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
    """Log params, metrics, the data input, plots, intervals, CV, reference and the model to the active run."""
    run = mlflow.active_run()
    spec = dataset.spec
    logged_params = {**params.to_dict(), "threshold": threshold, "model_kind": training.kind,
                     "target": spec.target, "features": ",".join(spec.features),
                     "categorical": ",".join(spec.categorical) or "-", "table": spec.table,
                     **{f"rows_{k}": v for k, v in (split_sizes or {}).items()}, **(extra_params or {})}
    mlflow.log_params({k: str(v)[:6000] for k, v in logged_params.items()})
    metrics = {k: float(v) for k, v in evaluation.metrics.items()
               if isinstance(v, int | float) and math.isfinite(float(v))}
    metrics.update({f"seconds_{k}": float(v) for k, v in (timings or {}).items()})
    mlflow.log_metrics(metrics)
    mlflow.set_tags(run_tags(dataset, training, fingerprint, threshold))
    mlflow.log_input(training_input(dataset, fingerprint), context="training")

    mlflow.log_dict(fingerprint, "data/fingerprint.json")
    mlflow.log_dict(reference, "feature_reference.json")
    mlflow.log_dict(spec.to_dict(), "data/spec.json")
    mlflow.log_text(evaluation.comparison.to_csv(), "evaluation/comparison.csv")
    mlflow.log_text(evaluation.interval_table().to_csv(index=False), "evaluation/intervals.csv")
    mlflow.log_text(evaluation.fairness.to_csv(index=False), "evaluation/fairness_by_age.csv")
    mlflow.log_text(holdout_scores(evaluation).to_csv(index=False), HOLDOUT_SCORES)
    mlflow.log_text(pd.DataFrame(training.candidates).to_csv(index=False), "training/candidates.csv")
    mlflow.log_text(pd.DataFrame(training.comparisons).to_csv(index=False), "training/cv_comparisons.csv")
    if training.folds is not None:
        mlflow.log_text(training.folds.to_csv(index=False), "training/cv_folds.csv")
    for name, figure in plots(evaluation).items():
        mlflow.log_figure(figure, f"evaluation/{name}")

    metadata = model_metadata(spec, training, fingerprint, threshold, params)
    info = package.log_model(training.model, metadata, reference, input_example(dataset.frame, spec))
    return Logged(run_id=run.info.run_id, model_uri=info.model_uri, experiment_id=run.info.experiment_id)


HOLDOUT_SCORES = "evaluation/holdout_scores.csv"


def holdout_scores(evaluation: Evaluation) -> pd.DataFrame:
    """Return each held-out row's outcome (1 good), the model's score and the rule's when there is one."""
    frame = pd.DataFrame({"outcome": evaluation.y.astype(int), "score": np.round(evaluation.scores["model"], 6)})
    if "baseline" in evaluation.scores:
        frame["rule"] = np.round(np.clip(evaluation.scores["baseline"], 0.0, 1.0), 6)
    return frame


def training_input(dataset: Dataset, fingerprint: dict):
    """Return the training data as an MLflow dataset: schema, size, digest and source, never the rows' values."""
    spec = dataset.spec
    frame = dataset.frame[[*spec.features, spec.target]].copy()
    for name in spec.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame[spec.target] = labels(frame, spec).astype(float)
    source = CodeDatasetSource({"source": dataset.source, "sha256": fingerprint["sha256"],
                                "history_years": str(fingerprint.get("history_years", "-"))})
    return from_pandas(frame, source=source, targets=spec.target, name=f"training-{spec.table}",
                       digest=fingerprint["sha256"][:16])


def _cell(evaluation: Evaluation, scorer: str, metric: str, digits: int = 3) -> str:
    found = evaluation.intervals.get(scorer, {}).get(metric)
    return found.text(digits) if found is not None else "-"


def model_card(dataset: Dataset, training: TrainResult, evaluation: Evaluation, fingerprint: dict,
               decision: GateDecision, out_of_time: dict, threshold: float) -> str:
    """Return the version's model card (Markdown): data, metrics with intervals, the gate, the limits."""
    scorers = [n for n in ("model", "baseline", "champion", "truth") if n in evaluation.intervals]
    metrics = ("auc", "ks", "brier", "log_loss", "ece", "approval_rate", "bad_rate_approved")
    spec = dataset.spec
    positive = "1" if spec.positive is None else repr(spec.positive)
    lines = [
        f"# {spec.model_name}: {training.kind}",
        "",
        f"Scores the probability of a good outcome ({SCORE_MEANING}); threshold {threshold:g}.",
        "",
        "## Data",
        "",
        f"- source: {dataset.source}",
        f"- rows: {fingerprint['rows']:,} ({100 * fingerprint['positive_rate']:.1f} % good outcomes), "
        f"sha256 `{fingerprint['sha256'][:16]}...`",
        f"- features: {', '.join(spec.numeric) or '-'} (numeric); {', '.join(spec.categorical) or '-'} (categorical)",
        f"- monotone: {', '.join(f'{k} {DIRECTION[v]}' for k, v in spec.monotone.items()) or 'none declared'}",
        f"- label: {spec.target} = {positive} is a good outcome"
        + ("; observed in the year after each customer's last feature year (history "
           f"{fingerprint.get('history_years', '-')}, decision years {fingerprint.get('decision_year_min', '-')}-"
           f"{fingerprint.get('decision_year_max', '-')})" if spec.is_ledger else ""),
        "",
        f"## Held-out metrics ({int(evaluation.metrics['test_rows']):,} rows, bootstrap 95 % intervals)",
        "",
        "| metric | " + " | ".join(LABELS[n] for n in scorers) + " |",
        "|---|" + "---|" * len(scorers),
        *[f"| {m} | " + " | ".join(_cell(evaluation, n, m) for n in scorers) + " |" for m in metrics],
        "",
        "Paired comparisons (model minus other, same resampled rows):",
        "",
        *[f"- {name}: {i.text(4)}" for name, i in evaluation.lifts.items()],
        "",
        f"Out-of-time: {out_of_time.get('oot_note', '-')}",
        "",
        "## Choice of model (cross-validation on the development rows)",
        "",
        *[f"- {r['kind']}: log loss {r['cv_log_loss']:.4f} [{r['cv_log_loss_low']:.4f}, {r['cv_log_loss_high']:.4f}], "
          f"AUC {r['cv_auc']:.4f} [{r['cv_auc_low']:.4f}, {r['cv_auc_high']:.4f}]"
          + (" (chosen)" if r["selected"] else "") for r in training.candidates],
        "",
        "## Gate",
        "",
        *[f"- {'PASS' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in decision.checks],
        "",
        "## Limits",
        "",
        *(LEDGER_LIMITS if spec.is_ledger else [f"- Trained on {dataset.source} only: it knows nothing the table "
                                                 "does not hold."]),
        "- Intervals cover the sampling noise of the held-out rows; a different population (see `make monitor`) "
        "is not covered.",
    ]
    return "\n".join(lines) + "\n"


DIRECTION = {1: "increasing", -1: "decreasing"}
LEDGER_LIMITS = [
    "- Trained on the ledger's yearly paid percentages only: it knows nothing of income, other debt or why a "
    "year went badly.",
    "- The outcome is the twelve months after the last feature year; a credit longer than that is judged on "
    "its first year.",
    "- Age is used only for the fairness table (evaluation/fairness_by_age.csv), never as a feature.",
]


def description(dataset: Dataset, training: TrainResult, evaluation: Evaluation, fingerprint: dict,
                decision: GateDecision) -> str:
    """Return the registered version's one-paragraph description."""
    history = f"history {fingerprint['history_years']}, " if "history_years" in fingerprint else ""
    return (f"{training.kind} on {fingerprint['rows']:,} rows of {dataset.spec.table or dataset.source} ({history}"
            f"data sha256 {fingerprint['sha256'][:12]}); held-out AUC {_cell(evaluation, 'model', 'auc')}, "
            f"ECE {_cell(evaluation, 'model', 'ece')}; gate: "
            + ("passed" if decision.promote else "kept out: " + "; ".join(decision.reasons))
            + ". Model card: run artifact model_card.md.")[:5000]


def register_version(logged: Logged, tags: dict[str, str], description: str = "",
                     tracking_uri: str | None = None, name: str = model_registry.MODEL_NAME,
                     who: str | None = None) -> str:
    """Register the logged model as a new version of ``name`` and say so in the audit log; return its number."""
    return model_registry.register(logged.model_uri, run_id=logged.run_id, tags=tags, description=description,
                                   name=name, tracking_uri=tracking_uri, who=who,
                                   why=f"trained: run {logged.run_id}")
