"""Reference tables for accounts: person accounts (login IDs), member-partner associations, procurement suppliers.

These are the records the authentication, member-invitation and
registration-link lifecycles check (LIFECYCLES sections 1 to 3), so their
rules read facts, never flags passed in by the caller. Services in
`engine/accounts.py`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Id


class Account(Base):
    """A login ID on the vendor's cloud: a person, an enterprise-authenticated account, or a partner account."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: The login ID a partner admin types to invite (FAQ 3.3.2); unique, compared case-insensitively.
    login_id: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    #: person, enterprise (authenticated as an enterprise) or partner (the account of a partner company).
    kind: Mapped[str] = mapped_column(String(16), default="person")
    #: ISO 3166-1 alpha-2; changeable only through a service ticket (FAQ 2.1.10).
    registered_country: Mapped[str] = mapped_column(String(2))
    #: For a partner account: the partner it belongs to.
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    #: Certificates the person holds; they count for the partner they are associated with (FAQ 3.3.4).
    certificates: Mapped[list[Any]] = mapped_column(default=list)
    #: The registration-link case that created this account, if any (FAQ 5.2.15).
    registration_case_id: Mapped[int | None] = mapped_column(Id)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class AccountAssociation(Base):
    """A member's association with a partner: from `associated_at` until `ended_at` (open while current)."""

    __tablename__ = "account_associations"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    associated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(128))
    end_reason: Mapped[str | None] = mapped_column(Text)
    #: The member-invitation case whose acceptance created the association.
    invitation_case_id: Mapped[int | None] = mapped_column(Id)

    __table_args__ = (
        Index("ix_account_associations_account", "account_id", "ended_at"),
        Index("ix_account_associations_partner", "partner_id", "ended_at"),
    )


class ProcurementSupplier(Base):
    """A partner that is already a supplier in the vendor's procurement system (FAQ 2.1.9)."""

    __tablename__ = "procurement_suppliers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), unique=True)
    supplier_number: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class CountryChange(Base):
    """Audit of a registered-country change, made only through a service ticket with a reason (FAQ 2.1.10)."""

    __tablename__ = "account_country_changes"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    old_country: Mapped[str] = mapped_column(String(2))
    new_country: Mapped[str] = mapped_column(String(2))
    ticket: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime]
