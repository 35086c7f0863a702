"""Reading the managers' forms and query strings with the API's own marshmallow schemas."""
from __future__ import annotations

import marshmallow as ma
from flask import abort, request
from flask_babel import gettext as _

from portal.inputs import is_digits
from portal.refusals import said


def query_args(schema: ma.Schema) -> dict:
    """Read query arguments with the API's own schema; 400 on a hand-made bad value."""
    args = {k: v for k, v in request.args.items() if v != ""}
    try:
        return schema.load(args)
    except ma.ValidationError as exc:
        name, messages = next(iter(exc.messages.items()))
        problem = messages[0] if isinstance(messages, list) else messages
        abort(400, description=_("%(field)s: %(problem)s", field=name, problem=said(str(problem))))


def load_form(schema: ma.Schema, data: dict, form) -> dict | None:
    """Validate form data with the API's schema; put its messages on the form's fields."""
    try:
        return schema.load(data)
    except ma.ValidationError as exc:
        for name, messages in exc.messages.items():
            field = getattr(form, name, None)
            text = said(messages[0] if isinstance(messages, list) else str(messages))
            if field is not None:
                field.errors = [*field.errors, text]
        return None


def optional(raw: str | None, number: bool = False):
    """Return a stripped form value, None when empty, an int for digits when `number`."""
    raw = (raw or "").strip()
    if not raw:
        return None
    return int(raw) if number and is_digits(raw) else raw
