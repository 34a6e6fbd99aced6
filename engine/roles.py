"""Role names. Operators are vendor employees; partner roles belong to one partner's people."""
from __future__ import annotations

PARTNER_ADMIN = "partner_admin"
PARTNER_MEMBER = "partner_member"
ECOSYSTEM_MANAGER = "ecosystem_manager"
MDF_OWNER = "mdf_owner"
PROCUREMENT = "procurement"
OPERATIONS_MANAGER = "operations_manager"
FINANCE = "finance"
ADMIN = "admin"
#: A person account with no partner role (an invitee, a customer).
ACCOUNT = "account"
CUSTOMER = "customer"
#: Timers and calendar schedules act as the system.
SYSTEM = "system"

PARTNER_ROLES = frozenset({PARTNER_ADMIN, PARTNER_MEMBER})
OPERATOR_ROLES = frozenset({ECOSYSTEM_MANAGER, MDF_OWNER, PROCUREMENT, OPERATIONS_MANAGER, FINANCE})
PERSON_ROLES = frozenset({ACCOUNT, CUSTOMER})
ALL_ROLES = PARTNER_ROLES | OPERATOR_ROLES | PERSON_ROLES | {ADMIN}
