"""Account roles, spelled as the Redis Cloud console spells them."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OWNER = "Owner"
    MEMBER = "Member"
    VIEWER = "Viewer"
    LOGS_VIEWER = "Logs Viewer"
    MANAGER = "Manager"
    BILLING_ADMIN = "Billing Admin"


#: Roles whose users may hold secret keys (Redis Cloud: owner, viewer, logs viewer).
KEY_HOLDER_ROLES = frozenset({Role.OWNER, Role.VIEWER, Role.LOGS_VIEWER})

ROLE_NAMES = tuple(role.value for role in Role)
