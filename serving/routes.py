"""The decision service's endpoints: MLflow's scoring protocol, decisions, the model, replays and drift."""
from __future__ import annotations

import re
from datetime import date

import pandas as pd
from flask import Blueprint, Response, current_app, request

from model_registry import drift, registry
from model_registry.inputs import finite_number
from serving import bodies, metrics, openapi, shadow
from serving.decisions import decide
from serving.holder import ModelHolder
from serving.protocol import BadInput, NotJson, rows_from_mlflow, to_matrix
from serving.versions import VersionCache

bp = Blueprint("serving", __name__)


def holder() -> ModelHolder:
    """Return the app's live-model holder."""
    return current_app.extensions["model_holder"]


def shadow_holder() -> ModelHolder | None:
    """Return the challenger's holder, or None when shadow scoring is off."""
    return current_app.extensions.get("shadow_holder")


def versions() -> VersionCache:
    """Return the app's cache of versions loaded for replays."""
    return current_app.extensions["model_versions"]


def json_body() -> object:
    """Return the parsed JSON body, or raise 415/400."""
    if not request.is_json:
        raise NotJson("Content-Type must be application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError as exc:
        raise BadInput("the JSON body is nested too deeply") from exc
    if body is None:
        raise BadInput("the body is not valid JSON")
    return body


def rows_body() -> tuple[dict, list]:
    """Return a ``{"rows": [...], ...}`` body and its rows, or raise 400."""
    body = json_body()
    if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
        raise BadInput("the body must be {\"rows\": [{feature: value, ...}, ...]}")
    return body, body["rows"]


# The decision years and version numbers the document states (serving/openapi.yaml).
FIRST_YEAR, LAST_YEAR = (openapi.source()["components"]["schemas"]["DecisionYear"][k] for k in ("minimum", "maximum"))
VERSION_NUMBER = re.compile(openapi.source()["components"]["schemas"]["VersionNumber"]["pattern"])


def decision_year(body: dict) -> int:
    """Return the body's decision year (default: this year), or raise 400."""
    year = body.get("decision_year", date.today().year)
    if isinstance(year, float) and year.is_integer():  # JSON has one kind of number: 2026.0 is the year 2026
        year = int(year)
    if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise BadInput("decision_year must be a year")
    return year


def version_number(body: dict) -> str:
    """Return the body's ``version``, a registered version's number as a string, or raise 400."""
    name = body.get("version")
    if not isinstance(name, str) or not VERSION_NUMBER.fullmatch(name):
        raise BadInput("version must be a registered version number, as a string")
    return name


def numbers_or_null(rows: list, columns: list[str]) -> list[dict]:
    """Return rows that are objects whose listed columns are finite numbers or null (absent: null), or raise 400."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BadInput(f"row {i}: a row must be an object {{feature: value}}")
        for name in columns:
            if row.get(name) is not None:
                finite_number(i, name, row[name])
    return rows


@bp.get("/health")
def health():
    """Answer while the process lives."""
    return {"status": "ok"}


@bp.get("/ping")
def ping():
    """Answer as MLflow's scoring server does: a newline, 200 once a model is loaded (404 before)."""
    return Response("\n", status=200 if holder().ready else 404, mimetype="application/json")


@bp.get("/ready")
def ready():
    """Answer 200 once a model is loaded, else 503 with the reason; either way name the last reload problem."""
    h = holder()
    if not h.ready:
        return {"ready": False, "reason": h.last_error or "no champion loaded", "last_reload_error": h.last_error}, 503
    body = {"ready": True, "version": h.live.version, "last_reload_error": h.last_error}
    described = shadow.describe(shadow_holder(), registry.CHALLENGER)
    if described["version"] or described["error"]:  # informative: a broken challenger never makes serving unready
        body.update(shadow_version=described["version"], shadow_error=described["error"])
    return body


def version_info() -> dict:
    """Return the served model's name, alias, version, threshold and scorer (no version yet: nulls)."""
    h = holder()
    body = {"name": current_app.config["MODEL_NAME"], "alias": current_app.config["MODEL_ALIAS"], "version": None,
            "threshold": None, "last_reload_error": h.last_error,
            "shadow": shadow.describe(shadow_holder(), registry.CHALLENGER)}
    if h.ready:
        live = h.live
        body.update(version=live.version, threshold=live.threshold, features=list(live.features),
                    categorical=list(live.categorical), scorer=live.scorer,
                    trained_at=live.model.metadata.get("trained_at"), run_id=live.model.run_id)
    return body


@bp.get("/version")
def version():
    """Name the served model: name, alias, version, threshold, features, scorer."""
    return version_info()


@bp.get("/metrics")
def metrics_page():
    """Prometheus metrics of every worker."""
    body, content_type = metrics.render()
    return Response(body, content_type=content_type)


@bp.get("/openapi.json")
def openapi_document():
    """This service's OpenAPI document, with the live version's rows (serving/openapi.yaml)."""
    return openapi.document(holder().current, current_app.config["MAX_ROWS"])


@bp.post("/invocations")
def invocations():
    """Score rows in any of MLflow's formats (JSON, CSV, Parquet): ``{"predictions": [score, ...]}``."""
    mime = bodies.media_type(request.headers.get("Content-Type"))
    live = holder().live
    if mime == bodies.JSON:
        rows = rows_from_mlflow(json_body(), live.features)
    else:
        rows = bodies.frame_rows(request.get_data(), mime, live.features, live.categorical)
    x = to_matrix(rows, live.features, live.bounds, current_app.config["MAX_ROWS"], live.categorical)
    scores = live.score(x)
    metrics.child(metrics.ROWS, "invocations").inc(len(scores))
    return {"predictions": scores.tolist()}


@bp.post("/v1/decisions")
def decisions():
    """Score and explain rows: per row score, approved, threshold, reasons, model version (and the shadow's)."""
    body, rows = rows_body()
    live = holder().live
    year = decision_year(body)
    x = to_matrix(rows, live.features, live.bounds, current_app.config["MAX_ROWS"], live.categorical)
    answers = decide(live, x, year)
    metrics.child(metrics.ROWS, "decisions").inc(len(answers))
    answer = {"model_version": live.version, "threshold": live.threshold, "decision_year": year,
              "decisions": answers}
    if shadow_holder() is not None:  # after the champion's answer is made: the shadow cannot change it
        scored, error = shadow.score(shadow_holder(), live, rows, x, current_app.config["MAX_ROWS"])
        for row, shadow_row in zip(answers, scored or ()):
            row["shadow"] = shadow_row
        if error:
            answer["shadow_error"] = error
    return answer


@bp.get("/v1/model")
def model():
    """Describe the live version: what /version says, plus its registry entry (metrics, history)."""
    info = {"serving": version_info()}
    try:
        described = registry.describe(current_app.config["MODEL_NAME"], current_app.config["MLFLOW_TRACKING_URI"])
    except Exception as exc:  # noqa: BLE001 - a registry outage must not hide what is being served
        info["registry"] = {"available": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        return info
    served = info["serving"]["version"]
    entry = next((v for v in described["versions"] if v["version"] == served), None)
    info["registry"] = {"available": entry is not None, "champion": entry, "history": described["history"]}
    return info


@bp.post("/v1/replay")
def replay():
    """Score rows with a named version (a past decision's), with no reasons: ``{"version", "scores"}``."""
    body, rows = rows_body()
    name = version_number(body)
    model = versions().get(name)
    x = to_matrix(rows, tuple(model.features), model.bounds, current_app.config["MAX_ROWS"], tuple(model.categorical))
    return {"version": name, "threshold": model.threshold, "scores": model.predict(x).tolist()}


@bp.post("/v1/drift")
def drift_table():
    """Compare rows of recent inputs with a version's training data (default: the live one), per feature."""
    body, rows = rows_body()
    model = versions().get(version_number(body)) if "version" in body else holder().live.model
    columns = list(model.reference["distributions"])
    frame = pd.DataFrame(numbers_or_null(rows, columns), columns=columns)
    return {"version": model.version, "rows": len(frame), "table": drift.report(model.reference, frame)}
