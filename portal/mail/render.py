"""An outbox row's subject, plain text and HTML, from the Jinja templates ``templates/mail/<kind>.txt|.html``.

Each template sets ``subject`` and writes plain sentences that can be wrapped in gettext
when the portal gets a second language; the row's ``language`` is given to the templates
(the HTML's ``lang``), and this is the one place that will choose the locale to render in.
The app's own filters (``money``, ``month_name``, ``when``) format the values.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

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
    text = env.get_template(f"mail/{message.kind}.txt").make_module(values)
    html = env.get_template(f"mail/{message.kind}.html").make_module(values)
    return Rendered(subject=" ".join(str(text.subject).split()), text=str(text).strip() + "\n", html=str(html))
