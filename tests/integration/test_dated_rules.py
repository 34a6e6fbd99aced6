"""Dated rules: certificates renewed every January 31 by a calendar schedule; program windows closing on a date."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.cli import main
from engine.errors import RuleViolation, ValidationError
from engine.models import Outbox
from engine.windows import get_window, set_window, window_open, window_refusal
from tests.helpers import counts

OB = Outbox.__table__

#: 31 January 2027, 00:00 Beijing time.
RENEWAL_2027 = datetime(2027, 1, 30, 16, 0, tzinfo=UTC)


def start_worker_at(runtime, instant):
    """Jump the simulated clock over an idle stretch, then run the schedules once as a worker starting does
    (registering each schedule's next slot after `instant`)."""
    runtime.clock.set(instant)
    runtime.run_schedules(instant)


def certificate(runtime, people, partner="ACME", program="Cloud Solution Provider", tier="Advanced"):
    return runtime.start("partner_certificate", {"partner": partner, "program": program, "tier": tier}, people["alice"])


# -- certificate renewal ----------------------------------------------------------------------------------
def test_certificate_issued_valid_until_next_january_31(runtime, people):
    case = certificate(runtime, people)
    assert case["state"] == "active" and case["data"]["valid_until"] == "2027-01-31"


def test_certificates_renew_automatically_on_january_31(runtime, people):
    a = certificate(runtime, people)
    b = certificate(runtime, people, partner="NORD", program="Distribution", tier="Premier")
    revoked = certificate(runtime, people, program="Service", tier="Standard")
    runtime.fire(revoked["id"], "revoke", people["bob"], comment="program left")
    start_worker_at(runtime, datetime(2027, 1, 20, tzinfo=UTC))
    runtime.advance_to(RENEWAL_2027 - timedelta(minutes=1))
    assert runtime.get(a["id"])["data"]["valid_until"] == "2027-01-31"
    runtime.advance(timedelta(minutes=2))
    for case in (a, b):
        view = runtime.get(case["id"])
        assert view["data"]["valid_until"] == "2028-01-31" and view["data"]["renewals"] == 1
        last = view["history"][-1]
        assert (last["event"], last["actor"], last["at"]) == ("renew", "system", RENEWAL_2027.isoformat())
    assert runtime.get(revoked["id"])["state"] == "revoked"
    assert "renew" not in [h["event"] for h in runtime.get(revoked["id"])["history"]]
    with runtime.db.read() as conn:
        renewed = conn.execute(select(OB).where(OB.c.template == "partner_certificate/renewed")).all()
    assert {m.recipient for m in renewed} >= {"contact@acme.example", "kontakt@nord.example"}


def test_renewal_happens_at_january_31_midnight_beijing_to_the_second(runtime, people):
    a = certificate(runtime, people)
    start_worker_at(runtime, datetime(2027, 1, 20, tzinfo=UTC))
    runtime.advance_to(RENEWAL_2027 - timedelta(seconds=1))
    view = runtime.get(a["id"])
    assert view["data"]["valid_until"] == "2027-01-31" and view["data"]["renewals"] == 0
    runtime.advance_to(RENEWAL_2027)
    view = runtime.get(a["id"])
    assert view["data"]["valid_until"] == "2028-01-31" and view["data"]["renewals"] == 1
    assert (view["history"][-1]["event"], view["history"][-1]["at"]) == ("renew", RENEWAL_2027.isoformat())


def test_renewal_runs_once_per_year(runtime, people):
    a = certificate(runtime, people)
    start_worker_at(runtime, datetime(2027, 1, 20, tzinfo=UTC))
    runtime.advance_to(datetime(2028, 2, 1, tzinfo=UTC))
    view = runtime.get(a["id"])
    assert view["data"]["renewals"] == 2 and view["data"]["valid_until"] == "2029-01-31"
    with pytest.raises(RuleViolation, match="already renewed on January 31, 2028"):
        with runtime.db.write() as conn:
            from engine.actors import SYSTEM_ACTOR

            runtime.fire_in(conn, a["id"], "renew", SYSTEM_ACTOR, {"year": 2028}, None, None, runtime.now())


def test_renewal_skips_a_certificate_already_renewed_for_the_year(runtime, people):
    from engine.actors import SYSTEM_ACTOR
    from engine.models import Schedule

    a = certificate(runtime, people)
    b = certificate(runtime, people, partner="NORD", program="Distribution", tier="Premier")
    start_worker_at(runtime, datetime(2027, 1, 20, tzinfo=UTC))
    with runtime.db.write() as conn:
        runtime.fire_in(conn, a["id"], "renew", SYSTEM_ACTOR, {"year": 2027}, None, None, runtime.now())
    runtime.advance_to(RENEWAL_2027 + timedelta(minutes=1))
    assert [runtime.get(c["id"])["data"]["renewals"] for c in (a, b)] == [1, 1]
    sc = Schedule.__table__
    with runtime.db.read() as conn:
        last = conn.execute(select(sc.c.last_slot, sc.c.last_result).where(sc.c.name == "certificate_renewal")).one()
    assert (last.last_slot, last.last_result) == (RENEWAL_2027, "renewed 1 certificate(s) for 2027")


def test_renewal_cannot_be_fired_by_people(runtime, people):
    from engine.errors import Forbidden

    a = certificate(runtime, people)
    with pytest.raises(Forbidden, match="happens automatically"):
        runtime.fire(a["id"], "renew", people["alice"], {"year": 2027})


def test_certificate_templates_render(runtime, people):
    from notifications.render import render_message

    a = certificate(runtime, people)
    start_worker_at(runtime, datetime(2027, 1, 20, tzinfo=UTC))
    runtime.advance_to(RENEWAL_2027 + timedelta(minutes=1))
    runtime.fire(a["id"], "revoke", people["alice"], comment="<b>left</b>")
    with runtime.db.read() as conn:
        rows = conn.execute(select(OB).where(OB.c.template.like("partner_certificate/%"))).all()
    assert {r.template.split("/")[1] for r in rows} == {"issued", "renewed", "revoked"}
    for row in rows:
        for locale in ("en", "zh"):
            msg = render_message({**row._mapping, "locale": locale})
            assert msg.subject and "<b>left</b>" not in msg.html


# -- program windows ---------------------------------------------------------------------------------------
def test_competency_incentive_window_is_built_in_closed_on_2024_12_31(runtime):
    with runtime.db.read() as conn:
        row = get_window(conn, "competency_incentive")
        assert row["closes_on"] == date(2024, 12, 31)
        assert window_refusal(conn, "competency_incentive", date(2024, 12, 31)) is None
        assert window_refusal(conn, "competency_incentive", date(2025, 1, 1)) == \
            "the competency incentive program closed on 2024-12-31"
        assert window_refusal(conn, "no_such_program", date(2030, 1, 1)) is None


def competency(runtime, people):
    return runtime.start("incentive_payout", {"partner": "ACME", "kind": "competency", "period": "2024-Q4",
                                              "amount": "800.00", "currency": "CNY"}, people["fiona"])


def test_competency_payout_accepted_on_last_day_in_beijing(runtime, people):
    runtime.clock.set(datetime(2024, 12, 31, 15, 59, tzinfo=UTC))  # 23:59 on 31 December 2024 in Beijing
    case = competency(runtime, people)
    assert case["state"] == "awaiting_application" and case["data"]["program"] == "competency_incentive"


def test_competency_payout_refused_after_window_closed(runtime, people):
    runtime.clock.set(datetime(2024, 12, 31, 16, 0, tzinfo=UTC))  # 00:00 on 1 January 2025 in Beijing
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="the competency incentive program closed on 2024-12-31"):
        competency(runtime, people)
    assert counts(runtime.db) == before


def test_application_refused_once_the_window_closed(runtime, people):
    runtime.clock.set(datetime(2024, 12, 30, 2, 0, tzinfo=UTC))
    case = competency(runtime, people)
    runtime.clock.set(datetime(2025, 1, 2, 2, 0, tzinfo=UTC))
    with pytest.raises(RuleViolation, match="closed on 2024-12-31"):
        runtime.fire(case["id"], "apply", people["acme-admin"], {"method": "cash_coupon"})


def test_window_guard_factory_reads_partner_local_date(runtime, people):
    """A window closing on 2026-03-01 is still open in Berlin when Beijing already has 2 March."""
    with runtime.db.write() as conn:
        set_window(conn, "spring_campaign", "spring campaign", opens_on=date(2026, 2, 1), closes_on=date(2026, 3, 1))
    guard = window_open("spring_campaign")
    from engine.calendar import calendar_for
    from engine.definition import Ctx

    instant = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)  # 2 March 06:00 Beijing, 1 March 23:00 Berlin
    with runtime.db.read() as conn:
        def ctx(tz, region):
            return Ctx(workflow=None, instance_id=None, state=None, data={}, payload={}, actor=None, now=instant,
                       calendar=calendar_for(region, tz), partner=None, conn=conn)

        assert guard(ctx("Europe/Berlin", "DE")) is None
        assert guard(ctx("Asia/Shanghai", "CN")) == "the spring campaign program closed on 2026-03-01"
        early = Ctx(workflow=None, instance_id=None, state=None, data={}, payload={}, actor=None,
                    now=datetime(2026, 1, 20, tzinfo=UTC), calendar=calendar_for(None, None), partner=None, conn=conn)
        assert guard(early) == "the spring campaign program opens on 2026-02-01"


def test_window_dates_validated(runtime):
    with runtime.db.write() as conn:
        with pytest.raises(ValidationError, match="closes_on: 2026-01-01 is before the opening date 2026-02-01"):
            set_window(conn, "x", "x", opens_on=date(2026, 2, 1), closes_on=date(2026, 1, 1))


def test_programs_cli_lists_and_sets_windows(db_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    out = runner.invoke(main, ["programs", "set", "summer", "--title", "summer promotion", "--closes", "2026-08-31"])
    assert out.exit_code == 0, out.output
    listed = json.loads(runner.invoke(main, ["programs", "list"]).stdout)
    assert {(w["code"], w["closes_on"]) for w in listed} == {("competency_incentive", "2024-12-31"),
                                                             ("summer", "2026-08-31")}
    # a row overrides the built-in window (for example to extend it)
    assert runner.invoke(main, ["programs", "set", "competency_incentive", "--title", "competency incentive",
                                "--closes", "2025-03-31"]).exit_code == 0
    listed = json.loads(runner.invoke(main, ["programs", "list"]).stdout)
    assert ("competency_incentive", "2025-03-31") in {(w["code"], w["closes_on"]) for w in listed}
    bad = runner.invoke(main, ["programs", "set", "y", "--title", "y", "--closes", "31.08.2026"])
    assert bad.exit_code == 1 and "closes: '31.08.2026' is not a date" in bad.stderr
