"""Login and logout pages, and the guard that sends anonymous visitors to the right login."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask import session as cookie_session
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user

from portal import languages
from portal.auth.sessions import authenticate, end_login, start_login
from portal.auth.throttle import throttled
from portal.db import get_session
from portal.errors import error_response
from portal.extensions import login_manager
from portal.web.forms import FORM_EXPIRED, ActionForm, LoginForm

bp = Blueprint("web_auth", __name__)

LOGIN_ENDPOINTS = {"web_auth.customer_login": "customer", "web_auth.manager_login": "manager"}
HOME = {"customer": "web_customer.home", "manager": "web_manager.home"}
THROTTLED = _l("Too many failed logins for this ID. Please wait a few minutes and try again.")
ONLY_FOR = {"customer": _l("This page is for customers only."), "manager": _l("This page is for managers only.")}


def login_required(role: str | None = None):
    """Guard a page: anonymous visitors go to login (and come back); the wrong role gets 403."""
    def decorate(view):
        @wraps(view)
        def guarded(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if role is not None and current_user.role != role:
                abort(403, description=ONLY_FOR[role])
            return view(*args, **kwargs)
        return guarded
    return decorate


def unauthorized():
    """Send an anonymous page visitor to the right login page, with `next`; the API keeps its 401 JSON."""
    if request.path.startswith("/api/"):
        return error_response("login required", 401)
    login_view = login_manager.blueprint_login_views.get(request.blueprint) or login_manager.login_view
    if "_user_id" in cookie_session:  # there was a login, and it has ended
        cookie_session.pop("_user_id")
        flash(_("Your session has ended. Please log in again."), "info")
    target = request.full_path if request.method == "GET" else request.path
    return redirect(url_for(login_view, next=safe_next(target.rstrip("?"))))


def safe_next(target: str | None) -> str | None:
    """Return `target` if it is a local page path, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 32 for ch in target) or target.startswith("/api/"):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _login(role: str):
    form = LoginForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("login.html", form=form, role=role), status
    db = get_session()
    user = authenticate(db, role, int(form.id.data), form.password.data)
    if user is None:
        # 401 is what the login throttle counts (portal.auth.throttle).
        return render_template("login.html", form=form, role=role,
                               error=_("Wrong ID or password. Please check both and try again.")), 401
    principal, _token, _expires = start_login(db, role, user)
    chosen = cookie_session.get("language")
    cookie_session.clear()  # a new session on every login
    login_user(principal)
    cookie_session.permanent = True
    language = languages.at_login(db, role, user, chosen)
    if language:
        cookie_session["language"] = language
    return redirect(safe_next(request.args.get("next")) or url_for(HOME[role]))


@bp.route("/customer/login", methods=["GET", "POST"])
@throttled
def customer_login():
    """Log a customer in."""
    return _login("customer")


@bp.route("/manager/login", methods=["GET", "POST"])
@throttled
def manager_login():
    """Log a manager in."""
    return _login("manager")


@bp.errorhandler(429)
def too_many_logins(_error):
    """Show the login page with the throttle message (429)."""
    role = LOGIN_ENDPOINTS.get(request.endpoint, "customer")
    headers = {"Retry-After": g.get("retry_after", "60")}
    return render_template("login.html", form=LoginForm(), role=role, error=THROTTLED), 429, headers


@bp.route("/logout", methods=["POST"])
def logout():
    """End this login (its cookie session and bearer token) and go to the landing page."""
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, description=FORM_EXPIRED)
    if current_user.is_authenticated:
        end_login(get_session(), current_user.jti)
        logout_user()
    language = cookie_session.get("language")
    cookie_session.clear()
    if language:  # the pages stay in the language they were in
        cookie_session["language"] = language
    flash(_("You have logged out."), "info")
    return redirect(url_for("pages.index"))
