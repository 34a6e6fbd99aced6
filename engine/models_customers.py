"""Customer reference data: accounts the customer lifecycles check (LIFECYCLES section 4).

A customer is a vendor account identified by its normalised email address
(see `engine.customers.normalise_email`). The association rules of FAQ 5.3.1
read the account attributes stored here (arrears, special contract, internal
account, reserved instances, balance, top-up rewards, outstanding invoices)
and the current partner and model, never flags passed in by a caller.

Amounts are RMB and stored as exact decimal text (`DecimalText`), so SQLite
never turns money into floating point.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

# DecimalText is also imported from here by name: migration 0201 refers to engine.models_customers.DecimalText.
from .models import Base, DecimalText, Id


class Customer(Base):
    """A customer account: attributes the association rules check, and its one partner and model."""

    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    #: Normalised (trimmed, lower-case) email address: the customer's identity for locks and lookups.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    #: ISO 3166 alpha-2 country of the account's registration.
    country: Mapped[str] = mapped_column(String(2))
    #: Login of the customer's own user (role customer), when the customer uses the web inbox.
    login: Mapped[str | None] = mapped_column(String(128), unique=True)
    in_arrears: Mapped[bool] = mapped_column(Boolean, default=False)
    special_contract: Mapped[bool] = mapped_column(Boolean, default=False)
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Cash balance on the account (RMB).
    balance: Mapped[Decimal] = mapped_column(DecimalText(), default=Decimal("0.00"))
    #: Top-up rewards (bonus credit granted for top-ups) still on the account (RMB).
    topup_rewards: Mapped[Decimal] = mapped_column(DecimalText(), default=Decimal("0.00"))
    #: Invoices issued but not yet settled (RMB).
    outstanding_invoices: Mapped[Decimal] = mapped_column(DecimalText(), default=Decimal("0.00"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    #: referral or reseller, set with the partner; permanent until an operator changes it.
    model: Mapped[str | None] = mapped_column(String(16))
    associated_at: Mapped[datetime | None]
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ReservedInstance(Base):
    """A reserved instance of a customer; an unexpired one blocks association (FAQ 5.3.1)."""

    __tablename__ = "customer_reserved_instances"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime]
