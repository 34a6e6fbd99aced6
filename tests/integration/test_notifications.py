"""Notification services on a real database: partner recipients, reminder opt-out, digests, mail preview CLI."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine.calendar import calendar_for
from engine.cli import main
from engine.directory import add_user
from engine.errors import Conflict, NotFound, ValidationError
from engine.models import Outbox
from notifications.digest import next_digest_slot, run_digests
from notifications.dispatcher import Dispatcher, SmtpSettings, heartbeat_hook, is_task_announcement
from notifications.outbox import get_message, list_messages, retry_message
from notifications.preferences import (
    partner_recipients,
    preferences,
    set_digest,
    set_partner_recipients,
    set_reminder_opt_out,
)
from notifications.render import render_message
from tests.helpers import counts

OB = Outbox.__table__
VOUCHER = {"exam": "Cloud Architect", "users": ["acme-dev1"]}


@pytest.fixture(autouse=True)
def _capture(monkeypatch):
    """No SMTP host: the dispatcher captures messages for the preview."""
    for key in ("PARTNERFLOW_SMTP_HOST", "PARTNERFLOW_SMTP_PORT", "PARTNERFLOW_BASE_URL"):
        monkeypatch.delenv(key, raising=False)


def outbox(db, **where):
    with db.read() as conn:
        query = select(OB).order_by(OB.c.id)
        for key, value in where.items():
            query = query.where(OB.c[key] == value)
        return conn.execute(query).all()


def capture(runtime):
    return Dispatcher(runtime, SmtpSettings.from_env()).dispatch()


# ------------------------------------------------------------------ partner recipients (LIFECYCLES 10)
def test_extra_recipients_of_a_category_receive_that_category(runtime, people):
    with runtime.db.write() as conn:
        set_partner_recipients(conn, "ACME", "general", add=["ops@acme.example"])
        set_partner_recipients(conn, "ACME", "finance", add=["ap@acme.example"])
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    approved = {r.recipient for r in outbox(runtime.db, template="exam_voucher/approved")}
    assert approved == {"acme-admin@example.com", "contact@acme.example", "ops@acme.example", "oscar@example.com"}
    assert "ap@acme.example" not in {r.recipient for r in outbox(runtime.db)}  # finance only gets finance


def test_recipients_are_added_once_removed_and_listed(runtime, people):
    with runtime.db.write() as conn:
        set_partner_recipients(conn, "ACME", "finance", add=["ap@acme.example", "AP@acme.example", "cfo@acme.example"])
        assert partner_recipients(conn, "ACME") == {"finance": ["ap@acme.example", "cfo@acme.example"]}
        set_partner_recipients(conn, "ACME", "finance", remove=["cfo@acme.example"])
        assert partner_recipients(conn, "ACME") == {"finance": ["ap@acme.example"]}
        set_partner_recipients(conn, "ACME", "finance", remove=["ap@acme.example"])
        assert partner_recipients(conn, "ACME") == {}


@pytest.mark.parametrize("kwargs, error", [
    ({"category": "finance", "add": ["not-an-address"]}, "email"),
    ({"category": "Finance!", "add": ["a@b.example"]}, "category"),
    ({"category": "finance", "remove": ["x@acme.example"]}, "remove"),
    ({"category": "finance", "add": [f"p{i}@acme.example" for i in range(21)]}, "add"),
])
def test_bad_recipient_changes_are_refused_and_save_nothing(runtime, people, kwargs, error):
    before = counts(runtime.db)
    with pytest.raises(ValidationError) as err:
        with runtime.db.write() as conn:
            set_partner_recipients(conn, "ACME", **kwargs)
    assert err.value.field == error
    assert counts(runtime.db) == before
    with runtime.db.read() as conn:
        assert partner_recipients(conn, "ACME") == {}


def test_unknown_partner_is_not_found(runtime, people):
    with pytest.raises(NotFound, match="no partner with code 'NOPE'"):
        with runtime.db.write() as conn:
            set_partner_recipients(conn, "NOPE", "finance", add=["a@b.example"])


# ------------------------------------------------------------------ reminder opt-out
def test_reminder_opt_out_stops_reminders_but_not_other_messages(runtime, people):
    with runtime.db.write() as conn:
        add_user(conn, {"login": "olga", "name": "Olga", "email": "olga@example.com",
                        "roles": ["operations_manager"]}, runtime.now())
        set_reminder_opt_out(conn, "oscar", True)
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    runtime.advance(timedelta(days=3))  # Thursday 09:00: the 3-working-day reminder fires
    reminders = {r.recipient for r in outbox(runtime.db, template="exam_voucher/issue_reminder")}
    assert reminders == {"olga@example.com"}
    # the approval (not a reminder) still reached oscar
    assert "oscar@example.com" in {r.recipient for r in outbox(runtime.db, template="exam_voucher/approved")}
    with runtime.db.write() as conn:
        assert set_reminder_opt_out(conn, "oscar", False)["reminders_opt_out"] is False


def test_only_notifications_declared_reminders_can_be_turned_off():
    from engine.registry import default_registry

    reminders = {n.template for wf in default_registry() for n in wf.notifications if n.reminder}
    assert "exam_voucher/issue_reminder" in reminders
    assert "exam_voucher/approved" not in reminders


# ------------------------------------------------------------------ digests
def test_digest_slots_fall_on_working_days_at_the_local_hour():
    friday = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)  # Friday 10:00 Beijing
    assert next_digest_slot(friday, 9, None) == datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # Monday 09:00
    early = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # Tuesday 08:00 Beijing
    assert next_digest_slot(early, 9, None) == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)
    assert next_digest_slot(early, 9, "Europe/Berlin") == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    cal = calendar_for("CN", "Asia/Shanghai")
    before_holiday = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)
    slot = next_digest_slot(before_holiday, 9, None)
    assert cal.local_date(slot) == cal.add_working_days(cal.local_date(before_holiday), 1)  # National Day skipped
    assert cal.local(slot).hour == 9


def test_digest_user_gets_one_daily_email_listing_open_tasks_instead_of_one_per_task(runtime, people):
    with runtime.db.write() as conn:
        set_digest(conn, "alice", True, runtime.now(), hour=9)
    first = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    second = runtime.start("exam_voucher", {"exam": "Data Engineer", "users": ["acme-dev1"]}, people["acme-admin"])
    result = capture(runtime)
    assert result.digested == 2 and result.captured == 2  # bob still gets one email per task
    assert {r.status for r in outbox(runtime.db, recipient="alice@example.com")} == {"digested"}
    assert {r.status for r in outbox(runtime.db, recipient="bob@example.com")} == {"captured"}
    assert run_digests(runtime) == 0  # not before Tuesday 09:00
    runtime.advance(timedelta(days=1))
    assert run_digests(runtime) == 1
    assert run_digests(runtime) == 0  # once per slot
    digest = outbox(runtime.db, template="digest/daily")
    assert len(digest) == 1 and digest[0].recipient == "alice@example.com"
    out = render_message(digest[0])
    assert out.subject == "Your open tasks in partnerflow: 2 to do (2026-03-03)"
    for case in (first, second):
        assert f"http://127.0.0.1:8000/cases/{case['id']}" in out.text
    assert "due 2026-03-09 23:59 Asia/Shanghai" in out.text
    assert capture(runtime).captured == 1
    with runtime.db.read() as conn:
        assert preferences(conn, "alice")["next_digest_at"] == "2026-03-04T01:00:00+00:00"


def test_no_digest_on_a_day_without_open_tasks(runtime, people):
    with runtime.db.write() as conn:
        set_digest(conn, "alice", True, runtime.now())
    runtime.advance(timedelta(days=1))
    assert run_digests(runtime) == 0
    with runtime.db.read() as conn:
        assert preferences(conn, "alice")["next_digest_at"] == "2026-03-04T01:00:00+00:00"


def test_digest_off_means_one_email_per_task_again(runtime, people):
    with runtime.db.write() as conn:
        set_digest(conn, "alice", True, runtime.now())
        set_digest(conn, "alice", False, runtime.now())
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert capture(runtime).digested == 0
    assert {r.status for r in outbox(runtime.db, recipient="alice@example.com")} == {"captured"}


def test_partner_emails_are_never_held_for_a_digest(runtime, people):
    announcements = is_task_announcement(runtime.registry)
    assert announcements["exam_voucher/applied"] == {"ecosystem_manager"}
    assert "exam_voucher/issued" not in announcements and "exam_voucher/rejected" not in announcements


def test_digest_hour_must_be_an_hour(runtime, people):
    with pytest.raises(ValidationError, match="hour"):
        with runtime.db.write() as conn:
            set_digest(conn, "alice", True, runtime.now(), hour=24)


# ------------------------------------------------------------------ outbox services
def test_retry_refuses_a_captured_message_and_changes_nothing(runtime, people):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    capture(runtime)
    row = outbox(runtime.db)[0]
    before = counts(runtime.db)
    with pytest.raises(Conflict, match=f"message {row.id} is captured; only failed, discarded, digested"):
        with runtime.db.write() as conn:
            retry_message(conn, row.id, runtime.now())
    assert counts(runtime.db) == before


def test_list_messages_filters_and_shows_subjects(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    with runtime.db.read() as conn:
        items = list_messages(conn, status="queued")
        assert {i["recipient"] for i in items} == {"alice@example.com", "bob@example.com"}
        assert items[0]["subject"].startswith(f"Exam voucher application #{case['id']}")
        assert list_messages(conn, status="sent") == []
        assert len(list_messages(conn, case=case["id"])) == 2
        with pytest.raises(ValidationError, match="unknown status"):
            list_messages(conn, status="lost")
        with pytest.raises(NotFound):
            get_message(conn, 999)


def test_heartbeat_after_clock_advance_captures_the_reminder(runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    heartbeat_hook(runtime)
    runtime.advance(timedelta(days=3))
    heartbeat_hook(runtime)
    reminder = outbox(runtime.db, template="exam_voucher/issue_reminder")
    assert [r.status for r in reminder] == ["captured"]
    text = render_message(reminder[0]).text
    assert "still not issued" in text and "by 2026-03-06 23:59 Asia/Shanghai" in text


# ------------------------------------------------------------------ CLI
@pytest.fixture
def cli(db_url, monkeypatch, people):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def test_cli_mail_list_show_and_html(cli, runtime, people):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert "captured 2" in cli("mail", "send").stdout
    items = json.loads(cli("mail", "list", "--json").stdout)
    assert [i["status"] for i in items] == ["captured", "captured"]
    listing = cli("mail", "list").stdout
    assert f"Exam voucher application #{case['id']} from Acme Cloud needs your decision" in listing
    shown = cli("mail", "show", str(items[0]["id"])).stdout
    assert "To: bob@example.com (bob)" in shown and "Decide here: http://127.0.0.1:8000/cases/" in shown
    assert "captured: no SMTP host configured" in shown
    html = cli("mail", "show", str(items[0]["id"]), "--html").stdout
    assert html.startswith("<!DOCTYPE html>")
    missing = cli("mail", "show", "999", ok=False)
    assert missing.exit_code == 1 and "no outbox message 999" in missing.stderr


def test_cli_retry_and_discard(cli, runtime, people):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    first, second = [r.id for r in outbox(runtime.db)]
    assert f"message {first} to alice@example.com discarded" in cli("mail", "discard", str(first)).stdout
    assert f"message {first} queued again" in cli("mail", "retry", str(first)).stdout
    cli("mail", "send")
    refused = cli("mail", "retry", str(second), ok=False)
    assert refused.exit_code == 1 and "is captured; only failed, discarded, digested" in refused.stderr


def test_cli_partner_recipients_and_user_preferences(cli, runtime):
    out = cli("partners", "recipients", "ACME", "--category", "finance", "--add", "ap@acme.example").stdout
    assert out.strip() == "ACME finance: ap@acme.example"
    assert json.loads(cli("partners", "recipients", "ACME", "--json").stdout) == {"finance": ["ap@acme.example"]}
    bad = cli("partners", "recipients", "ACME", "--category", "finance", "--add", "nope", ok=False)
    assert bad.exit_code == 1 and "email" in bad.stderr
    assert "reminders off" in cli("users", "reminders", "oscar", "--off").stdout
    assert "reminders off" in cli("users", "reminders", "oscar").stdout
    out = cli("users", "digest", "alice", "--on", "--hour", "8").stdout
    assert "daily digest on, at 08:00 Asia/Shanghai" in out and "next 2026-03-03T00:00:00+00:00" in out
    assert "daily digest off" in cli("users", "digest", "alice", "--off").stdout


def test_cli_clock_advance_runs_the_dispatcher(cli, runtime, people):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    cli("clock", "advance", "1h")
    assert {r.status for r in outbox(runtime.db)} == {"captured"}


def test_suite_render_check_reports_a_row_whose_template_lacks_a_variable(runtime, people):
    from notifications.outbox import discard_message
    from tests.smtp import outbox_render_problems

    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert outbox_render_problems(runtime.db) == []
    row = outbox(runtime.db)[0]
    with runtime.db.write() as conn:
        context = {k: v for k, v in row.context.items() if k != "data"}
        conn.execute(OB.update().where(OB.c.id == row.id).values(context=context))
    problems = outbox_render_problems(runtime.db)
    assert problems == [f"outbox row {row.id} (exam_voucher/applied, en): template exam_voucher/applied.en.j2: "
                        "'data' is undefined",
                        f"outbox row {row.id} (exam_voucher/applied, zh): template exam_voucher/applied.zh.j2: "
                        "'data' is undefined"]
    with runtime.db.write() as conn:
        discard_message(conn, row.id, runtime.now(), "root")
    assert outbox_render_problems(runtime.db) == []
