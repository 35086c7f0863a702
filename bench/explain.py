"""Words for missed goals that several benchmarks print: where a decision's time goes, how busy the machine was."""
from __future__ import annotations

import os


def busy() -> str:
    """Say how loaded the machine is now (the measurement shared its cores with it)."""
    return (f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs while measuring "
            "(other processes shared the cores)")


def decision_why(score_us: float, decision_us: float) -> str:
    """Say where the time of one in-process decision (score + reasons) went."""
    return (f"{score_us:.1f} us of the {decision_us:.1f} us is one score call; the rest is the reasons (the row "
            "and 5 substitutions scored in one call, then ranked and worded in Python) and building the answer; "
            + busy())
