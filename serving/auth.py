"""The shared secret between the portal and serving (``SERVING_TOKEN``), both ways.

When it is set, every scoring call (``/invocations`` and ``/v1/...``) must carry
it as ``Authorization: Bearer <token>`` (else 401), and every answer to such a
call is signed: ``X-Serving-Signature: sha256=<HMAC-SHA256 of the body>``, so
the portal can tell the real decision service from anything else listening on
its URL. Health, readiness, version, metrics and the OpenAPI document stay open.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request

from contracts.signing import SIGNATURE_HEADER, signature
from serving.errors import mlflow_error

OPEN_ENDPOINTS = {"serving.health", "serving.ready", "serving.version", "serving.metrics_page", "serving.ping",
                  "serving.openapi_document"}

bp = Blueprint("serving_auth", __name__)


def _token() -> str | None:
    return current_app.config.get("SERVING_TOKEN")


def _guarded() -> bool:
    return request.endpoint is not None and request.endpoint not in OPEN_ENDPOINTS


@bp.before_app_request
def require_token():
    """Refuse a scoring call without the shared token (401)."""
    token = _token()
    if not token or not _guarded():
        return None
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        return mlflow_error("a valid bearer token (SERVING_TOKEN) is required", 401, "UNAUTHENTICATED")
    return None


@bp.after_app_request
def sign(response: Response) -> Response:
    """Sign the answer to a scoring call with the shared token."""
    token = _token()
    if token and _guarded():
        response.headers[SIGNATURE_HEADER] = signature(token, response.get_data())
    return response
