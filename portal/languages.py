"""The languages of the pages, emails and PDFs: which exist, which one a request uses, and a person's choice.

A request's language is the one chosen with the switcher (kept in the session; a person's
stored choice is put there at login), else the best match of the browser's ``Accept-Language``,
else ``LOCALE``. Emails use the customer's stored language (portal.mail.render).
"""
from __future__ import annotations

from flask import current_app, has_request_context, request, session
from sqlalchemy.orm import Session

from portal.db import write_transaction
from portal.models import Customer, Manager

# The languages by their own names (the switcher shows these). Adding one: docs/languages.md.
LANGUAGES = {"en": "English", "de": "Deutsch"}
PEOPLE = {"customer": Customer, "manager": Manager}


def select_locale() -> str:
    """Return the request's language: the one chosen, else the browser's, else ``LOCALE``."""
    default = current_app.config["BABEL_DEFAULT_LOCALE"]
    if not has_request_context():  # a command (the mailer) chooses with force_locale
        return default
    chosen = session.get("language")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default=default)


def remember(db: Session, role: str, user_id: int, language: str) -> None:
    """Store a person's chosen language (their pages after each login, and a customer's emails)."""
    with write_transaction(db):
        db.get(PEOPLE[role], user_id).language = language


def at_login(db: Session, role: str, user, chosen: str | None) -> str | None:
    """Return the language for a new login: the one chosen just before (then stored), else the person's."""
    if chosen in LANGUAGES:
        if chosen != user.language:
            remember(db, role, user.id, chosen)
        return chosen
    return user.language if user.language in LANGUAGES else None
