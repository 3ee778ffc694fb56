"""Users (admins only): add users, change roles, disable / enable, reset passwords."""

import streamlit as st

from hivemind_core import auth
from hivemind_core.errors import HiveMindError, ValidationError
from hivemind_core.principal import ROLES
from pages import _ui as ui

who = ui.require_page("admin")
st.title("Users")
ui.show_flash()

users = auth.list_users(who)
locked = auth.locked_addresses(who)
st.dataframe(
    [{
        "username": u.username,
        "role": u.role,
        "state": "disabled" if u.disabled else (
            f"locked from {locked[u.username]} address(es)" if u.username in locked else "active"),
        "failed logins": u.failed_logins,
        "last login": ui.fmt_time(u.last_login_at),
        "created": ui.fmt_time(u.created_at),
    } for u in users],
    hide_index=True, width="stretch",
)
st.caption(f"After {auth.MAX_FAILED_LOGINS} failed logins in a row, a username is locked for "
           f"{auth.LOCKOUT_SECONDS // 60} minutes from the address they came from (other addresses can "
           "still log in); resetting the password lifts it. Changing a password or role, or disabling an "
           "account, logs that user out everywhere. Disabling an account also disables its VPN peers; "
           "enabling the account again does not re-enable them — enable the ones still wanted on the VPN page.")

add_col, manage_col = st.columns(2)

with add_col, st.form("add_user", clear_on_submit=True):
    st.subheader("Add a user")
    errors = ui.FieldErrors()
    username = st.text_input("Username")
    errors.slot("username")
    role = st.selectbox("Role", ROLES, index=ROLES.index("analyst"))
    errors.slot("role")
    password = st.text_input("Initial password", type="password", help=auth.PASSWORD_HELP
                             + " The user can change it on their Account page.")
    errors.slot("password")
    if st.form_submit_button("Add user", type="primary"):
        try:
            created = auth.create_user(who, username, password, role)
        except HiveMindError as exc:
            errors.show(exc)
        else:
            ui.flash(f"User {created.username} ({created.role}) added.")
            st.rerun()

with manage_col:
    st.subheader("Change a user")
    target = st.selectbox("User", [u.username for u in users], key="admin_target")
    user = next((u for u in users if u.username == target), None)
    if user is not None:
        with st.form("change_role"):
            new_role = st.selectbox("Role", ROLES, index=ROLES.index(user.role))
            if st.form_submit_button("Save role"):
                with ui.user_errors():
                    auth.set_role(who, user.username, new_role, keep_session=ui.current_session())
                    ui.flash(f"{user.username} is now {new_role}.")
                    st.rerun()
        label = "Enable the account" if user.disabled else "Disable the account"
        if st.button(label, key="toggle_disabled"):
            with ui.user_errors():
                auth.set_disabled(who, user.username, not user.disabled)
                ui.flash(f"{user.username} is {'enabled' if user.disabled else 'disabled'}.")
                st.rerun()
        with st.form("reset_password", clear_on_submit=True):
            reset_errors = ui.FieldErrors()
            new_password = st.text_input("New password", type="password", help=auth.PASSWORD_HELP)
            reset_errors.slot("password")
            repeat = st.text_input("Repeat the new password", type="password")
            reset_errors.slot("repeat")
            if st.form_submit_button("Reset password"):
                try:
                    if new_password != repeat:
                        raise ValidationError("The two passwords differ.", field="repeat")
                    auth.reset_password(who, user.username, new_password, keep_session=ui.current_session())
                except HiveMindError as exc:
                    reset_errors.show(exc)
                else:
                    ui.flash(f"The password of {user.username} was reset (any lockout lifted, "
                             "logged out everywhere).")
                    st.rerun()
