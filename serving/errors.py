"""Errors in the shape of MLflow's scoring server: ``{"error_code": ..., "message": ...}``."""
from __future__ import annotations

from flask import Flask, jsonify, request

from serving import metrics
from serving.holder import NoModel
from serving.protocol import BadInput, NotJson
from serving.versions import UnknownVersion


def mlflow_error(message: str, status: int = 400, code: str = "BAD_REQUEST"):
    """Answer an error the way MLflow's scoring server does."""
    response = jsonify({"error_code": code, "message": message})
    response.status_code = status
    return response


def no_model(_error: NoModel):
    """Answer 503 while no model is loaded."""
    return mlflow_error("no model is loaded", 503, "SERVICE_UNAVAILABLE")


def bad_input(error: BadInput):
    """Answer 400 (415 for a body that is not JSON) naming what is wrong."""
    metrics.ERRORS.labels(request.endpoint or "unknown", "bad_input").inc()
    if isinstance(error, NotJson):
        return mlflow_error(str(error), 415, "UNSUPPORTED_MEDIA_TYPE")
    return mlflow_error(str(error))


def unknown_version(error: UnknownVersion):
    """Answer 404 for a model version the registry does not have."""
    return mlflow_error(str(error), 404, "RESOURCE_DOES_NOT_EXIST")


def register_errorhandlers(app: Flask) -> None:
    """Register the handlers on the app."""
    app.register_error_handler(NoModel, no_model)
    app.register_error_handler(BadInput, bad_input)
    app.register_error_handler(UnknownVersion, unknown_version)
