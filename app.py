"""HiveMind Master — ``streamlit run app.py``.

This file is two things:

* the ASGI entry: ``streamlit run`` finds ``app = st.App(...)`` in it and
  serves that app (UI, the REST routes of ``hivemind_core.api`` and the
  lifespan that starts the cluster once per process and stops it at shutdown);
* the page script: every Streamlit run executes it (as ``__main__``, inside a
  script run context) to log the user in and route to the pages of their role.
"""

from pathlib import Path

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

if get_script_run_ctx(suppress_warning=True) is None:
    # Imported as the server's ASGI app (or started with ``python app.py``).
    from hivemind_core.api.routes import MIDDLEWARE, ROUTES
    from hivemind_core.lifespan import lifespan
    from pages._ui import disable_pages_directory_discovery

    disable_pages_directory_discovery()
    app = st.App(Path(__file__).resolve(), routes=ROUTES, middleware=MIDDLEWARE, lifespan=lifespan)

    if __name__ == "__main__":
        app.run()
else:
    from pages import _ui as ui
    from hivemind_core import auth

    def main() -> None:
        st.set_page_config(page_title="HiveMind", page_icon=":material/hive:", layout="wide")
        if not auth.has_users():
            st.navigation([st.Page(ui.PAGES_DIR / "first_run.py", title="Create the admin account",
                                   url_path="setup")], position="hidden").run()
            return
        authenticator = ui.build_authenticator()  # once per run
        who = ui.restore_login(authenticator)
        if who is not None:
            with st.sidebar:
                st.caption(f"Logged in as **{who.username}** ({who.role})")
                ui.logout_button(authenticator)
            who = ui.current_principal()  # None right after "Log out"
        if who is None:
            st.navigation(ui.login_pages(), position="hidden").run()
            return
        pages = [  # other roles' pages too, hidden: their URL then says why it does not open (require_page)
            st.Page(ui.PAGES_DIR / page.file, title=page.title, icon=page.icon, default=(i == 0),
                    visibility="visible" if shown else "hidden")
            for i, (page, shown) in enumerate(ui.navigation_pages(who))
        ]
        st.navigation(pages).run()

    main()
