"""Errors in the shape of MLflow's scoring server: ``{"error_code", "message", "error_class", "sqlstate"}``.

``error_class`` and ``sqlstate`` are derived from the error code by MLflow's
own tables (``mlflow.error_classification``), as its ``MlflowException`` does;
a code MLflow does not know (``SERVICE_UNAVAILABLE``) has the first two keys
only. No stack trace is ever sent. A content type the protocol does not read
is a 415 in plain text, as MLflow answers it.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, request
from mlflow.error_classification import ErrorClass, SqlState
from werkzeug.exceptions import RequestEntityTooLarge

from serving import metrics
from serving.bodies import UnsupportedMediaType
from serving.holder import NoModel
from serving.protocol import BadInput, NotJson, TooManyRows
from serving.versions import UnknownVersion

# MLflow's own code for a request above a limit (its servers answer it with 429; a body too big is a 413 here).
TOO_BIG = "REQUEST_LIMIT_EXCEEDED"


def mlflow_error(message: str, status: int = 400, code: str = "BAD_REQUEST"):
    """Answer an error the way MLflow's scoring server does."""
    body = {"error_code": code, "message": message}
    error_class = ErrorClass.from_client_error_code(code)
    sqlstate = (error_class and SqlState.from_error_class(error_class)) or SqlState.from_client_error_code(code)
    if error_class:
        body["error_class"] = error_class
    if sqlstate:
        body["sqlstate"] = sqlstate
    response = jsonify(body)
    response.status_code = status
    return response


def no_model(_error: NoModel):
    """Answer 503 while no model is loaded."""
    return mlflow_error("no model is loaded", 503, "SERVICE_UNAVAILABLE")


def bad_input(error: BadInput):
    """Answer 400 (415 for a body that is not JSON) naming what is wrong."""
    metrics.child(metrics.ERRORS, request.endpoint or "unknown", "bad_input").inc()
    if isinstance(error, NotJson):
        return mlflow_error(str(error), 415, "UNSUPPORTED_MEDIA_TYPE")
    if isinstance(error, TooManyRows):
        return mlflow_error(str(error), 413, TOO_BIG)
    return mlflow_error(str(error))


def too_large(_error: RequestEntityTooLarge):
    """Answer 413 in JSON for a body above MAX_CONTENT_LENGTH (it could not hold only the rows allowed)."""
    metrics.child(metrics.ERRORS, request.endpoint or "unknown", "bad_input").inc()
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    return mlflow_error(f"the body is larger than {limit} bytes; send at most {current_app.config['MAX_ROWS']} "
                        "rows per request", 413, TOO_BIG)


def unsupported_media_type(error: UnsupportedMediaType):
    """Answer 415 in plain text, as MLflow's scoring server does for a content type it does not read."""
    metrics.child(metrics.ERRORS, request.endpoint or "unknown", "bad_input").inc()
    return Response(str(error), status=415, mimetype="text/plain")


def unknown_version(error: UnknownVersion):
    """Answer 404 for a model version the registry does not have."""
    return mlflow_error(str(error), 404, "RESOURCE_DOES_NOT_EXIST")


def register_errorhandlers(app: Flask) -> None:
    """Register the handlers on the app."""
    app.register_error_handler(NoModel, no_model)
    app.register_error_handler(BadInput, bad_input)
    app.register_error_handler(UnsupportedMediaType, unsupported_media_type)
    app.register_error_handler(UnknownVersion, unknown_version)
    app.register_error_handler(RequestEntityTooLarge, too_large)
