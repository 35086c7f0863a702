"""Stage 5, gate: decide whether a new version may become its model's champion, with statistics.

A candidate is promoted only when every check that applies to its table passes:

* **monotonic** (only when the spec declares monotone features; for the
  ledger, every paid percentage): raising such a feature never moved a score
  the wrong way (down for an increasing feature, up for a decreasing one);
* **calibrated**, because 0.8 is an absolute probability cut. The bar is an
  ECE of at most ``max_ece`` (0.02), applied as such once the held-out set is
  large enough for it to be measurable: when a perfectly calibrated model with
  these scores would exceed 0.02 less than 5 % of the time (``test_ece_noise``
  <= 0.02; about 5,000 held-out rows for the demo's scores, see
  ``ece_rows_needed``). On fewer rows 0.02 cannot be told from noise, and the
  check is the test that a calibrated model passes 95 % of the time: ECE <=
  ``test_ece_noise``. The ECE's bootstrap interval is reported either way;
* **beats the percentage rule** (the ledger): the lower end of the paired 95 %
  interval of the AUC lift over the rule (same resampled held-out rows) is
  above ``min_lift`` (default 0). A table without a rule must instead **rank
  better than chance**: the lower end of the AUC's 95 % interval above 0.5;
* **beats the champion** of the same registered model: likewise for the AUC
  lift over the champion, scored on the same held-out rows. Retraining on the
  same data gives a lift whose interval straddles 0, so it is not promoted;
* **servable** (added after registration, ``servable``): serving can load the
  registered version and score its input example.

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

    def add(self, check: Check) -> None:
        """Add a check decided later (servable); a failed one keeps the version out."""
        self.checks.append(check)
        self.promote = self.promote and check.passed

    @property
    def reasons(self) -> list[str]:
        """Return the details of the failed checks (empty when promoted)."""
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]

    def summary(self) -> str:
        """Return one line saying what was decided and why."""
        if self.promote:
            return "promote: " + "; ".join(f"{c.name} ok" for c in self.checks)
        return "keep as challenger: " + "; ".join(self.reasons)


def _lift(metrics: dict, name: str, sign: str = "+") -> str:
    return (f"{metrics[name]:{sign}.4f} [{metrics[name + '_low']:{sign}.4f}, {metrics[name + '_high']:{sign}.4f}]"
            if name + "_low" in metrics else f"{metrics.get(name, float('nan')):{sign}.4f}")


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
    prefix = "monotonic_max_drop_"
    drops = {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}
    if bars.require_monotonic and drops:
        wrong = {k: v for k, v in drops.items() if v > 1e-9}
        checks.append(Check("monotonic", not wrong,
                            f"the score never moves against the declared direction of {_names(drops)}" if not wrong
                            else "the score moves the wrong way when " + ", ".join(
                                f"{k} rises (by up to {v:.4f})" for k, v in wrong.items())))
    checks.append(_calibration(metrics, bars))

    if "auc_lift_over_baseline" in metrics:
        low = metrics.get("auc_lift_over_baseline_low", float("nan"))
        ok = low > bars.min_lift
        checks.append(Check("beats percentage rule", ok,
                            f"AUC {metrics['test_auc']:.4f} vs rule {metrics['baseline_auc']:.4f}: lift "
                            f"{_lift(metrics, 'auc_lift_over_baseline')} (paired 95 %), lower end "
                            f"{'above' if ok else 'not above'} {bars.min_lift:g}"))
    else:
        low = metrics.get("test_auc_low", float("nan"))
        ok = low > 0.5
        checks.append(Check("ranks better than chance", ok,
                            f"AUC {_lift(metrics, 'test_auc', '')} (95 %), lower end {'above' if ok else 'not above'} "
                            "0.5 (no rule to beat on this table)"))

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


def servable(problem: str | None) -> Check:
    """Return the servable check: ``problem`` is why serving could not load and score the version, None if it can."""
    return Check("servable", problem is None,
                 "serving loads the registered version and scores its input example" if problem is None else problem)


def _names(features: dict) -> str:
    names = list(features)
    return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:2])} and {len(names) - 2} more"
