"""An outbox row's subject, plain text and HTML, from the Jinja templates ``templates/mail/<kind>.txt|.html``.

Each template sets ``subject`` and writes its sentences through gettext; the row's
``language`` (the customer's, when the event happened) is the locale they are rendered in
(``force_locale``: words, dates, numbers and amounts) and the HTML's ``lang``. A language
the portal does not have falls back to the default one. The app's own filters (``money``,
``month_year``, ``when``, ``reason``) format the values.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import force_locale

from portal.languages import LANGUAGES
from portal.models import OutboxMessage


@dataclass(frozen=True)
class Rendered:
    """An email's words: subject, plain text and HTML."""

    subject: str
    text: str
    html: str


def render(message: OutboxMessage) -> Rendered:
    """Render an outbox row with the app's templates (needs an app context)."""
    env = current_app.jinja_env
    values = {**message.context, "kind": message.kind, "name": message.recipient_name,
              "customer_id": message.customer_id, "language": message.language, "created_at": message.created_at,
              "portal_url": current_app.config["PORTAL_URL"].rstrip("/")}
    language = message.language if message.language in LANGUAGES else current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(language):
        text = env.get_template(f"mail/{message.kind}.txt").make_module(values)
        html = env.get_template(f"mail/{message.kind}.html").make_module(values)
        return Rendered(subject=" ".join(str(text.subject).split()), text=str(text).strip() + "\n", html=str(html))
