"""User accounts: first-run admin, administration, passwords, login with lockout.

Every function takes an optional ``engine`` (default: the configured master
database) so the UI, the REST API, the CLI and tests share one implementation.
Changes are checked against the caller (a :class:`Principal`): only admins
manage other accounts.

Changing a password (own change or admin reset), a role, or disabling an
account ends the user's login sessions everywhere (:class:`LoginSession`
rows; the caller's own current session may be kept with ``keep_session``).
Disabling an account also disables its VPN peers; enabling it again leaves
them disabled (an admin re-enables the ones still wanted on the VPN page).

Login attempts are limited per (username, client address): after
:data:`MAX_FAILED_LOGINS` failures in a row that username is refused from that
address for :data:`LOCKOUT_SECONDS`. Unknown usernames are counted and answered
exactly like existing ones, so the answers do not reveal which exist, and a
stranger elsewhere cannot lock the real user out.
"""

from __future__ import annotations

import logging
import math
import time

from sqlalchemy import delete, func, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from hivemind_core.auth.errors import AccountDisabledError, AccountLockedError, AuthenticationError
from hivemind_core.auth.models import LoginFailure, LoginSession, User
from hivemind_core.auth.passwords import (
    check_password_rules,
    hash_password,
    normalize_username,
    verify_password,
)
from hivemind_core.db import get_engine
from hivemind_core.errors import NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.principal import ROLES, Principal
from hivemind_core.sqlite import read_session, write_session
from hivemind_core.vpn.models import VpnPeer  # a leaf module (tables only): disabling a user disables their peers

log = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5          # consecutive wrong passwords for one username from one address before it locks
LOCKOUT_SECONDS = 15 * 60      # how long it stays locked for that address; also how long a count is remembered
MAX_LOGIN_NAME = 64            # longer typed usernames are counted by their first characters
WRONG_LOGIN = "Wrong username or password."


def _db(engine: Engine | None) -> Engine:
    return engine if engine is not None else get_engine()


def principal_of(user: User) -> Principal:
    return Principal(username=user.username, role=user.role)  # type: ignore[arg-type]


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ValidationError(f"Unknown role {role!r}; choose one of: {', '.join(ROLES)}.", field="role")
    return role


def _require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise PermissionDeniedError("Only an administrator can manage user accounts.")


def has_users(*, engine: Engine | None = None) -> bool:
    """False on a fresh install: the app then asks for the admin account."""
    with read_session(_db(engine)) as s:
        return s.exec(select(User.id).limit(1)).first() is not None


def get_user(username: str, *, engine: Engine | None = None) -> User | None:
    with read_session(_db(engine)) as s:
        return s.exec(select(User).where(User.username == username.strip().lower())).first()


def list_users(who: Principal, *, engine: Engine | None = None) -> list[User]:
    _require_admin(who)
    with read_session(_db(engine)) as s:
        return list(s.exec(select(User).order_by(User.username)))


def _insert(s, username: str, password: str, role: str) -> User:  # noqa: ANN001 - Session
    if s.exec(select(User.id).where(User.username == username)).first() is not None:
        raise ValidationError(f"The username {username!r} is taken; choose another.", field="username")
    user = User(username=username, password_hash=hash_password(password, username=username), role=role)
    s.add(user)
    s.commit()
    s.refresh(user)
    return user


def create_first_admin(username: str, password: str, *, engine: Engine | None = None) -> User:
    """Create the admin account of a fresh install; refused once any user exists."""
    name = normalize_username(username)
    check_password_rules(password, username=name)
    with write_session(_db(engine)) as s:  # BEGIN IMMEDIATE: two first-run forms cannot both win
        if s.exec(select(User.id).limit(1)).first() is not None:
            raise PermissionDeniedError(
                "An admin account exists already; log in, or ask an administrator for an account."
            )
        user = _insert(s, name, password, "admin")
    log.info("first admin account %r created", name)
    return user


def create_user(
    who: Principal, username: str, password: str, role: str = "analyst", *, engine: Engine | None = None
) -> User:
    _require_admin(who)
    name = normalize_username(username)
    _check_role(role)
    check_password_rules(password, username=name)
    with write_session(_db(engine)) as s:
        user = _insert(s, name, password, role)
    log.info("%s created user %r (%s)", who.username, name, role)
    return user


def _load(s, username: str) -> User:  # noqa: ANN001 - Session
    user = s.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFoundError(f"There is no user {username!r}.")
    return user


def _end_sessions(s, username: str, keep: float | None = None) -> int:  # noqa: ANN001 - Session
    """Delete ``username``'s login sessions (all but the one expiring at ``keep``); no commit."""
    query = delete(LoginSession).where(LoginSession.username == username)
    if keep is not None:
        query = query.where(LoginSession.expires_at != keep)
    return s.execute(query).rowcount or 0


def _other_active_admins(s, username: str) -> int:  # noqa: ANN001 - Session
    return s.exec(
        select(func.count()).select_from(User).where(
            User.role == "admin", User.disabled == False, User.username != username  # noqa: E712
        )
    ).one()


def set_role(who: Principal, username: str, role: str, *, keep_session: float | None = None,
             engine: Engine | None = None) -> User:
    """Change a role; a real change logs the user out everywhere (but ``keep_session``,
    the caller's own current login when they change their own role)."""
    _require_admin(who)
    _check_role(role)
    with write_session(_db(engine)) as s:
        user = _load(s, username)
        if user.role == "admin" and role != "admin" and not _other_active_admins(s, user.username):
            raise PermissionDeniedError(
                f"{user.username!r} is the last active administrator; make someone else admin first."
            )
        if user.role != role:
            _end_sessions(s, user.username, keep_session if user.username == who.username else None)
        user.role = role
        s.add(user)
        s.commit()
    log.info("%s set the role of %r to %s", who.username, user.username, role)
    return user


def set_disabled(who: Principal, username: str, disabled: bool, *, engine: Engine | None = None) -> User:
    """Disable (or re-enable) an account: a disabled user can neither log in nor use API tokens.

    Disabling also ends their login sessions and disables their VPN peers (the
    server config leaves them out). Re-enabling restores the login only: the
    peers stay disabled until an admin enables them again on the VPN page, so
    no device comes back on the network without someone choosing it.
    """
    _require_admin(who)
    with write_session(_db(engine)) as s:
        user = _load(s, username)
        if disabled and user.username == who.username:
            raise PermissionDeniedError("You cannot disable your own account.")
        if disabled and user.role == "admin" and not _other_active_admins(s, user.username):
            raise PermissionDeniedError(
                f"{user.username!r} is the last active administrator and cannot be disabled."
            )
        peers = 0
        if disabled:
            _end_sessions(s, user.username)
            peers = s.execute(
                update(VpnPeer).where(VpnPeer.owner == user.username, VpnPeer.revoked_at.is_(None),
                                      VpnPeer.enabled == True)  # noqa: E712
                .values(enabled=False)
            ).rowcount or 0
        user.disabled = disabled
        s.add(user)
        s.commit()
    log.info("%s %s user %r%s", who.username, "disabled" if disabled else "enabled", user.username,
             f" and {peers} VPN peer(s)" if peers else "")
    return user


def reset_password(who: Principal, username: str, new_password: str, *, keep_session: float | None = None,
                   engine: Engine | None = None) -> None:
    """Admin sets a new password for someone: lifts their login lockouts and logs them out
    everywhere (but ``keep_session``, the admin's own current login when resetting their own)."""
    _require_admin(who)
    db = _db(engine)
    with read_session(db) as s:
        name = _load(s, username).username
    new_hash = hash_password(new_password, username=name)
    with write_session(db) as s:
        user = _load(s, name)
        user.password_hash, user.password_changed_at = new_hash, time.time()
        user.failed_logins, user.locked_until = 0, 0.0
        s.execute(delete(LoginFailure).where(LoginFailure.username == user.username))
        _end_sessions(s, user.username, keep_session if user.username == who.username else None)
        s.add(user)
        s.commit()
    log.info("%s reset the password of %r", who.username, user.username)


def change_password(who: Principal, old_password: str, new_password: str, *, keep_session: float | None = None,
                    engine: Engine | None = None) -> None:
    """A user changes their own password (the current one is required). Their other login
    sessions end; ``keep_session`` (the one they are using) stays."""
    check_password_rules(new_password, field="new_password", username=who.username)
    db = _db(engine)
    user = get_user(who.username, engine=db)
    if user is None or not verify_password(old_password, user.password_hash):
        raise ValidationError("The current password is not right.", field="old_password")
    if old_password == new_password:
        raise ValidationError("The new password must differ from the current one.", field="new_password")
    new_hash = hash_password(new_password, username=who.username)
    with write_session(db) as s:
        user = _load(s, who.username)
        user.password_hash, user.password_changed_at = new_hash, time.time()
        _end_sessions(s, user.username, keep_session)
        s.add(user)
        s.commit()
    log.info("%r changed their password", who.username)


# ---- login attempts ---------------------------------------------------------------------------

def _login_name(username: str | None) -> str:
    """A typed username as it is looked up and counted (existing or not)."""
    return (username or "").strip().lower()[:MAX_LOGIN_NAME]


def _lock_message(remaining_s: float) -> str:
    minutes = max(1, math.ceil(remaining_s / 60))
    return (f"Too many failed logins: this username is locked from your address for {minutes} more minute(s). "
            "Try again later, or ask an administrator to reset the password.")


def login_lock_remaining(username: str, client: str = "", *, now: float | None = None,
                         engine: Engine | None = None) -> float:
    """Seconds until ``username`` may try to log in again from ``client`` (0: it may now)."""
    now = time.time() if now is None else now
    with read_session(_db(engine)) as s:
        row = s.exec(select(LoginFailure).where(LoginFailure.username == _login_name(username),
                                                LoginFailure.client == (client or ""))).first()
    return max(0.0, row.locked_until - now) if row is not None else 0.0


def locked_addresses(who: Principal, *, engine: Engine | None = None) -> dict[str, int]:
    """Admins: for each username currently locked out somewhere, from how many addresses."""
    _require_admin(who)
    with read_session(_db(engine)) as s:
        rows = s.exec(select(LoginFailure.username, func.count()).where(LoginFailure.locked_until > time.time())
                      .group_by(LoginFailure.username)).all()
    return {name: int(count) for name, count in rows}


def record_failed_login(username: str, client: str = "", *, engine: Engine | None = None) -> bool:
    """Count one failed login of ``username`` (existing or not) from ``client``; the
    MAX_FAILED_LOGINS-th in a row locks that pair. True when this failure locked it.

    One BEGIN IMMEDIATE transaction, so concurrent sessions cannot lose a failure.
    """
    name, client, now = _login_name(username), client or "", time.time()
    with write_session(_db(engine)) as s:
        # forget counts that saw no failure for a lockout period (also keeps typos from piling up)
        s.execute(delete(LoginFailure).where(LoginFailure.last_failure_at < now - LOCKOUT_SECONDS,
                                             LoginFailure.locked_until <= now))
        row = s.exec(select(LoginFailure).where(LoginFailure.username == name,
                                                LoginFailure.client == client)).first()
        if row is None:
            row = LoginFailure(username=name, client=client)
        elif 0 < row.locked_until <= now:  # an expired lock starts a fresh count
            row.failures, row.locked_until = 0, 0.0
        row.failures += 1
        row.last_failure_at = now
        locked = row.failures >= MAX_FAILED_LOGINS and row.locked_until <= now
        if locked:
            row.locked_until = now + LOCKOUT_SECONDS
        s.add(row)
        s.execute(update(User).where(User.username == name).values(failed_logins=User.failed_logins + 1))
        s.commit()
    if locked:
        log.warning("login of %r from %s locked for %d s after %d failures", name, client or "an unknown address",
                    LOCKOUT_SECONDS, MAX_FAILED_LOGINS)
    return locked


def record_successful_login(username: str, client: str = "", *, engine: Engine | None = None) -> None:
    name = _login_name(username)
    with write_session(_db(engine)) as s:
        s.execute(delete(LoginFailure).where(LoginFailure.username == name, LoginFailure.client == (client or "")))
        s.execute(update(User).where(User.username == name)
               .values(failed_logins=0, locked_until=0.0, last_login_at=time.time()))
        s.commit()


def authenticate(username: str, password: str, client: str = "", *, engine: Engine | None = None) -> Principal:
    """Check a username and password typed on ``client`` (its IP address, "" if unknown).

    Raises AccountLockedError (too many failures for this username from this
    address — said the same way whether the username exists or not),
    AuthenticationError (wrong username or password, the same message for
    both) or AccountDisabledError (right password, but the account is disabled).
    """
    db = _db(engine)
    name = _login_name(username)
    remaining = login_lock_remaining(name, client, engine=db)
    if remaining > 0:
        raise AccountLockedError(_lock_message(remaining))
    user = get_user(name, engine=db) if name else None
    # one bcrypt check either way (a dummy hash for unknown users): no username probing by timing
    if not verify_password(password, user.password_hash if user else None) or user is None:
        record_failed_login(name, client, engine=db)
        raise AuthenticationError(WRONG_LOGIN)
    if user.disabled:
        raise AccountDisabledError("This account is disabled; ask an administrator to enable it.")
    record_successful_login(user.username, client, engine=db)
    return principal_of(user)
