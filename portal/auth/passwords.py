"""Password hashing with argon2id (argon2-cffi) at OWASP's recommended parameters."""
from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet / ASVS L2: argon2id, m=19 MiB, t=2, p=1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the user is unknown, so a bad id costs as long as a bad password."""
    return HASHER.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """Return an argon2id hash of a password."""
    return HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Tell whether a password matches its hash, in constant work for unknown users."""
    try:
        return HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a stored hash uses weaker parameters than today's."""
    return HASHER.check_needs_rehash(password_hash)
