"""Who is asking: the identity every core function checks permissions against.

The UI, the REST API and the CLI each turn their own credentials (login
session, bearer token, local data-dir access) into a :class:`Principal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hivemind_core.errors import PermissionDeniedError

Role = Literal["admin", "analyst", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "analyst", "viewer")


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_submit(self) -> bool:
        """Viewers only look; analysts and admins run jobs."""
        return self.role in ("admin", "analyst")

    def can_see(self, owner: str) -> bool:
        """Users see their own things; admins see everyone's."""
        return self.is_admin or owner == self.username


def require_task_user(who: Principal) -> Principal:
    """``who``, if their role may use tasks (list, show, submit, ...); a viewer gets
    PermissionDeniedError. The one check the REST API and the CLI share."""
    if not who.can_submit:
        raise PermissionDeniedError("Viewers cannot use tasks; ask an administrator for the analyst role.")
    return who


# The CLI runs with direct access to the data dir, which is admin power already.
LOCAL_ADMIN = Principal(username="admin", role="admin")
