"""Your account: change your password, create and revoke your API tokens."""

import streamlit as st

from hivemind_core import auth
from hivemind_core.errors import HiveMindError, ValidationError
from pages import _ui as ui

NEW_TOKEN_KEY = "account_new_token"  # shown once, until dismissed
REVOKE_KEY = "account_revoke_token"  # id of the token whose revoke waits for confirmation

who = ui.require_page("account")
st.title("Account")
st.caption(f"Logged in as **{who.username}** — role: {who.role}")
ui.show_flash()

st.subheader("API tokens")
st.write("A token lets scripts use the REST API as you: `curl -H 'Authorization: Bearer <token>' …/api/tasks`.")
new_token = st.session_state.get(NEW_TOKEN_KEY)
if new_token:
    with st.container(border=True):
        st.warning("Copy this token now — it is shown only once and cannot be recovered.")
        st.code(new_token, language=None)
        if st.button("I have copied it"):
            del st.session_state[NEW_TOKEN_KEY]
            st.rerun()

with st.form("new_token", clear_on_submit=True):
    errors = ui.FieldErrors()
    name = st.text_input("Token name", placeholder="e.g. laptop script")
    errors.slot("name")
    if st.form_submit_button("Create token", type="primary"):
        try:
            st.session_state[NEW_TOKEN_KEY] = auth.create_api_token(who, name)
        except HiveMindError as exc:
            errors.show(exc)
        else:
            st.rerun()

tokens = auth.list_api_tokens(who)
if not tokens:
    st.caption("You have no active API tokens.")
for token in tokens:
    cols = st.columns([3, 2, 2, 2, 1])
    cols[0].write(f"**{token.name}**")
    cols[1].write(f"`{token.prefix}…`")
    cols[2].write(f"created {ui.fmt_time(token.created_at)}")
    cols[3].write(f"last used {ui.fmt_time(token.last_used_at)}")
    if cols[4].button("Revoke", key=f"revoke_{token.id}"):
        st.session_state[REVOKE_KEY] = token.id
    if st.session_state.get(REVOKE_KEY) == token.id:
        with st.container(border=True):
            st.warning(f"Revoke the token {token.name!r}? Scripts using it stop working at once; "
                       "this cannot be undone.")
            yes, no = st.columns(2)
            if yes.button("Yes, revoke it", key=f"revoke_yes_{token.id}", type="primary"):
                st.session_state.pop(REVOKE_KEY, None)
                with ui.user_errors():
                    auth.revoke_api_token(who, token.id)
                    ui.flash(f"Token {token.name!r} revoked.")
                    st.rerun()
            if no.button("Cancel", key=f"revoke_no_{token.id}"):
                st.session_state.pop(REVOKE_KEY, None)
                st.rerun()

st.subheader("Change your password")
with st.form("change_password", clear_on_submit=True):
    pw_errors = ui.FieldErrors()
    old = st.text_input("Current password", type="password")
    pw_errors.slot("old_password")
    new = st.text_input("New password", type="password", help=auth.PASSWORD_HELP)
    pw_errors.slot("new_password")
    repeat = st.text_input("Repeat the new password", type="password")
    pw_errors.slot("repeat")
    if st.form_submit_button("Change password"):
        try:
            if new != repeat:
                raise ValidationError("The two passwords differ.", field="repeat")
            auth.change_password(who, old, new, keep_session=ui.current_session())
        except HiveMindError as exc:
            pw_errors.show(exc)
        else:
            ui.flash("Your password was changed; your other logins (other browsers, devices) were logged out.")
            st.rerun()
