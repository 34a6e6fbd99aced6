"""MDF freeze (LIFECYCLES section 5, last item; FAQ 4.4.10): unpaid bills of the activity's cycle or earlier."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from engine.errors import Conflict, NotFound, RuleViolation, ValidationError
from engine.mdf import add_bill, bills, pay_bill
from tests.helpers import counts

from .test_mdf_application import activity, apply, approved, claim_of, outbox, released, render_all
from .test_mdf_claim import materials

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 4, 10, 9, tzinfo=SH)  # billing cycle 2026-04


@pytest.fixture
def acme(runtime, people):
    released(runtime)
    return people


def bill(runtime, number: str, cycle: str, amount: str = "1200.00", partner: str = "ACME") -> dict:
    with runtime.db.write() as conn:
        return add_bill(conn, runtime, partner, number, cycle, amount, runtime.now(), "fiona")


def pay(runtime, number: str, amount: str) -> dict:
    with runtime.db.write() as conn:
        return pay_bill(conn, runtime, number, amount, runtime.now(), "fiona", reference="bank 42")


def submitted(runtime, people, start: datetime = START) -> dict:
    case = apply(runtime, people, activity(start))
    return runtime.fire(case["id"], "submit", people["acme-admin"])


def test_unpaid_bill_of_earlier_cycle_freezes_submitted_application_in_same_transaction(runtime, acme):
    case = submitted(runtime, acme)
    assert case["data"]["billing_cycle"] == "2026-04" and case["data"]["frozen"] is None
    out = bill(runtime, "B-2026-03", "2026-03")
    assert out["cases_changed"] == [case["id"]]
    view = runtime.get(case["id"])
    assert view["state"] == "submitted"  # a freeze is a flag: timers and tasks stay
    assert view["history"][-1]["event"] == "freeze" and view["history"][-1]["actor"] == "system"
    assert view["data"]["frozen"]["bills"] == [
        {"number": "B-2026-03", "cycle": "2026-03", "currency": "CNY", "outstanding": "1200.00"}]
    assert [t["name"] for t in view["timers"]] == ["lapse"]
    assert view["tasks"][0]["flags"] == ["frozen: unpaid bill B-2026-03 (cycle 2026-03, CNY 1,200.00 owed)"]
    assert outbox(runtime, "mdf_application/frozen")
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        runtime.fire(case["id"], "approve", acme["mona"])
    assert err.value.message == (
        "this MDF application is frozen (FAQ 4.4.10): unpaid bill B-2026-03 (cycle 2026-03, CNY 1,200.00 owed) in "
        "its billing cycle 2026-04 or earlier; it cannot be approved until they are paid")
    assert counts(runtime.db) == before


def test_bill_of_the_activity_month_freezes_later_month_does_not(runtime, acme):
    case = submitted(runtime, acme)
    assert bill(runtime, "B-2026-05", "2026-05")["cases_changed"] == []
    assert runtime.get(case["id"])["data"]["frozen"] is None
    assert bill(runtime, "B-2026-04", "2026-04")["cases_changed"] == [case["id"]]
    assert [b["number"] for b in runtime.get(case["id"])["data"]["frozen"]["bills"]] == ["B-2026-04"]


def test_partial_payment_keeps_frozen_full_payment_unfreezes_then_approve(runtime, acme):
    case = submitted(runtime, acme)
    bill(runtime, "B-1", "2026-02", "1000.00")
    bill(runtime, "B-2", "2026-03", "500.00")
    frozen = runtime.get(case["id"])["data"]["frozen"]["bills"]
    assert [(b["number"], b["outstanding"]) for b in frozen] == [("B-1", "1000.00"), ("B-2", "500.00")]
    pay(runtime, "B-1", "999.99")
    frozen = runtime.get(case["id"])["data"]["frozen"]["bills"]
    assert [(b["number"], b["outstanding"]) for b in frozen] == [("B-1", "0.01"), ("B-2", "500.00")]
    pay(runtime, "B-1", "0.01")
    with pytest.raises(RuleViolation, match="unpaid bill B-2 "):
        runtime.fire(case["id"], "approve", acme["mona"])
    out = pay(runtime, "B-2", "500.00")
    assert out["outstanding"] == "0.00" and out["paid_at"] is not None and out["cases_changed"] == [case["id"]]
    view = runtime.get(case["id"])
    assert view["data"]["frozen"] is None and view["history"][-1]["event"] == "unfreeze"
    assert outbox(runtime, "mdf_application/unfrozen")
    assert runtime.fire(case["id"], "approve", acme["mona"])["state"] == "approved"


def test_application_started_with_unpaid_bill_is_frozen_at_once(runtime, acme):
    bill(runtime, "B-OLD", "2025-12")
    case = submitted(runtime, acme)
    assert case["data"]["frozen"]["bills"][0]["number"] == "B-OLD"
    assert "frozen: unpaid bill B-OLD" in case["tasks"][0]["flags"][0]
    with pytest.raises(RuleViolation, match="frozen"):
        runtime.fire(case["id"], "approve", acme["mona"])


def test_changed_activity_month_refreezes_on_reapproval(runtime, acme):
    case = approved(runtime, acme, activity(START))
    bill(runtime, "B-2026-05", "2026-05")
    assert runtime.get(case["id"])["data"]["frozen"] is None
    moved = datetime(2026, 5, 12, 9, tzinfo=SH)  # same quarter, billing cycle 2026-05
    out = runtime.fire(case["id"], "change", acme["acme-admin"], {"changes": [
        {"activity": 1, "starts_at": moved.isoformat(), "ends_at": (moved + timedelta(hours=8)).isoformat()}]})
    assert out["data"]["billing_cycle"] == "2026-05" and out["data"]["frozen"]["bills"][0]["number"] == "B-2026-05"
    with pytest.raises(RuleViolation, match="cannot be approved until they are paid"):
        runtime.fire(case["id"], "approve", acme["mona"])


def test_frozen_claim_cannot_be_approved_or_paid_and_unfreezes_when_paid(runtime, acme):
    case = approved(runtime, acme, activity(START))
    runtime.advance_to(START + timedelta(hours=9))
    claim = claim_of(runtime, case["id"])
    assert claim["data"]["billing_cycle"] == "2026-04"
    runtime.fire(claim["id"], "submit", acme["acme-admin"], materials())
    bill(runtime, "B-APR", "2026-04", "88.00")
    with pytest.raises(RuleViolation, match="this MDF claim is frozen .*B-APR.*cannot be approved"):
        runtime.fire(claim["id"], "approve", acme["mona"])
    pay(runtime, "B-APR", "88.00")
    runtime.fire(claim["id"], "approve", acme["mona"])
    bill(runtime, "B-MAR", "2026-03", "10.00")
    view = runtime.get(claim["id"])
    assert "frozen: unpaid bill B-MAR" in view["tasks"][0]["flags"][0]
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        runtime.fire(claim["id"], "pay", acme["fiona"])
    assert "unpaid bill B-MAR (cycle 2026-03, CNY 10.00 owed)" in err.value.message
    assert "cannot be paid until they are paid" in err.value.message
    assert counts(runtime.db) == before
    pay(runtime, "B-MAR", "10.00")
    assert runtime.get(claim["id"])["tasks"][0]["flags"] == []
    assert runtime.fire(claim["id"], "pay", acme["fiona"])["state"] == "paid"
    assert {"mdf_claim/frozen", "mdf_claim/unfrozen"} <= {r.template for r in outbox(runtime)}
    assert render_all(runtime) > 5


def test_final_cases_and_other_partners_are_left_alone(runtime, acme):
    released(runtime, "NORD", "Logistics Cloud")
    mine = submitted(runtime, acme)
    runtime.fire(mine["id"], "reject", acme["mona"], comment="no")
    other = submitted(runtime, acme)
    out = bill(runtime, "N-1", "2026-01", partner="NORD")
    assert out["cases_changed"] == []
    assert runtime.get(other["id"])["data"]["frozen"] is None
    assert bill(runtime, "A-1", "2026-01")["cases_changed"] == [other["id"]]
    assert runtime.get(mine["id"])["history"][-1]["event"] == "reject"


def test_bad_bills_and_payments_refused_saving_nothing(runtime, acme):
    submitted(runtime, acme)
    bill(runtime, "B-1", "2026-03", "100.00")
    before = counts(runtime.db)
    with pytest.raises(Conflict, match="a bill numbered 'B-1' is already recorded"):
        bill(runtime, "B-1", "2026-03")
    with pytest.raises(ValidationError, match="cycle: '2026-13' is not a billing cycle as YYYY-MM"):
        bill(runtime, "B-2", "2026-13")
    with pytest.raises(ValidationError, match="amount: must not be below 0.01"):
        bill(runtime, "B-2", "2026-03", "0.00")
    with pytest.raises(NotFound, match="no partner with code 'NOPE'"):
        bill(runtime, "B-2", "2026-03", partner="NOPE")
    with pytest.raises(ValidationError, match=r"CNY 100.01 exceeds what bill B-1 still owes \(CNY 100.00\)"):
        pay(runtime, "B-1", "100.01")
    with pytest.raises(NotFound, match="no bill numbered 'B-9'"):
        pay(runtime, "B-9", "1.00")
    assert counts(runtime.db) == before
    pay(runtime, "B-1", "100.00")
    with pytest.raises(Conflict, match="already paid in full"):
        pay(runtime, "B-1", "1.00")


def test_cli_bills_add_pay_list_freeze_and_unfreeze(db_url, monkeypatch, runtime, people):
    from engine.cli import main

    released(runtime)
    case = submitted(runtime, people)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    run = CliRunner()
    out = run.invoke(main, ["bills", "add", "--partner", "ACME", "--number", "B-77", "--cycle", "2026-03",
                            "--amount", "300.00", "--as", "fiona"])
    assert out.exit_code == 0, out.stderr
    assert f"MDF cases frozen: {case['id']}" in out.stdout
    shown = json.loads(run.invoke(main, ["show", str(case["id"]), "--json"]).stdout)
    assert shown["data"]["frozen"]["bills"][0]["number"] == "B-77"
    refused = run.invoke(main, ["fire", str(case["id"]), "approve", "--as", "mona"])
    assert refused.exit_code == 1 and "unpaid bill B-77" in refused.stderr
    listed = json.loads(run.invoke(main, ["bills", "list", "--unpaid", "--json"]).stdout)
    assert [(b["number"], b["outstanding"]) for b in listed] == [("B-77", "300.00")]
    bad = run.invoke(main, ["bills", "add", "--partner", "ACME", "--number", "B-78", "--cycle", "March",
                            "--amount", "1"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: cycle:")
    out = run.invoke(main, ["bills", "pay", "B-77", "--as", "fiona"])
    assert out.exit_code == 0 and "CNY 0.00 still owed" in out.stdout and str(case["id"]) in out.stdout
    assert run.invoke(main, ["fire", str(case["id"]), "approve", "--as", "mona"]).exit_code == 0
    with runtime.db.read() as conn:
        assert bills(conn, "ACME", unpaid_only=True) == []
