"""The decision service: scores applicants with the champion model, fast, with reasons.

Stateless: it loads `models:/credit-approval@champion` (or the `name@alias` of
`SERVING_MODEL`) through `model_registry`, follows the alias, and answers
`POST /invocations` (MLflow's scoring protocol: JSON, CSV, Parquet; `GET /ping`),
`POST /v1/decisions` (score, approval, threshold, reasons, model version),
`GET /v1/model`, `POST /v1/replay` and `POST /v1/drift` (see `serving.routes`), all of
them described by `GET /openapi.json` (`serving/openapi.yaml`, `serving.openapi`).
With `SERVING_SHADOW` on (default when the alias exists) it also scores every
decision with `<name>@challenger`, in the shadow (`serving.shadow`).
"""
from __future__ import annotations

import time
from typing import IO

from flask import Flask, Request, request
from werkzeug.utils import cached_property

from model_registry import registry
from serving import auth, metrics, shadow
from serving.config import load_config, model_ref
from serving.errors import register_errorhandlers
from serving.holder import ModelHolder
from serving.routes import bp
from serving.versions import VersionCache


class ServingRequest(Request):
    """Flask's request, reading a body the server ends at its Content-Length as the server hands it over.

    For a server that ends request bodies itself (``wsgi.input_terminated``: gunicorn), werkzeug
    wraps every body in a limiter that reads it in a Python loop up to MAX_CONTENT_LENGTH: about
    25 us of CPU per one-row request under load. A body whose Content-Length is within the limit
    cannot grow past it there, so it is read as it is; a larger one is still refused (413), and
    one without a Content-Length (chunked) still goes through the limiter.
    """

    @cached_property
    def stream(self) -> IO[bytes]:
        """The body's stream: the server's own when it ends the body within the limit, else werkzeug's guard."""
        length, limit = self.content_length, self.max_content_length
        if (length is not None and (limit is None or length <= limit) and not self.shallow
                and "wsgi.input_terminated" in self.environ):
            return self.environ["wsgi.input"]
        return super().stream


class ServingApp(Flask):
    """Flask, counting and timing each request around its dispatch, and checking each function for ``async`` once.

    Both replace per-request hooks: on a one-row ``/invocations`` every hook Flask
    calls costs a few microseconds, and Flask itself is most of the request.
    """

    request_class = ServingRequest

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync: dict = {}

    def ensure_sync(self, func):
        """Return Flask's answer for this function, remembered (inspect's check costs ~3 us a hook, 5 a request)."""
        found = self._sync.get(func)
        if found is None:
            found = self._sync[func] = super().ensure_sync(func)
        return found

    def full_dispatch_request(self):
        """Dispatch the request (hooks, view, error handlers) and count it with its latency."""
        start = time.perf_counter()
        try:
            response = super().full_dispatch_request()
        except Exception:  # an error no handler answers: Flask makes it a 500 after this
            metrics.answered(request.endpoint or "unknown", 500, time.perf_counter() - start)
            raise
        metrics.answered(request.endpoint or "unknown", response.status_code, time.perf_counter() - start)
        return response


def create_app(test_config: dict | None = None, holder: ModelHolder | None = None,
               shadow_holder: ModelHolder | None = None) -> Flask:
    """Create the decision service app (loads the champion and challenger unless holders are given)."""
    app = ServingApp(__name__)
    app.config.update(load_config())
    app.config.update(test_config or {})
    app.config["MODEL_NAME"], app.config["MODEL_ALIAS"] = model_ref(app.config["SERVING_MODEL"])
    register_models(app, holder, shadow_holder)
    app.register_blueprint(bp)
    app.register_blueprint(auth.bp)
    register_errorhandlers(app)
    return app


def register_models(app: Flask, holder: ModelHolder | None = None, shadow_holder: ModelHolder | None = None) -> None:
    """Load the served model's version and the challenger (following their aliases); make room for replays."""
    uri, name, alias = app.config["MLFLOW_TRACKING_URI"], app.config["MODEL_NAME"], app.config["MODEL_ALIAS"]
    if holder is None:
        holder = ModelHolder(load=lambda: registry.load_champion(name, uri, alias),
                             current_version=lambda: registry.alias_version(name, uri, alias),
                             interval=app.config["MODEL_POLL_SECONDS"], label=f"{name}@{alias}")
        holder.refresh()
    if shadow_holder is None and shadow.enabled(app.config["SERVING_SHADOW"], alias, registry.CHALLENGER):
        shadow_holder = shadow.make_holder(
            load=lambda: registry.load_champion(name, uri, registry.CHALLENGER),
            current_version=lambda: registry.champion_version(name, uri, registry.CHALLENGER),
            interval=app.config["MODEL_POLL_SECONDS"], label=f"{name}@{registry.CHALLENGER}")
        shadow_holder.refresh()
    if app.config["WATCH"]:
        holder.watch()
        if shadow_holder is not None:
            shadow_holder.watch()
    app.extensions["model_holder"] = holder
    app.extensions["shadow_holder"] = shadow_holder
    app.extensions["model_versions"] = VersionCache(lambda v: registry.load_version(v, name, uri),
                                                    app.config["REPLAY_VERSIONS"])
