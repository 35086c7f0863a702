"""A credit method's verdict before the policy's limit check and before it is stored."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Decision:
    """What a method (percentage or ML) says: its score against its threshold, inputs and reasons."""

    method: str
    approved: bool
    threshold: float
    score: float | None
    inputs: dict
    reasons: list[dict] = field(default_factory=list)
    model_version: str | None = None
    shadow: dict | None = None  # {"version", "score", "approved"}: the challenger's view, never the verdict
