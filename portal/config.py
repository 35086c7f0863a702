"""Settings read from the environment, with safe defaults for local use.

Nothing here runs at import time: `load_config()` is called by the app factory
and by the CLI, so tests can point every setting elsewhere.
"""
from __future__ import annotations

import os
import secrets

from contracts.decisions import DEFAULT_THRESHOLD
from contracts.settings import database_url, var_dir

PRODUCTION_ENVS = {"production", "prod"}
# RFC 7518 3.2: an HS256 key of at least 256 bits.
MIN_SECRET_KEY_CHARS = 32


def is_production() -> bool:
    """Tell whether the environment declares a production deployment."""
    env = os.environ.get("APP_ENV") or os.environ.get("FLASK_ENV") or ""
    return env.lower() in PRODUCTION_ENVS


def secret_key() -> str:
    """Return SECRET_KEY; generate and keep one in var/ outside production."""
    key = os.environ.get("SECRET_KEY")
    if is_production() and len(key or "") < MIN_SECRET_KEY_CHARS:
        raise RuntimeError(f"SECRET_KEY must be set in production (APP_ENV=production), at least "
                           f"{MIN_SECRET_KEY_CHARS} characters: it signs the sessions and the HS256 bearer tokens")
    if key:
        return key
    path = var_dir() / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def mail_from() -> str:
    """Return the From address of the portal's emails (MAIL_FROM)."""
    return os.environ.get("MAIL_FROM") or "Credit portal <no-reply@localhost>"


def _local_url(port_setting: str, default_port: int) -> str:
    """Return the loopback address of a part of this system at the port its setting names (as the Makefile does)."""
    return f"http://127.0.0.1:{os.environ.get(port_setting, str(default_port))}"


def load_config(overrides: dict | None = None) -> dict:
    """Collect the portal's Flask config from the environment, then apply overrides."""
    overrides = overrides or {}
    config = {
        "DATABASE_URL": overrides.get("DATABASE_URL") or database_url(),
        # PostgreSQL connections each portal process keeps open: one per gunicorn thread (make run: 16), so that
        # no request waits for one and none is opened and closed per request (the pool's overflow).
        "DATABASE_POOL_SIZE": int(os.environ.get("DATABASE_POOL_SIZE", "16")),
        "SERVING_URL": os.environ.get("SERVING_URL", _local_url("SERVING_PORT", 5001)),
        "SERVING_TIMEOUT": float(os.environ.get("SERVING_TIMEOUT", "2.0")),
        "SERVING_CONNECT_TIMEOUT": float(os.environ.get("SERVING_CONNECT_TIMEOUT", "0.5")),
        # The shared secret serving demands on scoring calls and signs its answers with (make run makes one).
        "SERVING_TOKEN": os.environ.get("SERVING_TOKEN") or None,
        # After this many failures in a row, the ML method answers "unavailable" at once for this long.
        "SERVING_BREAKER_FAILURES": int(os.environ.get("SERVING_BREAKER_FAILURES", "3")),
        "SERVING_BREAKER_SECONDS": float(os.environ.get("SERVING_BREAKER_SECONDS", "30")),
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI"),
        # The model workbench service (pipeline/workbench) the manager's workbench pages call, with SERVING_TOKEN.
        "WORKBENCH_URL": os.environ.get("WORKBENCH_URL", _local_url("WORKBENCH_PORT", 5003)),
        "WORKBENCH_TIMEOUT": float(os.environ.get("WORKBENCH_TIMEOUT", "60")),
        # MLflow's UI (make mlflow-ui), linked from the workbench when set.
        "MLFLOW_UI_URL": os.environ.get("MLFLOW_UI_URL") or None,
        "REDIS_URL": os.environ.get("REDIS_URL"),
        "PERCENTAGE_THRESHOLD": float(os.environ.get("PERCENTAGE_THRESHOLD", "80")),
        # The ML method approves at score >= this; the portal decides, serving only scores.
        "ML_THRESHOLD": float(os.environ.get("ML_THRESHOLD", str(DEFAULT_THRESHOLD))),
        # Largest payment one request may make, in minor units (default 1,000,000.00).
        "MAX_PAYMENT_CENTS": int(os.environ.get("MAX_PAYMENT_CENTS", "100000000")),
        # API payments arriving together share one transaction, up to this many (portal.group_commit); 1: each alone.
        "PAYMENT_BATCH_MAX": int(os.environ.get("PAYMENT_BATCH_MAX", "64")),
        # The longest a batch waits to fill while payments are in flight in the process (portal.group_commit); 0: never.
        "PAYMENT_BATCH_WAIT_MS": float(os.environ.get("PAYMENT_BATCH_WAIT_MS", "4")),
        # Largest credit one request may ask for, in minor units (default 1,000,000.00).
        "MAX_CREDIT_CENTS": int(os.environ.get("MAX_CREDIT_CENTS", "100000000")),
        # The credit limit: this multiple of what the customer paid per year over the last five
        # complete years, at most CREDIT_LIMIT_MAX_CENTS (see portal/ledger/policy.py).
        "CREDIT_LIMIT_MULTIPLE": float(os.environ.get("CREDIT_LIMIT_MULTIPLE", "1.0")),
        "CREDIT_LIMIT_MAX_CENTS": int(os.environ.get("CREDIT_LIMIT_MAX_CENTS", "100000000")),
        # How pages show numbers, dates and money (Flask-Babel); the API keeps "1250.00" strings.
        # LOCALE is the language when neither a choice nor the browser's Accept-Language names one of LANGUAGES.
        "BABEL_DEFAULT_LOCALE": os.environ.get("LOCALE", "en"),
        "BABEL_DEFAULT_TIMEZONE": os.environ.get("TIMEZONE", "UTC"),
        "CURRENCY": os.environ.get("CURRENCY", "USD"),
        # Seconds a bearer token (JWT) lives; POST /api/token gives a fresh one while the login lives.
        "TOKEN_MAX_AGE": int(os.environ.get("TOKEN_MAX_AGE", "900")),
        # Failed logins (see portal/auth/throttle.py): per account and address, per account, per address.
        "LOGIN_LIMITS": os.environ.get("LOGIN_LIMITS", "5 per minute;20 per hour"),
        "LOGIN_ID_LIMITS": os.environ.get("LOGIN_ID_LIMITS", "30 per hour"),
        "LOGIN_ADDRESS_LIMITS": os.environ.get("LOGIN_ADDRESS_LIMITS", "30 per minute"),
        # Email (portal/mail): SMTP_URL unset writes .eml files under VAR_DIR/mail instead of sending.
        "SMTP_URL": os.environ.get("SMTP_URL") or None,
        "SMTP_TIMEOUT": float(os.environ.get("SMTP_TIMEOUT", "30")),
        "SMTP_CA_FILE": os.environ.get("SMTP_CA_FILE") or None,
        "MAIL_FROM": mail_from(),
        "MAIL_MAX_ATTEMPTS": int(os.environ.get("MAIL_MAX_ATTEMPTS", "8")),
        "MAIL_BACKOFF_SECONDS": float(os.environ.get("MAIL_BACKOFF_SECONDS", "30")),
        "MAIL_BACKOFF_MAX_SECONDS": float(os.environ.get("MAIL_BACKOFF_MAX_SECONDS", "3600")),
        "MAIL_LEASE_SECONDS": float(os.environ.get("MAIL_LEASE_SECONDS", "300")),
        "MAIL_POLL_SECONDS": float(os.environ.get("MAIL_POLL_SECONDS", "5")),
        # Where the links in emails point.
        "PORTAL_URL": os.environ.get("PORTAL_URL", _local_url("PORTAL_PORT", 5000)),
        "MAX_CONTENT_LENGTH": 64 * 1024,
        # Proxies in front of the portal whose X-Forwarded-For/-Proto to believe (nginx in `make cluster`: 1).
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": is_production(),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "PERMANENT_SESSION_LIFETIME": int(os.environ.get("SESSION_LIFETIME", str(8 * 3600))),
        # A login ends SESSION_LIFETIME after it began (its record's expires_at), not after the last request:
        # re-signing and re-sending the cookie on every answer would not extend it, only cost each request.
        "SESSION_REFRESH_EACH_REQUEST": False,
        "PREFERRED_URL_SCHEME": "https" if is_production() else "http",
        "DEBUG": False,
        "TESTING": False,
    }
    config.update(overrides)
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = secret_key()
    return config
