"""Log an AppTest session in the way pages/_ui.py reads it (a live server-side login
session plus the session state the login form sets), for tests that open a page
script directly, without the login form."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from hivemind_core import auth
from pages._ui import SESSION_KEY


def logged_in(at: AppTest, username: str) -> AppTest:
    """``at`` logged in as ``username`` (call before its first run); returns ``at``."""
    expires = time.time() + 3600
    auth.start_login_session(username, expires)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = username
    at.session_state[SESSION_KEY] = (username, expires)
    return at
