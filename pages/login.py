"""Log in (streamlit-authenticator's widget over the users in the database)."""

import streamlit as st

from pages import _ui as ui

st.title("HiveMind")
ui.show_flash(keep=True)
who = ui.login_form(ui.authenticator())
if who is not None:
    # The widget is storing the login cookie in the browser, which then reruns the app
    # and opens the page asked for (the dashboard, or the page whose URL was opened); rerunning here
    # would lose the cookie.
    st.success(f"Welcome, {who.username}. Opening HiveMind…")
    st.button("Continue", type="primary")
