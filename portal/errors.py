"""Errors, answered once for the whole portal: ``{"error", "field"}`` JSON for the API, an error page for pages.

Every refusal ends here: a ``LedgerError`` (4xx, nothing written), an HTTP
error, a bad CSRF token, or the database being down (503 with Retry-After).
This module imports no other part of the portal's web layer, so every part may
import it.
"""
from __future__ import annotations

import marshmallow as ma
from flask import Flask, current_app, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_smorest import Api
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from portal.ledger.errors import LedgerError
from portal.refusals import said

TITLES = {400: _l("Bad request"), 401: _l("Please log in"), 403: _l("Not allowed"), 404: _l("Page not found"),
          405: _l("Not allowed"), 409: _l("Conflict"), 413: _l("Too large"), 422: _l("Cannot do that"),
          429: _l("Too many attempts"), 500: _l("Something went wrong"), 503: _l("Not available")}
HINTS = {403: _l("Your login cannot open this page."),
         404: _l("The page does not exist, or it is not yours to see."),
         500: _l("The error was logged. Please try again in a moment.")}


class ErrorSchema(ma.Schema):
    error = ma.fields.String(required=True)
    field = ma.fields.String(allow_none=True)


def is_api_request() -> bool:
    """Tell whether the request is for the JSON API (else it is for a page)."""
    return request.path.startswith("/api/")


def error_response(message: str, status: int, field: str | None = None, headers: dict | None = None):
    """Build the API's error response."""
    response = jsonify({"error": message, "field": field})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def render_error(code: int, message: str | None = None, headers: dict | None = None):
    """Render an error page in the site's style."""
    title = TITLES.get(code, _l("Error"))
    # A page's text is a gettext string already; a refusal's English is translated here (portal.refusals).
    message = said(message) if isinstance(message, str) else message
    body = render_template("errors.html", code=code, title=title, message=message or HINTS.get(code, ""))
    return body, code, headers or {}


def refuse(message: str, status: int, field: str | None = None, headers: dict | None = None):
    """Answer a refusal the way the request's side expects: JSON for the API, a page otherwise."""
    if is_api_request():
        return error_response(message, status, field, headers)
    return render_error(status, message, headers)


def first_field(messages) -> tuple[str | None, str]:
    """Pick the first offending field and its message out of webargs' nested messages."""
    if isinstance(messages, dict):
        # webargs nests by location: {"json": {"amount": ["..."]}}
        for location in ("json", "query", "form", "headers", "path", "view_args"):
            if location in messages and isinstance(messages[location], dict):
                messages = messages[location]
                break
        for name, value in messages.items():
            while isinstance(value, dict):
                name, value = next(iter(value.items())) if value else (name, "")
            text = value[0] if isinstance(value, list) and value else str(value)
            return (None if name == "_schema" else str(name)), str(text)
    return None, str(messages)


def page_for_http_error(error: HTTPException):
    """Answer an HTTP error on a page: the login page for 401, else an error page."""
    code = error.code or 500
    if code == 401:
        return current_app.login_manager.unauthorized()
    message = None
    if code not in (404, 500):  # a 404's or 500's text is ours, never an internal detail
        message = (getattr(error, "data", None) or {}).get("message") or error.description
    return render_error(code, message)


class LedgerApi(Api):
    """flask-smorest's Api with the project's error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        """Answer any HTTP error as `{"error", "field"}` JSON (an HTML page outside /api/)."""
        if not is_api_request():
            return page_for_http_error(error)
        data = getattr(error, "data", None) or {}
        field, message = None, error.description or error.name
        if "messages" in data:
            field, message = first_field(data["messages"])
        elif data.get("message"):
            message = data["message"]
        response = error_response(message, error.code or 500, field, data.get("headers"))
        if error.code == 429:  # the throttle noted when the next attempt may come (portal.auth.throttle)
            response.headers["Retry-After"] = g.get("retry_after", "60")
        if error.code == 405 and getattr(error, "valid_methods", None):
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response


def handle_ledger_error(error: LedgerError):
    """Answer a refused ledger operation."""
    return refuse(error.message, error.status, error.field)


def handle_csrf_error(error: CSRFError):
    """Answer a missing or bad CSRF token."""
    if is_api_request():
        return error_response(error.description, 400, "csrf_token")
    return render_error(400, _l("The form has expired or did not come from this site. "
                                "Please go back, reload the page and try again."))


def handle_database_down(error: OperationalError):
    """Answer 503 with Retry-After while the database is unreachable or restarting.

    Nothing was committed (the transaction failed), so a client may retry, with
    the same Idempotency-Key for a payment.
    """
    current_app.logger.warning("database unavailable: %s", str(error).splitlines()[0][:200])
    if is_api_request():
        return error_response("the database is unavailable; retry shortly", 503, headers={"Retry-After": "2"})
    return render_error(503, _l("The service is briefly unavailable. Please try again in a moment."),
                        {"Retry-After": "2"})


def register_errorhandlers(app: Flask) -> None:
    """Answer ledger errors, CSRF failures and a database outage (JSON for the API, HTML for the pages)."""
    app.register_error_handler(LedgerError, handle_ledger_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(OperationalError, handle_database_down)
