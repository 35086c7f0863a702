"""Stage 3, evaluate: every held-out metric with its 95 % interval, against the rule, the baselines and the champion.

Scores are the probability of a good outcome; a customer is approved when the
score is at least the threshold (0.8 by default). On the held-out customers:

* **model**: the candidate trained by ``pipeline.train``;
* **percentage rule**: the ledger's rule, total paid / total due over the
  feature years (``paid_pct_all_years``; the mean of the yearly percentages when
  the data has only those), approving at 80 %;
* **single-feature baselines**: each yearly percentage alone and the five-year
  mean, as rankings (AUC, KS);
* **champion**: the current ``credit-approval@champion`` on the same rows;
* **true probabilities**: for simulated data, the probabilities the outcomes
  were drawn from. Their score on these rows is a reference (what the hidden
  state itself ranks like on this sample), not a bound: on a few hundred rows
  a model can match or pass it by chance.

Every metric comes with a bootstrap 95 % interval (``pipeline.intervals``),
every comparison of two scorers with the paired interval of the difference,
on the same resampled rows. Approval is compared at **matched rates**: the
model's bad rate when it approves as many customers as the rule does, and the
rule's bad rate when it approves as many as the model does.

Calibration: ``test_ece_noise`` is the ECE a perfectly calibrated model with
the same scores exceeds only 5 % of the time on this many rows (outcomes
drawn from the scores themselves); ``ece_rows_needed`` is about how many rows
it takes for that noise to fall to the bar (0.02), i.e. for the bar to be
measurable (the noise shrinks as one over the square root of the rows).
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve
from threadpoolctl import threadpool_limits

from contracts.decisions import DEFAULT_THRESHOLD
from pipeline import intervals as iv
from pipeline.dataset import AGE, DEFAULT_SPEC, DatasetSpec, feature_matrix, labels
from pipeline.features import FEATURES, PAID_PCT_ALL

SMALL_DATA_ROWS = 20_000


def cpu_threads(n_rows: int):
    """Return a context that runs OpenMP (gradient boosting) on one thread for small data.

    On a few thousand rows the threads cost more than they save, and on a busy
    machine they can make a fit or a prediction ten times slower.
    """
    return threadpool_limits(limits=1, user_api="openmp") if n_rows < SMALL_DATA_ROWS else nullcontext()


AGE_BANDS = [(18, 25), (25, 35), (35, 45), (45, 55), (55, 65), (65, 200)]
MEAN_5Y = "mean_5y"
LABELS = {"model": "model", "baseline": "percentage rule", "champion": "champion",
          "truth": "true probabilities", MEAN_5Y: "five-year mean",
          **{name: f"{name} alone" for name in FEATURES}}
# How each scorer's metrics are named in MLflow.
PREFIX = {"model": "test", "baseline": "baseline", "champion": "champion", "truth": "true_probability"}
PROBABILITY_METRICS = ("auc", "ks", "brier", "log_loss", "ece", "approval_rate", "bad_rate_approved")
RANKING_METRICS = ("auc",)
RULE_METRICS = ("auc", "ks", "approval_rate", "bad_rate_approved")
ECE_BAR = 0.02


def prefix(name: str) -> str:
    """Return the MLflow metric prefix of a scorer (``single_<feature>`` for a baseline of one feature)."""
    return PREFIX.get(name, f"single_{name}")


def scorer_statistics(y: np.ndarray, p: np.ndarray, threshold: float, metrics: tuple[str, ...],
                      n_bins: int = 10) -> dict[str, iv.Statistic]:
    """Return each metric of one scorer as a function of row weights (``pipeline.intervals``)."""
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    ranking = iv.Ranking(y, p)
    approved = (p >= threshold).astype(float)
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    every = {
        "auc": ranking.auc,
        "ks": ranking.ks,
        "brier": lambda w: iv.weighted_mean(w, (y - p) ** 2),
        "log_loss": lambda w: iv.weighted_mean(w, -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))),
        "ece": lambda w: iv.ece(w, y, p, n_bins),
        "approval_rate": lambda w: iv.weighted_mean(w, approved),
        "bad_rate_approved": lambda w: _ratio(w @ (approved * (y == 0)), w @ approved),
    }
    return {m: every[m] for m in metrics}


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / b, np.nan)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """Return the ECE: the row-weighted gap between mean score and good rate in equal-width bins."""
    p = np.asarray(p, dtype=float)
    return float(iv.ece(np.ones((1, len(p))), np.asarray(y, dtype=float), p, n_bins)[0])


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
    return float(iv.Ranking(np.asarray(y), np.asarray(p, dtype=float)).ks(np.ones((1, len(y))))[0])


def score_metrics(y: np.ndarray, p: np.ndarray, threshold: float = DEFAULT_THRESHOLD,
                  n_bins: int = 10) -> dict[str, float]:
    """Return ranking, calibration and decision metrics of scores against 0/1 outcomes (point estimates)."""
    y = np.asarray(y)
    ones = np.ones((1, len(y)))
    out = {k: float(f(ones)[0]) for k, f in scorer_statistics(y, p, threshold, PROBABILITY_METRICS, n_bins).items()}
    approved, good = np.asarray(p) >= threshold, y == 1
    out.update({"approved_good": int((approved & good).sum()), "approved_bad": int((approved & ~good).sum()),
                "rejected_good": int((~approved & good).sum()), "rejected_bad": int((~approved & ~good).sum()),
                "rows": len(y)})
    return out


def baseline_scores(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray | None:
    """Return the percentage rule's score: total paid / total due when known, else the mean yearly percentage, / 100."""
    if not spec.baseline_features:
        return None
    if PAID_PCT_ALL in frame.columns and frame[PAID_PCT_ALL].notna().all():
        return pd.to_numeric(frame[PAID_PCT_ALL]).to_numpy(dtype=float) / 100.0
    return mean_percentage(frame, spec)


def mean_percentage(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> np.ndarray:
    """Return the mean of the available yearly percentages / 100 (0 if none)."""
    pct = frame[list(spec.baseline_features)].apply(pd.to_numeric, errors="coerce")
    return (pct.mean(axis=1, skipna=True).fillna(0.0) / 100.0).to_numpy()


def single_feature_scores(frame: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC) -> dict[str, np.ndarray]:
    """Return each baseline feature alone (missing: 0) and the five-year mean, as scores in 0-1."""
    if not spec.baseline_features:
        return {}
    out = {name: pd.to_numeric(frame[name], errors="coerce").fillna(0.0).to_numpy(dtype=float) / 100.0
           for name in spec.baseline_features}
    out[MEAN_5Y] = mean_percentage(frame, spec)
    return out


def monotonicity(model, x: np.ndarray, spec: DatasetSpec = DEFAULT_SPEC, *, n_rows: int = 200,
                 grid_size: int = 21, seed: int = 0) -> dict:
    """Check that raising a declared monotone feature never moves the score the wrong way, on rows and a grid.

    Wrong is down for an increasing feature, up for a decreasing one. Returns
    ``monotonic`` and, per monotone feature, ``max_drop``: the largest move the
    wrong way seen when only that feature goes up (0 when monotone).
    """
    rng = np.random.default_rng(seed)
    rows = x[rng.choice(len(x), size=min(n_rows, len(x)), replace=False)]
    drops = {}
    for name, direction in spec.monotone.items():
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
        drops[name] = float(max(0.0, -(direction * np.diff(scores, axis=1)).min()))
    return {"monotonic": all(d <= 1e-9 for d in drops.values()), "max_drop": drops}


FAIRNESS_METRICS = ("approval_rate", "bad_rate_approved", "auc")
FAIRNESS_DRAWS = 400


def fairness_table(ages: pd.Series | None, y: np.ndarray, p: np.ndarray,
                   threshold: float = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """Return approval, bad rate and AUC per age band, each with a bootstrap 95 % interval (age is never a feature)."""
    columns = ["age_band", "customers", "good_rate", "mean_score",
               *[f"{m}{end}" for m in FAIRNESS_METRICS for end in ("", "_low", "_high")]]
    if ages is None or pd.isna(ages).all():
        return pd.DataFrame(columns=columns)
    ages = pd.to_numeric(pd.Series(ages).reset_index(drop=True), errors="coerce")
    y, p = np.asarray(y), np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    rows = []
    for lo, hi in AGE_BANDS:
        mask = ((ages >= lo) & (ages < hi)).to_numpy()
        if not mask.any():
            continue
        yb, pb = y[mask], p[mask]
        row = {"age_band": f"{lo}+" if hi >= 200 else f"{lo}-{hi - 1}", "customers": int(mask.sum()),
               "good_rate": float(yb.mean()), "mean_score": float(pb.mean())}
        both_classes = 0 < yb.sum() < len(yb) and len(yb) >= 20
        metrics = FAIRNESS_METRICS if both_classes else FAIRNESS_METRICS[:2]
        found = iv.intervals(iv.bootstrap(scorer_statistics(yb, pb, threshold, metrics), len(yb),
                                          draws=FAIRNESS_DRAWS))
        for m in FAIRNESS_METRICS:
            i = found.get(m, iv.Interval(float("nan"), float("nan"), float("nan")))
            row.update({m: i.estimate, f"{m}_low": i.low, f"{m}_high": i.high})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


@dataclass
class Evaluation:
    """Everything measured on the held-out rows: point estimates, intervals, paired comparisons."""

    metrics: dict[str, float]
    comparison: pd.DataFrame  # metric x scorer, point estimates
    intervals: dict[str, dict[str, iv.Interval]]  # scorer -> metric -> interval
    lifts: dict[str, iv.Interval]  # "<metric>_lift_over_<scorer>" etc.: paired intervals
    fairness: pd.DataFrame
    monotonic: dict
    y: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    threshold: float = DEFAULT_THRESHOLD

    def interval_table(self) -> pd.DataFrame:
        """Return one row per scorer and metric: estimate, low, high (the CSV logged with the run)."""
        rows = [{"scorer": scorer, "metric": metric, "estimate": i.estimate, "low": i.low, "high": i.high}
                for scorer, metrics in self.intervals.items() for metric, i in metrics.items()]
        rows += [{"scorer": "paired", "metric": name, "estimate": i.estimate, "low": i.low, "high": i.high}
                 for name, i in self.lifts.items()]
        return pd.DataFrame(rows, columns=["scorer", "metric", "estimate", "low", "high"])


def evaluate(model, test: pd.DataFrame, spec: DatasetSpec = DEFAULT_SPEC, threshold: float = DEFAULT_THRESHOLD, *,
             champion_scores: np.ndarray | None = None, n_bins: int = 10, seed: int = 0,
             draws: int = iv.DRAWS) -> Evaluation:
    """Score the held-out rows and measure the model against the rule, the baselines, the champion and the truth."""
    with cpu_threads(len(test)):
        scores = {"model": model.predict_proba(feature_matrix(test, spec))[:, 1]}
        mono = monotonicity(model, feature_matrix(test, spec), spec, seed=seed)
    base = baseline_scores(test, spec)
    if base is not None:
        scores["baseline"] = base
    if champion_scores is not None:
        scores["champion"] = np.asarray(champion_scores, dtype=float)
    if spec.true_probability and spec.true_probability in test.columns and test[spec.true_probability].notna().all():
        scores["truth"] = test[spec.true_probability].to_numpy(dtype=float)
    scores.update(single_feature_scores(test, spec))
    return measure(labels(test, spec), scores, threshold, mono=mono, ages=test[AGE] if AGE in test.columns else None,
                   n_bins=n_bins, draws=draws)


def measure(y: np.ndarray, scores: dict[str, np.ndarray], threshold: float = DEFAULT_THRESHOLD, *,
            mono: dict | None = None, ages: pd.Series | None = None, n_bins: int = 10,
            draws: int = iv.DRAWS) -> Evaluation:
    """Measure scores (``model`` first) against outcomes: every metric's interval and the paired comparisons."""
    y = np.asarray(y).astype(int)
    statistics: dict[str, iv.Statistic] = {}
    kinds = {}
    for name, p in scores.items():
        kinds[name] = (PROBABILITY_METRICS if name in ("model", "champion", "truth")
                       else RULE_METRICS if name == "baseline" else RANKING_METRICS)
        for metric, f in scorer_statistics(y, p, threshold, kinds[name], n_bins).items():
            statistics[f"{name}:{metric}"] = f
    if "baseline" in scores:
        model_p, rule_p = np.clip(scores["model"], 0, 1), np.clip(scores["baseline"], 0, 1)
        rule_rate, model_rate = statistics["baseline:approval_rate"], statistics["model:approval_rate"]
        statistics["model:bad_rate_at_rule_rate"] = lambda w: iv.bad_rate_of_top(w, y, model_p, rule_rate(w))
        statistics["baseline:bad_rate_at_model_rate"] = lambda w: iv.bad_rate_of_top(w, y, rule_p, model_rate(w))
    result = iv.bootstrap(statistics, len(y), draws=draws)

    intervals: dict[str, dict[str, iv.Interval]] = {}
    for key, value in iv.intervals(result).items():
        name, metric = key.split(":")
        intervals.setdefault(name, {})[metric] = value
    lifts = {}
    for other in scores:
        if other not in ("model", "truth"):
            lifts[f"auc_lift_over_{other}"] = iv.paired(result, "model:auc", f"{other}:auc")
    if "truth" in scores:
        lifts["auc_gap_to_truth"] = iv.paired(result, "truth:auc", "model:auc")
    if "baseline" in scores:
        # Negative: the model approves the same number of customers with fewer bad ones.
        lifts["bad_rate_gap_at_rule_rate"] = iv.paired(result, "model:bad_rate_at_rule_rate",
                                                       "baseline:bad_rate_approved")
        lifts["bad_rate_gap_at_model_rate"] = iv.paired(result, "model:bad_rate_approved",
                                                        "baseline:bad_rate_at_model_rate")

    metrics: dict[str, float] = {"test_rows": float(len(y))}
    for name, by_metric in intervals.items():
        for metric, i in by_metric.items():
            key = f"{prefix(name)}_{metric}"
            metrics.update({key: i.estimate, f"{key}_low": i.low, f"{key}_high": i.high})
    for key, i in lifts.items():
        key = key.replace("truth", "true_probability")
        metrics.update({key: i.estimate, f"{key}_low": i.low, f"{key}_high": i.high})
    noise = ece_noise(scores["model"], n_bins)
    metrics["test_ece_noise"] = noise
    metrics["ece_rows_needed"] = float(np.ceil(len(y) * (noise / ECE_BAR) ** 2))
    if "truth" in scores:
        metrics["true_probability_ece_noise"] = ece_noise(scores["truth"], n_bins)
        metrics["test_true_probability_mae"] = float(np.abs(scores["model"] - scores["truth"]).mean())
    if mono and mono["max_drop"]:  # only a table with declared monotone features has this check
        metrics["monotonic"] = float(mono["monotonic"])
        metrics.update({f"monotonic_max_drop_{k}": v for k, v in mono["max_drop"].items()})
    comparison = pd.DataFrame({name: {m: i.estimate for m, i in by_metric.items()}
                               for name, by_metric in intervals.items()})
    return Evaluation(metrics=metrics, comparison=comparison, intervals=intervals, lifts=lifts,
                      fairness=fairness_table(ages, y, scores["model"], threshold), monotonic=mono or {},
                      y=y, scores=scores, threshold=threshold)


def plots(evaluation: Evaluation, n_bins: int = 10) -> dict[str, Figure]:
    """Return the ROC curve, calibration curve and score histogram by class as figures."""
    y, scores, threshold = evaluation.y, evaluation.scores, evaluation.threshold
    figures = {}

    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name in [n for n in ("model", "champion", "baseline", "truth") if n in scores]:
        fpr, tpr, _ = roc_curve(y, scores[name])
        ax.plot(fpr, tpr, label=f"{LABELS[name]} (AUC {roc_auc_score(y, scores[name]):.3f})",
                linestyle="--" if name == "truth" else "-")
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
