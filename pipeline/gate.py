"""Stage 5, gate: decide whether a new version may become the champion.

A candidate is promoted only when it passes every **absolute bar** and, when
there is a champion, **beats it by a margin on the same held-out rows**:

* monotonic: raising a paid percentage never lowered a score;
* calibrated, because 0.8 is an absolute probability cut: ECE <= ``max_ece`` +
  ``test_ece_noise``, the ECE a perfectly calibrated model exceeds by chance
  only 5 % of the time on this many rows. On 25,000 test rows the noise is
  about 0.01; on the demo's 280 it is about 0.07, so the bar adapts to the
  evidence instead of failing good models on small data;
* better than the percentage rule (mean yearly percentage / 100): AUC above
  the rule's by more than ``min_baseline_auc_lift`` (default 0: simply above)
  and a lower Brier score;
* beats the champion: AUC >= champion AUC + ``champion_auc_margin`` and a
  Brier score no worse than the champion's + ``champion_brier_tolerance``.

The first version (no champion) is promoted when it passes the absolute bars.
This module is pure: it reads metrics and returns a decision; applying it is
``model_registry``'s job.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class GateBars:
    """The promotion thresholds (logged with each run)."""

    max_ece: float = 0.02
    min_baseline_auc_lift: float = 0.0
    champion_auc_margin: float = 0.002
    champion_brier_tolerance: float = 0.002
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


def decide(metrics: dict[str, float], bars: GateBars = GateBars(), *, has_champion: bool = False) -> GateDecision:
    """Return the gate's decision for a candidate's held-out metrics.

    ``metrics`` are ``pipeline.evaluate`` names: ``test_*``, ``baseline_*``,
    ``champion_*`` (present when the champion was scored on the same rows).
    """
    checks = []
    if bars.require_monotonic:
        drops = {k.removeprefix("monotonic_max_drop_"): v for k, v in metrics.items()
                 if k.startswith("monotonic_max_drop_") and v > 1e-9}
        checks.append(Check("monotonic", metrics.get("monotonic", 0.0) >= 1.0,
                            "score never drops when a paid percentage rises" if not drops else
                            "score drops when " + ", ".join(f"{k} rises (by up to {v:.4f})" for k, v in drops.items())))

    ece, noise = metrics["test_ece"], metrics.get("test_ece_noise", 0.0)
    limit = bars.max_ece + noise
    checks.append(Check("calibration", ece <= limit,
                        f"ECE {ece:.4f} {'<=' if ece <= limit else '>'} {limit:.4f} "
                        f"({bars.max_ece:g} + sampling noise {noise:.4f})"))

    if "baseline_auc" in metrics:
        auc, base = metrics["test_auc"], metrics["baseline_auc"]
        brier, base_brier = metrics["test_brier"], metrics["baseline_brier"]
        ok = auc - base > bars.min_baseline_auc_lift and brier < base_brier
        needs = f" (needs +{bars.min_baseline_auc_lift:g})" if bars.min_baseline_auc_lift else ""
        checks.append(Check("beats percentage rule", ok,
                            f"AUC {auc:.4f} vs rule {base:.4f}{needs}; Brier {brier:.4f} vs rule {base_brier:.4f}"))

    compared = "champion_auc" in metrics and not math.isnan(metrics["champion_auc"])
    if has_champion and not compared:
        checks.append(Check("beats champion", False,
                            "the champion could not be scored on these rows; promote by hand if intended"))
    elif compared:
        auc, champ = metrics["test_auc"], metrics["champion_auc"]
        brier, champ_brier = metrics["test_brier"], metrics["champion_brier"]
        ok = auc >= champ + bars.champion_auc_margin and brier <= champ_brier + bars.champion_brier_tolerance
        checks.append(Check("beats champion", ok,
                            f"AUC {auc:.4f} vs champion {champ:.4f} (needs +{bars.champion_auc_margin:g}); "
                            f"Brier {brier:.4f} vs champion {champ_brier:.4f}"))
    return GateDecision(promote=all(c.passed for c in checks), checks=checks, champion_compared=compared)
