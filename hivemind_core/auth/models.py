"""Users and API tokens, stored in the master database."""

from __future__ import annotations

import time

from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True)  # lower case, see passwords.normalize_username
    password_hash: str                               # bcrypt
    role: str = "analyst"                            # admin | analyst | viewer
    disabled: bool = False
    failed_logins: int = 0                           # consecutive failures since the last success
    locked_until: float = 0.0                        # unix seconds; login refused before this
    created_at: float = Field(default_factory=time.time)
    last_login_at: float | None = None
    password_changed_at: float = Field(default_factory=time.time)


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
