"""Errors of logging in and of API tokens."""

from hivemind_core.errors import HiveMindError


class AuthenticationError(HiveMindError):
    """Wrong username or password, or a missing / unknown / revoked API token."""


class AccountLockedError(AuthenticationError):
    """Too many failed logins: the account is locked for a while."""


class AccountDisabledError(AuthenticationError):
    """An administrator disabled this account."""
