"""Passwords for the pages: scrypt (RFC 7914) from the standard library, with
a random salt; stored as ``scrypt$N$r$p$salt$hash`` (base64)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**14, 8, 1
MIN_LENGTH = 10
MAX_LENGTH = 200


class PasswordError(ValueError):
    """A new password is not acceptable; the message says why."""


def check_new(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise PasswordError(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordError(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify(password: str, stored: str | None) -> bool:
    """True when ``password`` matches; False for no stored password or a
    malformed one (and for any password longer than MAX_LENGTH)."""
    if not stored or len(password) > MAX_LENGTH:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def initial_password() -> str:
    """A password to be changed at first login: 4 groups of 4 letters and
    digits (no 0/O, 1/l/I), easy to read out and type on a phone."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
