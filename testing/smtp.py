"""A real SMTP server in-process (aiosmtpd) for the mail tests: one that records, refuses, drops or is slow.

``SmtpServer`` runs aiosmtpd's ``Controller`` on a free loopback port in a thread. Its
handler records every accepted message (envelope and bytes); ``refuse`` answers RCPT with a
given reply, ``drop_next`` closes the connection instead of answering the next DATA
commands, ``delay`` holds each DATA for that long. ``self_signed`` makes a certificate for
127.0.0.1 so the STARTTLS and implicit TLS paths can be tested with verification on.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import threading
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from testing.servers import free_port


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self):
        """The parsed message."""
        return message_from_bytes(self.data, policy=policy.default)


class Handler:
    """aiosmtpd handler: records accepted messages; can refuse recipients, drop connections, go slow."""

    def __init__(self):
        self.received: list[Received] = []
        self.refuse: str | None = None  # e.g. "550 5.1.1 no such user" or "451 4.3.0 try later"
        self.drop_next = 0
        self.delay = 0.0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            drop = self.drop_next > 0
            self.drop_next -= drop
        if drop:
            server.transport.close()  # the connection breaks before the message is accepted
            return "421 closing"
        if self.delay:
            await asyncio.sleep(self.delay)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 accepted"

    def message_ids(self) -> Counter:
        """Count the accepted messages per Message-ID."""
        with self.lock:
            return Counter(r.message["Message-ID"] for r in self.received)


class SmtpServer:
    """aiosmtpd on a free loopback port, started and stopped as a context manager."""

    def __init__(self, handler: Handler | None = None, *, tls_context=None, implicit_tls: bool = False,
                 login: tuple[str, str] | None = None):
        self.handler = handler or Handler()
        self.port = free_port()
        kwargs = {}
        if tls_context is not None and not implicit_tls:
            kwargs.update(tls_context=tls_context, require_starttls=True)
        if implicit_tls:
            kwargs["ssl_context"] = tls_context
        if login is not None:
            kwargs.update(authenticator=_authenticator(*login), auth_required=True)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def url(self, scheme: str = "smtp", userinfo: str = "", query: str = "") -> str:
        """Return an SMTP_URL for this server."""
        return f"{scheme}://{userinfo + '@' if userinfo else ''}127.0.0.1:{self.port}{'?' + query if query else ''}"

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


def _authenticator(username: str, password: str):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (getattr(auth_data, "login", b"") == username.encode()
              and getattr(auth_data, "password", b"") == password.encode())
        return AuthResult(success=ok, handled=False)
    return authenticate


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
