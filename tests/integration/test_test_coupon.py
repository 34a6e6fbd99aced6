"""Test-coupon requests: field rules with field-named errors, cumulative tier limit, issue, consumption, warnings."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from engine.errors import RuleViolation, ValidationError
from engine.incentives import record_consumption, revenue
from engine.models import Instance, Outbox
from tests.helpers import counts
from workflows.test_coupon_request import FORBIDDEN_NAME_CHARS, MAX_FILE_BYTES

I = Instance.__table__
OB = Outbox.__table__

VALID = {
    "solution": "Smart Retail Analytics",
    "amount": "1000.00",
    "description": "Load test of the analytics pipeline before the customer pilot.",
    "proof_files": [{"name": "architecture.pdf", "size_bytes": 1024}, {"name": "plan_v2.docx", "size_bytes": 2048}],
    "resource_config_link": "https://console.example.com/configs/4711",
    "resource_start": "2026-03-10",
    "resource_end": "2026-04-10",
}


def request(runtime, people, who="acme-dev1", **changes):
    return runtime.start("test_coupon_request", {**VALID, **changes}, people[who])


def refused(runtime, people, field, match, **changes):
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        request(runtime, people, **changes)
    assert err.value.field == field and match in err.value.reason, err.value.message
    assert counts(runtime.db) == before


def mails(runtime, template):
    with runtime.db.read() as conn:
        return conn.execute(select(OB).where(OB.c.template == template).order_by(OB.c.id)).all()


# -- field rules -------------------------------------------------------------------------------------
def test_valid_request_waits_for_ecosystem_manager(runtime, people):
    case = request(runtime, people)
    assert case["state"] == "submitted"
    assert [(t["role"], t["title"]) for t in case["tasks"]] == [("ecosystem_manager", "Decide on the test coupon request")]
    assert {m.recipient for m in mails(runtime, "test_coupon_request/submitted")} == {"alice@example.com", "bob@example.com"}


def test_description_of_1000_characters_allowed_1001_refused(runtime, people):
    assert request(runtime, people, description="d" * 1000)["state"] == "submitted"
    refused(runtime, people, "description", "1001 characters long; at most 1000", description="d" * 1001)


def test_resource_config_link_of_1000_characters_allowed_1001_refused(runtime, people):
    base = "https://console.example.com/"
    assert request(runtime, people, resource_config_link=base + "a" * (1000 - len(base)))["state"] == "submitted"
    refused(runtime, people, "resource_config_link", "at most 1000",
            resource_config_link=base + "a" * (1001 - len(base)))
    refused(runtime, people, "resource_config_link", "http:// or https://", resource_config_link="ftp://x.example/y")


def test_proof_file_of_21_mb_allowed_one_byte_more_refused(runtime, people):
    assert request(runtime, people, proof_files=[{"name": "big.zip", "size_bytes": MAX_FILE_BYTES}])["state"] == "submitted"
    refused(runtime, people, "proof_files[1].size_bytes", "at most 21 MB (22020096 bytes)",
            proof_files=[{"name": "a.pdf", "size_bytes": 10}, {"name": "big.zip", "size_bytes": MAX_FILE_BYTES + 1}])


@pytest.mark.parametrize("char", list(FORBIDDEN_NAME_CHARS))
def test_proof_file_name_with_forbidden_character_refused(runtime, people, char):
    refused(runtime, people, "proof_files[0].name", "file names may not contain",
            proof_files=[{"name": f"plan{char}v2.pdf", "size_bytes": 10}])


def test_forbidden_characters_are_exactly_the_listed_ones():
    assert set(FORBIDDEN_NAME_CHARS) == set('!;?"@#$%^&*->|')


def test_proof_file_type_not_listed_refused_and_files_required(runtime, people):
    refused(runtime, people, "proof_files[0].name", "not an accepted type",
            proof_files=[{"name": "setup.exe", "size_bytes": 10}])
    refused(runtime, people, "proof_files", "at least 1", proof_files=[])
    assert request(runtime, people, proof_files=[{"name": "Screen Shot (1).PNG", "size_bytes": 5}])["state"] == "submitted"


def test_resource_start_must_be_before_end(runtime, people):
    refused(runtime, people, "resource_end", "must be after resource_start 2026-03-10", resource_end="2026-03-10")
    refused(runtime, people, "resource_end", "must be after resource_start", resource_end="2026-03-09")
    assert request(runtime, people, resource_end="2026-03-11")["state"] == "submitted"


def test_amount_and_solution_rules(runtime, people):
    refused(runtime, people, "amount", "must not be below 0.01", amount="0.00")
    refused(runtime, people, "amount", "never a float", amount=10.5)
    refused(runtime, people, "solution", "is required", solution="  ")


# -- cumulative tier limit (Advanced: CNY 30,000.00 a year) ---------------------------------------------
def test_cumulative_amount_exactly_at_tier_limit_allowed_then_0_01_refused(runtime, people):
    request(runtime, people, amount="20000.00")
    assert request(runtime, people, amount="10000.00")["state"] == "submitted"
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=r"total CNY 30000.01, above the Advanced tier limit of CNY 30000.00 "
                                            r"\(already requested 30000.00; remaining 0.00\)"):
        request(runtime, people, amount="0.01")
    assert counts(runtime.db) == before


def test_cumulative_amount_0_01_over_limit_refused_naming_remaining(runtime, people):
    request(runtime, people, amount="20000.00")
    with pytest.raises(RuleViolation, match="remaining 10000.00"):
        request(runtime, people, amount="10000.01")


def test_rejected_and_withdrawn_requests_do_not_count(runtime, people):
    a = request(runtime, people, amount="20000.00")
    runtime.fire(a["id"], "reject", people["alice"], comment="no pilot customer")
    b = request(runtime, people, amount="10000.00", who="acme-dev2")
    runtime.fire(b["id"], "withdraw", people["acme-dev2"])
    assert request(runtime, people, amount="30000.00")["state"] == "submitted"


def test_tier_limits_per_tier_and_setting(runtime, people, monkeypatch):
    # NORD is Standard: CNY 10,000.00
    with pytest.raises(RuleViolation, match="Standard tier limit of CNY 10000.00"):
        request(runtime, people, who="nord-dev", amount="10000.01")
    monkeypatch.setenv("PARTNERFLOW_TEST_COUPON_LIMIT_STANDARD", "20000")
    assert request(runtime, people, who="nord-dev", amount="10000.01")["state"] == "submitted"


def test_limit_counts_the_calendar_year(runtime, people):
    request(runtime, people, amount="30000.00")
    runtime.clock.set(datetime(2026, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 on 31 December in Beijing
    with pytest.raises(RuleViolation, match="test-coupon requests of 2026"):
        request(runtime, people, amount="1.00")
    runtime.clock.set(datetime(2026, 12, 31, 16, 0, tzinfo=UTC))  # 1 January 2027 in Beijing
    assert request(runtime, people, amount="30000.00", resource_start="2027-01-02",
                   resource_end="2027-02-01")["state"] == "submitted"


# -- issue, consumption, warnings -------------------------------------------------------------------------------------
@pytest.fixture
def issued(runtime, people):
    case = request(runtime, people)
    return runtime.fire(case["id"], "approve", people["alice"])


def test_approve_issues_the_coupon(runtime, people, issued):
    assert issued["state"] == "issued"
    assert (issued["data"]["coupon_code"], issued["data"]["balance"]) == (f"TC-{issued['id']}", "1000.00")
    assert issued["data"]["valid_until"] == "2026-04-10T15:59:59+00:00"
    assert {m.recipient for m in mails(runtime, "test_coupon_request/issued")} == {"contact@acme.example",
                                                                                   "acme-admin@example.com"}


def consume(runtime, people, case_id, amount):
    return runtime.fire(case_id, "record_consumption", people["oscar"], {"amount": amount})


def test_low_balance_warnings_once_per_threshold(runtime, people, issued):
    cid = issued["id"]
    assert consume(runtime, people, cid, "400.00")["data"]["balance"] == "600.00"
    assert mails(runtime, "test_coupon_request/low_balance") == []
    assert consume(runtime, people, cid, "100.00")["data"]["warned"] == [50]  # exactly 50 % left
    assert consume(runtime, people, cid, "100.00")["data"]["warned"] == [50]  # 40 %: no new warning
    after = consume(runtime, people, cid, "310.00")  # 9 % left: crosses 20 % and 10 % at once
    assert after["data"]["warned"] == [50, 20, 10] and after["data"]["balance"] == "90.00"
    warnings = mails(runtime, "test_coupon_request/low_balance")
    assert [m.context["data"]["warning"] for m in warnings if m.recipient == "contact@acme.example"] == [50, 10]
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="exceeds the coupon's remaining balance of 90.00"):
        consume(runtime, people, cid, "90.01")
    assert counts(runtime.db) == before
    done = consume(runtime, people, cid, "90.00")
    assert done["state"] == "exhausted" and done["data"]["balance"] == "0.00"
    assert mails(runtime, "test_coupon_request/exhausted")


def test_warning_thresholds_are_a_setting(runtime, people, issued, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_TEST_COUPON_WARNING_PERCENTS", "75")
    assert consume(runtime, people, issued["id"], "250.00")["data"]["warning"] == 75


def test_consumption_never_counts_as_revenue(runtime, people, issued):
    start, end = runtime.now() - timedelta(days=1), runtime.now() + timedelta(days=1)
    partner_id = people["acme-admin"].partner_id
    with runtime.db.write() as conn:
        record_consumption(conn, partner_id=partner_id, source="customer", amount=Decimal("500.00"), currency="CNY",
                           at=runtime.now(), by="system")
    consume(runtime, people, issued["id"], "300.00")
    with runtime.db.read() as conn:
        assert revenue(conn, partner_id, start, end) == Decimal("500.00")


def test_partner_cannot_record_consumption(runtime, people, issued):
    from engine.errors import Forbidden

    with pytest.raises(Forbidden):
        runtime.fire(issued["id"], "record_consumption", people["acme-admin"], {"amount": "1.00"})


def test_coupon_expires_at_end_of_resource_use(runtime, people, issued):
    end = datetime(2026, 4, 10, 15, 59, 59, tzinfo=UTC)
    runtime.advance_to(end - timedelta(minutes=1))
    assert runtime.get(issued["id"])["state"] == "issued"
    runtime.advance(timedelta(minutes=2))
    assert runtime.get(issued["id"])["state"] == "expired"


def test_test_coupon_templates_render(runtime, people, issued):
    from notifications.render import render_message

    consume(runtime, people, issued["id"], "500.00")
    r = request(runtime, people, description="<script>alert(1)</script>")
    runtime.fire(r["id"], "reject", people["alice"], comment="<b>no</b>")
    runtime.advance(timedelta(days=60))
    done = runtime.fire(runtime.fire(request(runtime, people, resource_start="2026-05-01",
                                             resource_end="2026-06-01")["id"], "approve", people["bob"])["id"],
                        "record_consumption", people["oscar"], {"amount": "1000.00"})
    assert done["state"] == "exhausted"
    with runtime.db.read() as conn:
        rows = conn.execute(select(OB).where(OB.c.template.like("test_coupon_request/%"))).all()
    assert {r.template.split("/")[1] for r in rows} == {"submitted", "issued", "rejected", "low_balance", "exhausted",
                                                        "expired"}
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**row._mapping, "locale": locale})
            assert msg.subject and "<script>" not in msg.html and "<b>no</b>" not in msg.html
