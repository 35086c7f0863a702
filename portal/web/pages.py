"""Landing page and the template globals (number and date filters: ``portal.web.formats``)."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from portal.web.forms import ActionForm

bp = Blueprint("pages", __name__)

@bp.route("/")
def index():
    """Show the landing page: Manager or Customer."""
    return render_template("index.html")


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
