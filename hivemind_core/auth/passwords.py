"""Password hashing (bcrypt) and the rules for usernames and passwords.

The login form lower-cases and strips the username and strips the password (as
the streamlit-authenticator widget did), so a username is stored lower case and
a password may not start or end with spaces (it could never be typed in).

A password needs :data:`MIN_PASSWORD_LENGTH` characters, at least
:data:`MIN_DISTINCT_CHARACTERS` different ones, must not be one of the
passwords attackers try first (:data:`COMMON_PASSWORDS`, also with digits and
symbols added at the end) and must not be or contain the username. The rules
apply whenever a password is set (first admin, new user, reset, own change);
existing passwords keep working.
"""

from __future__ import annotations

import re

import bcrypt

from hivemind_core.errors import ValidationError

MIN_PASSWORD_LENGTH = 10
MIN_DISTINCT_CHARACTERS = 4
MIN_USERNAME_IN_PASSWORD = 3  # shorter usernames are only refused as the whole password
PASSWORD_HELP = (f"At least {MIN_PASSWORD_LENGTH} characters; not a common password and not the username. "
                 "A phrase of a few unrelated words is easy to remember and hard to guess.")
# Passwords of at least MIN_PASSWORD_LENGTH characters found at the top of leaked-password lists, and
# the words they are built from (a password that is one of these plus digits or symbols is refused too).
COMMON_PASSWORDS = frozenset("""
password passwords passw0rd p@ssword p@ssw0rd password1 password12 password123 password1234
qwerty qwertyuiop qwertyuiop1 qwerty123 qwerty1234 qwertyui qwe123 asdfghjkl asdfghjkl1 zxcvbnm zxcvbnm123
1qaz2wsx 1q2w3e4r 1q2w3e4r5t 1q2w3e4r5t6y q1w2e3r4t5 q1w2e3r4t5y6 qazwsxedc qazwsxedcrfv
123456789 1234567890 0123456789 0987654321 9876543210 123123123 1234512345 1122334455 abcdefghij
abc123 abcd1234 iloveyou iloveyou1 iloveyou2 letmein welcome welcome1 changeme changeit
admin administrator adminadmin root superuser master mastermind hivemind secret sunshine princess
football baseball basketball dragon monkey shadow trustno1 whatever starwars pokemon computer
internet michael jennifer jordan23 charlie freedom superman batman hello helloworld login
""".split())
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


def _is_common(password: str) -> bool:
    lowered = password.lower()
    base = lowered.rstrip("0123456789!@#$%^&*()-_=+.,;:?~ ")
    return lowered in COMMON_PASSWORDS or base in COMMON_PASSWORDS


def check_password_rules(password: str, field: str = "password", *, username: str | None = None) -> None:
    """Raise ValidationError (naming ``field``) unless ``password`` is acceptable
    (for the account ``username``, when given)."""
    if password != password.strip():
        raise ValidationError("A password cannot start or end with a space.", field=field)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"A password needs at least {MIN_PASSWORD_LENGTH} characters; a phrase of a few unrelated "
            "words is easy to remember.", field=field
        )
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValidationError(
            f"A password can be at most {MAX_PASSWORD_BYTES} bytes (bcrypt's limit).", field=field
        )
    if len(set(password.lower())) < MIN_DISTINCT_CHARACTERS:
        raise ValidationError(
            f"This password repeats too few characters; use at least {MIN_DISTINCT_CHARACTERS} different "
            "ones, e.g. a phrase of a few unrelated words.", field=field
        )
    if _is_common(password):
        raise ValidationError(
            "This password is one of the first that attackers try; choose something less common, "
            "e.g. a phrase of a few unrelated words.", field=field
        )
    name = (username or "").strip().lower()
    if name and (password.lower() == name
                 or (len(name) >= MIN_USERNAME_IN_PASSWORD and name in password.lower())):
        raise ValidationError(
            "The password must not contain the username; choose one that has nothing to do with it.",
            field=field,
        )


def hash_password(password: str, *, username: str | None = None) -> str:
    """The bcrypt hash of ``password``, after checking it against the rules (for ``username``)."""
    check_password_rules(password, username=username)
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches; always spends one bcrypt check, even without a hash."""
    candidate = (password or "").encode("utf-8")[:MAX_PASSWORD_BYTES]
    try:
        ok = bcrypt.checkpw(candidate, (password_hash or _DUMMY_HASH).encode("ascii"))
    except ValueError:  # a corrupt stored hash is a failed login, not a crash
        return False
    return ok and password_hash is not None
