"""VPN-specific errors (all :class:`~hivemind_core.errors.HiveMindError`)."""

from __future__ import annotations

from hivemind_core.errors import HiveMindError, ValidationError


class AddressPoolFullError(HiveMindError):
    """Every usable address of the VPN subnet is taken by a peer."""


class PoolTooSmallError(ValidationError):
    """The subnet has no room for the server and at least one peer."""


class VpnNotConfiguredError(HiveMindError):
    """A setting the config needs (e.g. the endpoint) has not been set yet."""
