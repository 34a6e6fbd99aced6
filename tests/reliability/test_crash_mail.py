"""Crash safety of email delivery: dispatcher processes killed with SIGKILL while emails go out.

This bounded version sends 400 emails through at least 20 kills (three
workers on PostgreSQL, one on SQLite); `python -m benchmarks chaos` runs
1,000 emails through 200 kills.

A real aiosmtpd server on 127.0.0.1 receives the mail. Workers are killed
from outside at random and from inside right after the server accepted a
message but before the row is marked sent. Afterwards every outbox row was
received (none lost), every received message belongs to its row (Message-ID
and recipient), and a message received twice always carries its row's one
Message-ID and comes from a claim whose worker died (the row was requeued
when its lease ended) - never from anything else.
"""
from __future__ import annotations

from tests.smtp import SmtpServer

from .harness import run_mail_crash

CASES = 200  # two emails each


def test_sigkill_dispatchers_no_email_lost_duplicates_only_from_the_accept_window(db):
    server = SmtpServer().start()
    try:
        report = run_mail_crash(db.url, server, workers=3 if db.is_postgres else 1, cases=CASES, min_kills=20,
                                seed=8)
    finally:
        server.stop()
    assert report.emails_queued_first == 2 * CASES
    assert report.emails == report.emails_queued_first + 2 * report.topped_up_cases, report
    assert report.kills >= 20, report
    assert report.lost == 0 and report.parked == 0, report
    assert report.delivered == report.emails, report
    assert report.foreign_message_ids == 0, report
    assert report.duplicates_outside_window == 0, report
