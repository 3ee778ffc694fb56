"""The credentials mapping streamlit-authenticator reads, built from the database on every run.

The app uses the authenticator for its login cookie (restoring a login, and
logging out); passwords are checked by :func:`hivemind_core.auth.authenticate`
(with the login limits), and whether a cookie still counts by
:mod:`hivemind_core.auth.sessions`. The authenticator gets bcrypt hashes only
(``auto_hash`` is off) and no file path, so it never writes anything back.
Disabled users are left out (their login cookie no longer works).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from hivemind_core.auth.models import User
from hivemind_core.auth.users import _db
from hivemind_core.sqlite import read_session


def authenticator_credentials(*, engine: Engine | None = None) -> dict[str, Any]:
    with read_session(_db(engine)) as s:
        users = list(s.exec(select(User).where(User.disabled == False)))  # noqa: E712
    return {"usernames": {
        user.username: {"name": user.username, "email": "", "password": user.password_hash, "roles": [user.role]}
        for user in users
    }}
