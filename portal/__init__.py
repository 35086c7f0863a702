"""The portal: customers' and managers' ledger, as a Flask app (JSON API and pages)."""
from __future__ import annotations

from flask import Flask, request
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from portal import cli
from portal.api import auth as api_auth
from portal.api import customer as api_customer
from portal.api import manager as api_manager
from portal.auth import access
from portal.config import load_config
from portal.db import Database, close_session
from portal.decision_service import DecisionService
from portal.errors import error_response, register_errorhandlers
from portal.extensions import IdConverter, api, babel, csrf, limiter, login_manager
from portal.group_commit import GroupCommit
from portal.languages import select_locale
from portal.web import admin as web_admin
from portal.web import auth as web_auth
from portal.web import customer as web_customer
from portal.web import formats, pages, wording
from portal.web import manager as web_manager
from portal.web import shadow as web_shadow
from portal.web import workbench as web_workbench
from portal.workbench_service import WorkbenchService


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the portal app."""
    app = Flask(__name__)
    app.config.update(API_CONFIG)
    app.config.update(load_config(test_config))
    register_database(app)
    app.extensions["decision_service"] = DecisionService.from_config(app.config)
    app.extensions["workbench"] = WorkbenchService.from_config(app.config)
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security(app)
    cli.register(app)
    if app.config["TRUSTED_PROXIES"]:  # the client's address (for throttling) comes from the proxies' header
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    return app


API_CONFIG = {
    "API_TITLE": "Credit decision service - portal API",
    "API_VERSION": "1.0",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api",
    "OPENAPI_JSON_PATH": "openapi.json",
    # Bearer tokens for API clients, the session cookie for browsers.
    "API_SPEC_OPTIONS": {"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "session"}}},
        "security": [{"bearer": []}, {"cookie": []}]},
    "WTF_CSRF_CHECK_DEFAULT": False,  # checked in access.check_csrf, for cookie-authenticated writes
    "WTF_CSRF_TIME_LIMIT": None,  # valid for the session's life
    # No X-RateLimit-*/Retry-After on every login answer: only a 429 says when to retry.
    "RATELIMIT_HEADERS_ENABLED": False,
}


def register_database(app: Flask) -> None:
    """Open the ledger database and close each request's session."""
    url = app.config["DATABASE_URL"]
    pool = {} if url.startswith("sqlite") else {"pool_size": app.config["DATABASE_POOL_SIZE"]}
    app.extensions["ledger_db"] = Database(url, **pool)
    # The API's payments: concurrent ones share a transaction, each answered with its customer's summary.
    app.extensions["payment_batches"] = GroupCommit(api_customer.write_payments,
                                                    max_batch=app.config["PAYMENT_BATCH_MAX"],
                                                    wait_seconds=app.config["PAYMENT_BATCH_WAIT_MS"] / 1000)
    app.teardown_appcontext(close_session)


def register_extensions(app: Flask) -> None:
    """Bind Flask-Login, CSRF, the rate limiter, Babel and the API to the app."""
    app.url_map.converters["id"] = IdConverter
    babel.init_app(app, locale_selector=select_locale)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    login_manager.user_loader(access.load_user)
    login_manager.request_loader(access.load_user_from_token)
    csrf.init_app(app)
    limiter.init_app(app)
    api.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Register the API blueprints (the OpenAPI document is built from them) and the pages."""
    for module in (api_auth, api_customer, api_manager):
        api.register_blueprint(module.blp)
    # Pages: plain Flask blueprints, outside the OpenAPI document. Anonymous page
    # visitors are sent to the right login page; /api/... keeps answering 401 JSON.
    for module in (pages, formats, wording, web_auth, web_customer, web_manager, web_shadow, web_admin, web_workbench):
        app.register_blueprint(module.bp)
    login_manager.login_view = "web_auth.customer_login"
    login_manager.blueprint_login_views = {"web_manager": "web_auth.manager_login",
                                           "web_shadow": "web_auth.manager_login",
                                           "web_workbench": "web_auth.manager_login",
                                           "web_admin": "web_auth.manager_login"}
    login_manager.unauthorized_handler(web_auth.unauthorized)


def register_security(app: Flask) -> None:
    """Check CSRF on cookie-authenticated writes and add security headers."""

    @app.before_request
    def json_bodies_only():
        # The API speaks JSON only; a form or text body is refused before any parsing.
        if not (request.path.startswith("/api/") and request.method in ("POST", "PUT", "PATCH")
                and request.content_length):
            return None
        if not request.is_json:
            return error_response("the body must be JSON (Content-Type: application/json)", 415)
        try:
            request.get_json(silent=True)  # parsed once here (Flask keeps it) so a parser failure is ours
        except RecursionError:
            return error_response("the JSON body is nested too deeply", 400)
        return None

    app.before_request(access.check_csrf)

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy",
                           "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if response.mimetype == "application/json" or (
                request.endpoint != "static" and current_user.is_authenticated):
            headers["Cache-Control"] = "no-store"  # nothing of an account stays in a shared cache or history
        return response
