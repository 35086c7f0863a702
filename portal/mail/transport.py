"""Where emails go: an SMTP server (``SMTP_URL``) or, without one, ``.eml`` files under ``$VAR_DIR/mail/``.

``SMTP_URL`` forms (user and password percent-encoded):

* ``smtp://host:25`` - plain SMTP (a local relay);
* ``smtp://user:pass@host:587?starttls=1`` - STARTTLS, then login;
* ``smtps://user:pass@host:465`` - TLS from the start, then login.

TLS verifies the server's certificate against the system's CAs (``SMTP_CA_FILE`` adds a
private one). The envelope recipient is the outbox row's address, never read back from
the headers.
"""
from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from portal.mail.message import BadAddress

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
TRUE = {"1", "true", "yes", "on"}


def is_message_error(error: Exception) -> bool:
    """Tell whether an error concerns this message only (else the server is unreachable or refusing us all)."""
    return isinstance(error, BadAddress | smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError) or not isinstance(
        error, OSError)


def is_permanent(error: Exception) -> bool:
    """Tell whether retrying cannot help: a bad address, or a 5xx refusal of the recipient or the message."""
    if isinstance(error, BadAddress):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _text in error.recipients.values())
    return isinstance(error, smtplib.SMTPDataError) and error.smtp_code >= 500


class FileTransport:
    """Write each message to ``<folder>/<Message-ID>.eml`` atomically (a resend overwrites the same file)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def send(self, email: EmailMessage, sender: str, recipient: str) -> None:
        """Write the message as one .eml file (temporary file, fsync, rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = "".join(ch if ch.isalnum() or ch in "-._@" else "_" for ch in email["Message-ID"].strip("<>"))
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(email.as_bytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.folder / f"{name}.eml")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """Nothing to close."""


class SmtpTransport:
    """One SMTP connection, opened on the first send and reused for a batch; dropped after any error."""

    def __init__(self, url: str, timeout: float = 30.0, ca_file: str | None = None):
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://host:port or smtps://user:pass@host:port")
        self.implicit_tls = parts.scheme == "smtps"
        self.host, self.port = parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0].lower() in TRUE
        self.timeout = timeout
        self.ca_file = ca_file
        self.connection: smtplib.SMTP | None = None

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file:
            context.load_verify_locations(self.ca_file)
        return context

    def _connect(self) -> smtplib.SMTP:
        if self.implicit_tls:
            connection = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            if self.starttls:
                connection.starttls(context=self._tls())
        if self.username:
            connection.login(self.username, self.password or "")
        return connection

    def send(self, email: EmailMessage, sender: str, recipient: str) -> None:
        """Send one message to one envelope recipient."""
        try:
            if self.connection is None:
                self.connection = self._connect()
            self.connection.send_message(email, from_addr=sender, to_addrs=[recipient])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Say QUIT (or just drop the connection if it is broken)."""
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            connection.close()


def from_config(config, var_dir: Path) -> FileTransport | SmtpTransport:
    """Return the transport the settings ask for: SMTP when SMTP_URL is set, else .eml files."""
    if config.get("SMTP_URL"):
        return SmtpTransport(config["SMTP_URL"], config["SMTP_TIMEOUT"], config.get("SMTP_CA_FILE"))
    return FileTransport(var_dir / "mail")
