"""Users, login sessions, failed-login counts and API tokens, stored in the master database."""

from __future__ import annotations

import time

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True)  # lower case, see passwords.normalize_username
    password_hash: str                               # bcrypt
    role: str = "analyst"                            # admin | analyst | viewer
    disabled: bool = False
    failed_logins: int = 0                           # consecutive failures (from any address) since the last success
    locked_until: float = 0.0                        # unused: lockouts are per address now (LoginFailure)
    created_at: float = Field(default_factory=time.time)
    last_login_at: float | None = None
    password_changed_at: float = Field(default_factory=time.time)


class LoginSession(SQLModel, table=True):
    """One browser login, alive while its row exists (server side, so it can be ended).

    The login cookie (signed by streamlit-authenticator) holds the username and
    its expiry time; that pair names the session. Logging out deletes the row;
    a password change or reset, a role change or disabling the account deletes
    all of the user's rows ("log out everywhere"), so copies of old cookies no
    longer log anyone in.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (UniqueConstraint("username", "expires_at", name="uq_login_sessions_user_expiry"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)
    expires_at: float                                # the cookie's exp_date (unix seconds)
    created_at: float = Field(default_factory=time.time)
    client: str = ""                                 # the address it logged in from, when known


class LoginFailure(SQLModel, table=True):
    """Failed logins for one username (existing or not) from one client address.

    Counting per (username, address) limits guessing without letting a stranger
    lock the real user out from everywhere; counting unknown usernames the same
    way keeps the answers identical, so they do not tell which usernames exist.
    """

    __tablename__ = "login_failures"
    __table_args__ = (UniqueConstraint("username", "client", name="uq_login_failures_user_client"),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)                # as typed (normalized), not necessarily a user
    client: str = ""                                 # IP address; "" when unknown (localhost, tests)
    failures: int = 0                                # consecutive, since the last success from here
    locked_until: float = 0.0                        # unix seconds; no login from here before this
    last_failure_at: float = Field(default_factory=time.time)


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)
    name: str
    token_hash: str = Field(index=True, unique=True)  # sha256 hex of the token; the token itself is never stored
    prefix: str                                       # first characters, to tell tokens apart in lists
    created_at: float = Field(default_factory=time.time)
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
