"""The decision service: scores applicants with the champion model, fast, with reasons.

Stateless: it loads `models:/credit-approval@champion` through `model_registry`,
follows the alias, and answers `POST /invocations` (MLflow's scoring protocol),
`POST /v1/decisions` (score, approval, threshold, reasons, model version),
`GET /v1/model`, `POST /v1/replay` and `POST /v1/drift` (see `serving.routes`).
"""
from __future__ import annotations

from flask import Flask

from model_registry import registry
from serving import auth
from serving.config import load_config
from serving.errors import register_errorhandlers
from serving.holder import ModelHolder
from serving.routes import bp
from serving.versions import VersionCache


def create_app(test_config: dict | None = None, holder: ModelHolder | None = None) -> Flask:
    """Create the decision service app (loads the champion unless a holder is given)."""
    app = Flask(__name__)
    app.config.update(load_config())
    app.config.update(test_config or {})
    register_models(app, holder)
    app.register_blueprint(bp)
    app.register_blueprint(auth.bp)
    register_errorhandlers(app)
    return app


def register_models(app: Flask, holder: ModelHolder | None = None) -> None:
    """Load the champion (and follow its alias), and make room for versions asked for by replays."""
    uri = app.config["MLFLOW_TRACKING_URI"]
    if holder is None:
        holder = ModelHolder(load=lambda: registry.load_champion(tracking_uri=uri),
                             current_version=lambda: registry.champion_version(tracking_uri=uri),
                             interval=app.config["MODEL_POLL_SECONDS"])
        holder.refresh()
    if app.config["WATCH"]:
        holder.watch()
    app.extensions["model_holder"] = holder
    app.extensions["model_versions"] = VersionCache(lambda v: registry.load_version(v, tracking_uri=uri),
                                                    app.config["REPLAY_VERSIONS"])
