"""The credentials mapping the streamlit-authenticator login widget reads, built
from the database on every run.

The widget gets bcrypt hashes (it only verifies, ``auto_hash`` is off) and no
file path, so it never writes anything back. Disabled users are left out (they
cannot log in, and their login cookie no longer works). The widget's own
attempt limit keeps its counter in this dict, which lives for one run only, so
the counts come from the database (``failed_logins``; ``MAX_FAILED_LOGINS`` for
a locked account) and the failures the widget adds during a run are written
back by :func:`record_widget_failures`.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from hivemind_core.auth.models import User
from hivemind_core.auth.users import MAX_FAILED_LOGINS, _db, record_failed_login
from hivemind_core.sqlite import read_session


def authenticator_credentials(*, engine: Engine | None = None) -> dict[str, Any]:
    now = time.time()
    with read_session(_db(engine)) as s:
        users = list(s.exec(select(User).where(User.disabled == False)))  # noqa: E712
    entries: dict[str, dict[str, Any]] = {}
    for user in users:
        if user.locked_until > now:
            failures = MAX_FAILED_LOGINS
        elif user.locked_until > 0:
            failures = 0  # the lock has expired: a fresh start
        else:
            failures = user.failed_logins
        entries[user.username] = {
            "name": user.username,
            "email": "",
            "password": user.password_hash,
            "roles": [user.role],
            "failed_login_attempts": failures,
        }
    return {"usernames": entries}


def record_widget_failures(before: dict[str, Any], after: dict[str, Any], *, engine: Engine | None = None) -> list[str]:
    """Persist the failed attempts the widget counted in ``after`` beyond ``before``.

    ``before`` is a snapshot of :func:`authenticator_credentials`; ``after`` the
    dict the widget worked on. Returns the usernames that failed.
    """
    failed = []
    for username, entry in after.get("usernames", {}).items():
        start = before.get("usernames", {}).get(username, {}).get("failed_login_attempts", 0)
        for _ in range(max(0, entry.get("failed_login_attempts", 0) - start)):
            record_failed_login(username, engine=engine)
            failed.append(username)
    return failed
