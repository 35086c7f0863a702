"""Errors as JSON: `{"error": "...", "field": "..."}` with a 4xx status, and their OpenAPI schema."""
from __future__ import annotations

import marshmallow as ma
from flask import jsonify, request
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from portal.ledger.errors import LedgerError


class ErrorSchema(ma.Schema):
    error = ma.fields.String(required=True)
    field = ma.fields.String(allow_none=True)


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


def error_response(message: str, status: int, field: str | None = None):
    """Build the API's error response."""
    response = jsonify({"error": message, "field": field})
    response.status_code = status
    return response


class LedgerApi(Api):
    """flask-smorest's Api with the project's error shape."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):
        """Answer any HTTP error as `{"error", "field"}` JSON (an HTML page outside /api/)."""
        if not is_api_request():  # the pages (issue 3)
            from portal.web.pages import render_http_error

            return render_http_error(error)
        data = getattr(error, "data", None) or {}
        field, message = None, error.description or error.name
        if "messages" in data:
            field, message = first_field(data["messages"])
        elif data.get("message"):
            message = data["message"]
        response = error_response(message, error.code or 500, field)
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response


def handle_ledger_error(error: LedgerError):
    """Answer a refused ledger operation (an HTML page outside /api/)."""
    if not is_api_request():  # the pages (issue 3)
        from portal.web.pages import render_error

        return render_error(error.status, error.message)
    return error_response(error.message, error.status, error.field)


def is_api_request() -> bool:
    """Tell whether the request is for the JSON API (else it is for a page)."""
    return request.path.startswith("/api/")
