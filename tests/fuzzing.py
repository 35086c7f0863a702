"""Schemathesis with every check (`--checks all`) over one operation, as each role, for both apps' fuzz tests.

Schemathesis' own pytest plugin does not run under pytest 9, so an operation's
strategy is drawn by Hypothesis directly: valid (positive) or invalid
(negative) data, each example sent as a role picked by Hypothesis too.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

# `--checks all`: every registered check (the OpenAPI ones register when their module is imported).
ALL_CHECKS = [check for check in CHECKS.get_all() if check is not None]
assert openapi_checks.positive_data_acceptance in ALL_CHECKS and len(ALL_CHECKS) >= 14
MAX_EXAMPLES = 15


def config(name: str) -> SchemathesisConfig:
    """Return schemathesis' settings from a TOML file next to this module."""
    return SchemathesisConfig.from_path(Path(__file__).with_name(name))


def fuzz(operation, mode, roles: Sequence[str], headers: Callable[[str], dict], *,
         checks: Callable[[object], list] = lambda case: ALL_CHECKS,
         answered: Callable[[str, object], None] | None = None, max_examples: int = MAX_EXAMPLES,
         server_errors: tuple[int, ...] = ()) -> None:
    """Send generated cases as each role: no 5xx but ``server_errors``, every check passes (``answered`` sees each)."""

    @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(list(roles)))
    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case, role):
        sent = headers(role)
        response = case.call(headers=sent)
        if answered is not None:
            answered(role, response)
        assert response.status_code < 500 or response.status_code in server_errors, response.text[:500]
        case.validate_response(response, checks=checks(case), headers=sent)

    run()
