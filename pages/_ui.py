"""Shared UI helpers for the pages: who is logged in, which pages a role gets,
the login widget, and small display helpers. No business logic lives here —
pages call ``hivemind_core`` for that.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st

from hivemind_core import auth
from hivemind_core.config import get_settings
from hivemind_core.errors import HiveMindError, ValidationError
from hivemind_core.jobs.names import one_line
from hivemind_core.principal import ROLES, Principal
from hivemind_core.runtime import MasterRuntime, get_runtime
from hivemind_core.secrets_store import cookie_key
from hivemind_core.tasks.models import as_utc
from hivemind_core.units import fmt_bytes  # noqa: F401 - the pages' size formatter (one for the UI, API and CLI)

if TYPE_CHECKING:  # imported where used: importing it outside a page run logs warnings
    import streamlit_authenticator as stauth

PAGES_DIR = Path(__file__).resolve().parent
COOKIE_NAME = "hivemind_login"
COOKIE_EXPIRY_DAYS = 7.0
_AUTHENTICATOR_KEY = "_hivemind_authenticator"
FLASH_KEY = "_hivemind_flash"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageDef:
    key: str
    file: str
    title: str
    icon: str


PAGES: dict[str, PageDef] = {
    p.key: p
    for p in (
        PageDef("dashboard", "dashboard.py", "Dashboard", ":material/monitoring:"),
        PageDef("upload", "upload.py", "Upload", ":material/upload_file:"),
        PageDef("tasks", "tasks.py", "Tasks", ":material/task:"),
        PageDef("nodes", "nodes.py", "Nodes", ":material/dns:"),
        PageDef("vpn", "vpn.py", "VPN", ":material/vpn_lock:"),
        PageDef("admin", "admin.py", "Users", ":material/manage_accounts:"),
        PageDef("account", "account.py", "Account", ":material/person:"),
    )
}

# Which pages each role gets; a page not listed for a role is not in its menu,
# and its URL shows why it does not open (see navigation_pages, require_page).
ROLE_PAGES: dict[str, tuple[str, ...]] = {
    "admin": ("dashboard", "upload", "tasks", "nodes", "vpn", "admin", "account"),
    "analyst": ("dashboard", "upload", "tasks", "nodes", "vpn", "account"),
    "viewer": ("dashboard", "nodes", "account"),
}


def allowed_pages(principal: Principal) -> list[PageDef]:
    """The pages ``principal`` may open, in menu order."""
    return [PAGES[key] for key in ROLE_PAGES.get(principal.role, ())]


def navigation_pages(principal: Principal) -> list[tuple[PageDef, bool]]:
    """Every page, each with whether ``principal`` may open it: theirs first, in menu order, then
    the others (registered hidden, so opening one by URL shows :func:`refusal`, not "Page not found")."""
    allowed = allowed_pages(principal)
    return [(page, True) for page in allowed] + [(page, False) for page in PAGES.values() if page not in allowed]


def login_pages() -> list[st.Page]:
    """The navigation of a visitor who is not logged in: the login page, also under every page's
    URL (hidden), so opening ``/upload`` shows the login form, not "Page not found", and once
    logged in the same URL opens that page (or says the role cannot open it)."""
    login = PAGES_DIR / "login.py"
    return [st.Page(login, title="Log in", url_path="login"),
            *(st.Page(login, title="Log in", url_path=Path(page.file).stem, visibility="hidden")
              for page in PAGES.values())]


def disable_pages_directory_discovery() -> None:
    """Stop Streamlit from serving ``pages/*.py`` by file name.

    With a ``pages/`` folder next to the main script, Streamlit starts every
    process in its old multipage mode, in which the first session can open
    ``/admin`` and run ``pages/admin.py`` without the entry script (and so
    without login or role checks) until some session has called
    ``st.navigation``. Called when the server starts, before any session.
    (Each page also checks access itself, see :func:`require_page`.)
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


# ---- login ---------------------------------------------------------------------------------------

SESSION_KEY = "_hivemind_login_session"  # (username, cookie expiry): names this browser session's login


def build_authenticator() -> stauth.Authenticate:
    """streamlit-authenticator, created once per run from the users in the database.

    It keeps the login cookie (restores a login from it, deletes it on logout);
    passwords are checked by :func:`login_form` through ``auth.authenticate``
    (login limits included). It gets bcrypt hashes only (``auto_hash=False``)
    and no config file path, so it never rewrites credentials.
    """
    import streamlit_authenticator as stauth

    authenticator_ = stauth.Authenticate(
        auth.authenticator_credentials(),
        cookie_name=COOKIE_NAME,
        cookie_key=cookie_key(get_settings()),
        cookie_expiry_days=COOKIE_EXPIRY_DAYS,
        auto_hash=False,
        login_sleep_time=0,
    )
    st.session_state[_AUTHENTICATOR_KEY] = authenticator_
    return authenticator_


def authenticator() -> stauth.Authenticate:
    """The authenticator the entry script built for this run."""
    return st.session_state[_AUTHENTICATOR_KEY]


def client_address() -> str:
    """The browser's IP address as Streamlit sees it ("" on localhost, where Streamlit gives none,
    or when there is no real client, as in AppTest)."""
    address = st.context.ip_address
    return address if isinstance(address, str) else ""


def restore_login(authenticator_: stauth.Authenticate) -> Principal | None:
    """Log in from the signed cookie if its session still lives; return who is logged in."""
    from streamlit_authenticator import LoginError

    if not st.session_state.get("authentication_status"):
        token = _cookie_login(authenticator_)
        if token:
            session = (str(token.get("username") or ""), token.get("exp_date"))
            if auth.session_principal(*session) is None:
                _forget_login(authenticator_)  # logged out, password changed, account disabled, ...
            else:
                st.session_state[SESSION_KEY] = session
    try:
        authenticator_.login(location="unrendered")
    except LoginError:  # cookie of a user who no longer exists or was disabled
        _forget_login(authenticator_)
    who = current_principal()
    if who is None and st.session_state.get("authentication_status"):
        _forget_login(authenticator_)  # its session ended since (elsewhere), or the account was disabled
    return who


def _cookie_login(authenticator_: stauth.Authenticate) -> dict | None:
    """The login in this browser's cookie (its ``username`` and ``exp_date``), or None.

    The one place the cookie is read and verified. A cookie that does not verify — any JWT error
    (another algorithm such as ``none`` or RS256, a wrong signature, garbage), no username, or
    past its expiry — means "not logged in": this session forgets it and the browser is told to
    delete it, and the authenticator (``login`` reads it too) no longer looks at it this session.
    """
    import jwt

    if st.session_state.get("logout") or COOKIE_NAME not in st.context.cookies:
        return None  # no cookie, or this session has dropped it (logged out, or a bad cookie)
    try:
        token = authenticator_.cookie_controller.get_cookie()
    except jwt.PyJWTError as exc:  # the authenticator itself catches only DecodeError and InvalidSignatureError
        logger.info("ignoring a login cookie that does not verify: %s", type(exc).__name__)
        token = None
    if not token:
        _forget_login(authenticator_)
        return None
    return token


def _forget_login(authenticator_: stauth.Authenticate) -> None:
    for key in ("name", "username", "authentication_status", "email", "roles"):
        st.session_state[key] = None
    st.session_state.pop(SESSION_KEY, None)
    st.session_state["logout"] = True  # the authenticator then ignores the (stale) cookie of this session
    try:
        authenticator_.cookie_controller.delete_cookie()
    except Exception:  # noqa: BLE001 - no cookie to delete is fine
        pass


def _end_session(_details: dict | None = None) -> None:
    session = st.session_state.pop(SESSION_KEY, None)
    if session:
        auth.end_login_session(*session)


def logout_button(authenticator_: stauth.Authenticate) -> None:
    """The sidebar's "Log out": ends this session server side, so its cookie stops working everywhere."""
    authenticator_.logout("Log out", location="sidebar", key="logout_button", callback=_end_session)


def login_form(authenticator_: stauth.Authenticate) -> Principal | None:
    """Render the login form; on success store the session and its cookie and return the
    new principal (else show why not and return None)."""
    with st.form("login"):
        st.subheader("Log in to HiveMind")
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Login")
    if not submitted:
        return None
    if not username.strip() or not password.strip():
        st.error("Enter your username and password.")
        return None
    client = client_address()
    try:
        who = auth.authenticate(username, password.strip(), client)
    except auth.AuthenticationError as exc:
        st.error(str(exc))
        return None
    # what the authenticator's own form does on success: the session state it reads, then the cookie
    st.session_state.update(name=who.username, username=who.username, email="", roles=[who.role],
                            authentication_status=True)
    authenticator_.cookie_controller.set_cookie()
    expires = authenticator_.cookie_controller.cookie_model.exp_date
    auth.start_login_session(who.username, expires, client)
    st.session_state[SESSION_KEY] = (who.username, expires)
    st.session_state.pop(FLASH_KEY, None)
    return who


def current_session() -> float | None:
    """This browser session's login (its cookie's expiry), to keep it when the user changes
    their own password or role; None when not logged in."""
    session = st.session_state.get(SESSION_KEY)
    return session[1] if session else None


def current_principal() -> Principal | None:
    """Who is logged in to this session, read afresh on every call (role included); None:
    nobody, or the session has ended (logged out elsewhere, password changed, account disabled)."""
    if not st.session_state.get("authentication_status"):
        return None
    session = st.session_state.get(SESSION_KEY)
    if not session or session[0] != st.session_state.get("username"):
        return None
    return auth.session_principal(*session)


def role_needed(key: str) -> str:
    """The least role that has page ``key`` (roles from least to most)."""
    return next((role for role in reversed(ROLES) if key in ROLE_PAGES.get(role, ())), "admin")


def refusal(who: Principal, key: str) -> str:
    """What a user is told who opens (by URL) a page outside their role."""
    return (f"Your role ({who.role}) cannot open this page; ask an administrator for the "
            f"{role_needed(key)} role.")


def require_page(key: str) -> Principal:
    """Called first by every page: the current principal, or stop if this page is not theirs.

    Navigation registers a role's other pages hidden (out of the menu), so their URL
    lands here and this says why the page does not open; it also covers any other
    way a page script might be started.
    """
    who = current_principal()
    if who is None:
        st.warning("Please log in.")
        st.stop()
    if key not in ROLE_PAGES.get(who.role, ()):
        st.error(refusal(who, key))
        st.stop()
    return who


def plural(n: int, word: str) -> str:
    """``1 peer``, ``2 peers``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---- services and display helpers --------------------------------------------------------------

def runtime() -> MasterRuntime:
    """The process-wide runtime (database, cluster client, task service) shared with the REST API."""
    return get_runtime()


class FieldErrors:
    """Placeholders under form fields, so a ValidationError shows next to its field.

    ::

        errors = FieldErrors()
        name = st.text_input("Name"); errors.slot("name")
        ...
        except ValidationError as exc: errors.show(exc)
    """

    def __init__(self, plain_text: bool = False) -> None:
        """``plain_text``: show messages as written (through :func:`plain`), for messages that quote
        user text such as column names or values, which must not be read as Markdown."""
        self._slots: dict[str, st.delta_generator.DeltaGenerator] = {}
        self._general = st.empty()
        self._plain_text = plain_text

    def slot(self, field: str) -> None:
        self._slots[field] = st.empty()

    def show(self, exc: HiveMindError) -> None:
        """Show ``exc`` under the slot of its field — or of the nearest enclosing
        field (``pipeline.filter[0].op`` goes to a ``pipeline.filter`` slot) — else on top."""
        field = (exc.field if isinstance(exc, ValidationError) else None) or ""
        matches = [k for k in self._slots if field == k or field.startswith((k + ".", k + "["))]
        target = self._slots[max(matches, key=len)] if matches else self._general
        target.error(plain(exc) if self._plain_text else str(exc))


def follow_default(key: str, default: object) -> None:
    """Let widget ``key`` follow a changing default (a script template that depends on
    another choice) until the user edits it. Call before creating the widget, and
    create it without ``value=``: its value comes from the session state set here."""
    marker = f"_default_of_{key}"
    if key not in st.session_state or st.session_state[key] == st.session_state.get(marker):
        st.session_state[key] = default
    st.session_state[marker] = default


def flash(message: str) -> None:
    """A success message for the next run (survives ``st.rerun``)."""
    st.session_state[FLASH_KEY] = message


def show_flash(keep: bool = False) -> None:
    """Show the pending flash message; ``keep`` leaves it for later runs too (the login page
    is rerun by the cookie widget right after it first appears)."""
    message = st.session_state.get(FLASH_KEY) if keep else st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message)


@contextmanager
def user_errors(plain_text: bool = False) -> Iterator[None]:
    """Show a HiveMindError as a message instead of a traceback (``plain_text``: as written, through
    :func:`plain`, for messages that may quote user text)."""
    try:
        yield
    except HiveMindError as exc:
        st.error(plain(exc) if plain_text else str(exc))


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|<>~$:&])")


# Links and emoji the renderer finds in plain text (GFM "autolink literals" and shortcodes), after
# Markdown escapes are gone: an invisible word joiner (U+2060) inside each keeps them text.
_AUTOLINKED = re.compile(r"(?i)(?<=http)(?=s?://)|(?<=www)(?=\.)|(?=@)|(?<=:)(?=[\w+-])")
WORD_JOINER = "\u2060"


def plain(value: object) -> str:
    """``value`` as Markdown that shows exactly this text (for st.title, st.error, ... which all
    render Markdown): control characters become spaces, Markdown's characters are escaped, so a
    job name like ``**x**`` or ``[a](http://b)`` is shown as typed, never as bold or a link
    (a web address or e-mail address gets an invisible word joiner so it is not linked)."""
    text = _AUTOLINKED.sub(WORD_JOINER, one_line(str(value)))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def local_time(when: dt.datetime) -> dt.datetime:
    """A naive UTC datetime (as the task tables store them) in local time."""
    return as_utc(when).astimezone()


def fmt_time(ts: float | dt.datetime | None) -> str:
    """Local time of a unix timestamp or a datetime (naive datetimes are UTC, as the task tables store them)."""
    if ts is None:
        return "—"
    if isinstance(ts, dt.datetime):
        when = local_time(ts)
    else:
        when = dt.datetime.fromtimestamp(ts)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """``end - start`` as text; a missing end means "until now" (naive datetimes are UTC)."""
    if start is None:
        return "—"

    seconds = max(0.0, (as_utc(end or dt.datetime.now(dt.UTC)) - as_utc(start)).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes} min {sec} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
