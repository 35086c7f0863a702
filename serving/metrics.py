"""Prometheus metrics of the decision service (text format at GET /metrics).

Under gunicorn, set PROMETHEUS_MULTIPROC_DIR (``make serve`` does) so that every
worker's counts add up in one answer.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# prometheus_client opens its per-process files as soon as a metric is made: make sure the folder exists.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

REQUESTS = Counter("serving_requests_total", "Requests answered", ["endpoint", "status"])
ROWS = Counter("serving_rows_scored_total", "Rows scored", ["endpoint"])
ERRORS = Counter("serving_errors_total", "Requests refused or failed", ["endpoint", "kind"])
LATENCY = Histogram("serving_request_seconds", "Time to answer a request", ["endpoint"],
                    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
MODEL_VERSION = Gauge("serving_model_version", "Registered version being served (0: none)",
                      multiprocess_mode="max")
RELOAD_FAILURES = Counter("serving_model_reload_failures_total", "Failed attempts to load a new champion")
SHADOW_VERSION = Gauge("serving_shadow_version", "Challenger version scored in the shadow (0: none)",
                       multiprocess_mode="max")
SHADOW_ERRORS = Counter("serving_shadow_errors_total", "Shadow scoring skipped: challenger failed to load or score",
                        ["kind"])


# `Counter.labels(...)` looks its child up under a lock and with string checks each time (about 10 us, a tenth
# of a one-row request): each child is looked up once per process and kept.
_children: dict[tuple, object] = {}


def child(metric, *labels: str):
    """Return the metric's child for these label values (cached: the lookup costs more than the increment)."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def answered(endpoint: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency."""
    child(REQUESTS, endpoint, str(status)).inc()
    child(LATENCY, endpoint).observe(seconds)


def render() -> tuple[bytes, str]:
    """Return the metrics page and its content type (all workers when multiprocess)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
