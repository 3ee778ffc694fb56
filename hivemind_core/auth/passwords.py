"""Password hashing (bcrypt) and the rules for usernames and passwords.

The rules match what the streamlit-authenticator login widget does with its
input: it lower-cases and strips the username and strips the password, so a
username is stored lower case and a password may not start or end with spaces
(it could never be typed into the widget).
"""

from __future__ import annotations

import re

import bcrypt

from hivemind_core.errors import ValidationError

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores (bcrypt 5 refuses) anything longer
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,63}$")
# Verified against when the username is unknown, so that case costs as much time as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"no such user", bcrypt.gensalt()).decode()


def normalize_username(raw: str) -> str:
    """The stored form of a username (lower case, no surrounding spaces), validated."""
    name = (raw or "").strip().lower()
    if not _USERNAME.match(name):
        raise ValidationError(
            "A username is 1-64 characters: letters, digits and . _ @ - "
            "(starting with a letter or digit).",
            field="username",
        )
    return name


def check_password_rules(password: str, field: str = "password") -> None:
    """Raise ValidationError (naming ``field``) unless ``password`` is acceptable."""
    if password != password.strip():
        raise ValidationError("A password cannot start or end with a space.", field=field)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"A password needs at least {MIN_PASSWORD_LENGTH} characters.", field=field
        )
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValidationError(
            f"A password can be at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit).", field=field
        )


def hash_password(password: str) -> str:
    check_password_rules(password)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches; always spends one bcrypt check, even without a hash."""
    candidate = (password or "").encode("utf-8")[:MAX_PASSWORD_BYTES]
    try:
        ok = bcrypt.checkpw(candidate, (password_hash or _DUMMY_HASH).encode("ascii"))
    except ValueError:  # a corrupt stored hash is a failed login, not a crash
        return False
    return ok and password_hash is not None
