"""Pytest plugin: the demo ledger and the MLflow stores of the pipeline, registry, serving and notebook tests.

Registered by ``pytest_plugins`` in tests/conftest.py. Expensive things are
made once per session (once per xdist worker) and copied per test:

* ``demo_ledger_url``: a migrated SQLite ledger with 1,000 simulated customers;
* ``mlflow_template``: an empty, migrated MLflow SQLite store (creating one costs
  seconds); ``mlflow_uri`` gives each test its own copy, artifacts next to it;
* ``trained_store``: a store where one full run made version 1 the champion,
  shared read-only by the tests that only look at it; ``store_copy`` is a copy
  of it for a test that moves aliases or adds versions;
* ``applicant_store``: a copy of it where another bank's table (numeric and
  categorical columns, a good/bad target) trained ``applicant-risk``: version 1
  (gradient boosting) is its champion, version 2 (logistic regression) holds the
  alias ``challenger``; ``credit-approval`` is untouched.
"""
from __future__ import annotations

import logging
import shutil

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.store.db import utils as mlflow_db_utils

import model_registry
from model_registry import package, store
from pipeline import dataset as ds
from pipeline import reference as ref
from pipeline import register as rg
from pipeline import train as tr
from pipeline.run import RunConfig, run
from testing.ledgers import simulated_ledger
from tests.factories import APPLICANT_CATEGORICAL, APPLICANT_NUMERIC, applicant_table

APPLICANT_MODEL = "applicant-risk"
APPLICANT_THRESHOLD = 0.7
# The target is the good/bad column `risk` as 0/1 (good = 1): the pipeline's spec has no positive class yet.
APPLICANT_SPEC = ds.DatasetSpec(target="good", numeric=APPLICANT_NUMERIC, categorical=APPLICANT_CATEGORICAL,
                                id_column="applicant", monotone_increasing=(), table="applicants",
                                bounds={"duration_months": (1.0, 120.0), "age_years": (18.0, 100.0)},
                                true_probability=None, date_column=None, baseline_features=())


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


@pytest.fixture
def store_copy(trained_store, tmp_path):
    """Return a copy of the trained store that one test may change (its artifacts stay shared, read-only)."""
    uri, _ = trained_store
    path = tmp_path / "mlflow.db"
    shutil.copy(uri.removeprefix("sqlite:///"), path)
    return f"sqlite:///{path}"


def applicant_frame() -> pd.DataFrame:
    """Return the other bank's table with its good/bad target as the 0/1 column ``good``."""
    frame = applicant_table()
    return frame.assign(good=(frame["risk"] == "good").astype(int))


def register_table_model(frame: pd.DataFrame, spec: ds.DatasetSpec, uri: str, name: str, kind: str,
                         threshold: float = APPLICANT_THRESHOLD) -> str:
    """Train one kind of candidate on a table and register it as a version of ``name``; return the version.

    The pipeline's own stages and packaging (split, train, feature reference, metadata,
    input example, ``model_registry.package``), under a model name of the table's own:
    a stand-in for ``pipeline.run`` until it registers other tables under their names.
    """
    data = ds.prepare(frame, spec)
    params = tr.TrainParams(candidates=(kind,))
    splits = tr.split(data.frame, spec, params)
    training = tr.train(splits, spec, params)
    known = pd.concat([splits.train, splits.calibration])
    reference = ref.feature_reference(known, tr.predict_scores(training.model, known, spec), spec, threshold=threshold)
    metadata = {**rg.model_metadata(spec, training, ds.fingerprint(data.frame, spec), threshold, params), "name": name}
    model_registry.configure(uri)
    with mlflow.start_run(experiment_id=store.ensure_experiment(uri, name)) as active:
        info = package.log_model(training.model, metadata, reference, rg.input_example(data.frame, spec))
    return model_registry.register(info.model_uri, run_id=active.info.run_id, name=name, tracking_uri=uri,
                                   tags={"model_kind": training.kind})


@pytest.fixture(scope="session")
def applicant_store(tmp_path_factory, trained_store):
    """Return the URI of a store holding credit-approval@champion (v1) and applicant-risk (see the module doc)."""
    folder = tmp_path_factory.mktemp("applicants")
    _dispose_mlflow_engines()
    shutil.copy(trained_store[0].removeprefix("sqlite:///"), folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    frame = applicant_frame()
    champion = register_table_model(frame, APPLICANT_SPEC, uri, APPLICANT_MODEL, "hgb")
    model_registry.promote(champion, who="tests", why="the other bank's first model", name=APPLICANT_MODEL,
                           tracking_uri=uri)
    challenger = register_table_model(frame, APPLICANT_SPEC, uri, APPLICANT_MODEL, "logreg")
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(APPLICANT_MODEL, "challenger",
                                                                                challenger)
    return uri
