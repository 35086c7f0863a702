"""Stage 3, evaluate: score the held-out rows and compare with the baseline, the champion and the ceiling.

Scores are the probability of a good outcome; a customer is approved when the
score is at least the threshold (0.8 by default).

* **model**: the candidate trained by ``pipeline.train``.
* **baseline**: the percentage method, scored as the mean of the available
  yearly paid percentages / 100 (approve at >= 0.8, i.e. 80 %). The ledger's
  rule divides total paid by total due over the whole history; with the view's
  yearly percentages the mean of the years is the closest equivalent (equal
  when every year owes the same).
* **champion**: the current ``credit-approval@champion`` on the same rows.
* **bayes**: for simulated data, the true probabilities the labels were drawn
  from: no model can beat their AUC (the ceiling).

``test_ece_noise`` is the calibration error that a perfectly calibrated model
with the same scores exceeds by chance only 5 % of the time on this many rows
(sampling noise): a few hundred test rows cannot show an ECE near 0.02 even
for the true probabilities (``bayes_ece``).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve
from threadpoolctl import threadpool_limits

from contracts.decisions import DEFAULT_THRESHOLD
from pipeline.dataset import AGE, DEFAULT_SPEC, DatasetSpec, feature_matrix, labels

SMALL_DATA_ROWS = 20_000


def cpu_threads(n_rows: int):
    """Return a context that runs OpenMP (gradient boosting) on one thread for small data.

    On a few thousand rows the threads cost more than they save, and on a busy
    machine they can make a fit or a prediction ten times slower.
    """
    return threadpool_limits(limits=1, user_api="openmp") if n_rows < SMALL_DATA_ROWS else nullcontext()


AGE_BANDS = [(18, 25), (25, 35), (35, 45), (45, 55), (55, 65), (65, 200)]
LABELS = {"model": "model", "baseline": "percentage rule", "champion": "champion", "bayes": "Bayes ceiling"}


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Return the ECE: the row-weighted gap between mean score and good rate in equal-width bins."""
    bins = np.minimum((np.asarray(p) * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        mask = bins == b
        total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(y))


def ece_noise(p: np.ndarray, n_bins: int = 10, *, quantile: float = 0.95, draws: int = 400, seed: int = 0) -> float:
    """Return the ECE that a perfectly calibrated model with these scores exceeds by chance only 5 % of the time.

    Outcomes are drawn from the scores themselves (``draws`` times) and the
    ``quantile`` of their ECE is returned: the sampling noise of the metric on
    this many rows.
    """
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    rng = np.random.default_rng(seed)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = np.zeros(draws)
    for b in np.unique(bins):
        q = p[bins == b]
        outcomes = rng.random((draws, len(q))) < q
        total += len(q) * np.abs(q.mean() - outcomes.mean(axis=1))
    return float(np.quantile(total / len(p), quantile))


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Return the Kolmogorov-Smirnov distance between the score distributions of the two classes."""
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def score_metrics(y: np.ndarray, p: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                  n_bins: int = 10) -> dict[str, float]:
    """Return ranking, calibration and decision metrics of scores against 0/1 outcomes."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    approved = p >= threshold
    good = y == 1
    n = len(y)
    return {
        "auc": float(roc_auc_score(y, p)),
        "ks": ks_statistic(y, p),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
        "ece": expected_calibration_error(y, p, n_bins),
        "approval_rate": float(approved.mean()),
        "bad_rate_approved": float((~good & approved).sum() / approved.sum()) if approved.any() else float("nan"),
        "approved_good": int((approved & good).sum()),
        "approved_bad": int((approved & ~good).sum()),
        "rejected_good": int((~approved & good).sum()),
        "rejected_bad": int((~approved & ~good).sum()),
        "rows": n,
    }


def baseline_scores(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray | None:
    """Return the percentage method's score: mean of the yearly paid percentages / 100 (0 if none)."""
    if not spec.baseline_features:
        return None
    pct = frame[list(spec.baseline_features)].apply(pd.to_numeric, errors="coerce")
    return (pct.mean(axis=1, skipna=True).fillna(0.0) / 100.0).to_numpy()


def monotonicity(model, x: np.ndarray, spec: DatasetSpec = DEFAULT_SPEC, *, n_rows: int = 200,
                 grid_size: int = 21, seed: int = 0) -> dict:
    """Check that raising each monotone feature never lowers the score, on real rows and a value grid.

    Returns ``monotonic`` and, per feature, ``max_drop``: the largest score
    decrease seen when only that feature goes up (0 when monotone).
    """
    rng = np.random.default_rng(seed)
    rows = x[rng.choice(len(x), size=min(n_rows, len(x)), replace=False)]
    drops = {}
    for name in spec.monotone_increasing:
        j = spec.features.index(name)
        if name in spec.bounds:
            lo, hi = spec.bounds[name]
        else:
            column = x[:, j].astype(float)
            lo, hi = np.nanmin(column), np.nanmax(column)
        grid = np.linspace(lo, hi, grid_size)
        probe = np.repeat(rows, grid_size, axis=0)
        probe[:, j] = np.tile(grid, len(rows))
        with cpu_threads(len(probe)):
            scores = model.predict_proba(probe)[:, 1].reshape(len(rows), grid_size)
        drops[name] = float(max(0.0, -np.diff(scores, axis=1).min()))
    return {"monotonic": all(d <= 1e-9 for d in drops.values()), "max_drop": drops}


def fairness_table(ages: pd.Series | None, y: np.ndarray, p: np.ndarray,
                   threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Return approval, bad rate and calibration per age band (age is never a feature)."""
    columns = ["age_band", "customers", "good_rate", "mean_score", "approval_rate", "bad_rate_approved", "auc"]
    if ages is None or pd.isna(ages).all():
        return pd.DataFrame(columns=columns)
    ages = pd.to_numeric(pd.Series(ages).reset_index(drop=True), errors="coerce")
    rows = []
    for lo, hi in AGE_BANDS:
        mask = ((ages >= lo) & (ages < hi)).to_numpy()
        if not mask.any():
            continue
        yb, pb = y[mask], p[mask]
        approved = pb >= threshold
        rows.append({
            "age_band": f"{lo}+" if hi >= 200 else f"{lo}-{hi - 1}",
            "customers": int(mask.sum()),
            "good_rate": float(yb.mean()),
            "mean_score": float(pb.mean()),
            "approval_rate": float(approved.mean()),
            "bad_rate_approved": float((yb[approved] == 0).mean()) if approved.any() else float("nan"),
            "auc": float(roc_auc_score(yb, pb)) if 0 < yb.sum() < len(yb) and len(yb) >= 20 else float("nan"),
        })
    return pd.DataFrame(rows, columns=columns)


@dataclass
class Evaluation:
    """Everything measured on the held-out rows."""

    metrics: dict[str, float]
    comparison: pd.DataFrame
    fairness: pd.DataFrame
    monotonic: dict
    y: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD


def evaluate(model, test: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC, threshold: float = DEFAULT_THRESHOLD, *,
             champion_scores: np.ndarray | None = None, n_bins: int = 10, seed: int = 0) -> Evaluation:
    """Score the held-out rows with the model and compare it with the baseline, champion and ceiling."""
    with cpu_threads(len(test)):
        return _evaluate(model, test, spec, threshold, champion_scores, n_bins, seed)


def _evaluate(model, test, spec, threshold, champion_scores, n_bins, seed) -> Evaluation:
    y = labels(test, spec)
    x = feature_matrix(test, spec)
    scores = {"model": model.predict_proba(x)[:, 1]}
    base = baseline_scores(test, spec)
    if base is not None:
        scores["baseline"] = base
    if champion_scores is not None:
        scores["champion"] = np.asarray(champion_scores, dtype=float)
    if spec.true_probability and spec.true_probability in test.columns and test[spec.true_probability].notna().all():
        scores["bayes"] = test[spec.true_probability].to_numpy(dtype=float)

    table = {name: score_metrics(y, s, threshold, n_bins) for name, s in scores.items()}
    metrics: dict[str, float] = {}
    prefix = {"model": "test", "baseline": "baseline", "champion": "champion", "bayes": "bayes"}
    for name, values in table.items():
        metrics.update({f"{prefix[name]}_{k}": v for k, v in values.items()})
    metrics["test_ece_noise"] = ece_noise(scores["model"], n_bins)
    if "baseline" in table:
        metrics["auc_lift_over_baseline"] = table["model"]["auc"] - table["baseline"]["auc"]
    if "champion" in table:
        metrics["auc_lift_over_champion"] = table["model"]["auc"] - table["champion"]["auc"]
    if "bayes" in table:
        metrics["auc_gap_to_bayes"] = table["bayes"]["auc"] - table["model"]["auc"]
        metrics["bayes_ece_noise"] = ece_noise(scores["bayes"], n_bins)
        metrics["test_true_probability_mae"] = float(np.abs(scores["model"] - scores["bayes"]).mean())
    mono = monotonicity(model, x, spec, seed=seed)
    metrics["monotonic"] = float(mono["monotonic"])
    metrics.update({f"monotonic_max_drop_{k}": v for k, v in mono["max_drop"].items()})

    ages = test[AGE] if AGE in test.columns else None
    return Evaluation(metrics=metrics, comparison=pd.DataFrame(table),
                      fairness=fairness_table(ages, y, scores["model"], threshold),
                      monotonic=mono, y=y, scores=scores, threshold=threshold)


def plots(evaluation: Evaluation, n_bins: int = 10) -> dict[str, Figure]:
    """Return the ROC curve, calibration curve and score histogram by class as figures."""
    y, scores, threshold = evaluation.y, evaluation.scores, evaluation.threshold
    figures = {}

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=f"{LABELS[name]} (AUC {roc_auc_score(y, s):.3f})",
                linestyle="--" if name == "bayes" else "-")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on held-out customers")
    ax.legend(loc="lower right")
    figures["roc.png"] = fig

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    edges = np.linspace(0, 1, n_bins + 1)
    for name in [n for n in ("model", "champion", "baseline") if n in scores]:
        s = np.clip(scores[name], 0, 1)
        bins = np.minimum((s * n_bins).astype(int), n_bins - 1)
        pts = [(s[bins == b].mean(), y[bins == b].mean()) for b in range(n_bins) if (bins == b).any()]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.plot(xs, ys, marker="o", label=LABELS[name])
    ax.plot(edges, edges, color="grey", linewidth=0.8, label="perfect")
    ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:g}")
    ax.set(xlabel="mean score in bin", ylabel="observed good rate", title="Calibration", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    figures["calibration.png"] = fig

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 41)
    ax.hist(scores["model"][y == 1], bins=bins, alpha=0.6, label="good outcome (1)")
    ax.hist(scores["model"][y == 0], bins=bins, alpha=0.6, label="bad outcome (0)")
    ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:g}")
    ax.set(xlabel="score (probability of a good outcome)", ylabel="customers", title="Scores by outcome")
    ax.legend(loc="upper left")
    figures["score_histogram.png"] = fig
    return figures
