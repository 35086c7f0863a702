"""How serving signs its answers with the shared ``SERVING_TOKEN``, and how the portal checks them."""
from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Serving-Signature"


def signature(token: str, body: bytes) -> str:
    """Return the signature of an answer's body: ``sha256=`` + HMAC-SHA256 with the shared token."""
    return "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()


def verify(token: str, body: bytes, given: str) -> bool:
    """Tell whether a signature is the token's for this body (in constant time)."""
    return hmac.compare_digest(given.encode(), signature(token, body).encode())
