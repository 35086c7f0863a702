"""Fixtures and data builders for the pipeline, registry and notebook tests.

Import the fixtures into a test module with ``from tests.mlflow_fixtures import *``
(pytest finds them as module globals). Expensive things are made once per
session and copied per test:

* ``demo_ledger_url``: a migrated SQLite ledger with 1,000 simulated customers;
* ``mlflow_template``: an empty, migrated MLflow SQLite store (creating one costs
  seconds); ``mlflow_uri`` gives each test its own copy, artifacts next to it;
* ``trained_store``: a store where one full run made version 1 the champion,
  shared read-only by the tests that only look at it.
"""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from pipeline.features import FEATURES

__all__ = ["demo_ledger_url", "mlflow_template", "mlflow_uri", "trained_store", "synthetic_frame", "quiet_mlflow"]

# Fixtures imported into several test modules are registered once per module by pytest, so a
# "session" fixture would run once per module; this cache makes each one run once per process.
_ONCE: dict[str, object] = {}


def synthetic_frame(n: int = 400, seed: int = 0, *, with_age: bool = True) -> pd.DataFrame:
    """Return a year_percentage-shaped frame whose label rises with the paid percentages."""
    rng = np.random.default_rng(seed)
    skill = rng.beta(4, 1, n)
    pct = np.clip(100 * (skill[:, None] + rng.normal(0, 0.08, (n, len(FEATURES)))), 0, 100).round(2)
    logit = -6 + 0.08 * pct.mean(axis=1) + rng.normal(0, 0.5, n)
    p = 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(pct, columns=FEATURES)
    frame.insert(0, "customer_id", np.arange(1000, 1000 + n))
    frame.insert(1, "decision_year", 2026)
    frame["result"] = (rng.random(n) < p).astype(int)
    frame["true_probability"] = p
    if with_age:
        frame["age"] = rng.integers(18, 80, n)
    return frame


@pytest.fixture(scope="session", autouse=False)
def quiet_mlflow():
    """Keep MLflow's INFO lines and progress bars out of the test output."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def demo_ledger_url(tmp_path_factory):
    """Return the URL of a migrated SQLite ledger holding the 1,000-customer demo simulation."""
    from pipeline.simulate import simulate
    from portal.cli import migrate
    from portal.db import Database
    from portal.importer import import_ledger

    if "ledger" not in _ONCE:
        url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'credit.db'}"
        migrate(url)
        db = Database(url)
        import_ledger(db, simulate(1000, 42), progress=False)
        db.dispose()
        _ONCE["ledger"] = url
    return _ONCE["ledger"]


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory, quiet_mlflow):
    """Return the path of an empty MLflow SQLite store, migrated once per session."""
    from mlflow import MlflowClient

    if "template" not in _ONCE:
        path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
        _dispose_mlflow_engines()
        _ONCE["template"] = path
    return _ONCE["template"]


def _dispose_mlflow_engines() -> None:
    """Close MLflow's cached SQLite engines so a store file can be copied safely."""
    try:
        from mlflow.store.db import utils

        for engine in getattr(utils, "_engine_cache", {}).values():
            engine.dispose()
    except Exception:  # noqa: BLE001 - best effort; copying a closed SQLite file is safe anyway
        pass


@pytest.fixture
def mlflow_uri(mlflow_template, tmp_path, monkeypatch):
    """Return a fresh store for one test (a copy of the template); artifacts go next to it."""
    path = tmp_path / "mlflow" / "mlflow.db"
    path.parent.mkdir()
    shutil.copy(mlflow_template, path)
    uri = f"sqlite:///{path}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory, mlflow_template, demo_ledger_url):
    """Run the whole pipeline once on the demo ledger; return (uri, RunOutcome) with version 1 champion."""
    from pipeline.run import RunConfig, run

    if "trained" not in _ONCE:
        folder = tmp_path_factory.mktemp("trained")
        shutil.copy(mlflow_template, folder / "mlflow.db")
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        outcome = run(RunConfig(database_url=demo_ledger_url, tracking_uri=uri), out=lambda line: None)
        assert outcome.promoted and outcome.version == "1", outcome.decision
        _ONCE["trained"] = (uri, outcome)
    return _ONCE["trained"]
