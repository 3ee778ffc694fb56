"""Every page under every role with Streamlit's AppTest, over a real embedded
cluster (node pool + 1 worker process) and a real SQLite database."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from hivemind_core import auth, db
from hivemind_core.jobs.spec_builder import OTHER_ENCODING
from hivemind_core.principal import Principal
from hivemind_core.runtime import MasterRuntime, install_runtime, start_runtime
from tests.app_login import logged_in

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PW = "long enough 1"
ADMIN, ANN, BOB, VIC = (Principal("root", "admin"), Principal("ann", "analyst"), Principal("bob", "analyst"),
                        Principal("vic", "viewer"))
ROLE_TITLES = {
    "admin": {"dashboard": "Dashboard", "upload": "Upload a dataset", "tasks": "Tasks", "nodes": "Nodes",
              "vpn": "VPN", "admin": "Users", "account": "Account"},
    "analyst": {"dashboard": "Dashboard", "upload": "Upload a dataset", "tasks": "Tasks", "nodes": "Nodes",
                "vpn": "VPN", "account": "Account"},
    "viewer": {"dashboard": "Dashboard", "nodes": "Nodes", "account": "Account"},
}
ALL_PAGES = ("dashboard", "upload", "tasks", "nodes", "vpn", "admin", "account")
SMALL_SPEC = {"name": "sum by key", "pipeline": {"group_by": ["k"], "aggregate": {"v": ["sum"]}}}


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data_dir = tmp_path_factory.mktemp("pages") / "data"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("HIVEMIND_NODE_POOL", "NODE_POOL_ADDRESS", "DATABASE_URL", "HIVEMIND_MAX_UPLOAD_MB",
                    "MAX_CONTENT_LENGTH", "HIVEMIND_CLUSTER_TOKEN"):
            mp.delenv(var, raising=False)
        mp.setenv("HIVEMIND_DATA_DIR", str(data_dir))
        mp.setenv("HIVEMIND_WORKERS", "1")
        db.reset_engines()
        yield data_dir
        db.reset_engines()


@pytest.fixture(autouse=True)
def served_like_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run pages the way the server does.

    AppTest re-detects the ``pages/`` folder on every run and then starts the
    requested page script directly, skipping app.py (Streamlit's old multipage
    mode). The server turns that mode off when it starts
    (``disable_pages_directory_discovery`` in app.py); AppTest never imports
    app.py as the server entry, so do the same after each of its page managers.
    """
    from streamlit.runtime.pages_manager import PagesManager

    from pages._ui import disable_pages_directory_discovery

    original = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        original(self, *args, **kwargs)
        disable_pages_directory_discovery()

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture(autouse=True)
def isolated_env(app_env: Path) -> Path:
    """Overrides conftest's per-test data dir: this module shares one database and cluster."""
    return app_env


@pytest.fixture(scope="module")
def rt(app_env: Path) -> Iterator[MasterRuntime]:
    runtime = start_runtime()
    install_runtime(runtime)
    try:
        yield runtime
    finally:
        install_runtime(None)
        runtime.stop()


@pytest.fixture(scope="module")
def users(app_env: Path) -> None:
    auth.create_first_admin(ADMIN.username, PW)
    for who in (ANN, BOB, VIC):
        auth.create_user(ADMIN, who.username, PW, who.role)


@pytest.fixture(scope="module")
def tasks(rt: MasterRuntime, users: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One finished task each for ann and bob, submitted through the task service."""
    csv = tmp_path_factory.mktemp("small") / "small.csv"
    pd.DataFrame({"k": ["a", "b", "a", "c"], "v": [1, 2, 3, 4]}).to_csv(csv, index=False)
    ids = {who.username: rt.tasks.submit(who, {**SMALL_SPEC, "name": f"{who.username}'s job"}, csv, "small.csv").id
           for who in (ANN, BOB)}
    deadline = time.monotonic() + 120
    while any(rt.tasks.get(ADMIN, i).status != "completed" for i in ids.values()):
        assert time.monotonic() < deadline, [rt.tasks.get(ADMIN, i) for i in ids.values()]
        time.sleep(0.3)
    return ids


# ---- helpers -----------------------------------------------------------------------------------

def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=60)


def button(at: AppTest, label: str):  # noqa: ANN201 - an AppTest Button
    return next(b for b in at.button if b.label == label)


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "error", "warning", "success", "info", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def in_order(node) -> list:  # noqa: ANN001 - an AppTest node
    """The page's elements in the order they are shown (depth first)."""
    out = []
    for child in getattr(node, "children", {}).values():
        out += [child, *in_order(child)]
    return out


def after_submit(at: AppTest) -> str:
    """The message shown right under the Submit button."""
    shown = in_order(at.main)
    i = next(i for i, e in enumerate(shown) if e.type == "button" and e.label == "Submit job")
    assert shown[i + 1].type == "error", [e.type for e in shown[i:]]
    return shown[i + 1].value


def as_written(markdown: str) -> str:
    """What a ui.plain() message reads as (Markdown escapes and word joiners gone)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def login(username: str, password: str = PW) -> AppTest:
    at = new_app().run()
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    button(at, "Login").click().run()
    assert not at.exception, at.exception
    return at.run()  # the browser reruns once the login cookie is stored


def open_page(at: AppTest, key: str, **query: str) -> AppTest:
    at.query_params.clear()
    at.query_params.update(query)
    at.switch_page(f"pages/{key}.py").run()
    assert not at.exception, at.exception
    return at


# ---- tests -------------------------------------------------------------------------------------

def test_first_run_asks_for_the_admin_then_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    db.reset_engines()
    at = new_app().run()
    assert [t.value for t in at.title] == ["Welcome to HiveMind"]
    assert [t.label for t in at.text_input] == ["Admin username", "Password", "Repeat the password"]
    at.text_input[1].input("good password 1")
    at.text_input[2].input("other password 1")
    button(at, "Create the admin account").click().run()
    assert [e.value for e in at.error] == ["The two passwords differ."] and not auth.has_users()
    at.text_input[2].input("good password 1")
    at.text_input[1].input("short")
    at.text_input[2].input("short")
    button(at, "Create the admin account").click().run()
    assert "at least 10" in at.error[0].value and not auth.has_users()
    at.text_input[1].input("the admin rules")
    at.text_input[2].input("the admin rules")
    button(at, "Create the admin account").click().run()
    assert "must not contain the username" in at.error[0].value and not auth.has_users()
    at.text_input[0].input("Boss")
    at.text_input[1].input("good password 1")
    at.text_input[2].input("good password 1")
    button(at, "Create the admin account").click().run()
    assert auth.get_user("boss").role == "admin"
    assert "log in" in at.success[0].value and [t.label for t in at.text_input] == ["Username", "Password"]
    db.reset_engines()


def test_users_get_no_deploy_button_or_developer_menu() -> None:
    """``client.toolbarMode = "viewer"`` in .streamlit/config.toml: Streamlit knows the option and reads it
    from the project (the default "auto" shows the deploy button to anyone on localhost)."""
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert re.search(r'^toolbarMode = "viewer"$', shown, re.MULTILINE), shown[-2000:]


def test_logged_out_reaches_only_the_login_page(users: None) -> None:
    at = new_app().run()
    assert not at.exception and [t.label for t in at.text_input] == ["Username", "Password"]
    for key in ALL_PAGES:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{key}.py")


@pytest.mark.parametrize("who", [ANN, VIC], ids=lambda w: w.role)
def test_a_page_url_opened_logged_out_shows_the_login_then_that_page(who: Principal, users: None,
                                                                      rt: MasterRuntime) -> None:
    """A bookmark of /upload before logging in: the login form (not Streamlit's "Page not found"),
    then the upload page — or, for a role without it, why it does not open."""
    from streamlit.util import calc_hash

    at = new_app().run()
    at._page_hash = calc_hash("upload")   # what a browser at /upload asks for (switch_page goes by file only)
    at.run()
    assert not at.exception and [t.label for t in at.text_input] == ["Username", "Password"]
    assert at._registered_pages[at._page_hash]["url_pathname"] == "upload"   # registered, so no "not found"
    at.text_input[0].input(who.username)
    at.text_input[1].input(PW)
    button(at, "Login").click().run()
    at.run()   # the browser reruns once the login cookie is stored
    assert not at.exception, at.exception
    if who.can_submit:
        assert [t.value for t in at.title] == ["Upload a dataset"], texts(at)
    else:
        assert [e.value for e in at.error] == ["Your role (viewer) cannot open this page; ask an administrator "
                                               "for the analyst role."] and not at.title


def login_attempt(at: AppTest, username: str, password: str) -> str:
    """Submit the login form; the message it shows."""
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    button(at, "Login").click().run()
    assert not at.exception, at.exception
    return " ".join(e.value for e in at.error)


def test_empty_login_form_says_what_is_missing(users: None) -> None:
    at = new_app().run()
    for username, password in (("", ""), ("ann", ""), ("", PW), ("   ", "   ")):
        assert login_attempt(at, username, password) == "Enter your username and password."
        assert not at.session_state["authentication_status"]
    assert auth.get_user("ann").failed_logins == 0  # nothing was tried


def test_failed_logins_lock_the_same_way_for_unknown_usernames(users: None, rt: MasterRuntime) -> None:
    auth.create_user(ADMIN, "locky", PW, "analyst")
    answers = {}
    for name in ("locky", "nobody-here"):
        at = new_app().run()
        answers[name] = [login_attempt(at, name, "not the password") for _ in range(auth.MAX_FAILED_LOGINS)]
        answers[name].append(login_attempt(at, name, PW if name == "locky" else "not the password"))
        assert not at.session_state["authentication_status"]
    assert answers["locky"] == answers["nobody-here"]  # nothing tells which username exists
    assert answers["locky"][:-1] == ["Wrong username or password."] * auth.MAX_FAILED_LOGINS
    assert "locked from your address" in answers["locky"][-1]  # the right password, but locked
    assert auth.get_user("locky").failed_logins == auth.MAX_FAILED_LOGINS
    users_table = open_page(login(ADMIN.username), "admin").dataframe[0].value.set_index("username")
    assert users_table.loc["locky", "state"] == "locked from 1 address(es)"
    assert users_table.loc["locky", "failed logins"] == auth.MAX_FAILED_LOGINS
    assert "nobody-here" not in users_table.index
    auth.reset_password(ADMIN, "locky", "new password 2")
    stored_hash = auth.get_user("locky").password_hash
    assert login("locky", "new password 2").session_state["username"] == "locky"
    user = auth.get_user("locky")  # the login only verified: nothing re-hashed or rewritten
    assert user.password_hash == stored_hash and user.failed_logins == 0 and user.last_login_at


def test_logout_and_changes_elsewhere_end_the_login(users: None, rt: MasterRuntime) -> None:
    """A login is a server-side session: logging out ends it, and a password reset or role change
    made elsewhere ends a running browser session at its next run."""
    from pages._ui import SESSION_KEY

    auth.create_user(ADMIN, "sessy", PW, "analyst")
    at = login("sessy")
    assert [t.value for t in at.title] == ["Dashboard"]
    username, expires = at.session_state[SESSION_KEY]
    assert username == "sessy" and auth.session_principal("sessy", expires) == Principal("sessy", "analyst")
    button(at, "Log out").click().run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert auth.session_principal("sessy", expires) is None  # the cookie of that login no longer counts

    for password, change in ((PW, lambda: auth.reset_password(ADMIN, "sessy", "reset by admin 1")),
                             ("reset by admin 1", lambda: auth.set_role(ADMIN, "sessy", "viewer"))):
        at = login("sessy", password)
        assert [t.value for t in at.title] == ["Dashboard"]
        change()
        at.run()
        assert [t.label for t in at.text_input] == ["Username", "Password"]  # back on the login page
        assert not at.session_state["authentication_status"]


def test_disabled_user_cannot_log_in_and_is_logged_out(users: None, rt: MasterRuntime) -> None:
    auth.create_user(ADMIN, "gone", PW, "analyst")
    at = login("gone")
    assert [t.value for t in at.title] == ["Dashboard"]
    auth.set_disabled(ADMIN, "gone", True)
    at.run()
    assert [t.label for t in at.text_input] == ["Username", "Password"]  # back on the login page
    fresh = new_app().run()
    fresh.text_input[0].input("gone")
    fresh.text_input[1].input(PW)
    button(fresh, "Login").click().run()
    assert fresh.error and not fresh.session_state["authentication_status"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(alg: str, payload: dict) -> str:
    """A JWT with header ``alg`` and a made-up (or empty) signature, as anyone can write one."""
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64url(json.dumps(payload).encode())
    return f"{head}.{body}." if alg == "none" else f"{head}.{body}.{b64url(b'not a signature')}"


def with_cookies(monkeypatch: pytest.MonkeyPatch, cookies: dict[str, str]) -> None:
    """The browser sends ``cookies`` (AppTest has no client: st.context.cookies reads them from here)."""
    from types import SimpleNamespace

    from streamlit.runtime import context

    client = SimpleNamespace(headers=[], cookies=cookies, remote_ip=None)
    monkeypatch.setattr(context, "_get_client_context", lambda: client)


def cookie_deletes(at: AppTest) -> list[str]:
    """The cookies the page tells the browser to delete (the cookie manager component's calls)."""
    return [e.proto.json_args for e in in_order(at.main)
            if getattr(e, "type", "") == "component_instance" and '"delete"' in e.proto.json_args]


@pytest.mark.parametrize("kind", ["qa_alg_none", "alg_none", "rs256", "wrong_key", "expired_exp_claim", "garbage"])
def test_a_login_cookie_that_does_not_verify_shows_the_login_form(kind: str, users: None, rt: MasterRuntime,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """QA: a cookie with ``alg: none`` or RS256 made every page a traceback (the authenticator catches only
    some JWT errors) and stayed, locking that browser out. Any cookie that does not verify means "not
    logged in": the login form, the cookie deleted, and logging in with the form still works."""
    import jwt

    from hivemind_core.config import get_settings
    from hivemind_core.secrets_store import cookie_key
    from pages._ui import COOKIE_NAME

    expires = time.time() + 3600
    auth.start_login_session(ADMIN.username, expires)   # a live session: only the cookie itself is wrong
    claims = {"username": ADMIN.username, "exp_date": expires}
    key = cookie_key(get_settings())
    value = {
        "qa_alg_none": "eyJhbGciOiJub25lIn0.eyJ1c2VybmFtZSI6ImFkbWluIn0.",
        "alg_none": unsigned_jwt("none", claims),
        "rs256": unsigned_jwt("RS256", claims),
        "wrong_key": jwt.encode(claims, "not the cookie key, though as long as one", algorithm="HS256"),
        "expired_exp_claim": jwt.encode({**claims, "exp": int(time.time()) - 60}, key, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }[kind]
    with_cookies(monkeypatch, {COOKIE_NAME: value})
    at = new_app().run()
    assert not at.exception, at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"] and "Dashboard" not in texts(at)
    assert not at.session_state["authentication_status"]
    assert [json.loads(args)["cookie"] for args in cookie_deletes(at)] == [COOKIE_NAME]
    at.run()                                   # the next run (the browser still sent it): still the form
    assert not at.exception and not at.session_state["authentication_status"]
    assert login_attempt(at, ADMIN.username, PW) == ""
    at.run()
    assert not at.exception and [t.value for t in at.title] == ["Dashboard"]


def test_a_login_cookie_signed_with_the_key_logs_in(users: None, rt: MasterRuntime,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The other side of the test above: the same cookie, signed with the app's key, logs in."""
    import jwt

    from hivemind_core.config import get_settings
    from hivemind_core.secrets_store import cookie_key
    from pages._ui import COOKIE_NAME

    expires = time.time() + 3600
    auth.start_login_session(ADMIN.username, expires)
    token = jwt.encode({"username": ADMIN.username, "exp_date": expires}, cookie_key(get_settings()),
                       algorithm="HS256")
    with_cookies(monkeypatch, {COOKIE_NAME: token})
    at = new_app().run()
    assert not at.exception, at.exception
    assert at.session_state["authentication_status"] and [t.value for t in at.title] == ["Dashboard"]
    assert not cookie_deletes(at)


def test_dashboard_without_tasks_says_so_instead_of_empty_charts(rt: MasterRuntime, users: None,
                                                                  app_env: Path) -> None:
    assert sql(app_env, "SELECT COUNT(*) FROM tasks")[0][0] == 0   # before the first task of this module
    at = login(ADMIN.username)
    assert [t.value for t in at.title] == ["Dashboard"]
    assert not at.get("plotly_chart")   # an all-zero bar chart would show an empty −1 … 1 axis
    assert {"No tasks yet.", "No jobs finished in the last 24 h yet."} <= {i.value for i in at.info}


@pytest.mark.parametrize("who", [ADMIN, ANN, VIC], ids=lambda w: w.role)
def test_each_role_gets_exactly_its_pages(who: Principal, rt: MasterRuntime, tasks: dict[str, str]) -> None:
    at = login(who.username)
    assert [t.value for t in at.title] == ["Dashboard"]
    assert "Node pool" in [m.label for m in at.metric]
    for key in ALL_PAGES:
        if key in ROLE_TITLES[who.role]:
            open_page(at, key)
            assert ROLE_TITLES[who.role][key] in [t.value for t in at.title], (key, texts(at))
        else:  # not in this role's menu; its URL says why it does not open (not "Page not found")
            open_page(at, key)
            needed = "admin" if key == "admin" else "analyst"
            assert [e.value for e in at.error] == [f"Your role ({who.role}) cannot open this page; ask an "
                                                   f"administrator for the {needed} role."], (key, texts(at))
            assert not at.title and not at.dataframe and not at.get("download_button"), key
    from pages._ui import navigation_pages   # what app.py registers: the role's pages visible, the rest hidden

    shown = [page.key for page, visible in navigation_pages(who) if visible]
    assert shown == list(ROLE_TITLES[who.role]) and len(navigation_pages(who)) == len(ALL_PAGES)


def test_dashboard_shows_health_host_and_counts(rt: MasterRuntime, tasks: dict[str, str]) -> None:
    at = login(ADMIN.username)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Node pool"] == "reachable" and metrics["Database"] == "ok"
    assert int(metrics["Workers online"]) + int(metrics["Workers busy"]) == 1
    assert metrics["CPU"].endswith("%") and metrics["Disk"].endswith("%")
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    counts_fig = json.loads(charts[0].proto.spec)
    bars = dict(zip(counts_fig["data"][0]["x"], counts_fig["data"][0]["y"], strict=True))
    assert bars["completed"] == rt.tasks.counts_by_status(ADMIN)["completed"] >= 2


def sql(data_dir: Path, query: str, *args: object) -> list[tuple]:
    """Straight from the SQLite file, past the task service."""
    with closing(sqlite3.connect(data_dir / "master.db")) as conn:
        return conn.execute(query, args).fetchall()


def chart_bars(at: AppTest, index: int) -> list[dict]:
    return [dict(zip(trace["x"], trace["y"], strict=True))
            for trace in json.loads(at.get("plotly_chart")[index].proto.spec)["data"]]


def test_dashboard_task_numbers_are_system_wide_counts_only(rt: MasterRuntime, tasks: dict[str, str],
                                                            app_env: Path) -> None:
    from bench.tasks_page import insert_tasks

    insert_tasks(rt.engine, "otto", 5)   # a few failed and cancelled ones besides the completed
    deadline = time.monotonic() + 120    # other tests' tasks may still run: wait for stable numbers
    while sql(app_env, "SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'assigned', 'running')")[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    counts = {s: 0 for s in ("pending", "assigned", "running", "completed", "failed", "cancelled")}
    expected = counts | dict(sql(app_env, "SELECT status, COUNT(*) FROM tasks GROUP BY status"))
    finished = sql(app_env, "SELECT COUNT(*) FROM tasks WHERE finished_at IS NOT NULL")[0][0]
    assert sql(app_env, "SELECT COUNT(*) FROM tasks WHERE owner = ?", VIC.username)[0][0] == 0
    assert expected["completed"] >= 2 and expected["failed"] >= 2 and finished >= 2

    at = login(VIC.username)
    assert chart_bars(at, 0) == [expected]   # every user's tasks; no "yours" for a viewer, who has none
    assert sum(chart_bars(at, 1)[0].values()) == finished
    assert "Tasks by status (all users)" in texts(at) and "Task numbers count every user's tasks" in texts(at)
    shown = "\n".join([texts(at), *(m.label + str(m.value) for m in at.metric),
                        *(c.proto.spec for c in at.get("plotly_chart"))])
    for task_id, owner, name in sql(app_env, "SELECT id, owner, name FROM tasks"):
        assert task_id not in shown and name not in shown and not re.search(rf"\b{re.escape(owner)}\b", shown)

    ann = login(ANN.username)   # an analyst: the same system numbers, and their own beside them
    own = counts | dict(sql(app_env, "SELECT status, COUNT(*) FROM tasks WHERE owner = ? GROUP BY status", "ann"))
    assert chart_bars(ann, 0) == [expected, own] and own != expected
    assert "Your tasks: " + " · ".join(f"{s} {n}" for s, n in own.items()) in texts(ann)


def test_nodes_page_lists_the_worker_with_history(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(VIC.username), "nodes")
    table = at.dataframe[0].value
    assert list(table["status"]) in (["online"], ["busy"]) and table["cores"].iloc[0] >= 1
    headers = {name: config.get("label") for name, config in json.loads(at.dataframe[0].proto.columns).items()}
    assert headers["cpu_percent"] == "CPU" and headers["memory_percent"] == "Memory used"
    shown = [headers.get(name) or name for name in at.dataframe[0].proto.column_order]
    assert shown[:3] == ["Name", "Address", "Status"] and not [h for h in shown if "_" in h], shown
    assert {m.label: m.value for m in at.metric}["Nodes"] == "1"
    assert "1 worker on 1 host, " in texts(at)
    deadline = time.monotonic() + 30  # the worker's first heartbeats make the history
    while not at.get("plotly_chart") and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    assert at.get("plotly_chart"), texts(at)
    at.radio(key="nodes_window").set_value("last day").run()
    assert not at.exception and at.get("plotly_chart")
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["yaxis"]["range"] == [0, 100] and fig["layout"]["yaxis2"]["range"] == [0, 100]


def test_analyst_sees_only_own_tasks_also_by_url(rt: MasterRuntime, tasks: dict[str, str]) -> None:
    at = open_page(login(ANN.username), "tasks")
    table = at.dataframe[0].value
    assert list(table["id"]) == [tasks["ann"]] and "owner" not in table.columns
    open_page(at, "tasks", task=tasks["bob"])
    assert "Task not found" in [t.value for t in at.title]
    open_page(at, "tasks", task=tasks["ann"])
    assert "ann's job" in [t.value for t in at.title]
    assert at.get("download_button")
    preview = at.dataframe[-1].value
    assert preview.sort_values("k").reset_index(drop=True).equals(
        pd.DataFrame({"k": ["a", "b", "c"], "v_sum": [4, 2, 4]}))

    admin = open_page(login(ADMIN.username), "tasks")
    table = admin.dataframe[0].value
    assert set(table["id"]) >= set(tasks.values()) and "owner" in table.columns


def test_admin_page_manages_users(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ADMIN.username), "admin")
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["Username"].input("newbie")
    form_inputs["Initial password"].input("short")
    button(at, "Add user").click().run()
    assert "at least 10" in " ".join(e.value for e in at.error) and auth.get_user("newbie") is None
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["Username"].input("newbie")
    form_inputs["Initial password"].input("newbie password")
    button(at, "Add user").click().run()
    assert "must not contain the username" in " ".join(e.value for e in at.error)
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["Username"].input("newbie")
    form_inputs["Initial password"].input("first day here 1")
    at.selectbox[0].set_value("viewer")
    button(at, "Add user").click().run()
    assert auth.get_user("newbie").role == "viewer"
    at.selectbox(key="admin_target").set_value("newbie").run()
    at.selectbox[2].set_value("analyst")
    button(at, "Save role").click().run()
    assert auth.get_user("newbie").role == "analyst"
    button(at, "Disable the account").click().run()
    assert auth.get_user("newbie").disabled
    at.selectbox(key="admin_target").set_value("root").run()
    button(at, "Disable the account").click().run()
    assert "cannot disable your own" in " ".join(e.value for e in at.error) and not auth.get_user("root").disabled


def test_account_page_tokens_and_password(rt: MasterRuntime, users: None) -> None:
    auth.create_user(ADMIN, "tokenuser", PW, "analyst")
    at = open_page(login("tokenuser"), "account")
    name_input = next(t for t in at.text_input if t.label == "Token name")
    name_input.input("ci script")
    button(at, "Create token").click().run()
    token = at.code[0].value
    assert auth.principal_for_token(token) == Principal("tokenuser", "analyst")
    button(at, "I have copied it").click().run()
    assert not at.code  # shown once
    button(at, "Revoke").click().run()  # asks first
    assert any("Revoke the token 'ci script'?" in w.value for w in at.warning)
    button(at, "Cancel").click().run()
    assert not any("Revoke the token" in w.value for w in at.warning)
    assert auth.principal_for_token(token) == Principal("tokenuser", "analyst")
    button(at, "Revoke").click().run()
    assert auth.principal_for_token(token) == Principal("tokenuser", "analyst")  # not yet
    button(at, "Yes, revoke it").click().run()
    with pytest.raises(auth.AuthenticationError):
        auth.principal_for_token(token)
    assert "Token 'ci script' revoked." in [s.value for s in at.success]
    inputs = {t.label: t for t in at.text_input}
    inputs["Current password"].input("wrong one here")
    inputs["New password"].input("fresh password 3")
    inputs["Repeat the new password"].input("fresh password 3")
    button(at, "Change password").click().run()
    assert "not right" in " ".join(e.value for e in at.error)
    inputs = {t.label: t for t in at.text_input}
    inputs["Current password"].input(PW)
    inputs["New password"].input("fresh password 3")
    inputs["Repeat the new password"].input("fresh password 3")
    other_login = login("tokenuser")  # the same user in another browser
    button(at, "Change password").click().run()
    assert auth.authenticate("tokenuser", "fresh password 3").username == "tokenuser"
    at.run()
    assert [t.value for t in at.title] == ["Account"]  # this session stays logged in ...
    other_login.run()
    assert [t.label for t in other_login.text_input] == ["Username", "Password"]  # ... the other one does not


def test_upload_builds_a_group_by_and_opens_the_new_task(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ANN.username), "upload")
    assert "Upload limit: **1.0 GiB** per file." in texts(at)
    data = b"carrier,dist,late\nAA,10,1.5\nUA,20,\nAA,30,2.5\n"
    at.file_uploader[0].upload("mini.csv", data, "text/csv").run()
    assert not at.exception
    types = at.dataframe[1].value
    assert dict(zip(types["column"], types["type"], strict=True)) == {"carrier": "string", "dist": "int",
                                                                     "late": "float"}
    at.multiselect(key="group_by").set_value(["carrier"]).run()
    at.multiselect(key="agg_columns").set_value(["late", "dist"]).run()
    assert at.multiselect(key="agg_late").options == ["count", "size", "sum", "mean", "min", "max", "std", "var",
                                                      "nunique", "median"]
    at.multiselect(key="agg_late").set_value(["mean", "count"]).run()
    at.number_input(key="n_filters").set_value(1).run()
    at.selectbox(key="f_col_0").set_value("dist")
    at.selectbox(key="f_op_0").set_value(">=")
    at.text_input(key="f_val_0").input("far").run()
    button(at, "Submit job").click().run()
    assert "not a number" in " ".join(e.value for e in at.error)  # shown at the filter, nothing queued
    assert all(t.name != "mini.csv job" for t in rt.tasks.list(ANN, None, 0, 500)[0])
    at.text_input(key="f_val_0").input("15").run()
    button(at, "Submit job").click().run()
    assert not at.exception
    task_id = at.query_params["task"][0] if isinstance(at.query_params["task"], list) else at.query_params["task"]
    task = rt.tasks.get(ANN, task_id)
    assert task.name == "mini.csv job" and task.owner == "ann"
    assert "mini.csv job" in [t.value for t in at.title]


def wait_completed(rt: MasterRuntime, who: Principal, task_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while (task := rt.tasks.get(who, task_id)).status != "completed":
        assert task.status not in ("failed", "cancelled") and time.monotonic() < deadline, (task.status, task.error)
        time.sleep(0.3)


def submit_and_open_task(at: AppTest, rt: MasterRuntime, who: Principal) -> str:
    """Click Submit on the upload page; the new task's page opens; wait for the result and show it."""
    button(at, "Submit job").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    task_id = at.query_params["task"]
    task_id = task_id[0] if isinstance(task_id, list) else task_id
    assert {m.label: m.value for m in at.metric}.get("Status") in ("pending", "assigned", "running", "completed")
    wait_completed(rt, who, task_id)
    open_page(at, "tasks", task=task_id)   # AppTest reruns the page it opened, so open the task page itself
    assert {m.label: m.value for m in at.metric}.get("Status") == "completed", texts(at)
    return task_id


def test_upload_runs_a_grid_search_from_the_form(rt: MasterRuntime, users: None) -> None:
    from hivemind_core.jobs.spec_builder import ml_template
    from tests.test_jobs_ml import assert_same_scores, expected_grid_search

    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    frame = pd.DataFrame({"group": rng.choice(["a", "b"], 60), "x": x, "noise": rng.integers(0, 9, 60),
                          "y": 2 * x + rng.normal(scale=0.5, size=60)})
    types = {"group": "string", "x": "float", "noise": "int", "y": "float"}
    at = open_page(login(ANN.username), "upload")
    at.selectbox(key="job_type").set_value("machine_learning").run()
    at.file_uploader[0].upload("model.csv", frame.to_csv(index=False).encode(), "text/csv").run()
    assert not at.exception
    # the target is chosen from the real columns; the script starts as a working template for it
    assert at.selectbox(key="ml_target").options == ["(none)", "group (string)", "x (float)", "noise (int)",
                                                     "y (float)"]
    assert at.selectbox(key="ml_target").value == "y"
    assert at.text_area(key="ml_script").value == ml_template("y", types).script
    assert at.text_input(key="ml_metric").value == "rmse" and at.checkbox(key="ml_maximize").value is False
    at.text_input(key="g_vals_0").input(" , ").run()
    button(at, "Submit job").click().run()
    assert any(as_written(e.value).startswith("grid.alpha: give the values") for e in at.error)  # next to the grid
    at.text_input(key="job_name").input("ridge on x")
    at.text_input(key="g_vals_0").input("0.5, 5, 50")
    at.number_input(key="ml_folds").set_value(3)
    at.number_input(key="ml_seed").set_value(9).run()
    task_id = submit_and_open_task(at, rt, ANN)
    assert "ridge on x" in [t.value for t in at.title]

    expected = expected_grid_search(frame, {"script": ml_template("y", types).script, "grid": {"alpha": [0.5, 5, 50]},
                                            "folds": 3, "seed": 9, "target": "y", "maximize": False,
                                            "metric": "rmse"})
    assert_same_scores(pd.read_csv(rt.tasks.result_path(ANN, task_id)), expected)
    assert_same_scores(at.dataframe[-1].value, expected)   # the page's preview


def test_upload_runs_a_simulation_without_a_file(rt: MasterRuntime, users: None) -> None:
    from hivemind_core.jobs.spec_builder import SIMULATION_TEMPLATE
    from tests.test_jobs_simulation import assert_same_moments, expected_moments, shard_outputs

    at = open_page(login(ANN.username), "upload")
    at.selectbox(key="job_type").set_value("simulation").run()
    assert not at.exception and not at.file_uploader   # nothing to upload
    assert at.text_area(key="sim_script").value == SIMULATION_TEMPLATE
    at.number_input(key="sim_trials").set_value(2)
    at.number_input(key="shards").set_value(3).run()
    button(at, "Submit job").click().run()
    assert any(as_written(e.value).startswith("split.shards: 3 shards for 2 trials")
               for e in at.error)   # at the shards field
    at.text_input(key="job_name").input("pi from the page")
    at.number_input(key="sim_trials").set_value(20_001)
    at.number_input(key="sim_seed").set_value(5).run()
    task_id = submit_and_open_task(at, rt, ANN)
    assert "pi from the page" in [t.value for t in at.title]
    assert rt.tasks.get(ANN, task_id).input_rows is None

    expected = expected_moments(shard_outputs(SIMULATION_TEMPLATE, 20_001, 5, 3))
    assert_same_moments(pd.read_csv(rt.tasks.result_path(ANN, task_id)), expected)
    assert_same_moments(at.dataframe[-1].value, expected)


def test_tasks_page_with_10000_tasks(rt: MasterRuntime, users: None) -> None:
    """Bulk rows for one user, then the same list() and page the UI uses (timings: bench/tasks_page.py)."""
    from bench.tasks_page import insert_tasks

    auth.create_user(ADMIN, "bulk", PW, "analyst")
    insert_tasks(rt.engine, "bulk", 10_000)
    page, total = rt.tasks.list(Principal("bulk", "analyst"), None, 9_950, 50)
    assert total == 10_000 and len(page) == 50
    at = open_page(login("bulk"), "tasks")
    assert len(at.dataframe[0].value) == 50 and "10000 task(s)" in texts(at)
    assert at.number_input(key="tasks_page_all").max == 200
    at.number_input(key="tasks_page_all").set_value(200).run()
    assert len(at.dataframe[0].value) == 50
    failed = rt.tasks.list(Principal("bulk", "analyst"), "failed", 0, 1)[1]
    assert 0 < failed < 10_000
    at.selectbox(key="tasks_status").set_value("failed").run()
    assert f"{failed} task(s)" in texts(at) and set(at.dataframe[0].value["status"]) == {"failed"}


@pytest.mark.parametrize("key", ["admin", "upload", "tasks", "dashboard", "nodes", "account", "vpn"])
def test_page_scripts_check_access_themselves(key: str, users: None) -> None:
    """Defence in depth: a page script started without the entry (no navigation) still checks."""
    at = AppTest.from_file(str(ROOT / "pages" / f"{key}.py"), default_timeout=60).run()
    assert not at.exception and [w.value for w in at.warning] == ["Please log in."]
    assert not at.title
    if key not in ROLE_TITLES["viewer"]:
        logged_in(at, VIC.username).run()
        assert [e.value for e in at.error] == [f"Your role (viewer) cannot open this page; ask an administrator "
                                               f"for the {'admin' if key == 'admin' else 'analyst'} role."]
        assert not at.title


# ---- these two change the module's cluster: keep them last ----------------------------------------

def test_pages_say_at_once_that_the_node_pool_does_not_answer(rt: MasterRuntime, users: None) -> None:
    """A hung pool: every call runs into its deadline. The pages answer within seconds with what
    is wrong, instead of spinning through the client's retries past their 5 s refresh."""
    from hivemind_core.cluster import NODEPOOL_SUBDIR
    from hivemind_core.nodepool.server import read_endpoint

    # the embedded pool of this data dir (rt may have found it started by an earlier page run)
    endpoint = read_endpoint(rt.settings.data_dir / NODEPOOL_SUBDIR)
    assert endpoint and endpoint["address"] == rt.client.address
    at = login(VIC.username)
    pool = psutil.Process(int(endpoint["pid"]))
    pool.suspend()
    try:
        started = time.monotonic()
        open_page(at, "nodes")
        took = time.monotonic() - started
        assert took < 8, took
        errors = [e.value for e in at.error]
        assert len(errors) == 1 and errors[0].startswith(f"Node pool at {rt.client.address} is not reachable: ")
        assert "restarts its embedded node pool by itself" in errors[0] and not at.dataframe
        started = time.monotonic()
        open_page(at, "dashboard")
        assert time.monotonic() - started < 12
        assert {m.label: m.value for m in at.metric}["Node pool"] == "UNREACHABLE"
        assert any(e.value.startswith(f"Node pool at {rt.client.address} is not reachable") for e in at.error)
    finally:
        pool.resume()
    deadline = time.monotonic() + 30
    while not at.dataframe and time.monotonic() < deadline:
        open_page(at, "nodes")
    assert not at.error and at.dataframe


def test_nodes_page_without_metrics_in_the_window_says_so(rt: MasterRuntime, users: None) -> None:
    """A node that registered but never sent a heartbeat has no history: a message, not an empty chart."""
    from hivemind_core.proto import nodepool_pb2 as pb

    rt.client.call(rt.client.nodes_stub.Register, pb.RegisterRequest(name="zz-silent", cores=1, slots=1))
    silent = next(n for n in rt.client.nodes() if n.name == "zz-silent")
    at = open_page(login(VIC.username), "nodes")
    at.selectbox(key="nodes_selected").set_value(silent.node_id).run()
    assert not at.exception and not at.get("plotly_chart")
    assert "No metrics in this window yet." in [i.value for i in at.info]


# ---- upload and task pages: fixes from the browser tester's report ------------------------------

def staged_path(at: AppTest) -> Path:
    return Path(at.session_state["upload_staged"]["path"])


def test_latin1_csv_gets_an_encoding_choice_on_the_page(rt: MasterRuntime, users: None) -> None:
    """A latin-1 CSV: the message points at the page's Text encoding field (the form has no
    input.encoding); choosing latin-1 fixes the preview and goes into the spec; the staged
    upload is removed once the task is submitted."""
    data = "city,n\nZürich,1\nKöln,2\nZürich,3\n".encode("latin-1")
    at = open_page(login(ANN.username), "upload")
    at.file_uploader[0].upload("cities.csv", data, "text/csv").run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "not valid UTF-8" in message and '"Text encoding"' in message and "input.encoding" not in message
    assert at.selectbox(key="input_encoding").value == "UTF-8 (default)"
    at.selectbox(key="input_encoding").set_value(OTHER_ENCODING).run()
    at.text_input(key="input_encoding_other").input("no-such-codec").run()
    assert any("unknown encoding 'no-such-codec'" in e.value for e in at.error)
    at.selectbox(key="input_encoding").set_value("latin-1 (ISO-8859-1)").run()
    assert not at.error and list(at.dataframe[0].value["city"]) == ["Zürich", "Köln", "Zürich"]
    at.multiselect(key="group_by").set_value(["city"]).run()
    at.multiselect(key="agg_columns").set_value(["n"]).run()
    at.multiselect(key="agg_n").set_value(["sum"]).run()
    assert '"encoding": "iso8859-1"' in at.code[0].value or '"encoding": "latin-1"' in at.code[0].value
    staged = staged_path(at)
    assert staged.is_file()
    task_id = submit_and_open_task(at, rt, ANN)
    assert not staged.exists()   # the task's shards are blobs in the pool; the upload is not kept
    result = pd.read_csv(rt.tasks.result_path(ANN, task_id)).sort_values("city").reset_index(drop=True)
    assert result.equals(pd.DataFrame({"city": ["Köln", "Zürich"], "n_sum": [2, 4]}))
    assert "retried" not in texts(at)


def test_json_array_upload_previews_and_runs(rt: MasterRuntime, users: None) -> None:
    records = [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 5}]
    at = open_page(login(ANN.username), "upload")
    for name in ("records.json", "records.jsonl"):   # an array is read as one whatever the extension
        at.file_uploader[0].upload(name, json.dumps(records, indent=1).encode(), "application/json").run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert list(at.dataframe[0].value["v"]) == [1, 2, 5]
    assert "input_encoding" not in [s.key for s in at.selectbox]   # JSON is UTF-8: no encoding choice
    at.multiselect(key="group_by").set_value(["k"]).run()
    at.multiselect(key="agg_columns").set_value(["v"]).run()
    at.multiselect(key="agg_v").set_value(["sum"]).run()
    task_id = submit_and_open_task(at, rt, ANN)
    result = pd.read_csv(rt.tasks.result_path(ANN, task_id)).sort_values("k").reset_index(drop=True)
    assert result.equals(pd.DataFrame({"k": ["a", "b"], "v_sum": [6, 2]}))


def test_upload_limit_and_sizes_use_binary_units(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ANN.username), "upload")
    assert "Upload limit: **1.0 GiB** per file." in texts(at)
    at.file_uploader[0].upload("mini.csv", b"a,b\n" + b"1,2\n" * 1000, "text/csv").run()
    assert "3.9 KiB" in texts(at)   # 4004 bytes


def test_job_names_are_checked_and_shown_as_text(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ANN.username), "upload")
    at.file_uploader[0].upload("mini.csv", b"k,v\na,1\nb,2\n", "text/csv").run()
    at.multiselect(key="keep_columns").set_value(["k"]).run()
    at.text_input(key="job_name").input("x" * 5000).run()
    button(at, "Submit job").click().run()
    assert any(e.value == r"name\: is 5000 characters long; use at most 200" for e in at.error)
    name = "**bold** [link](http://example.com) :red[red] $x$ <b>b</b>"
    at.text_input(key="job_name").input(name).run()
    task_id = submit_and_open_task(at, rt, ANN)
    assert rt.tasks.get(ANN, task_id).name == name
    title = at.title[0].value
    # Markdown characters escaped; a word joiner (U+2060) keeps the address and the :red[ from being linked/colored
    assert title == (r"\*\*bold\*\* \[link\]\(http" "\u2060" r"\://example.com\) \:" "\u2060"
                     r"red\[red\] \$x\$ \<b\>b\</b\>"), title
    download = at.get("download_button")[0]
    # the file name: __bold__ [link](http___example.com) _red[red] $x$ _b_b__b_.csv, escaped in the label
    assert download.proto.label == (r"Download \_\_bold\_\_ \[link\]\(http\_\_\_example.com\) \_red\[red\] "
                                    r"\$x\$ \_b\_b\_\_b\_.csv")


def test_script_error_on_the_task_page_shows_only_the_users_frames(rt: MasterRuntime, users: None,
                                                                   tmp_path: Path) -> None:
    """A real script job on the embedded cluster whose process(df) raises inside pandas' apply:
    the task page shows the user's traceback, not a frame of the worker, the operation or pandas."""
    csv = tmp_path / "d.csv"
    pd.DataFrame({"k": ["a", "b"], "v": [1, 0]}).to_csv(csv, index=False)
    script = ("def ratio(row):\n"
              "    return 1 // row['v']\n"
              "\n"
              "def process(df):\n"
              "    df['r'] = df.apply(ratio, axis=1)\n"
              "    return df\n")
    task = rt.tasks.submit(ANN, {"name": "divide", "script": script, "max_attempts": 1,
                                 "split": {"strategy": "unsplit"}}, csv, "d.csv")
    deadline = time.monotonic() + 120
    while rt.tasks.get(ANN, task.id).status != "failed":
        assert time.monotonic() < deadline, rt.tasks.get(ANN, task.id)
        time.sleep(0.3)
    at = open_page(login(ANN.username), "tasks", task=task.id)
    assert [e.value for e in at.error] == [r"shard 0 failed after 1 attempt\(s\)\: ZeroDivisionError\: integer "
                                           "division or modulo by zero"]
    shown = "\n".join([c.value for c in at.code] + [e.value for e in at.error] + [texts(at)])
    assert 'File "<script>", line 5, in process' in shown and 'File "<script>", line 2, in ratio' in shown
    internal = ("sandbox_child", "operations.py", "script.py", "hivemind_core", "site-packages", "ScriptError",
                "pandas")
    assert not [ln for ln in shown.splitlines() if any(word in ln for word in internal)], shown


def test_bad_byte_past_the_preview_points_at_the_encoding_field_on_submit(rt: MasterRuntime, users: None) -> None:
    data = b"k,v\n" + b"a,1\n" * 300_000 + "\u00e9,2\n".encode("latin-1")   # past the 1 MiB the preview reads
    at = open_page(login(ANN.username), "upload")
    at.file_uploader[0].upload("late.csv", data, "text/csv").run()
    assert not at.error and at.dataframe[0].value["k"].iloc[0] == "a"
    at.multiselect(key="keep_columns").set_value(["k"]).run()
    before = rt.tasks.list(ANN, None, 0, 1)[1]
    button(at, "Submit job").click().run()
    message = " ".join(e.value for e in at.error)
    assert as_written(message).startswith("This file cannot be read: the file is not valid UTF-8 text")
    assert "line 300002" in message and '"Text encoding"' in message and "input.encoding" not in message
    assert rt.tasks.list(ANN, None, 0, 1)[1] == before and staged_path(at).is_file()   # kept to submit again
    at.selectbox(key="input_encoding").set_value("cp1252 (Windows, Western Europe)").run()
    submit_and_open_task(at, rt, ANN)


def test_task_page_shows_the_latest_runs_times_after_a_retry(rt: MasterRuntime, users: None) -> None:
    import datetime as dt

    from hivemind_core.sqlite import write_session
    from hivemind_core.tasks.models import Task

    start = dt.datetime(2026, 1, 5, 10, 0, 0, tzinfo=dt.UTC)
    with write_session(rt.engine) as s:
        s.add(Task(id="retried0000001", owner="ann", name="retried job", status="failed", round=1,
                   created_at=start - dt.timedelta(hours=3), started_at=start,
                   finished_at=start + dt.timedelta(seconds=42), error="shard 1 failed after 1 attempt(s): boom"))
        s.commit()
    at = open_page(login(ANN.username), "tasks", task="retried0000001")
    assert {m.label: m.value for m in at.metric}["Run time"] == "42.0 s"   # not the 3 h since it was created
    assert "retried 1 time(s); times are the latest run's" in texts(at)
    assert [e.value for e in at.error] == [r"shard 1 failed after 1 attempt\(s\)\: boom"]


# ---- upload and task pages: limits, errors by the Submit button, text as written -------------------

def test_upload_limits_are_in_a_collapsed_advanced_section_and_reach_the_task(rt: MasterRuntime,
                                                                               users: None) -> None:
    from hivemind_core.jobs.spec import MIN_MEMORY_MB, JobSpec, parse_spec

    defaults = JobSpec()
    at = open_page(login(ANN.username), "upload")
    at.file_uploader[0].upload("mini.csv", b"k,v\na,1\nb,2\na,3\n", "text/csv").run()
    advanced = next(e for e in at.expander if e.label.startswith("Advanced"))
    assert advanced.proto.expanded is False
    fields = {key: at.number_input(key=key) for key in ("timeout_s", "memory_mb", "max_attempts")}
    assert {key: f.value for key, f in fields.items()} == {
        "timeout_s": defaults.timeout_s, "memory_mb": defaults.memory_mb, "max_attempts": defaults.max_attempts}
    assert all(f.help and key in f.label for key, f in fields.items())
    assert f"at least {MIN_MEMORY_MB} MB" in fields["memory_mb"].help   # the spec's minimum, as it is now
    assert all(f in in_order(advanced) for f in fields.values())
    at.multiselect(key="group_by").set_value(["k"]).run()
    at.multiselect(key="agg_columns").set_value(["v"]).run()
    at.multiselect(key="agg_v").set_value(["sum"]).run()
    before = rt.tasks.list(ANN, None, 0, 1)[1]
    for key, bad in (("memory_mb", MIN_MEMORY_MB - 1), ("max_attempts", 0), ("timeout_s", 0.0)):
        at.number_input(key=key).set_value(bad).run()
        button(at, "Submit job").click().run()
        shown = in_order(at.main)   # the spec's own message, right under its field and under the button
        below_field = shown[shown.index(at.number_input(key=key)) + 1]
        assert below_field.type == "error" and as_written(below_field.value).startswith(f"{key}: "), below_field
        assert as_written(after_submit(at)) == f"Not submitted: {as_written(below_field.value)}"
        at.number_input(key=key).set_value(getattr(defaults, key)).run()
    assert rt.tasks.list(ANN, None, 0, 1)[1] == before
    at.number_input(key="timeout_s").set_value(45.0)
    at.number_input(key="memory_mb").set_value(1024)
    at.number_input(key="max_attempts").set_value(1).run()
    assert '"timeout_s": 45.0' in at.code[0].value and '"max_attempts": 1' in at.code[0].value
    task_id = submit_and_open_task(at, rt, ANN)
    spec = parse_spec(rt.tasks.get(ANN, task_id).spec)
    assert (spec.timeout_s, spec.memory_mb, spec.max_attempts) == (45.0, 1024, 1)


def test_upload_submit_error_shows_by_the_button_and_at_its_field(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ANN.username), "upload")
    at.file_uploader[0].upload("mini.csv", b"k,v\na,1\nb,2\n", "text/csv").run()
    before = rt.tasks.list(ANN, None, 0, 1)[1]
    button(at, "Submit job").click().run()   # no pipeline: the message names no form field
    assert as_written(after_submit(at)).startswith("Not submitted: pipeline: a data_processing job needs a pipeline")
    # a filter value the column cannot hold: under the filter row, and under the button; both as typed
    at.number_input(key="n_filters").set_value(1).run()
    at.selectbox(key="f_col_0").set_value("v")
    at.text_input(key="f_val_0").input("**far** [x](http://e.example)").run()
    button(at, "Submit job").click().run()
    shown = in_order(at.main)
    below_filter = shown[shown.index(at.text_input(key="f_val_0")) + 1]
    assert below_filter.type == "error"
    assert below_filter.value == (r"pipeline.filter\[0\].value\: '\*\*far\*\* \[x\]\(http" "\u2060"
                                  r"\://e.example\)' is not a number \(the column holds whole numbers\).")
    assert after_submit(at) == r"Not submitted\: " + below_filter.value
    assert rt.tasks.list(ANN, None, 0, 1)[1] == before


def test_upload_file_errors_show_the_files_text_as_written(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ANN.username), "upload")
    at.file_uploader[0].upload("dup.csv", b"**a**,**a**\n1,2\n", "text/csv").run()
    message = " ".join(e.value for e in at.error)
    assert message.startswith(r"This file cannot be read\:") and r"\*\*a\*\*" in message, message
    assert "**a**" in as_written(message)
    at.file_uploader[0].upload("md.csv", b"**v**,k\n1,a\n", "text/csv").run()   # a column name in a label
    at.multiselect(key="agg_columns").set_value(["**v**"]).run()
    assert at.multiselect(key="agg_**v**").label == r"Aggregations of \*\*v\*\* (int)"


def test_tasks_filter_without_matches_says_which_status(rt: MasterRuntime, users: None) -> None:
    import datetime as dt

    from hivemind_core.sqlite import write_session
    from hivemind_core.tasks.models import Task

    auth.create_user(ADMIN, "carl", PW, "analyst")
    at = open_page(login("carl"), "tasks")
    assert [i.value for i in at.info] == ["No tasks here yet — submit one on the Upload page."]
    at.selectbox(key="tasks_status").set_value("failed").run()   # no tasks at all: still the first message
    assert [i.value for i in at.info] == ["No tasks here yet — submit one on the Upload page."]
    with write_session(rt.engine) as s:
        s.add(Task(id="carlsdone00001", owner="carl", name="done", status="completed",
                   created_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC)))
        s.commit()
    at.run()
    assert [i.value for i in at.info] == ["No tasks with status failed."]
    at.selectbox(key="tasks_status").set_value("all").run()
    assert not at.info and list(at.dataframe[0].value["id"]) == ["carlsdone00001"]


def test_task_page_shows_an_unknown_id_from_the_address_as_written(rt: MasterRuntime, users: None) -> None:
    at = open_page(login(ANN.username), "tasks", task="**x**[y](http://e.example)")
    assert [e.value for e in at.error] == [r"There is no task '\*\*x\*\*\[y\]\(http" "\u2060"
                                           r"\://e.example\)' you can see."]
