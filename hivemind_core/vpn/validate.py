"""Checks for the server settings an admin types in (endpoint, ports, DNS, MTU, keepalive).

The limits are those of the strictest official WireGuard app parsers, so a
config we render imports everywhere: MTU 576-65535 (1280+ with IPv6, the IPv6
minimum), keepalive 0-65535, DNS as IP addresses, ports 1-65535.
"""

from __future__ import annotations

import ipaddress
import re

from hivemind_core.errors import ValidationError

_LABEL = re.compile(r"^(?!-)[a-zA-Z0-9-]{1,63}(?<!-)$")
MTU_MIN, MTU_MIN_V6, MTU_MAX = 576, 1280, 65535


def endpoint_host(value: str) -> str:
    """An IPv4 address, an IPv6 address (brackets optional) or a DNS name, normalized."""
    text = (value or "").strip()
    if not text:
        raise ValidationError("Set the VPN endpoint: the public IP address or DNS name of the server.", field="endpoint")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if ":" in text or "/" in text or "@" in text:
        raise ValidationError(
            f"{text!r} is not a host: give only the IP address or DNS name here, the UDP port separately.",
            field="endpoint",
        )
    name = text.rstrip(".").lower()
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")) or name.isdigit():
        raise ValidationError(
            f"{text!r} is not a valid DNS name or IP address (letters, digits and '-' in dot-separated labels).",
            field="endpoint",
        )
    return name


def port(value: int | str, field: str = "port") -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"The {field} must be a whole number, got {value!r}.", field=field) from None
    if not 1 <= number <= 65535:
        raise ValidationError(f"The {field} must be between 1 and 65535, got {number}.", field=field)
    return number


def dns_servers(value: str | None) -> str:
    """Comma-separated IP addresses (blank = none), normalized to ``a, b``."""
    items = [p for p in re.split(r"[,\s]+", (value or "").strip()) if p]
    result = []
    for item in items:
        try:
            result.append(str(ipaddress.ip_address(item)))
        except ValueError:
            raise ValidationError(
                f"DNS server {item!r} is not an IP address; list IP addresses separated by commas.", field="dns"
            ) from None
    if len(set(result)) != len(result):
        raise ValidationError("A DNS server is listed twice.", field="dns")
    return ", ".join(result)


def mtu(value: int | str | None, ipv6: bool) -> int | None:
    if value in (None, "", 0):
        return None
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValidationError(f"The MTU must be a whole number, got {value!r}.", field="mtu") from None
    low = MTU_MIN_V6 if ipv6 else MTU_MIN
    if not low <= number <= MTU_MAX:
        why = " (IPv6 needs at least 1280)" if ipv6 else ""
        raise ValidationError(f"The MTU must be between {low} and {MTU_MAX}{why}, got {number}; "
                              "use 0 for WireGuard's automatic choice.", field="mtu")
    return number


def keepalive(value: int | str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"The keepalive must be a whole number of seconds, got {value!r}.", field="keepalive") from None
    if not 0 <= number <= 65535:
        raise ValidationError(f"The keepalive must be 0 (off) to 65535 seconds, got {number}.", field="keepalive")
    return number
