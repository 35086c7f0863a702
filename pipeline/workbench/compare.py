"""Two versions side by side: metrics with intervals, ROC and calibration curves, rates at the threshold, reasons.

The curves come from each version's own held-out rows as its run logged them
(``evaluation/holdout_scores.csv``: outcome and score per row); two versions
trained on different data were tested on different rows, and the page says
so. The approval and bad rates at the threshold are the logged metrics with
their bootstrap intervals (and the same figures recomputed from the held-out
scores when they are there). The reasons profile is each version's
near-cut-off profile (``feature_reference.json``): the mean of each year's
paid share among training applicants scored near the threshold, which is what
serving's reasons compare an applicant with. Plots are drawn here, as SVG,
with matplotlib's object API (no pyplot, no display).
"""
from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from model_registry import evidence
from pipeline.workbench.catalog import version_entry, with_interval

COMPARED_METRICS = ("test_auc", "test_ks", "test_brier", "test_log_loss", "test_ece", "test_approval_rate",
                    "test_bad_rate_approved", "baseline_auc", "auc_lift_over_baseline", "auc_lift_over_champion",
                    "test_bad_rate_at_rule_rate")
ROC_POINTS = 200
BINS = 10
COLOURS = ("#1f5fa8", "#c2571a")  # the two versions, told apart by line style as well


@lru_cache(maxsize=64)
def _evidence(name: str, version: str, tracking_uri: str) -> dict:
    # A version's run artifacts never change once logged: fetch them once per process.
    return evidence.version_evidence(version, name, tracking_uri)


def roc_points(y: np.ndarray, p: np.ndarray, points: int = ROC_POINTS) -> list[list[float]]:
    """Return the ROC curve as [false positive rate, true positive rate] pairs, thinned to about ``points``."""
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.r_[0, np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int), len(fpr) - 1])
    return [[round(float(fpr[i]), 4), round(float(tpr[i]), 4)] for i in keep]


def calibration_points(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> list[dict]:
    """Return, per equal-width score bin with rows, the mean score, the observed good rate and the row count."""
    p = np.clip(p, 0.0, 1.0)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [{"score": round(float(p[which == b].mean()), 4), "observed": round(float(y[which == b].mean()), 4),
             "rows": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def rates_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Return the approval rate and the bad rate among the approved at the threshold, on held-out rows."""
    approved = p >= threshold
    return {"approval_rate": float(approved.mean()) if len(p) else None,
            "bad_rate_approved": float((y[approved] == 0).mean()) if approved.any() else None,
            "rows": int(len(p))}


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    return buffer.getvalue()


def roc_plot(curves: dict[str, list]) -> str:
    """Return the ROC curves of the versions as an SVG document."""
    figure = Figure(figsize=(5, 4.4))
    ax = figure.subplots()
    for (label, points), colour, style in zip(curves.items(), COLOURS, ("-", "--")):
        xs, ys = zip(*points)
        ax.plot(xs, ys, color=colour, linestyle=style, label=label)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="chance")
    ax.set(xlabel="false positive rate (bad outcomes approved)", ylabel="true positive rate (good outcomes approved)",
           title="ROC on each version's held-out rows", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    return _svg(figure)


def calibration_plot(curves: dict[str, list], threshold: float | None) -> str:
    """Return the calibration curves (mean score vs observed good rate per bin) as an SVG document."""
    figure = Figure(figsize=(5, 4.4))
    ax = figure.subplots()
    for (label, points), colour, style in zip(curves.items(), COLOURS, ("-", "--")):
        ax.plot([q["score"] for q in points], [q["observed"] for q in points], color=colour, linestyle=style,
                marker="o", label=label)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="perfect")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle=":", label=f"threshold {threshold:g}")
    ax.set(xlabel="mean score in bin", ylabel="observed good rate", title="Calibration", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return _svg(figure)


def _threshold(entry: dict) -> float | None:
    try:
        return float(entry["threshold"])
    except (TypeError, ValueError):
        return None


def profile(references: dict[str, dict]) -> list[dict]:
    """Return, per feature, each version's near-cut-off mean and approved mean (what reasons compare with)."""
    features: list[str] = []
    for reference in references.values():
        features += [f for f in reference.get("features", []) if f not in features]
    rows = []
    for feature in features:
        row = {"feature": feature}
        for label, reference in references.items():
            near = (reference.get("near_cutoff") or {}).get("profile") or {}
            row[label] = {"near_cutoff": near.get(feature), "approved": (reference.get("approved_profile") or {})
                          .get(feature)}
        rows.append(row)
    return rows


def compare(name: str, versions: list[dict], tracking_uri: str) -> dict:
    """Return the comparison of two or more versions of ``name`` (entries of ``model_registry.describe``)."""
    labels = [f"version {v['version']}" for v in versions]
    entries = [version_entry(v, tracking_uri) for v in versions]
    found = [_evidence(name, v["version"], tracking_uri) for v in versions]
    roc, calibration, notes, recomputed = {}, {}, [], {}
    for label, entry, ev in zip(labels, entries, found):
        holdout: pd.DataFrame | None = ev["holdout"]
        if holdout is None or holdout.empty:
            notes.append(f"{label} logged no held-out scores (trained before the workbench): no curves for it")
            continue
        y, p = holdout["outcome"].to_numpy(dtype=int), holdout["score"].to_numpy(dtype=float)
        roc[label], calibration[label] = roc_points(y, p), calibration_points(y, p)
        threshold = _threshold(entry)
        recomputed[label] = rates_at(y, p, threshold) if threshold is not None else None
    fingerprints = {e["data"]["sha256"] for e in entries}
    if len(fingerprints) > 1:
        notes.append("the versions were trained on different data: each curve is on its own held-out rows")
    metrics = [{"name": key, **{label: with_interval(ev["metrics"], key) for label, ev in zip(labels, found)}}
               for key in COMPARED_METRICS if any(key in ev["metrics"] for ev in found)]
    threshold = next((t for t in map(_threshold, entries) if t is not None), None)
    return {
        "name": name, "labels": labels, "versions": entries,
        "test_rows": {label: ev["metrics"].get("test_rows") for label, ev in zip(labels, found)},
        "metrics": metrics,
        "rates": {label: {"threshold": _threshold(e), "approval_rate": e["metrics"]["test_approval_rate"],
                          "bad_rate_approved": e["metrics"]["test_bad_rate_approved"],
                          "from_holdout": recomputed.get(label)} for label, e in zip(labels, entries)},
        "curves": {"roc": roc, "calibration": calibration},
        "plots": {"roc": roc_plot(roc) if roc else None,
                  "calibration": calibration_plot(calibration, threshold) if calibration else None},
        "profile": profile({label: ev["reference"] for label, ev in zip(labels, found)}),
        "notes": notes,
    }
