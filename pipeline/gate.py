"""Stage 5, gate: decide whether a new version may become the champion, with statistics.

A candidate is promoted only when every check passes:

* **monotonic**: raising a paid percentage never lowered a score;
* **calibrated**, because 0.8 is an absolute probability cut. The bar is an
  ECE of at most ``max_ece`` (0.02), applied as such once the held-out set is
  large enough for it to be measurable: when a perfectly calibrated model with
  these scores would exceed 0.02 less than 5 % of the time (``test_ece_noise``
  <= 0.02; about 5,000 held-out rows for the demo's scores, see
  ``ece_rows_needed``). On fewer rows 0.02 cannot be told from noise, and the
  check is the test that a calibrated model passes 95 % of the time: ECE <=
  ``test_ece_noise``. The ECE's bootstrap interval is reported either way;
* **beats the percentage rule**: the lower end of the paired 95 % interval of
  the AUC lift over the rule (same resampled held-out rows) is above
  ``min_lift`` (default 0);
* **beats the champion**: likewise for the AUC lift over the champion, scored
  on the same held-out rows. Retraining on the same data gives a lift whose
  interval straddles 0, so it is not promoted.

The first version (no champion) is promoted when it passes the other checks.
This module is pure: it reads metrics and returns a decision; applying it is
``model_registry``'s job. The same metrics give the same decision.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateBars:
    """The promotion thresholds (logged with each run)."""

    max_ece: float = 0.02
    min_lift: float = 0.0  # the paired interval's lower end must be above this
    require_monotonic: bool = True

    def to_dict(self) -> dict:
        """Return the bars as a flat dict."""
        return {f"gate_{k}": v for k, v in asdict(self).items()}


@dataclass
class Check:
    """One bar: its name, whether it passed, and the numbers behind it."""

    name: str
    passed: bool
    detail: str


@dataclass
class GateDecision:
    """Promote or not, and why."""

    promote: bool
    checks: list[Check] = field(default_factory=list)
    champion_compared: bool = False

    @property
    def reasons(self) -> list[str]:
        """Return the details of the failed checks (empty when promoted)."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def summary(self) -> str:
        """Return one line saying what was decided and why."""
        if self.promote:
            return "promote: " + "; ".join(f"{c.name} ok" for c in self.checks)
        return "keep as challenger: " + "; ".join(self.reasons)


def _lift(metrics: dict, name: str) -> str:
    return (f"{metrics[name]:+.4f} [{metrics[name + '_low']:+.4f}, {metrics[name + '_high']:+.4f}]"
            if name + "_low" in metrics else f"{metrics.get(name, float('nan')):+.4f}")


def _calibration(metrics: dict[str, float], bars: GateBars) -> Check:
    ece, noise = metrics["test_ece"], metrics.get("test_ece_noise", 0.0)
    shown = (f"ECE {ece:.4f} [{metrics['test_ece_low']:.4f}, {metrics['test_ece_high']:.4f}]"
             if "test_ece_low" in metrics else f"ECE {ece:.4f}")
    rows, needed = int(metrics.get("test_rows", 0)), int(metrics.get("ece_rows_needed", 0))
    if noise <= bars.max_ece:
        ok = ece <= bars.max_ece
        return Check("calibration", ok, f"{shown} {'<=' if ok else '>'} {bars.max_ece:g} "
                     f"(measurable on {rows:,} rows: a calibrated model exceeds {noise:.4f} 5 % of the time)")
    ok = ece <= noise
    return Check("calibration", ok, f"{shown} {'<=' if ok else '>'} {noise:.4f}, what a calibrated model exceeds "
                 f"5 % of the time on {rows:,} rows (the {bars.max_ece:g} bar needs about {needed:,} rows)")


def decide(metrics: dict[str, float], bars: GateBars = GateBars(), *, has_champion: bool = False) -> GateDecision:
    """Return the gate's decision for a candidate's held-out metrics.

    ``metrics`` are ``pipeline.evaluate`` names: ``test_*``, ``baseline_*``,
    ``auc_lift_over_*`` with ``_low``/``_high`` (the paired interval),
    ``champion_*`` when the champion was scored on the same rows.
    """
    checks = []
    if bars.require_monotonic:
        drops = {k.removeprefix("monotonic_max_drop_"): v for k, v in metrics.items()
                 if k.startswith("monotonic_max_drop_") and v > 1e-9}
        checks.append(Check("monotonic", metrics.get("monotonic", 0.0) >= 1.0,
                            "score never drops when a paid percentage rises" if not drops else
                            "score drops when " + ", ".join(f"{k} rises (by up to {v:.4f})" for k, v in drops.items())))
    checks.append(_calibration(metrics, bars))

    if "auc_lift_over_baseline" in metrics:
        low = metrics.get("auc_lift_over_baseline_low", float("nan"))
        ok = low > bars.min_lift
        checks.append(Check("beats percentage rule", ok,
                            f"AUC {metrics['test_auc']:.4f} vs rule {metrics['baseline_auc']:.4f}: lift "
                            f"{_lift(metrics, 'auc_lift_over_baseline')} (paired 95 %), lower end "
                            f"{'above' if ok else 'not above'} {bars.min_lift:g}"))

    compared = "champion_auc" in metrics and not math.isnan(metrics["champion_auc"])
    if has_champion and not compared:
        checks.append(Check("beats champion", False,
                            "the champion could not be scored on these rows; promote by hand if intended"))
    elif compared:
        low = metrics.get("auc_lift_over_champion_low", float("nan"))
        ok = low > bars.min_lift
        checks.append(Check("beats champion", ok,
                            f"AUC {metrics['test_auc']:.4f} vs champion {metrics['champion_auc']:.4f}: lift "
                            f"{_lift(metrics, 'auc_lift_over_champion')} (paired 95 %), lower end "
                            f"{'above' if ok else 'not above'} {bars.min_lift:g}"
                            + ("" if ok else ": not distinguishable from noise")))
    return GateDecision(promote=all(c.passed for c in checks), checks=checks, champion_compared=compared)
