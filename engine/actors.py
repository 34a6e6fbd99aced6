"""Who acts: a user with roles (and maybe a partner), or the built-in system actor."""
from __future__ import annotations

from dataclasses import dataclass, field

from .roles import ADMIN, OPERATOR_ROLES, SYSTEM


@dataclass(frozen=True)
class Actor:
    login: str
    roles: frozenset[str]
    partner_id: int | None = None
    name: str = ""
    email: str | None = None
    locale: str = "en"
    timezone: str | None = None
    #: Logins this actor is a delegate of (they may not approve what those people authored).
    delegate_of: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_system(self) -> bool:
        return SYSTEM in self.roles

    def may(self, roles: frozenset[str]) -> bool:
        """May this actor fire something that needs any of `roles`?

        The system fires only system events. An admin may act for any operator role.
        """
        if self.is_system:
            return SYSTEM in roles
        if self.roles & roles:
            return True
        return ADMIN in self.roles and bool(roles & OPERATOR_ROLES)


SYSTEM_ACTOR = Actor(login="system", roles=frozenset({SYSTEM}), name="partnerflow")
