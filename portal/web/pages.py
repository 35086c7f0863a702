"""Landing page and the template filters."""
from __future__ import annotations

import calendar
from datetime import UTC

from flask import Blueprint, render_template
from flask_login import current_user

from portal.money import format_cents
from portal.web.forms import ActionForm

bp = Blueprint("pages", __name__)

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
    user = current_user if current_user.is_authenticated else None
    return {"me": user, "logout_form": ActionForm() if user else None}
