"""Accounts, passwords, lockout and API tokens against a real SQLite database."""

from __future__ import annotations

import copy
import hashlib
import time

import bcrypt
import pytest
from sqlmodel import select

from hivemind_core import auth
from hivemind_core.auth import models
from hivemind_core.db import get_engine
from hivemind_core.errors import NotFoundError, PermissionDeniedError, ValidationError
from hivemind_core.principal import Principal
from hivemind_core.sqlite import read_session, write_session

ADMIN = Principal("root", "admin")
PW = "correct horse 1"


@pytest.fixture
def admin() -> Principal:
    auth.create_first_admin("Root", PW)
    return ADMIN


def test_first_admin_only_once_and_hash_is_bcrypt() -> None:
    assert not auth.has_users()
    user = auth.create_first_admin("  Root ", PW)
    assert user.username == "root" and user.role == "admin" and auth.has_users()
    stored = auth.get_user("ROOT")
    assert stored.password_hash.startswith("$2") and PW not in stored.password_hash
    assert bcrypt.checkpw(PW.encode(), stored.password_hash.encode())
    with pytest.raises(PermissionDeniedError):
        auth.create_first_admin("other", PW)


@pytest.mark.parametrize("username,password,field", [
    ("", PW, "username"), ("has space", PW, "username"), ("ok", "short", "password"),
    ("ok", " leading spaces", "password"), ("ok", "é" * 40, "password"),
])
def test_bad_usernames_and_passwords_name_the_field(username: str, password: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        auth.create_first_admin(username, password)
    assert err.value.field == field
    assert not auth.has_users()


def test_admin_manages_users_others_cannot(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW, "analyst")
    with pytest.raises(ValidationError) as dup:
        auth.create_user(admin, "ANN", PW, "viewer")
    assert dup.value.field == "username"
    with pytest.raises(ValidationError):
        auth.create_user(admin, "bob", PW, "superuser")
    ann = Principal("ann", "analyst")
    for action in (lambda: auth.create_user(ann, "x", PW), lambda: auth.set_role(ann, "ann", "admin"),
                   lambda: auth.set_disabled(ann, "root", True), lambda: auth.reset_password(ann, "root", PW + "x"),
                   lambda: auth.list_users(ann)):
        with pytest.raises(PermissionDeniedError):
            action()
    assert auth.set_role(admin, "ann", "viewer").role == "viewer"
    assert auth.authenticate("ann", PW) == Principal("ann", "viewer")
    assert [u.username for u in auth.list_users(admin)] == ["ann", "root"]
    with pytest.raises(NotFoundError):
        auth.set_role(admin, "ghost", "viewer")


def test_last_admin_is_protected(admin: Principal) -> None:
    with pytest.raises(PermissionDeniedError):
        auth.set_role(admin, "root", "analyst")
    with pytest.raises(PermissionDeniedError):
        auth.set_disabled(admin, "root", True)
    auth.create_user(admin, "second", PW, "admin")
    auth.set_role(Principal("second", "admin"), "root", "viewer")
    assert auth.get_user("root").role == "viewer"


def test_disabled_user_cannot_log_in_or_use_tokens(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    ann = Principal("ann", "analyst")
    token = auth.create_api_token(ann, "script")
    auth.set_disabled(admin, "ann", True)
    with pytest.raises(auth.AccountDisabledError):
        auth.authenticate("ann", PW)
    with pytest.raises(auth.AccountDisabledError):
        auth.principal_for_token(token)
    assert "ann" not in auth.authenticator_credentials()["usernames"]
    auth.set_disabled(admin, "ann", False)
    assert auth.principal_for_token(token) == ann


def test_lockout_after_repeated_failures_and_reset_lifts_it(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(auth.AuthenticationError) as err:
            auth.authenticate("ann", "wrong password")
        assert not isinstance(err.value, auth.AccountLockedError)
    # now even the right password is refused, and the message says why
    with pytest.raises(auth.AccountLockedError, match="locked"):
        auth.authenticate("ann", PW)
    assert auth.authenticator_credentials()["usernames"]["ann"]["failed_login_attempts"] == auth.MAX_FAILED_LOGINS
    auth.reset_password(admin, "ann", "brand new pw")
    assert auth.authenticate("ann", "brand new pw") == Principal("ann", "analyst")
    assert auth.get_user("ann").failed_logins == 0


def test_lock_expires(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    for _ in range(auth.MAX_FAILED_LOGINS):
        with pytest.raises(auth.AuthenticationError):
            auth.authenticate("ann", "nope nope")
    with write_session(get_engine()) as s:  # pretend the lockout period is over
        user = s.exec(select(models.User).where(models.User.username == "ann")).one()
        user.locked_until = time.time() - 1
        s.add(user)
        s.commit()
    assert auth.authenticator_credentials()["usernames"]["ann"]["failed_login_attempts"] == 0
    assert auth.authenticate("ann", PW).username == "ann"
    with pytest.raises(auth.AuthenticationError):  # one failure after expiry does not re-lock
        auth.authenticate("ann", "nope nope")
    assert auth.authenticate("ann", PW).username == "ann"


def test_widget_failures_are_persisted(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    before = auth.authenticator_credentials()
    after = copy.deepcopy(before)
    after["usernames"]["ann"]["failed_login_attempts"] += 2
    assert auth.record_widget_failures(before, after) == ["ann", "ann"]
    assert auth.get_user("ann").failed_logins == 2


def test_change_own_password(admin: Principal) -> None:
    with pytest.raises(ValidationError) as err:
        auth.change_password(admin, "not it at all", "another pw 2")
    assert err.value.field == "old_password"
    with pytest.raises(ValidationError) as err:
        auth.change_password(admin, PW, "short")
    assert err.value.field == "new_password"
    auth.change_password(admin, PW, "another pw 2")
    with pytest.raises(auth.AuthenticationError):
        auth.authenticate("root", PW)
    assert auth.authenticate("root", "another pw 2") == ADMIN


def test_api_tokens_hashed_listed_revoked(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    ann = Principal("ann", "analyst")
    token = auth.create_api_token(ann, "laptop")
    assert token.startswith("hm_") and len(token) > 40
    with read_session(get_engine()) as s:
        rows = list(s.exec(select(models.ApiToken)))
    assert [r.token_hash for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
    assert all(token not in str(r.model_dump()) for r in rows)  # only the hash is stored
    assert auth.principal_for_token(token) == ann
    assert auth.principal_for_token(f"  {token} ") == ann
    listed = auth.list_api_tokens(ann)
    assert [t.name for t in listed] == ["laptop"] and auth.list_api_tokens(admin) == []
    with pytest.raises(NotFoundError):  # someone else's token id
        auth.revoke_api_token(Principal("bob", "analyst"), listed[0].id)
    auth.revoke_api_token(ann, listed[0].id)
    with pytest.raises(auth.AuthenticationError, match="revoked"):
        auth.principal_for_token(token)
    assert auth.list_api_tokens(ann) == [] and len(auth.list_api_tokens(ann, include_revoked=True)) == 1
    for bad in (None, "", "hm_nonsense"):
        with pytest.raises(auth.AuthenticationError):
            auth.principal_for_token(bad)
    with pytest.raises(ValidationError):
        auth.create_api_token(ann, "  ")
