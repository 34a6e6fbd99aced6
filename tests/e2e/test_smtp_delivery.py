"""Emails delivered to a real SMTP server (aiosmtpd on 127.0.0.1), parsed back with the `email` package."""
from __future__ import annotations

import hashlib
import random
import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import insert, select, update

from engine.directory import add_partner, add_user
from engine.errors import RuleViolation
from engine.models import Outbox, User
from notifications.dispatcher import Dispatcher, SmtpSettings, heartbeat_hook
from notifications.models import OutboxAttempt
from notifications.outbox import discard_message, get_message, retry_message
from tests.helpers import counts
from tests.smtp import SmtpServer, free_port

OB = Outbox.__table__
OA = OutboxAttempt.__table__
VOUCHER = {"exam": "Cloud Architect", "users": ["acme-dev1"]}
#: Every backoff is at most this long in these tests.
CAP = 60


def dispatcher(runtime, worker_id=None, **over):
    settings = SmtpSettings.from_env(retry_base=10, retry_cap=CAP, **over)
    return Dispatcher(runtime, settings, worker_id=worker_id, rng=random.Random(7))


def rows(db, **where):
    with db.read() as conn:
        query = select(OB).order_by(OB.c.id)
        for key, value in where.items():
            query = query.where(OB.c[key] == value)
        return conn.execute(query).all()


def log(db, outbox_id):
    with db.read() as conn:
        return [(a.outcome, a.code) for a in conn.execute(select(OA).where(OA.c.outbox_id == outbox_id).order_by(OA.c.id))]


def set_locale(db, login, locale, timezone=None):
    with db.write() as conn:
        conn.execute(update(User.__table__).where(User.__table__.c.login == login)
                     .values(locale=locale, timezone=timezone))


# ------------------------------------------------------------------ content
def test_applied_email_reaches_each_ecosystem_manager_with_subject_both_parts_deadline_and_link(runtime, people,
                                                                                                smtp_server):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    result = dispatcher(runtime).dispatch()
    assert result.sent == 2 and result.failed == 0
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == ["alice@example.com", "bob@example.com"]
    got = smtp_server.to("alice@example.com")[0]
    msg = got.message
    assert msg["Subject"] == f"Exam voucher application #{case['id']} from Acme Cloud needs your decision"
    assert msg["From"] == "partnerflow <partnerflow@localhost>" and msg["To"] == "alice@example.com"
    assert msg["Message-ID"] == rows(runtime.db, recipient="alice@example.com")[0].message_id
    assert msg.get_content_type() == "multipart/alternative"
    text, html = got.text(), got.html()
    # Monday 2026-03-02 09:00 Beijing + 5 working days: end of Monday 2026-03-09
    assert "approve the application, or reject it with a reason" in text
    assert "by 2026-03-09 23:59 Asia/Shanghai" in text and "2026-03-09 23:59 Asia/Shanghai" in html
    assert f"http://127.0.0.1:8000/cases/{case['id']}" in text
    assert f'href="http://127.0.0.1:8000/cases/{case["id"]}"' in html
    assert [r.status for r in rows(runtime.db)] == ["sent", "sent"]


def test_approved_email_in_chinese_for_a_chinese_reader_and_english_for_the_contact(runtime, people, smtp_server):
    set_locale(runtime.db, "acme-admin", "zh")
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"], comment="预算充足")
    dispatcher(runtime).dispatch()
    recipients = {r.rcpt_tos[0] for r in smtp_server.received}
    assert recipients == {"alice@example.com", "bob@example.com", "acme-admin@example.com", "contact@acme.example",
                          "oscar@example.com"}
    zh = smtp_server.to("acme-admin@example.com")[0]
    assert zh.message["Subject"] == f"考试券申请 #{case['id']} 已批准：待发放考试券"
    assert zh.message["Content-Language"] == "zh-CN"
    # reminder timer: 3 working days later at 09:00; the task: end of that day, in Beijing time
    assert "如果到 2026-03-05 09:00 Asia/Shanghai 仍未发放" in zh.text()
    assert "截止时间 2026-03-05 23:59 Asia/Shanghai" in zh.text() and "预算充足" in zh.html()
    en = smtp_server.to("contact@acme.example")[0]
    assert en.message["Subject"] == f"Exam voucher application #{case['id']} approved: vouchers to be issued"
    assert "by 2026-03-05 23:59 Asia/Shanghai" in en.text()


def test_deadline_is_in_the_partners_zone_for_a_berlin_partner(runtime, people, smtp_server):
    case = runtime.start("exam_voucher", {"exam": "Data Engineer", "users": ["nord-dev"]}, people["nord-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    dispatcher(runtime).dispatch()
    text = smtp_server.to("kontakt@nord.example")[0].text()
    # 2026-03-02 02:00 Berlin + 3 German working days -> Thursday 02:00; the task ends 23:59 Berlin time
    assert "by 2026-03-05 23:59 Europe/Berlin" in text and "Asia/Shanghai" not in text


def test_script_in_case_data_arrives_escaped_in_html_and_verbatim_in_text(runtime, people, smtp_server):
    runtime.start("exam_voucher", {"exam": "<script>alert('pwned')</script>", "users": ["acme-dev1"]},
                  people["acme-admin"])
    dispatcher(runtime).dispatch()
    got = smtp_server.to("alice@example.com")[0]
    assert "<script>" not in got.html()
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in got.html()
    assert "<script>alert('pwned')</script>" in got.text()


def test_issued_email_gives_each_employee_their_own_code(runtime, people, smtp_server):
    case = runtime.start("exam_voucher", {"exam": "Architect", "users": ["acme-dev1", "nord-dev"][:1]},
                         people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"])
    runtime.fire(case["id"], "issue", people["oscar"], {"codes": ["VC-1234"]})
    dispatcher(runtime).dispatch()
    dev = smtp_server.to("acme-dev1@example.com")
    assert len(dev) == 1 and "Your voucher code: VC-1234" in dev[0].text()
    assert "VC-1234" not in smtp_server.to("contact@acme.example")[0].text()


def test_rejected_email_carries_the_reason(runtime, people, smtp_server):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "reject", people["bob"], comment="Exam retired")
    dispatcher(runtime).dispatch()
    got = smtp_server.to("acme-admin@example.com")
    assert [m.message["Subject"] for m in got if "rejected" in m.message["Subject"]]
    assert "Reason: Exam retired" in [m for m in got if "rejected" in m.message["Subject"]][0].text()


# ------------------------------------------------------------------ transactions
def test_rolled_back_transition_sends_nothing(runtime, people, smtp_server):
    before = counts(runtime.db)
    with pytest.raises(RuntimeError):
        with runtime.db.write() as conn:
            wf = runtime.registry.get("exam_voucher")
            runtime.start_in(conn, wf, dict(VOUCHER), people["acme-admin"], runtime.now())
            assert conn.execute(select(OB)).all()  # queued inside the transaction...
            raise RuntimeError("something failed after the change")
    assert counts(runtime.db) == before  # ...and gone with it
    assert dispatcher(runtime).dispatch().claimed == 0
    assert smtp_server.received == []


def test_refused_event_sends_nothing(runtime, people, smtp_server):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation):
        runtime.start("exam_voucher", {"exam": "Architect", "users": ["nobody"]}, people["acme-admin"])
    assert counts(runtime.db) == before
    dispatcher(runtime).dispatch()
    assert smtp_server.received == []


# ------------------------------------------------------------------ retries and parking
def test_451_for_a_while_then_250_delivers_once_with_the_same_message_id(runtime, people, smtp_server):
    runtime.start("exam_voucher", {"exam": "Architect", "users": ["acme-dev1"]}, people["acme-admin"])
    with runtime.db.write() as conn:  # one recipient only
        conn.execute(update(OB).where(OB.c.recipient == "bob@example.com").values(status="discarded"))
    smtp_server.reply_next(2, "451 4.3.0 mailbox busy, try later")
    d = dispatcher(runtime)
    first = d.dispatch()
    assert (first.sent, first.retried) == (0, 1)
    row = rows(runtime.db, recipient="alice@example.com")[0]
    assert row.status == "queued" and row.last_error == "451 4.3.0 mailbox busy, try later"
    assert row.next_attempt_at > runtime.now()
    assert d.dispatch().claimed == 0  # not before its backoff ends
    runtime.advance(timedelta(seconds=CAP))
    assert d.dispatch().retried == 1
    runtime.advance(timedelta(seconds=CAP))
    assert d.dispatch().sent == 1
    runtime.advance(timedelta(seconds=CAP * 10))
    assert d.dispatch().claimed == 0
    assert smtp_server.message_ids() == [row.message_id]  # delivered exactly once
    assert log(runtime.db, row.id) == [("retry", 451), ("retry", 451), ("sent", 250)]
    final = rows(runtime.db, recipient="alice@example.com")[0]
    assert final.status == "sent" and final.attempts == 3 and final.message_id == row.message_id


def test_backoff_is_exponential_with_full_jitter_up_to_the_cap(runtime):
    d = Dispatcher(runtime, SmtpSettings(retry_base=30, retry_cap=600), rng=random.Random(1))
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)]:
        delays = [d.backoff(attempts) for _ in range(300)]
        assert all(1.0 <= x <= ceiling for x in delays)
        assert max(delays) > ceiling * 0.9 and min(delays) < ceiling * 0.2  # spread over the whole range


def test_temporary_failures_give_up_after_max_attempts_and_park(runtime, people, smtp_server):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    smtp_server.reply_next(100, "421 4.7.0 too many connections")
    d = dispatcher(runtime, max_attempts=3)
    for _ in range(3):
        d.dispatch()
        runtime.advance(timedelta(seconds=CAP))
    assert {r.status for r in rows(runtime.db)} == {"failed"}
    assert all(r.last_error.startswith("gave up after 3 attempts: 421") for r in rows(runtime.db))
    assert smtp_server.received == []


def test_550_parks_the_row_with_the_servers_reply_for_an_operator(runtime, people, smtp_server):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    smtp_server.reject("bob@example.com", "550 5.1.1 <bob@example.com>: no such mailbox")
    result = dispatcher(runtime).dispatch()
    assert (result.sent, result.failed) == (1, 1)
    parked = rows(runtime.db, recipient="bob@example.com")[0]
    assert parked.status == "failed" and parked.last_error == "550 5.1.1 <bob@example.com>: no such mailbox"
    runtime.advance(timedelta(days=1))
    assert dispatcher(runtime).dispatch().claimed == 0  # parked rows wait for an operator
    # the operator fixes the mailbox and retries: same Message-ID
    smtp_server.clear()
    with runtime.db.write() as conn:
        retry_message(conn, parked.id, runtime.now(), "root")
    assert dispatcher(runtime).dispatch().sent == 1
    assert smtp_server.message_ids() == [parked.message_id]
    assert [x[0] for x in log(runtime.db, parked.id)] == ["failed", "retried", "sent"]


def test_operator_discards_a_parked_row_and_it_is_never_sent(runtime, people, smtp_server):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    smtp_server.reject("bob@example.com", "550 5.7.1 relaying denied")
    dispatcher(runtime).dispatch()
    parked = rows(runtime.db, recipient="bob@example.com")[0]
    with runtime.db.write() as conn:
        discard_message(conn, parked.id, runtime.now(), "root")
    with runtime.db.write() as conn:
        with pytest.raises(Exception, match="only failed, discarded, digested"):
            retry_message(conn, rows(runtime.db, recipient="alice@example.com")[0].id, runtime.now())
    smtp_server.clear()
    runtime.advance(timedelta(days=1))
    assert dispatcher(runtime).dispatch().claimed == 0
    assert smtp_server.received == []
    with runtime.db.read() as conn:
        assert get_message(conn, parked.id)["status"] == "discarded"


def test_server_down_is_retried_and_delivered_when_it_returns(runtime, people, monkeypatch):
    port = free_port()
    monkeypatch.setenv("PARTNERFLOW_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("PARTNERFLOW_SMTP_PORT", str(port))
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    d = dispatcher(runtime)
    down = d.dispatch()
    assert (down.retried, down.sent) == (2, 0)
    assert all(r.last_error.startswith("connection error") and r.status == "queued" for r in rows(runtime.db))
    server = SmtpServer(port=port).start()
    try:
        runtime.advance(timedelta(seconds=CAP))
        assert d.dispatch().sent == 2
        assert sorted(server.message_ids()) == sorted(r.message_id for r in rows(runtime.db))
    finally:
        server.stop()


def test_server_dropping_mid_batch_loses_nothing_and_sends_nothing_twice(runtime, people, smtp_server):
    for _ in range(3):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    d = dispatcher(runtime)
    smtp_server.reply_next(1, "421 4.3.2 shutting down")
    d.dispatch()
    for _ in range(5):
        runtime.advance(timedelta(seconds=CAP))
        d.dispatch()
    ids = smtp_server.message_ids()
    assert len(ids) == 6 and len(set(ids)) == 6
    assert {r.status for r in rows(runtime.db)} == {"sent"}


def test_one_connection_serves_the_whole_batch(runtime, people, smtp_server):
    for _ in range(5):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert dispatcher(runtime).dispatch().sent == 10
    assert len(smtp_server.received) == 10 and len(smtp_server.peers()) == 1


def test_starttls_and_login_when_configured(runtime, people, monkeypatch, tmp_path):
    server = SmtpServer(auth=("mailer", "s3cret-pass"), tls=True, workdir=tmp_path).start()
    try:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
        assert dispatcher(runtime).dispatch().sent == 2
        assert [r.login for r in server.received] == ["mailer", "mailer"]
        assert all(r.tls for r in server.received)
        monkeypatch.setenv("PARTNERFLOW_SMTP_PASSWORD", "wrong")
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
        result = dispatcher(runtime).dispatch()
        assert result.failed == 2 and "535" in rows(runtime.db)[-1].last_error
    finally:
        server.stop()


def test_unsafe_subject_parks_the_row_and_nothing_is_sent(runtime, people, smtp_server):
    with runtime.db.write() as conn:
        add_partner(conn, {"code": "EVIL", "name": "Evil =?utf-8?q?x=0D=0ABcc:_victim@example.com?=",
                           "admin_login": "evil-admin"}, runtime.now())
        add_user(conn, {"login": "evil-admin", "name": "E", "email": "evil@example.com", "roles": ["partner_admin"],
                        "partner": "EVIL", "personal_info_complete": True}, runtime.now())
    runtime.start("exam_voucher", {"exam": "X", "users": ["evil-admin"]}, runtime.actor("evil-admin"))
    result = dispatcher(runtime).dispatch()
    assert result.failed == 2 and smtp_server.received == []
    assert all("encoded word hiding a line break" in r.last_error for r in rows(runtime.db))
    with runtime.db.write() as conn:  # an operator discards them (and the suite's render check skips them)
        for r in rows(runtime.db):
            discard_message(conn, r.id, runtime.now(), "root")


# ------------------------------------------------------------------ several workers
def test_two_dispatchers_deliver_each_message_exactly_once(runtime, people, smtp_server):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    template = rows(runtime.db)[0]
    copy = {k: v for k, v in template._mapping.items() if k not in ("id", "message_id")}
    with runtime.db.write() as conn:
        conn.execute(insert(OB), [{**copy, "message_id": f"<bulk-{i}@partnerflow>"} for i in range(300)])
    total = len(rows(runtime.db))
    results, errors = [], []

    def work(name):
        try:
            d = dispatcher(runtime, worker_id=name, batch_size=20)
            results.append(d.dispatch(max_batches=100))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    ids = smtp_server.message_ids()
    assert len(ids) == total and len(set(ids)) == total
    assert {r.status for r in rows(runtime.db)} == {"sent"}
    assert sum(r.sent for r in results) == total
    if runtime.db.is_postgres:  # SKIP LOCKED shares the work; SQLite serialises the claims
        assert all(r.sent > 0 for r in results)
    with runtime.db.read() as conn:
        sent_logs = conn.execute(select(OA.c.outbox_id).where(OA.c.outcome == "sent")).all()
    assert len(sent_logs) == total == len({x.outbox_id for x in sent_logs})


def test_a_crashed_workers_claim_returns_after_its_lease_with_the_same_message_id(runtime, people, smtp_server):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    crashed = dispatcher(runtime, worker_id="crashed", lease=120)
    from notifications.dispatcher import DispatchResult

    claimed = crashed._claim(runtime.now(), DispatchResult())  # claims, then dies before sending
    assert len(claimed) == 2 and {r.status for r in rows(runtime.db)} == {"sending"}
    other = dispatcher(runtime, worker_id="other")
    assert other.dispatch().claimed == 0  # the lease still holds
    runtime.advance(timedelta(seconds=121))
    result = other.dispatch()
    assert result.requeued == 2 and result.sent == 2
    assert sorted(smtp_server.message_ids()) == sorted(r.message_id for r in claimed)
    assert [x[0] for x in log(runtime.db, claimed[0].id)] == ["requeued", "sent"]


# ------------------------------------------------------------------ capture mode and the heartbeat
def test_without_smtp_host_messages_are_captured_for_the_preview(runtime, people, monkeypatch):
    monkeypatch.delenv("PARTNERFLOW_SMTP_HOST", raising=False)
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    result = heartbeat_hook(runtime)
    assert result.captured == 2
    with runtime.db.read() as conn:
        shown = get_message(conn, rows(runtime.db)[0].id)
    assert shown["status"] == "captured" and f"/cases/{case['id']}" in shown["text"]
    assert shown["html"].startswith("<!DOCTYPE html>") and shown["log"][0]["outcome"] == "captured"
    assert heartbeat_hook(runtime).claimed == 0


def test_heartbeat_hook_delivers_through_the_configured_server(runtime, people, smtp_server):
    runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    assert heartbeat_hook(runtime).sent == 2
    assert len(smtp_server.received) == 2


# ------------------------------------------------------------------ wire format and grouped outcome writes
def test_lines_starting_with_a_dot_arrive_intact(runtime, people, smtp_server):
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "reject", people["bob"], comment="first\n.\n.second\n..third")
    dispatcher(runtime).dispatch()
    got = [m for m in smtp_server.to("acme-admin@example.com") if "rejected" in m.message["Subject"]][0]
    assert b"\r\n..second\r\n" not in got.raw  # the server removed the doubled dots again
    assert "first\n.\n.second\n..third" in got.text().replace("\r\n", "\n")


def test_chinese_parts_go_in_base64_english_in_quoted_printable_both_decode_to_the_rendered_text(runtime, people,
                                                                                                 smtp_server):
    from notifications.render import render_message

    set_locale(runtime.db, "acme-admin", "zh")
    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"], comment="预算充足")
    dispatcher(runtime).dispatch()
    for address, encoding in [("acme-admin@example.com", "base64"), ("contact@acme.example", "quoted-printable")]:
        got = smtp_server.to(address)[0]
        assert [p["Content-Transfer-Encoding"] for p in got.message.iter_parts()] == [encoding, encoding]
        rendered = render_message(rows(runtime.db, recipient=address, template="exam_voucher/approved")[0])
        assert got.text().replace("\r\n", "\n") == rendered.text
        assert got.html().replace("\r\n", "\n") == rendered.html
    zh = smtp_server.to("acme-admin@example.com")[0]
    assert len(zh.raw) < 1.5 * len(smtp_server.to("contact@acme.example")[0].raw)  # not three bytes a byte


def test_an_english_email_is_byte_for_byte_what_the_email_packages_generator_writes(runtime, people, smtp_server):
    from email.charset import BASE64, QP, Charset
    from email.header import Header
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    from email.policy import compat32

    from notifications.render import render_message

    runtime.start("exam_voucher", {"exam": "Cloud Architect <Professional>", "users": ["acme-dev1"]},
                  people["acme-admin"])
    dispatcher(runtime).dispatch()
    row = rows(runtime.db, recipient="alice@example.com")[0]
    rendered = render_message(row)
    utf8 = Charset("utf-8")
    utf8.header_encoding, utf8.body_encoding = BASE64, QP
    msg = MIMEMultipart("alternative", boundary="=_pf_" + hashlib.sha256(row.message_id.encode()).hexdigest()[:32])
    msg["From"] = "partnerflow <partnerflow@localhost>"
    msg["To"] = row.recipient
    msg["Subject"] = rendered.subject if rendered.subject.isascii() else Header(rendered.subject, "utf-8")
    got = smtp_server.to("alice@example.com")[0]
    msg["Date"] = re.search(rb"\r\nDate: ([^\r]*)\r\n", got.raw).group(1).decode()
    msg["Message-ID"] = row.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["Content-Language"] = "en"
    msg["X-Partnerflow-Template"] = row.template
    msg["X-Partnerflow-Case"] = str(row.instance_id)
    msg.attach(MIMEText(rendered.text, "plain", utf8))
    msg.attach(MIMEText(rendered.html, "html", utf8))
    assert got.raw == msg.as_bytes(policy=compat32.clone(linesep="\r\n"))


def test_a_batch_writes_its_outcomes_in_a_few_transactions_not_one_per_message(runtime, people, smtp_server):
    from sqlalchemy import event

    for _ in range(10):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    commits = []

    def count(conn):
        commits.append(1)

    event.listen(runtime.db.engine, "commit", count)
    try:
        assert dispatcher(runtime).dispatch().sent == 20
    finally:
        event.remove(runtime.db.engine, "commit", count)
    assert len(smtp_server.received) == 20
    assert len(commits) <= 4, commits  # claim, digest preferences (read), one write of the outcomes
    with runtime.db.read() as conn:
        assert conn.execute(select(OA.c.outcome)).scalars().all() == ["sent"] * 20


def failing(exc: BaseException):
    """A stand-in for a dispatcher step that raises `exc`."""
    def step():
        raise exc
    return step


def test_a_worker_dying_before_its_outcomes_are_written_leaves_them_to_the_lease_same_message_ids(runtime, people,
                                                                                                   smtp_server):
    for _ in range(3):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    dying = dispatcher(runtime, worker_id="dying", lease=120)
    dying._flush = failing(SystemExit("killed before the outcomes were written"))
    with pytest.raises(SystemExit):
        dying.dispatch()
    first = sorted(smtp_server.message_ids())
    assert len(first) == 6 and {r.status for r in rows(runtime.db)} == {"sending"}
    other = dispatcher(runtime, worker_id="other")
    assert other.dispatch().claimed == 0  # the lease holds: nothing is sent twice meanwhile
    runtime.advance(timedelta(seconds=121))
    again = other.dispatch()
    assert again.requeued == 6 and again.sent == 6
    assert sorted(smtp_server.message_ids()) == sorted(first * 2)  # the resend carries the same Message-IDs
    assert {r.status for r in rows(runtime.db)} == {"sent"}


def test_a_database_failure_between_sends_stops_the_batch_instead_of_counting_as_a_server_reply(runtime, people,
                                                                                                 smtp_server):
    for _ in range(3):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    d = dispatcher(runtime, worker_id="w", lease=120)
    d._flush_if_due = failing(RuntimeError("database unreachable"))  # fails while the server reads the first message
    with pytest.raises(RuntimeError, match="database unreachable"):
        d.dispatch()
    assert len(smtp_server.received) == 1  # the first message went out; nothing more was sent
    assert [r for r in rows(runtime.db) if r.status == "queued" and r.last_error] == []  # no retry was booked
    sent = rows(runtime.db, message_id=smtp_server.message_ids()[0])[0]
    assert sent.status == "sent" and log(runtime.db, sent.id) == [("sent", 250)]  # written at the end of the batch


def test_a_batch_held_past_half_its_lease_writes_its_outcomes_and_renews_before_each_send(runtime, people,
                                                                                          smtp_server):
    from sqlalchemy import event

    for _ in range(3):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE outbox SET lease_until="):  # the renewal sets nothing else
            statements.append("renew")
        elif statement.startswith(("UPDATE", "INSERT")):
            statements.append("write")

    event.listen(runtime.db.engine, "before_cursor_execute", seen)
    try:
        result = dispatcher(runtime, lease=1e-6).dispatch()  # half the lease is over before every send
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", seen)
    assert (result.sent, result.lost) == (6, 0)
    assert len(smtp_server.message_ids()) == len(set(smtp_server.message_ids())) == 6
    # the claim; before each send a renewal, after the first one preceded by the write of the last outcome and its log
    assert statements.count("renew") == 6, statements
    assert "".join(s[0] for s in statements) == "wr" + "wwr" * 5 + "ww", statements
    assert {r.status for r in rows(runtime.db)} == {"sent"}


def test_a_failed_write_of_outcomes_keeps_them_for_the_next_flush_and_nothing_is_sent_twice(runtime, people,
                                                                                              smtp_server):
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    for _ in range(3):
        runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    d = dispatcher(runtime, worker_id="w", lease=120)
    d.FLUSH_EVERY = 2  # a flush while the batch is being sent, before the one that ends it
    failed = []

    def fail_once(conn, cursor, statement, parameters, context, executemany):
        if not failed and statement.startswith("INSERT INTO outbox_attempts"):  # inside the flush's transaction
            failed.append(statement)
            raise OperationalError(statement, parameters, Exception("database unreachable for a moment"))

    event.listen(runtime.db.engine, "before_cursor_execute", fail_once)
    try:
        with pytest.raises(OperationalError):
            d.dispatch()
    finally:
        event.remove(runtime.db.engine, "before_cursor_execute", fail_once)
    first = smtp_server.message_ids()
    assert failed and 0 < len(first) < 6  # the batch stopped after the failed flush
    for r in rows(runtime.db):  # the outcomes the failed write lost were written by the batch's last flush
        if r.message_id in first:
            assert r.status == "sent" and log(runtime.db, r.id) == [("sent", 250)], r
        else:
            assert r.status == "sending" and log(runtime.db, r.id) == [], r
    runtime.advance(timedelta(seconds=121))
    again = dispatcher(runtime, worker_id="other").dispatch()
    assert again.requeued == again.sent == 6 - len(first)
    ids = smtp_server.message_ids()
    assert sorted(ids) == sorted({r.message_id for r in rows(runtime.db)})  # every message exactly once
    assert {r.status for r in rows(runtime.db)} == {"sent"}
    with runtime.db.read() as conn:
        sent_logs = conn.execute(select(OA.c.outbox_id).where(OA.c.outcome == "sent")).scalars().all()
    assert sorted(sent_logs) == [r.id for r in rows(runtime.db)]


# ------------------------------------------------------------------ the serialiser's pieces
def _random_text(rng: random.Random, length: int) -> str:
    pieces = ["a", "Z", "0", " ", "\t", "=", "=3D", ".", "\n", "\r\n", "\r", "~", "é", "ß", "预", "算", "😀",
              "\u2028", "\x0b", "\x00", "x" * 80, " " * 3, "=\n", " \n", "\t\n"]
    return "".join(rng.choice(pieces) for _ in range(length))


def _qp_cases():
    edge = ["x", " ", "\t", "=", "\n", "a \n", "a\t", "a=", "x" * 75, "x" * 76, "x" * 77, "x" * 152, "x" * 153,
            "x" * 74 + "=3D", "x" * 73 + "=3D", "x" * 72 + "=3D", "x" * 75 + " ", "x" * 74 + " ", "x" * 73 + " ",
            "x" * 76 + " ", "x" * 150 + "\t", "=" * 100, "=\n=\n", "line one\r\nline two \r\n", "a\rb \rc",
            "预算充足 " * 30, "é" * 40 + " ", "\n\n\n", "ends with a break\n", " " * 200]
    rng = random.Random(2024)
    return edge + [_random_text(rng, rng.randint(1, 120)) for _ in range(400)]


def test_qp_line_wrapping_matches_the_standard_librarys_body_encode():
    from email import quoprimime

    from notifications.render import _qp, _qp_lines

    for text in _qp_cases():
        latin1 = text.encode("utf-8").decode("latin-1")  # what `_qp` hands to body_encode
        expected = quoprimime.body_encode(latin1)
        mapped = latin1.translate(quoprimime._QUOPRI_BODY_ENCODE_MAP)
        assert _qp_lines(mapped) == expected, text
        assert _qp(text) == "\r\n".join(re.split(r"\r\n|\r|\n", expected)), text


def test_a_part_switches_to_base64_just_past_six_expensive_bytes_for_each_byte_of_text():
    from email import message_from_string

    from notifications.render import _part

    def encoding_of(text):
        part = message_from_string(_part("text/plain", text))
        assert part.get_payload(decode=True).decode("utf-8").replace("\r\n", "\n") == text  # decodes back
        return part["Content-Transfer-Encoding"]

    # two Chinese characters are 6 bytes that quoted-printable writes as three characters each
    assert encoding_of("预算" + "a" * 30) == "quoted-printable"  # 6 * 6 == 36 bytes: not more than the length
    assert encoding_of("预算" + "a" * 29) == "base64"  # 36 > 35
    # an '=' costs three characters in quoted-printable too
    assert encoding_of("=" * 4 + "b" * 20) == "quoted-printable"  # 6 * 4 == 24 bytes
    assert encoding_of("=" * 4 + "b" * 19) == "base64"  # 24 > 23
    assert encoding_of("plain English text\nwith two lines") == "quoted-printable"


def test_serialised_messages_end_every_line_with_crlf_so_data_only_doubles_leading_dots(runtime, people):
    from notifications.dispatcher import _data_bytes
    from notifications.render import serialize_email

    case = runtime.start("exam_voucher", VOUCHER, people["acme-admin"])
    runtime.fire(case["id"], "approve", people["alice"], comment="x")
    base = dict(rows(runtime.db, template="exam_voucher/approved")[0]._mapping)
    rng = random.Random(11)
    for i in range(60):
        context = {**base["context"], "comment": _random_text(rng, rng.randint(0, 60)).replace("\x00", "") + "\n.d\n"}
        context["data"] = {**context["data"], "exam": rng.choice([".NET", "预算\u2028x", "a\rb", "=?x?=", "é" * 90])}
        row = {**base, "context": context, "locale": rng.choice(["en", "zh"])}
        raw = serialize_email(row, "partnerflow <partnerflow@localhost>")
        bare = raw.replace(b"\r\n", b"")
        assert raw.endswith(b"\r\n") and b"\n" not in bare and b"\r" not in bare, raw
        data = _data_bytes(raw)
        assert data.endswith(b"\r\n.\r\n")
        lines = data[:-3].split(b"\r\n")
        assert all(not line.startswith(b".") or line.startswith(b"..") for line in lines)
        assert b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines) == raw
