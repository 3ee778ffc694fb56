"""Users, passwords, logins and API tokens (stored in the master database).

The UI logs in with :func:`authenticate` and keeps the login in
streamlit-authenticator's cookie (fed by :mod:`.credentials`), which counts
only while its server-side session lives (:mod:`.sessions`); the REST API
turns a bearer token into a :class:`~hivemind_core.principal.Principal` with
:func:`principal_for_token`; both end up with the same permissions.
"""

from hivemind_core.auth.credentials import authenticator_credentials
from hivemind_core.auth.errors import AccountDisabledError, AccountLockedError, AuthenticationError
from hivemind_core.auth.models import ApiToken, User
from hivemind_core.auth.passwords import PASSWORD_HELP
from hivemind_core.auth.sessions import end_login_session, session_principal, start_login_session
from hivemind_core.auth.tokens import (
    create_api_token,
    list_api_tokens,
    principal_for_token,
    revoke_api_token,
)
from hivemind_core.auth.users import (
    LOCKOUT_SECONDS,
    MAX_FAILED_LOGINS,
    WRONG_LOGIN,
    authenticate,
    change_password,
    create_first_admin,
    create_user,
    get_user,
    has_users,
    list_users,
    locked_addresses,
    login_lock_remaining,
    principal_of,
    record_failed_login,
    record_successful_login,
    reset_password,
    set_disabled,
    set_role,
)

__all__ = [
    "LOCKOUT_SECONDS", "MAX_FAILED_LOGINS", "PASSWORD_HELP", "WRONG_LOGIN",
    "AccountDisabledError", "AccountLockedError", "ApiToken", "AuthenticationError", "User", "authenticate",
    "authenticator_credentials", "change_password", "create_api_token",
    "create_first_admin", "create_user", "end_login_session", "get_user", "has_users", "list_api_tokens",
    "list_users", "locked_addresses", "login_lock_remaining", "principal_for_token", "principal_of",
    "record_failed_login", "record_successful_login", "reset_password", "revoke_api_token",
    "session_principal", "set_disabled", "set_role", "start_login_session",
]
