"""Demo data for `partnerflow serve --demo`: partners, users with roles, and cases in several states.

Idempotent: a second run finds the demo partner and does nothing. Each
lifecycle module may add its own sample cases with `seed_demo(runtime, people)`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from .actors import Actor
from .directory import add_partner, add_user
from .models import Partner

log = logging.getLogger("partnerflow.demo")

DEMO_PASSWORD = "partnerflow-demo"

PARTNERS = [
    {"code": "ACME", "name": "Acme Cloud Services Co., Ltd.", "program": "Cloud Solution Provider", "tier": "Advanced",
     "region": "CN", "timezone": "Asia/Shanghai", "admin_login": "acme-admin", "contact_email": "contact@acme.example",
     "data": {"recipients": {"finance": ["finance@acme.example"]}}},
    {"code": "NORD", "name": "Nordlicht Systems GmbH", "program": "Distribution", "tier": "Premier",
     "region": "DE", "timezone": "Europe/Berlin", "admin_login": "nord-admin", "contact_email": "kontakt@nord.example"},
]

USERS = [
    {"login": "alice", "name": "Alice Wang (ecosystem manager)", "email": "alice@vendor.example", "roles": ["ecosystem_manager"]},
    {"login": "mona", "name": "Mona Li (MDF owner)", "email": "mona@vendor.example", "roles": ["mdf_owner"]},
    {"login": "oscar", "name": "Oscar Chen (operations manager)", "email": "oscar@vendor.example", "roles": ["operations_manager"]},
    {"login": "fiona", "name": "Fiona Zhao (finance)", "email": "fiona@vendor.example", "roles": ["finance"]},
    {"login": "paul", "name": "Paul Sun (procurement)", "email": "paul@vendor.example", "roles": ["procurement"]},
    {"login": "root", "name": "Administrator", "email": "root@vendor.example", "roles": ["admin"]},
    {"login": "acme-admin", "name": "Zhang Wei (Acme admin)", "email": "admin@acme.example", "roles": ["partner_admin"],
     "partner": "ACME", "locale": "zh", "personal_info_complete": True},
    {"login": "acme-dev1", "name": "Li Na", "email": "li.na@acme.example", "roles": ["partner_member"],
     "partner": "ACME", "personal_info_complete": True},
    {"login": "acme-dev2", "name": "Wang Fang", "email": "wang.fang@acme.example", "roles": ["partner_member"],
     "partner": "ACME", "personal_info_complete": True},
    {"login": "nord-admin", "name": "Jonas Weber (Nordlicht admin)", "email": "admin@nord.example",
     "roles": ["partner_admin"], "partner": "NORD", "timezone": "Europe/Berlin", "personal_info_complete": True},
]


@dataclass
class DemoPeople:
    """Who the demo seeded, for lifecycle seeders: actors by login, partners by code."""

    runtime: object
    actors: dict[str, Actor] = field(default_factory=dict)
    partners: dict[str, dict] = field(default_factory=dict)

    def actor(self, login: str) -> Actor:
        if login not in self.actors:
            self.actors[login] = self.runtime.actor(login)
        return self.actors[login]


def seed(runtime) -> str:
    now = runtime.now()
    with runtime.db.write() as conn:
        if conn.execute(select(Partner.__table__.c.id).where(Partner.__table__.c.code == "ACME")).first():
            return "demo data already present"
        people = {}
        for p in PARTNERS:
            people[p["code"]] = add_partner(conn, p, now)
        for u in USERS:
            add_user(conn, {**u, "password": DEMO_PASSWORD}, now)
    people_obj = DemoPeople(runtime, partners=people)
    admin = people_obj.actor("acme-admin")
    alice = people_obj.actor("alice")
    runtime.start("exam_voucher", {"exam": "Cloud Architect Associate", "users": ["acme-dev1"]}, admin)
    approved = runtime.start("exam_voucher", {"exam": "Big Data Professional", "users": ["acme-dev1", "acme-dev2"]}, admin)
    runtime.fire(approved["id"], "approve", alice, comment="Budget available")
    issued = runtime.start("exam_voucher", {"exam": "Security Specialist", "users": ["acme-dev2"]}, admin)
    runtime.fire(issued["id"], "approve", alice)
    runtime.fire(issued["id"], "issue", people_obj.actor("oscar"), {"codes": ["SEC-7741-AX"]})
    seeded = ["exam_voucher"]
    for seeder in runtime.registry.demo_seeders:
        try:
            seeder(runtime, people_obj)
            seeded.append(seeder.__module__.rsplit(".", 1)[-1])
        except Exception:  # noqa: BLE001 - one lifecycle's sample must not hide the others
            log.exception("demo seeder %s failed", seeder.__module__)
    return (f"demo data seeded: {len(PARTNERS)} partners, {len(USERS)} users (password {DEMO_PASSWORD!r}), "
            f"cases of {', '.join(seeded)}")
