"""Flask extensions, created unbound here and bound in the app factory."""
from __future__ import annotations

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from werkzeug.routing import IntegerConverter

from portal.errors import LedgerApi
from portal.models import MAX_ID


class IdConverter(IntegerConverter):
    """`<id:name>` in routes: a positive integer id in ASCII digits; anything larger is a 404, not an overflow."""

    regex = r"[0-9]+"  # werkzeug's \d+ would take other scripts' digits ("१०१" for 101)

    def __init__(self, url_map):
        super().__init__(url_map, min=1, max=MAX_ID)


def select_locale() -> str:
    """Return the pages' locale: the configured default for now (a language switcher can choose per request)."""
    return current_app.config["BABEL_DEFAULT_LOCALE"]


babel = Babel()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)
api = LedgerApi()
api.register_converter(IdConverter, lambda _c: {"type": "integer", "minimum": 1, "maximum": MAX_ID})
