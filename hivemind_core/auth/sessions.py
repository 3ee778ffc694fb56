"""Browser login sessions, kept server side so that they can be ended.

streamlit-authenticator's login cookie is a JWT signed with the app's cookie
key that holds the username and the cookie's expiry time (``exp_date``); it
cannot carry anything else. The pair (username, exp_date) is unique per login
(a float timestamp taken at the moment of the login), so it names the session:
a successful login stores a :class:`~hivemind_core.auth.models.LoginSession`
row for it, and a cookie or a running browser session counts only while its
row exists. Logging out deletes the row; a password change or reset, a role
change and disabling the account delete all of the user's rows (see
:mod:`hivemind_core.auth.users`), so an old cookie — even a copy taken before
— no longer logs anyone in.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete
from sqlalchemy.engine import Engine
from sqlmodel import select

from hivemind_core.auth.models import LoginSession, User
from hivemind_core.auth.users import _db, principal_of
from hivemind_core.principal import Principal
from hivemind_core.sqlite import read_session, write_session

log = logging.getLogger(__name__)


def start_login_session(username: str, expires_at: float, client: str = "", *,
                        engine: Engine | None = None) -> None:
    """Record the login of ``username`` whose cookie expires at ``expires_at`` (also drops expired sessions)."""
    now = time.time()
    with write_session(_db(engine)) as s:
        s.execute(delete(LoginSession).where(LoginSession.expires_at <= now))
        exists = s.exec(select(LoginSession.id).where(LoginSession.username == username,
                                                      LoginSession.expires_at == expires_at)).first()
        if exists is None:
            s.add(LoginSession(username=username, expires_at=expires_at, client=client or ""))
        s.commit()


def end_login_session(username: str, expires_at: float, *, engine: Engine | None = None) -> None:
    """Log out one session (its cookie stops working, wherever a copy of it is)."""
    with write_session(_db(engine)) as s:
        s.execute(delete(LoginSession).where(LoginSession.username == username,
                                             LoginSession.expires_at == expires_at))
        s.commit()
    log.info("%r logged out", username)


def session_principal(username: str | None, expires_at: float | None, *, now: float | None = None,
                      engine: Engine | None = None) -> Principal | None:
    """Who the session (``username``, ``expires_at``) belongs to, read afresh (role included):
    None once it has ended or expired, or the account is disabled or gone."""
    if not username or expires_at is None:
        return None
    now = time.time() if now is None else now
    if expires_at <= now:
        return None
    with read_session(_db(engine)) as s:
        row = s.exec(
            select(User, LoginSession.id)
            .join(LoginSession, LoginSession.username == User.username)
            .where(User.username == username, LoginSession.expires_at == expires_at)
        ).first()
    if row is None or row[0].disabled:
        return None
    return principal_of(row[0])
