"""API tokens: created by their owner, shown once, stored as sha256, revocable.

A token is a bearer credential for the REST API with its owner's permissions.
Only its sha256 is kept, so a database leak does not leak usable tokens;
tokens are long random strings, so an unsalted fast hash is enough (unlike
passwords, they cannot be guessed from a dictionary).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import select

from hivemind_core.auth.errors import AccountDisabledError, AuthenticationError
from hivemind_core.auth.models import ApiToken, User
from hivemind_core.auth.users import _db, principal_of
from hivemind_core.errors import NotFoundError, ValidationError
from hivemind_core.principal import Principal
from hivemind_core.sqlite import read_session, write_session

log = logging.getLogger(__name__)

TOKEN_PREFIX = "hm_"
MAX_NAME_LENGTH = 80
LAST_USED_RESOLUTION_S = 60.0  # last_used_at is refreshed at most once a minute (no write per request)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_api_token(who: Principal, name: str, *, engine: Engine | None = None) -> str:
    """Create a token for ``who`` and return it — the only time it is ever visible."""
    label = (name or "").strip()
    if not label or len(label) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in label):
        raise ValidationError(
            f"Give the token a name of 1-{MAX_NAME_LENGTH} printable characters (e.g. 'laptop script').",
            field="name",
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_session(_db(engine)) as s:
        s.add(ApiToken(username=who.username, name=label, token_hash=token_hash(token), prefix=token[:10]))
        s.commit()
    log.info("%r created API token %r", who.username, label)
    return token


def list_api_tokens(who: Principal, *, include_revoked: bool = False, engine: Engine | None = None) -> list[ApiToken]:
    """``who``'s own tokens, newest first."""
    query = select(ApiToken).where(ApiToken.username == who.username)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at == None)  # noqa: E711
    with read_session(_db(engine)) as s:
        return list(s.exec(query.order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def revoke_api_token(who: Principal, token_id: int, *, engine: Engine | None = None) -> None:
    """Revoke one of ``who``'s tokens (admins may revoke anyone's)."""
    with write_session(_db(engine)) as s:
        row = s.get(ApiToken, token_id)
        if row is None or not who.can_see(row.username):
            raise NotFoundError(f"There is no API token {token_id} of yours.")
        if row.revoked_at is None:
            row.revoked_at = time.time()
            s.add(row)
            s.commit()
            log.info("%r revoked API token %r of %r", who.username, row.name, row.username)


def principal_for_token(token: str | None, *, engine: Engine | None = None) -> Principal:
    """The owner of a valid token; AuthenticationError if missing, unknown or revoked,
    AccountDisabledError if the owner is disabled."""
    if not token:
        raise AuthenticationError("An API token is required: send 'Authorization: Bearer <token>'.")
    db = _db(engine)
    digest = token_hash(token.strip())
    with read_session(db) as s:
        row = s.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
        user = s.exec(select(User).where(User.username == row.username)).first() if row else None
    if row is None or row.revoked_at is not None or user is None:
        raise AuthenticationError("This API token is not valid (unknown or revoked); create one on the Account page.")
    if user.disabled:
        raise AccountDisabledError("The account of this API token is disabled.")
    now = time.time()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION_S:
        with write_session(db) as s:
            s.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
            s.commit()
    return principal_of(user)
