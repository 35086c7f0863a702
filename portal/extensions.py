"""Flask extensions, created unbound here and bound in the app factory."""
from __future__ import annotations

from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

from portal.api.errors import LedgerApi

login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
api = LedgerApi()


def login_id_key() -> str:
    """Rate-limit key for logins: the role and id being tried, from the JSON body or form."""
    body = request.get_json(silent=True) if request.is_json else request.form
    user_id = str((body or {}).get("id", ""))[:32]
    return f"login:{request.path}:{user_id}"
