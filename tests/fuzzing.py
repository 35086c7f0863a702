"""Schemathesis with every check (`--checks all`) over one operation, as each role, for both apps' fuzz tests.

Schemathesis' own pytest plugin does not run under pytest 9, so an operation's
strategy is drawn by Hypothesis directly: valid (positive) or invalid
(negative) data, each example sent as a role picked by Hypothesis too
(`fuzz`). `cover` sends schemathesis' coverage phase (every boundary and
every violation of the document, a fixed list) as every role.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode, Response
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


def _always(case) -> bool:
    return True


def _all_checks(case) -> list:
    return ALL_CHECKS


@dataclass
class Caller:
    """Who sends the cases (roles and their headers), which checks judge the answers, which cases may go."""

    roles: Sequence[str]
    headers: Callable[[str], dict]
    checks: Callable[[Case], list] = _all_checks
    answered: Callable[[str, Response], None] | None = None  # sees every answer, before the checks
    server_errors: tuple[int, ...] = ()  # 5xx that are the documented answer here
    sendable: Callable[[Case], bool] = _always  # False for a case that breaks a rule the document states in words

    def send(self, case: Case, role: str) -> None:
        """Send one case as a role: no 5xx but ``server_errors``, and every check passes."""
        sent = self.headers(role)
        response = case.call(headers=sent)
        if self.answered is not None:
            self.answered(role, response)
        assert response.status_code < 500 or response.status_code in self.server_errors, response.text[:500]
        case.validate_response(response, checks=self.checks(case), headers=sent)


def fuzz(operation, mode: GenerationMode, caller: Caller, max_examples: int = MAX_EXAMPLES) -> None:
    """Send Hypothesis' cases for one operation (valid or invalid data), each as a role Hypothesis picks."""

    @given(case=operation.as_strategy(generation_mode=mode), role=st.sampled_from(list(caller.roles)))
    @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case, role):
        assume(caller.sendable(case))
        caller.send(case, role)

    run()


def cover(schema, operation, caller: Caller) -> int:
    """Send schemathesis' coverage cases for one operation (each boundary, each violation) as every role; count them."""
    cases = schema.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                       generation_config=schema.config.generation_for(operation=operation))
    sent = 0
    for case in cases:
        if caller.sendable(case):
            for role in caller.roles:
                caller.send(case, role)
                sent += 1
    return sent
