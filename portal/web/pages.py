"""Landing page, the language switcher and the template globals (number and date filters: ``portal.web.formats``)."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_login import current_user

from portal import languages
from portal.db import get_session
from portal.web.auth import safe_next
from portal.web.forms import FORM_EXPIRED, ActionForm, LanguageForm

bp = Blueprint("pages", __name__)

@bp.route("/")
def index():
    """Show the landing page: Manager or Customer."""
    return render_template("index.html")


@bp.route("/language", methods=["POST"])
def choose_language():
    """Switch the pages' language (for this session, and for the person when logged in); go back to the page."""
    form = LanguageForm()
    if not form.validate_on_submit():
        abort(400, description=FORM_EXPIRED)
    session["language"] = form.language.data
    if current_user.is_authenticated:
        languages.remember(get_session(), current_user.role, current_user.user_id, form.language.data)
    return redirect(safe_next(form.next.data) or url_for("pages.index"))


@bp.after_app_request
def vary_on_language(response):
    """Tell caches that a page's words depend on the browser's Accept-Language (and the session's choice)."""
    if request.endpoint != "static":
        response.vary.add("Accept-Language")
    return response


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
    return {"me": user, "logout_form": ActionForm() if user else None, "language_form": LanguageForm(),
            "languages": languages.LANGUAGES, "page_language": str(get_locale())}
