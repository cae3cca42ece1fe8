"""Device and service-account credentials for the broker.

Passwords are random and shown once; only a hash is kept, in the format of
Mosquitto 2's password file (``$7$``: PBKDF2-HMAC-SHA512, iterations, salt
and hash in base64), so the broker checks them without ever seeing the
plain text again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

PBKDF2_ITERATIONS = 1_000  # passwords are 128-bit random tokens, not human choices
SALT_BYTES = 12
HASH_BYTES = 64


def new_password() -> str:
    """A random password of 128 bits, URL-safe."""
    return secrets.token_urlsafe(16)


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def split_hash(stored: str) -> tuple[int, str, str]:
    """(iterations, base64 salt, base64 hash) of a ``$7$`` string."""
    _, kind, iterations, salt, digest = stored.split("$")
    if kind != "7":
        raise ValueError("not a $7$ (PBKDF2-SHA512) password hash")
    return int(iterations), salt, digest


def verify_password(password: str, stored: str) -> bool:
    try:
        _, kind, iterations, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "7":
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt),
                              int(iterations), HASH_BYTES)
    return hmac.compare_digest(got, base64.b64decode(digest))


def new_token() -> str:
    """An API bearer token (256 bits)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """What is stored of an API token: its SHA-256 (tokens are random, no salt needed)."""
    return hashlib.sha256(token.encode()).digest()
