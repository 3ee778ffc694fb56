"""Peer names and the file names their configs download as.

A peer name is free text for people (any script, spaces allowed) but never
holds control characters, which would break config comments, logs and tables.
The download name must work as a WireGuard tunnel name everywhere: the apps
name the tunnel after the file, Linux limits interface names to 15 characters
of ``[a-zA-Z0-9_=+.-]``, and Windows additionally rejects reserved device names
(``CON``, ``COM1`` …, also before a dot), ``$`` and a leading or trailing dot.
"""

from __future__ import annotations

import re
import unicodedata

from hivemind_core.errors import ValidationError

MAX_NAME_LENGTH = 64
MAX_TUNNEL_NAME = 15
FALLBACK_TUNNEL_NAME = "hivemind"
_TUNNEL_CHARS = re.compile(r"[^a-zA-Z0-9_=+.-]+")
TUNNEL_NAME_RE = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")
WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(1, 10)} | {
    f"LPT{i}" for i in range(1, 10)
}


def validate_peer_name(name: str) -> str:
    """The name with surrounding blanks removed; :class:`ValidationError` when unusable."""
    value = unicodedata.normalize("NFC", name or "").strip()
    if not value:
        raise ValidationError("Give the peer a name, e.g. 'alice-laptop'.", field="name")
    if len(value) > MAX_NAME_LENGTH:
        raise ValidationError(
            f"A peer name can be at most {MAX_NAME_LENGTH} characters; this one has {len(value)}.",
            field="name",
        )
    bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")]
    if bad:
        raise ValidationError(
            f"A peer name cannot contain control or invisible characters (found {bad[0]!r}); "
            "use letters, digits, spaces and punctuation.",
            field="name",
        )
    return value


def is_valid_tunnel_name(name: str) -> bool:
    """True when ``name`` is a tunnel name that Linux, Windows and macOS all accept."""
    if not TUNNEL_NAME_RE.match(name) or name.startswith((".", "-")) or name.endswith("."):
        return False
    return name.split(".", 1)[0].upper() not in WINDOWS_RESERVED


def tunnel_name(name: str) -> str:
    """A tunnel name derived from a peer name (ASCII letters kept, the rest replaced)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    candidate = _TUNNEL_CHARS.sub("-", ascii_name)
    candidate = re.sub(r"-{2,}", "-", candidate).strip(".-")[:MAX_TUNNEL_NAME].rstrip(".-")
    if not candidate:
        return FALLBACK_TUNNEL_NAME
    if candidate.split(".", 1)[0].upper() in WINDOWS_RESERVED:
        candidate = ("wg-" + candidate)[:MAX_TUNNEL_NAME].rstrip(".-")
    return candidate if is_valid_tunnel_name(candidate) else FALLBACK_TUNNEL_NAME


def config_file_name(name: str) -> str:
    """The download file name for a peer's config: ``<tunnel name>.conf``."""
    return f"{tunnel_name(name)}.conf"


def template_file_name(file_name: str) -> str:
    """The download name of a peer's config without its private key (a template to fill in),
    so it is never mistaken for, or saved over, the complete ``NAME.conf`` shown at creation."""
    return f"{file_name.removesuffix('.conf')}-template.conf"
