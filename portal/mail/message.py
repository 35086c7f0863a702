"""The MIME message of an outbox row, built with the standard library's ``email`` package.

Headers are set through ``email.headerregistry`` objects, which refuse CR and LF: a name
or subject can never add a header. A display name is first folded onto one line (a
customer's name with a line break in it is still mailed, as one line); an address that
does not parse is refused (``BadAddress``, a permanent failure).
"""
from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from portal.mail.render import Rendered
from portal.models import OutboxMessage


class BadAddress(ValueError):
    """The recipient's or the sender's address cannot be used."""


def one_line(text: str) -> str:
    """Fold any run of whitespace and control characters into one space."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text or "")
    return " ".join(cleaned.split())


def address(display_name: str, addr_spec: str) -> Address:
    """Return a header address; BadAddress when `addr_spec` is not one plain address."""
    try:
        parsed = Address(addr_spec=addr_spec.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise BadAddress(f"invalid address {addr_spec!r}: {exc}") from exc
    if not parsed.username or not parsed.domain:
        raise BadAddress(f"invalid address {addr_spec!r}")
    return Address(display_name=one_line(display_name), username=parsed.username, domain=parsed.domain)


def build(message: OutboxMessage, rendered: Rendered, mail_from: str) -> EmailMessage:
    """Build the email: plain text with an HTML alternative, its Message-ID fixed by the outbox row."""
    sender_name, sender_addr = parseaddr(mail_from)
    email = EmailMessage()
    email["From"] = address(sender_name, sender_addr)
    email["To"] = address(message.recipient_name, message.recipient)
    email["Subject"] = one_line(rendered.subject)
    email["Date"] = format_datetime(message.created_at)
    email["Message-ID"] = message.message_id
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a notification
    email.set_content(rendered.text)
    email.add_alternative(rendered.html, subtype="html")
    email["Content-Language"] = message.language  # after: making the alternative moves Content-* into a part
    return email
