"""Pytest plugin: the demo ledger and the MLflow stores of the pipeline, registry, serving and notebook tests.

Registered by ``pytest_plugins`` in tests/conftest.py. Expensive things are
made once per session (once per xdist worker) and copied per test:

* ``demo_ledger_url``: a migrated SQLite ledger with 1,000 simulated customers;
* ``mlflow_template``: an empty, migrated MLflow SQLite store (creating one costs
  seconds); ``mlflow_uri`` gives each test its own copy, artifacts next to it;
* ``trained_store``: a store where one full run made version 1 the champion,
  shared read-only by the tests that only look at it.
"""
from __future__ import annotations

import logging
import shutil

import pytest
from mlflow import MlflowClient
from mlflow.store.db import utils as mlflow_db_utils

from pipeline.run import RunConfig, run
from testing.ledgers import simulated_ledger


@pytest.fixture(scope="session")
def quiet_mlflow():
    """Keep MLflow's INFO lines and progress bars out of the test output."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_LOGGING_LEVEL", "WARNING")
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def demo_ledger_url(tmp_path_factory):
    """Return the URL of a migrated SQLite ledger holding the 1,000-customer demo simulation."""
    return simulated_ledger(f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'credit.db'}", 1000, 42)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory, quiet_mlflow):
    """Return the path of an empty MLflow SQLite store, migrated once per session."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    _dispose_mlflow_engines()
    return path


def _dispose_mlflow_engines() -> None:
    """Close MLflow's cached SQLite engines so a store file can be copied safely."""
    for engine in getattr(mlflow_db_utils, "_engine_cache", {}).values():
        engine.dispose()


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
    folder = tmp_path_factory.mktemp("trained")
    shutil.copy(mlflow_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    outcome = run(RunConfig(database_url=demo_ledger_url, tracking_uri=uri), out=lambda line: None)
    assert outcome.promoted and outcome.version == "1", outcome.decision
    return uri, outcome
