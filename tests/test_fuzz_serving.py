"""Schemathesis against serving's /openapi.json with every check (`--checks all`), with the token and without.

The service runs in-process on a real MLflow store: the trained champion (version 1), which
also holds the alias `challenger`, so decisions carry the shadow's score. Each operation is
fuzzed with valid (positive) and invalid (negative) data and through schemathesis' coverage
phase (tests/fuzzing.py), each case sent with the bearer token or anonymously: no 5xx, every
answer as the document says, 401 for a scoring call without the token; without a model, 503.
The document lists exactly the app's routes and is valid OpenAPI.
"""
import shutil
from dataclasses import replace

import pytest
import schemathesis
from jsonschema import Draft202012Validator
from mlflow import MlflowClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi import checks as openapi_checks

from model_registry import registry
from serving import create_app, openapi
from tests.fuzzing import ALL_CHECKS, Caller, config, cover, fuzz
from tests.plugins.mlflow_stores import APPLICANT_MODEL

TOKEN = "fuzz-serving-token"
ROLES = {"authorised": {"Authorization": f"Bearer {TOKEN}"}, "anonymous": {}}
# The rows of a CSV or Parquet body are inside a string: JSON Schema cannot say which strings are
# valid CSV or Parquet of the version's columns, so a "valid" one is not expected to be accepted.
OPAQUE_BODIES = ("text/csv", "application/vnd.apache.parquet")
# A Parquet body goes on the wire as the bytes generated for it (no schemathesis serializer knows the type).
schemathesis.serializer.alias("application/vnd.apache.parquet", "application/octet-stream")
CONFIG = config("schemathesis-serving.toml")
# Serving has few operations: more examples each than the portal's fuzzing, for about the same time.
MAX_EXAMPLES = 50


def _operations() -> dict[str, dict]:
    """Return the document's operations by label ("GET /health")."""
    paths = openapi.source()["paths"]
    return {f"{method.upper()} {path}": op for path, methods in paths.items() for method, op in methods.items()}


def _labels() -> list[str]:
    return sorted(_operations())


# Schemathesis leaves out the operation that serves the document it reads.
FUZZED = [label for label in _labels() if label != "GET /openapi.json"]
# Invalid data needs something to be invalid in: a body, a parameter or the token.
TAKES_INPUT = {label for label, op in _operations().items() if op.get("requestBody") or op.get("parameters")
               or op.get("security")}
# The operations whose bodies hold rows of the served model.
SCORING = [label for label in FUZZED if label.startswith("POST ")]
CASES = [pytest.param(label, GenerationMode.POSITIVE, id=f"{label}-valid") for label in FUZZED] + [
    pytest.param(label, GenerationMode.NEGATIVE, id=f"{label}-invalid") for label in FUZZED if label in TAKES_INPUT]


@pytest.fixture(scope="module")
def service(tmp_path_factory, trained_store):
    """Return serving on a copy of the trained store where version 1 is champion and challenger."""
    uri, _ = trained_store
    path = tmp_path_factory.mktemp("fuzz-serving") / "mlflow.db"
    shutil.copy(uri.removeprefix("sqlite:///"), path)
    copy = f"sqlite:///{path}"
    MlflowClient(tracking_uri=copy, registry_uri=copy).set_registered_model_alias(
        registry.MODEL_NAME, registry.CHALLENGER, "1")
    return create_app({"MLFLOW_TRACKING_URI": copy, "WATCH": False, "SERVING_TOKEN": TOKEN})


@pytest.fixture(scope="module")
def categorical(applicant_store):
    """Return serving on another bank's model: numeric and categorical features, gradient boosting, a challenger."""
    return create_app({"MLFLOW_TRACKING_URI": applicant_store, "WATCH": False, "SERVING_TOKEN": TOKEN,
                       "SERVING_MODEL": f"{APPLICANT_MODEL}@champion"})


@pytest.fixture
def modelless(mlflow_uri):
    """Return serving on an empty store: no model loaded."""
    return create_app({"MLFLOW_TRACKING_URI": mlflow_uri, "WATCH": False, "SERVING_TOKEN": TOKEN})


def _checks(case) -> list:
    if case.media_type in OPAQUE_BODIES:
        return [check for check in ALL_CHECKS if check is not openapi_checks.positive_data_acceptance]
    return ALL_CHECKS


def _sendable(case) -> bool:
    """Drop valid cases whose column-oriented features have lists of several lengths (the document says it in words)."""
    if case.meta is not None and case.meta.generation.mode is GenerationMode.NEGATIVE:
        return True
    features = case.operation.schema.raw_schema["components"]["schemas"]["Row"].get("required", [])
    body = case.body if isinstance(case.body, dict) else {}
    columns = [body[key] for key in ("instances", "inputs") if isinstance(body.get(key), dict)]
    return all(len({len(c[f]) for f in features if isinstance(c.get(f), list)}) <= 1 for c in columns)


SERVING = Caller(list(ROLES), lambda role: dict(ROLES[role]), checks=_checks, sendable=_sendable)


def _operation(app, label: str):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)
    return schema, schema.find_operation_by_label(label)


@pytest.mark.slow
@pytest.mark.parametrize("label,mode", CASES)
def test_operation(service, label, mode):
    _, operation = _operation(service, label)
    fuzz(operation, mode, SERVING, max_examples=MAX_EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("label", FUZZED)
def test_operation_coverage(service, label):
    """Schemathesis' coverage phase: every boundary of the document and every violation of it."""
    assert cover(*_operation(service, label), SERVING) > 0


@pytest.mark.slow
@pytest.mark.parametrize("label", SCORING)
def test_categorical_rows(categorical, label):
    """A model with categories: the document's rows take strings or null for them, and serving agrees."""
    _, operation = _operation(categorical, label)
    for mode in GenerationMode:
        fuzz(operation, mode, SERVING, max_examples=MAX_EXAMPLES)
    assert cover(*_operation(categorical, label), SERVING) > 0


@pytest.mark.slow
def test_every_answer_without_a_model_is_documented(modelless):
    """Before a model loads, 503 is the documented answer of /ready and of scoring: every other check holds."""
    assert modelless.test_client().get("/ready").status_code == 503
    checks = [check for check in ALL_CHECKS if check is not not_a_server_error]
    caller = replace(SERVING, checks=lambda case: checks, server_errors=(503,))
    for label in FUZZED:
        fuzz(_operation(modelless, label)[1], GenerationMode.POSITIVE, caller, max_examples=10)


def test_document_lists_exactly_the_routes(modelless):
    routes = {f"{method} {rule.rule}" for rule in modelless.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == set(_labels())


def _assert_valid(app) -> dict:
    """Check the app's document against the OpenAPI 3.1 meta-schema and each schema against JSON Schema."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app, config=CONFIG)
    schema.validate()
    assert sorted(op.ok().label for op in schema.get_all_operations()) == FUZZED
    for component in schema.raw_schema["components"]["schemas"].values():
        Draft202012Validator.check_schema(component)
    return schema.raw_schema


def test_document_is_valid_openapi_without_a_model(modelless):
    assert _assert_valid(modelless)["components"]["schemas"]["Row"]["type"] == "object"
    assert modelless.test_client().get("/openapi.json").status_code == 200  # open: no token


@pytest.mark.slow
def test_document_states_the_live_versions_rows(service):
    schemas = _assert_valid(service)["components"]["schemas"]
    live = service.extensions["model_holder"].live
    assert schemas["Row"]["required"] == list(live.features)
    assert [schemas["Row"]["properties"][name]["maximum"] for name in live.features] == \
        [live.bounds[name][1] for name in live.features]
    assert schemas["Rows"]["maxItems"] == service.config["MAX_ROWS"]
