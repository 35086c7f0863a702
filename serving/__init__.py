"""The decision service: scores applicants with the champion model, fast, with reasons.

Stateless: it loads `models:/credit-approval@champion` through `model_registry`,
follows the alias, and answers `POST /invocations` (MLflow's scoring protocol)
and `POST /v1/decisions` (score, approval, threshold, reasons, model version).
"""
from __future__ import annotations

import os
import time
from datetime import date

import numpy as np
from flask import Flask, Response, jsonify, request

from serving import metrics
from serving.holder import ModelHolder, NoModel
from serving.protocol import BadInput, NotJson, rows_from_mlflow, to_matrix
from serving.reasons import contributions, reasons_for


def create_app(test_config: dict | None = None, holder: ModelHolder | None = None) -> Flask:
    """Create the decision service app (loads the champion unless a holder is given)."""
    app = Flask(__name__)
    app.config.update(
        MLFLOW_TRACKING_URI=os.environ.get("MLFLOW_TRACKING_URI"),
        MODEL_POLL_SECONDS=float(os.environ.get("MODEL_POLL_SECONDS", "10")),
        MAX_ROWS=int(os.environ.get("SERVING_MAX_ROWS", "100000")),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024,
        WATCH=True,
    )
    app.config.update(test_config or {})
    app.extensions["model_holder"] = holder or registry_holder(app)
    if app.config["WATCH"]:
        app.extensions["model_holder"].watch()
    register_routes(app)
    return app


def registry_holder(app: Flask) -> ModelHolder:
    """Build a holder that follows the registry's champion alias, and load it now."""
    from model_registry import registry

    uri = app.config["MLFLOW_TRACKING_URI"]
    holder = ModelHolder(load=lambda: registry.load_champion(tracking_uri=uri),
                         current_version=lambda: registry.champion_version(tracking_uri=uri),
                         interval=app.config["MODEL_POLL_SECONDS"])
    holder.refresh()
    return holder


def mlflow_error(message: str, status: int = 400, code: str = "BAD_REQUEST"):
    """Answer an error the way MLflow's scoring server does."""
    response = jsonify({"error_code": code, "message": message})
    response.status_code = status
    return response


def decide(live, x: np.ndarray, decision_year: int) -> list[dict]:
    """Score rows and explain each decision (one model call for all rows and their substitutions)."""
    profile = live.profile
    scores, contrib = contributions(live.score, x, profile)
    out = []
    for i, score in enumerate(scores):
        approved = bool(score >= live.threshold)
        out.append({"score": float(score), "approved": approved, "threshold": live.threshold,
                    "model_version": live.version,
                    "reasons": reasons_for(x[i], contrib[i], approved, live.features, profile, decision_year)})
    return out


def register_routes(app: Flask) -> None:
    """Add the endpoints."""
    holder: ModelHolder = app.extensions["model_holder"]

    @app.before_request
    def start_timer():
        request.environ["serving.start"] = time.perf_counter()

    @app.after_request
    def count(response):
        endpoint = request.endpoint or "unknown"
        metrics.REQUESTS.labels(endpoint, str(response.status_code)).inc()
        metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - request.environ["serving.start"])
        return response

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.get("/ready")
    def ready():
        if not holder.ready:
            return {"ready": False, "reason": holder.last_error or "no champion loaded"}, 503
        return {"ready": True, "version": holder.live.version}

    @app.get("/version")
    def version():
        body = {"name": "credit-approval", "alias": "champion", "version": None, "threshold": None,
                "last_reload_error": holder.last_error}
        if holder.ready:
            live = holder.live
            body.update(version=live.version, threshold=live.threshold, features=list(live.features),
                        scorer="compiled numpy" if live.fast is not None else "scikit-learn predict_proba",
                        trained_at=live.model.metadata.get("trained_at"), run_id=live.model.run_id)
        return body

    @app.get("/metrics")
    def metrics_page():
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    @app.errorhandler(NoModel)
    def no_model(_error):
        return mlflow_error("no model is loaded", 503, "SERVICE_UNAVAILABLE")

    @app.errorhandler(BadInput)
    def bad_input(error):
        metrics.ERRORS.labels(request.endpoint or "unknown", "bad_input").inc()
        if isinstance(error, NotJson):
            return mlflow_error(str(error), 415, "UNSUPPORTED_MEDIA_TYPE")
        return mlflow_error(str(error))

    def json_body():
        if not request.is_json:
            raise NotJson("Content-Type must be application/json")
        body = request.get_json(silent=True)
        if body is None:
            raise BadInput("the body is not valid JSON")
        return body

    @app.post("/invocations")
    def invocations():
        body = json_body()
        live = holder.live
        x = to_matrix(rows_from_mlflow(body, live.features), live.features, live.bounds, app.config["MAX_ROWS"])
        scores = live.score(x)
        metrics.ROWS.labels("invocations").inc(len(scores))
        return {"predictions": scores.tolist()}

    @app.post("/v1/decisions")
    def decisions():
        body = json_body()
        live = holder.live
        if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
            raise BadInput("the body must be {\"rows\": [{feature: value, ...}, ...]}")
        decision_year = body.get("decision_year", date.today().year)
        if isinstance(decision_year, bool) or not isinstance(decision_year, int) or not 1900 < decision_year < 2200:
            raise BadInput("decision_year must be a year")
        x = to_matrix(body["rows"], live.features, live.bounds, app.config["MAX_ROWS"])
        rows = decide(live, x, decision_year)
        metrics.ROWS.labels("decisions").inc(len(rows))
        return {"model_version": live.version, "threshold": live.threshold, "decision_year": decision_year,
                "decisions": rows}
