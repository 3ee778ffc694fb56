"""Accounts, passwords, lockout and API tokens against a real SQLite database."""

from __future__ import annotations

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


@pytest.mark.parametrize("username,password,words", [
    ("boss", "nine char", "at least 10 characters"),
    ("boss", "Password123", "first that attackers try"),          # common, whatever the case
    ("boss", "qwertyuiop!!", "first that attackers try"),         # common + symbols at the end
    ("boss", "iloveyou2024", "first that attackers try"),
    ("boss", "abababababab", "too few characters"),
    ("boss", "Boss of the lab", "must not contain the username"),
    ("carla.m", "carla.m", "at least 10"),                       # too short anyway
    ("carla.mendes", "carla.mendes", "must not contain the username"),
    ("carla.mendes", "I am Carla.Mendes", "must not contain the username"),
])
def test_weak_passwords_are_refused_with_what_to_do(username: str, password: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words) as err:
        auth.create_first_admin(username, password)
    assert err.value.field == "password" and not auth.has_users()


def test_password_rules_apply_to_new_users_resets_and_own_changes(admin: Principal) -> None:
    for action, field, name in [(lambda pw: auth.create_user(admin, "dora", pw), "password", "dora"),
                                (lambda pw: auth.reset_password(admin, "root", pw), "password", "root"),
                                (lambda pw: auth.change_password(admin, PW, pw), "new_password", "root")]:
        for weak in ("too short", "password2024", f"{name} and more"):
            with pytest.raises(ValidationError) as err:
                action(weak)
            assert err.value.field == field, (weak, err.value)
    assert auth.get_user("dora") is None and auth.authenticate("root", PW) == ADMIN
    # short usernames are refused only as the whole password, not as any part of it
    auth.create_user(admin, "al", "wallaby jumps 7")
    assert auth.authenticate("al", "wallaby jumps 7").username == "al"
    auth.create_user(admin, "ed", "ten chars!")          # exactly the minimum length
    assert auth.authenticate("ed", "ten chars!").username == "ed"


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
    with pytest.raises(auth.AuthenticationError) as wrong:  # only the right password learns it is disabled
        auth.authenticate("ann", "not her password")
    assert type(wrong.value) is auth.AuthenticationError and str(wrong.value) == auth.WRONG_LOGIN
    with pytest.raises(auth.AccountDisabledError):
        auth.principal_for_token(token)
    assert "ann" not in auth.authenticator_credentials()["usernames"]
    auth.set_disabled(admin, "ann", False)
    assert auth.principal_for_token(token) == ann


def attempts(username: str, password: str, client: str, times: int) -> list[tuple[type, str]]:
    """What ``times`` login attempts answer: (exception type, message) each."""
    answers = []
    for _ in range(times):
        with pytest.raises(auth.AuthenticationError) as err:
            auth.authenticate(username, password, client)
        answers.append((type(err.value), str(err.value)))
    return answers


def test_lockout_is_per_address_and_the_same_for_unknown_usernames(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    attacker, ann_desk = "198.51.100.7", "203.0.113.9"
    # an attacker guesses ann's password, and a username that does not exist, in the same way
    for_ann = attempts("ann", "wrong password", attacker, auth.MAX_FAILED_LOGINS)
    for_ghost = attempts("ghost", "wrong password", attacker, auth.MAX_FAILED_LOGINS)
    assert for_ann == for_ghost == [(auth.AuthenticationError, "Wrong username or password.")] * 5
    assert auth.get_user("ann").failed_logins == auth.MAX_FAILED_LOGINS  # admins see the failures
    # then both are locked from that address, with one message, even with the right password
    locked_ann = attempts("ann", PW, attacker, 1)
    assert locked_ann == attempts("Ghost ", "anything at all", attacker, 1)
    assert locked_ann[0][0] is auth.AccountLockedError and "locked from your address for 15 more" in locked_ann[0][1]
    assert auth.login_lock_remaining("ann", attacker) > auth.LOCKOUT_SECONDS - 60
    assert auth.locked_addresses(admin) == {"ann": 1, "ghost": 1}
    # ann herself, from her own desk, is not locked out by the stranger
    assert auth.authenticate("ann", PW, ann_desk) == Principal("ann", "analyst")
    assert attempts("ann", PW, attacker, 1)[0][0] is auth.AccountLockedError  # still locked from there
    # an admin's password reset lifts every lock on the username
    auth.reset_password(admin, "ann", "brand new words")
    assert auth.authenticate("ann", "brand new words", attacker) == Principal("ann", "analyst")
    assert auth.get_user("ann").failed_logins == 0 and auth.locked_addresses(admin) == {"ghost": 1}


def test_lock_expires(admin: Principal) -> None:
    auth.create_user(admin, "ann", PW)
    attempts("ann", "nope nope", "", auth.MAX_FAILED_LOGINS)
    with pytest.raises(auth.AccountLockedError):
        auth.authenticate("ann", PW)
    with write_session(get_engine()) as s:  # pretend the lockout period is over
        for row in s.exec(select(models.LoginFailure).where(models.LoginFailure.username == "ann")):
            row.locked_until = time.time() - 1
            s.add(row)
        s.commit()
    assert auth.login_lock_remaining("ann") == 0
    with pytest.raises(auth.AuthenticationError) as err:  # one failure after expiry does not re-lock
        auth.authenticate("ann", "nope nope")
    assert type(err.value) is auth.AuthenticationError
    assert auth.authenticate("ann", PW).username == "ann"


def test_login_sessions_end_on_logout_password_role_and_disable(admin: Principal) -> None:
    """A login cookie counts only while its session lives: (username, cookie expiry) in the database."""
    auth.create_user(admin, "ann", PW)
    ann = Principal("ann", "analyst")
    t = time.time() + 7 * 86400

    def alive(expires: float) -> bool:
        return auth.session_principal("ann", expires) is not None

    auth.start_login_session("ann", t)       # her laptop
    auth.start_login_session("ann", t + 1)   # her phone
    assert auth.session_principal("ann", t) == ann and alive(t + 1)
    assert not alive(t + 2) and auth.session_principal("root", t) is None  # no such login (a forged pair)
    auth.end_login_session("ann", t)         # logs out on the laptop
    assert not alive(t) and alive(t + 1)
    # her own password change keeps the session she uses and ends the others
    auth.start_login_session("ann", t + 2)
    auth.change_password(ann, PW, "fresh words 77", keep_session=t + 2)
    assert alive(t + 2) and not alive(t + 1)
    # an admin's reset ends them all (keep_session is only for the admin's own login)
    auth.reset_password(admin, "ann", "other words 88", keep_session=t + 2)
    assert not alive(t + 2)
    # a role change ends them (the same role again does not)
    auth.start_login_session("ann", t + 3)
    auth.set_role(admin, "ann", "analyst")
    assert auth.session_principal("ann", t + 3) == ann
    auth.set_role(admin, "ann", "viewer")
    assert not alive(t + 3)
    # the role is read afresh for every check
    auth.start_login_session("ann", t + 4)
    assert auth.session_principal("ann", t + 4) == Principal("ann", "viewer")
    # disabling ends them; enabling again does not bring them back
    auth.set_disabled(admin, "ann", True)
    auth.set_disabled(admin, "ann", False)
    assert not alive(t + 4)
    # a session past its expiry does not count
    auth.start_login_session("ann", time.time() - 1)
    assert not alive(time.time() - 1)
    # an admin resetting their own password keeps their current login
    auth.start_login_session("root", t)
    auth.start_login_session("root", t + 1)
    auth.reset_password(admin, "root", "admin words 99", keep_session=t)
    assert auth.session_principal("root", t) == admin and auth.session_principal("root", t + 1) is None


def test_change_own_password(admin: Principal) -> None:
    with pytest.raises(ValidationError) as err:
        auth.change_password(admin, "not it at all", "another pw 2")
    assert err.value.field == "old_password"
    with pytest.raises(ValidationError) as err:
        auth.change_password(admin, PW, "short")
    assert err.value.field == "new_password"
    with pytest.raises(ValidationError, match="differ"):
        auth.change_password(admin, PW, PW)
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
