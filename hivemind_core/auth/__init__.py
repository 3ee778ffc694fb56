"""Users, passwords, logins and API tokens (stored in the master database).

The UI logs in through streamlit-authenticator fed by :mod:`.credentials`; the
REST API turns a bearer token into a :class:`~hivemind_core.principal.Principal`
with :func:`principal_for_token`; both end up with the same permissions.
"""

from hivemind_core.auth.credentials import authenticator_credentials, record_widget_failures
from hivemind_core.auth.errors import AccountDisabledError, AccountLockedError, AuthenticationError
from hivemind_core.auth.models import ApiToken, User
from hivemind_core.auth.tokens import (
    create_api_token,
    list_api_tokens,
    principal_for_token,
    revoke_api_token,
)
from hivemind_core.auth.users import (
    LOCKOUT_SECONDS,
    MAX_FAILED_LOGINS,
    authenticate,
    change_password,
    check_login_allowed,
    create_first_admin,
    create_user,
    get_user,
    has_users,
    list_users,
    principal_of,
    record_failed_login,
    record_successful_login,
    reset_password,
    set_disabled,
    set_role,
)

__all__ = [
    "LOCKOUT_SECONDS", "MAX_FAILED_LOGINS", "AccountDisabledError", "AccountLockedError", "ApiToken",
    "AuthenticationError", "User", "authenticate", "authenticator_credentials", "change_password",
    "check_login_allowed", "create_api_token", "create_first_admin", "create_user", "get_user",
    "has_users", "list_api_tokens", "list_users", "principal_for_token", "principal_of",
    "record_failed_login", "record_successful_login", "record_widget_failures", "reset_password",
    "revoke_api_token", "set_disabled", "set_role",
]
