"""User accounts: first-run admin, administration, passwords, login with lockout.

Every function takes an optional ``engine`` (default: the configured master
database) so the UI, the REST API, the CLI and tests share one implementation.
Changes are checked against the caller (a :class:`Principal`): only admins
manage other accounts.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import func, update
from sqlalchemy.engine import Engine
from sqlmodel import select

from hivemind_core.auth.errors import AccountDisabledError, AccountLockedError, AuthenticationError
from hivemind_core.auth.models import User
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

log = logging.getLogger(__name__)

MAX_FAILED_LOGINS = 5          # consecutive wrong passwords before the account locks
LOCKOUT_SECONDS = 15 * 60      # how long it stays locked


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
    user = User(username=username, password_hash=hash_password(password), role=role)
    s.add(user)
    s.commit()
    s.refresh(user)
    return user


def create_first_admin(username: str, password: str, *, engine: Engine | None = None) -> User:
    """Create the admin account of a fresh install; refused once any user exists."""
    name = normalize_username(username)
    check_password_rules(password)
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
    check_password_rules(password)
    with write_session(_db(engine)) as s:
        user = _insert(s, name, password, role)
    log.info("%s created user %r (%s)", who.username, name, role)
    return user


def _load(s, username: str) -> User:  # noqa: ANN001 - Session
    user = s.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFoundError(f"There is no user {username!r}.")
    return user


def _other_active_admins(s, username: str) -> int:  # noqa: ANN001 - Session
    return s.exec(
        select(func.count()).select_from(User).where(
            User.role == "admin", User.disabled == False, User.username != username  # noqa: E712
        )
    ).one()


def set_role(who: Principal, username: str, role: str, *, engine: Engine | None = None) -> User:
    _require_admin(who)
    _check_role(role)
    with write_session(_db(engine)) as s:
        user = _load(s, username)
        if user.role == "admin" and role != "admin" and not _other_active_admins(s, user.username):
            raise PermissionDeniedError(
                f"{user.username!r} is the last active administrator; make someone else admin first."
            )
        user.role = role
        s.add(user)
        s.commit()
    log.info("%s set the role of %r to %s", who.username, user.username, role)
    return user


def set_disabled(who: Principal, username: str, disabled: bool, *, engine: Engine | None = None) -> User:
    """Disable (or re-enable) an account: a disabled user can neither log in nor use API tokens."""
    _require_admin(who)
    with write_session(_db(engine)) as s:
        user = _load(s, username)
        if disabled and user.username == who.username:
            raise PermissionDeniedError("You cannot disable your own account.")
        if disabled and user.role == "admin" and not _other_active_admins(s, user.username):
            raise PermissionDeniedError(
                f"{user.username!r} is the last active administrator and cannot be disabled."
            )
        user.disabled = disabled
        s.add(user)
        s.commit()
    log.info("%s %s user %r", who.username, "disabled" if disabled else "enabled", user.username)
    return user


def reset_password(who: Principal, username: str, new_password: str, *, engine: Engine | None = None) -> None:
    """Admin sets a new password for someone (also lifts a login lockout)."""
    _require_admin(who)
    new_hash = hash_password(new_password)
    with write_session(_db(engine)) as s:
        user = _load(s, username)
        user.password_hash, user.password_changed_at = new_hash, time.time()
        user.failed_logins, user.locked_until = 0, 0.0
        s.add(user)
        s.commit()
    log.info("%s reset the password of %r", who.username, user.username)


def change_password(who: Principal, old_password: str, new_password: str, *, engine: Engine | None = None) -> None:
    """A user changes their own password (the current one is required)."""
    check_password_rules(new_password, field="new_password")
    db = _db(engine)
    user = get_user(who.username, engine=db)
    if user is None or not verify_password(old_password, user.password_hash):
        raise ValidationError("The current password is not right.", field="old_password")
    if old_password == new_password:
        raise ValidationError("The new password must differ from the current one.", field="new_password")
    new_hash = hash_password(new_password)
    with write_session(db) as s:
        user = _load(s, who.username)
        user.password_hash, user.password_changed_at = new_hash, time.time()
        s.add(user)
        s.commit()
    log.info("%r changed their password", who.username)


# ---- login attempts ---------------------------------------------------------------------------

def check_login_allowed(user: User, now: float | None = None) -> None:
    """Raise unless ``user`` may try to log in now (not disabled, not locked)."""
    if user.disabled:
        raise AccountDisabledError("This account is disabled; ask an administrator to enable it.")
    now = time.time() if now is None else now
    if user.locked_until > now:
        minutes = max(1, round((user.locked_until - now) / 60))
        raise AccountLockedError(
            f"Too many failed logins: this account is locked for about {minutes} more minute(s). "
            "Try again later, or ask an administrator to reset the password."
        )


def record_failed_login(username: str, *, engine: Engine | None = None) -> None:
    """Count one wrong password; the MAX_FAILED_LOGINS-th in a row locks the account.

    A single UPDATE, so concurrent sessions cannot lose a failure between read and write.
    """
    name = username.strip().lower()
    now = time.time()
    with write_session(_db(engine)) as s:
        # an expired lock starts a fresh count
        s.execute(update(User).where(User.username == name, User.locked_until > 0, User.locked_until <= now)
               .values(failed_logins=0, locked_until=0.0))
        s.execute(update(User).where(User.username == name).values(failed_logins=User.failed_logins + 1))
        s.execute(update(User).where(User.username == name, User.failed_logins >= MAX_FAILED_LOGINS,
                                  User.locked_until <= now)
               .values(locked_until=now + LOCKOUT_SECONDS))
        s.commit()
    user = get_user(name, engine=engine)
    if user is not None and user.locked_until > now:
        log.warning("user %r locked for %d s after %d failed logins", name, LOCKOUT_SECONDS, user.failed_logins)


def record_successful_login(username: str, *, engine: Engine | None = None) -> None:
    with write_session(_db(engine)) as s:
        s.execute(update(User).where(User.username == username.strip().lower())
               .values(failed_logins=0, locked_until=0.0, last_login_at=time.time()))
        s.commit()


def authenticate(username: str, password: str, *, engine: Engine | None = None) -> Principal:
    """Check a username and password; count failures and lock after too many.

    Raises AccountDisabledError, AccountLockedError or AuthenticationError.
    """
    db = _db(engine)
    user = get_user(username or "", engine=db)
    if user is None:
        verify_password(password, None)  # same cost as a wrong password: no username probing by timing
        raise AuthenticationError("Wrong username or password.")
    check_login_allowed(user)
    if not verify_password(password, user.password_hash):
        record_failed_login(user.username, engine=db)
        raise AuthenticationError("Wrong username or password.")
    record_successful_login(user.username, engine=db)
    return principal_of(user)
