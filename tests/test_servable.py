"""The servable check: a version serving cannot load and score is reported before anything promotes or serves it."""
from __future__ import annotations

import dataclasses
import re

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

import model_registry
from model_registry import package, registry, servable, store
from pipeline.features import FEATURES
from pipeline.run import RunConfig, run
from serving import create_app
from tests.factories import synthetic_frame
from tests.plugins.mlflow_stores import APPLICANT_MODEL

pytestmark = pytest.mark.slow
BROKEN = "broken-models"


@pytest.fixture(scope="module")
def applicant_v1(applicant_store):
    """The other bank's champion, loaded as serving loads it."""
    return registry.load_version("1", APPLICANT_MODEL, applicant_store)


@pytest.fixture(scope="module")
def credit_v1(trained_store):
    return registry.load_version("1", tracking_uri=trained_store[0])


def log_version(uri: str, pipeline, metadata: dict, reference: dict, example: list[dict]) -> str:
    """Package a (possibly broken) model as the pipeline does and register it under BROKEN; return its version."""
    model_registry.configure(uri)
    with mlflow.start_run(experiment_id=store.ensure_experiment(uri, BROKEN)) as active:
        info = package.log_model(pipeline, metadata, reference, pd.DataFrame(example))
    return model_registry.register(info.model_uri, run_id=active.info.run_id, name=BROKEN, tracking_uri=uri)


def test_served_versions_are_servable(applicant_store):
    assert servable.problem("1", tracking_uri=applicant_store) is None
    assert servable.problem("1", APPLICANT_MODEL, applicant_store) is None
    assert servable.problem("2", APPLICANT_MODEL, applicant_store) is None


def test_the_credit_probe_is_unchanged(credit_v1):
    checked = servable.check(credit_v1)
    assert checked.probe.dtype.kind == "f" and checked.probe.shape == (servable.PROBE_ROWS, len(FEATURES))
    assert checked.probe.min() == 0.0 and checked.probe.max() == 100.0 and checked.categorical == ()


def test_mixed_probe_rows_cover_missing_and_unseen_categories(applicant_v1):
    checked = servable.check(applicant_v1)
    housing = set(checked.probe[:, applicant_v1.features.index("housing")])
    assert {"own", "rent", "for free", "missing", servable.UNSEEN} <= housing


def narrow_bounds(model) -> dict:
    """Return the version's metadata with bounds its own input example breaks."""
    return {**model.metadata, "spec": {**model.metadata["spec"], "bounds": {"age_years": [18.0, 19.0]}}}


def test_a_registered_version_serving_would_refuse_is_reported(mlflow_uri, applicant_v1):
    m = applicant_v1
    version = log_version(mlflow_uri, m.pipeline, narrow_bounds(m), m.reference, m.input_example)
    problem = servable.problem(version, BROKEN, mlflow_uri)
    assert problem.startswith("serving refuses the version's own input example: row 0: age_years="), problem


def signature_of(model, **types) -> list[dict]:
    return [{**column, "type": types.get(column["name"], column["type"])} for column in model.signature]


@pytest.mark.parametrize("case,words", [
    ("categories declared numeric", "the signature gives housing the type 'string', but it is numeric"),
    ("a signature of doubles", "the signature gives housing the type 'double', but it is categorical"),
    ("no signature", "no signature"),
    ("features out of order", "are not the numeric ones"),
    ("a duplicated feature", "bad feature list"),
    ("another model's pipeline", "predict_proba fails on its input example"),
    ("no input example", "no input example"),
    ("an example missing a column", "own input example: row 0: missing column(s) housing"),
    ("a threshold above 1", "is not a probability"),
    ("bounds of a category", "bad bounds for housing"),
])
def test_a_version_serving_cannot_score_is_named(applicant_v1, credit_v1, case, words):
    m = applicant_v1
    changes = {
        "categories declared numeric": {"numeric": m.features, "categorical": []},
        "a signature of doubles": {"signature": signature_of(m, housing="double")},
        "no signature": {"signature": None},
        "features out of order": {"features": m.features[::-1]},
        "a duplicated feature": {"features": [*m.features, "housing"]},
        "another model's pipeline": {"pipeline": credit_v1.pipeline},
        "no input example": {"input_example": []},
        "an example missing a column": {"input_example": [{k: v for k, v in row.items() if k != "housing"}
                                                          for row in m.input_example]},
        "a threshold above 1": {"threshold": 1.5},
        "bounds of a category": {"metadata": {**m.metadata, "spec": {"bounds": {"housing": [0, 1]}}}},
    }[case]
    with pytest.raises(servable.NotServable, match=re.escape(words)):
        servable.check(dataclasses.replace(m, **changes))


def test_a_version_that_cannot_be_loaded_is_reported(mlflow_uri):
    MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).create_registered_model(BROKEN)
    version = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).create_model_version(
        BROKEN, source="/nonexistent/model").version
    assert servable.problem(version, BROKEN, mlflow_uri).startswith(f"cannot load {BROKEN} version {version}")


def test_serving_keeps_the_last_good_version_and_names_the_problem(mlflow_uri, applicant_v1):
    m = applicant_v1
    good = log_version(mlflow_uri, m.pipeline, m.metadata, m.reference, m.input_example)
    model_registry.promote(good, who="test", why="good", name=BROKEN, tracking_uri=mlflow_uri)
    app = create_app({"MLFLOW_TRACKING_URI": mlflow_uri, "WATCH": False, "SERVING_MODEL": f"{BROKEN}@champion"})
    client = app.test_client()
    assert client.get("/version").json["version"] == good
    bad = log_version(mlflow_uri, m.pipeline, narrow_bounds(m), m.reference, m.input_example)
    model_registry.promote(bad, who="test", why="bad", name=BROKEN, tracking_uri=mlflow_uri)
    assert app.extensions["model_holder"].refresh() is False
    v = client.get("/version").json
    assert v["version"] == good and "input example: row 0: age_years=" in v["last_reload_error"]
    assert client.get("/ready").status_code == 200 and client.get("/ping").status_code == 200


def test_the_pipeline_never_promotes_a_version_serving_cannot_score(mlflow_uri, monkeypatch):
    monkeypatch.setattr(servable, "problem", lambda version, **_: f"version {version} cannot be scored")
    outcome = run(RunConfig(tracking_uri=mlflow_uri), frame=synthetic_frame(600, seed=3), out=lambda line: None)
    assert not outcome.promoted and registry.champion_version(tracking_uri=mlflow_uri) is None
    assert outcome.decision.reasons[-1] == f"servable: version {outcome.version} cannot be scored"
    tags = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri).get_model_version(
        "credit-approval", outcome.version).tags
    assert tags["status"] == "challenger" and "cannot be scored" in tags["gate_reasons"]
