"""Who is calling, and what their role lets them do. Enforced here, never in routes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dockyard.kernel.errors import Forbidden
from dockyard.models.enums import Role


class Permission(StrEnum):
    READ = "read this workspace"
    WRITE = "create or change projects, services and variables"
    DELETE = "delete projects and services"
    MANAGE_MEMBERS = "manage members"
    MANAGE_WORKSPACE = "rename or delete the workspace"
    GRANT_OWNER = "grant or remove the owner role"
    READ_AUDIT = "read the audit history"
    READ_METRICS = "read request metrics"
    MANAGE_SERVERS = "add or remove servers and provider credentials"
    READ_SECRETS = "read the passwords of stateful services"


_VIEWER = {Permission.READ}
_MEMBER = _VIEWER | {Permission.WRITE}
_ADMIN = _MEMBER | {Permission.DELETE, Permission.MANAGE_MEMBERS, Permission.READ_AUDIT,
                    Permission.READ_METRICS, Permission.MANAGE_SERVERS,
                    Permission.READ_SECRETS}
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.MEMBER: frozenset(_MEMBER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.OWNER: frozenset(Permission),
}
_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def role_within(role: Role, limit: Role) -> bool:
    """Whether `role` grants nothing beyond `limit`."""
    return _RANK[role] <= _RANK[limit]


def effective_role(membership: Role, cap: Role | None) -> Role:
    """The member's role, lowered to a token's cap when it has one."""
    return cap if cap is not None and role_within(cap, membership) else membership


@dataclass(frozen=True)
class Actor:
    """An authenticated caller acting inside one workspace."""

    user_id: str
    workspace_id: str
    role: Role
    token_id: str | None = None
    session_id: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"your role '{self.role.value}' may not {permission.value}")

    @property
    def audit_info(self) -> dict[str, Any]:
        return {"actor_user_id": self.user_id, "actor_token_id": self.token_id}
