"""First run: no users yet, so the first visitor creates the admin account.
There is no built-in password."""

import streamlit as st

from hivemind_core import auth
from hivemind_core.errors import HiveMindError, ValidationError
from pages import _ui as ui

st.title("Welcome to HiveMind")
st.write("There are no accounts yet. Create the **administrator** account; you will log in with it next.")

with st.form("first_admin"):
    errors = ui.FieldErrors()
    username = st.text_input("Admin username", value="admin")
    errors.slot("username")
    password = st.text_input("Password", type="password", help=auth.PASSWORD_HELP)
    errors.slot("password")
    repeat = st.text_input("Repeat the password", type="password")
    errors.slot("repeat")
    if st.form_submit_button("Create the admin account", type="primary"):
        try:
            if password != repeat:
                raise ValidationError("The two passwords differ.", field="repeat")
            auth.create_first_admin(username, password)
        except HiveMindError as exc:
            errors.show(exc)
        else:
            ui.flash("The admin account is ready — log in with it.")
            st.rerun()
