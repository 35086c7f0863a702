"""The model workbench: a small internal HTTP service on the model side, the portal's way to the registry and training.

The portal never imports pipeline or model_registry code; its workbench pages
call this service (``WORKBENCH_URL``) with the shared ``SERVING_TOKEN``. Every
registry call goes through ``model_registry`` (the same ``promote``, ``rollback``
and ``challenge`` as ``make promote`` / ``make rollback`` / ``make challenge``); retraining runs
``python -m pipeline.run`` as a background job (``pipeline.workbench.jobs``).
Run by gunicorn with one worker and a few threads (``make workbench``; ``make
run`` starts it too): one process, so the jobs it starts are its own children.
"""
from __future__ import annotations

import os

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from contracts.settings import var_dir
from model_registry import store
from pipeline.workbench import routes
from pipeline.workbench.jobs import JobStore, train_args


def load_config() -> dict:
    """Collect the workbench's settings from the environment."""
    return {
        "MLFLOW_TRACKING_URI": store.tracking_uri(os.environ.get("MLFLOW_TRACKING_URI")),
        # The secret the portal already shares with serving: demanded on every call, and signs every answer.
        "SERVING_TOKEN": os.environ.get("SERVING_TOKEN") or None,
        # Arguments every retrain job gives `python -m pipeline.run` (shell words), e.g. "--data f --spec s.yaml".
        "WORKBENCH_TRAIN_ARGS": os.environ.get("WORKBENCH_TRAIN_ARGS", ""),
        "MAX_CONTENT_LENGTH": 64 * 1024,
    }


def create_app(test_config: dict | None = None) -> Flask:
    """Create the workbench service app."""
    app = Flask(__name__)
    app.config.update(load_config())
    app.config.update(test_config or {})
    store.configure(app.config["MLFLOW_TRACKING_URI"])
    app.extensions["workbench_jobs"] = JobStore(var_dir() / "jobs", train_args(app.config["WORKBENCH_TRAIN_ARGS"]))
    app.register_blueprint(routes.bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify({"error": exc.description, "field": None}), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        app.logger.exception("workbench request failed")
        return jsonify({"error": f"the workbench failed: {type(exc).__name__}: {exc}"[:500], "field": None}), 500

    return app
