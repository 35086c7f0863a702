"""Landing page, template filters and the HTML error pages."""
from __future__ import annotations

import calendar
from datetime import UTC

from flask import Blueprint, render_template, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from portal.money import format_cents

bp = Blueprint("pages", __name__)

TITLES = {400: "Bad request", 401: "Please log in", 403: "Not allowed", 404: "Page not found",
          405: "Not allowed", 409: "Conflict", 413: "Too large", 422: "Cannot do that",
          429: "Too many attempts", 500: "Something went wrong", 503: "Not available"}
HINTS = {403: "Your login cannot open this page.",
         404: "The page does not exist, or it is not yours to see.",
         500: "The error was logged. Please try again in a moment."}


@bp.route("/")
def index():
    """Show the landing page: Manager or Customer."""
    return render_template("index.html")


@bp.app_template_filter("money")
def money(cents: int | None) -> str:
    """Format minor units for display, with the ledger's own formatter."""
    return "" if cents is None else format_cents(cents)


@bp.app_template_filter("month_name")
def month_name(month: int, short: bool = False) -> str:
    """Name a month number."""
    return (calendar.month_abbr if short else calendar.month_name)[month]


@bp.app_template_filter("when")
def when(moment) -> str:
    """Show a stored time in UTC to the minute."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # SQLite returns naive UTC datetimes
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@bp.app_template_filter("pct")
def pct(value: float | None) -> str:
    """Show a percentage with at most two decimals."""
    return "n/a" if value is None else f"{value:.2f}".rstrip("0").rstrip(".") + "%"


@bp.app_template_global()
def field_attrs(field, attrs: dict) -> dict:
    """Add the accessibility attributes a form field needs: its hint and error ids, aria-invalid."""
    ids = [f"{field.id}-hint"] if field.description else []
    if field.errors:
        ids.append(f"{field.id}-error")
    extra = {"aria-describedby": " ".join(ids)} if ids else {}
    if field.errors:
        extra["aria-invalid"] = "true"
    return {**attrs, **extra}


@bp.app_context_processor
def inject_user():
    """Give every template the logged-in principal (or None) and a logout form."""
    from portal.web.forms import ActionForm

    user = current_user if current_user.is_authenticated else None
    return {"me": user, "logout_form": ActionForm() if user else None}


def render_error(code: int, message: str | None = None, headers: dict | None = None):
    """Render an error page in the site's style."""
    title = TITLES.get(code, "Error")
    body = render_template("errors.html", code=code, title=title, message=message or HINTS.get(code, ""))
    return body, code, headers or {}


def render_http_error(error: HTTPException):
    """Answer an HTTP error on a page: the login page for 401 and throttled logins, else an error page."""
    from portal.web import auth

    code = error.code or 500
    if code == 401:
        return auth.unauthorized()
    if code == 429 and request.endpoint in auth.LOGIN_ENDPOINTS:
        return auth.throttled(error)
    message = None
    if code not in (404, 500):  # a 404's or 500's text is ours, never an internal detail
        message = (getattr(error, "data", None) or {}).get("message") or error.description
    return render_error(code, message)
