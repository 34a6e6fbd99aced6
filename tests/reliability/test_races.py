"""Concurrent decisions on one case, and a person racing a timer: exactly one outcome, always.

`test_concurrent_approve_reject_exactly_one_wins`: 200 rounds of 2 to 10
threads, each with its own connection, firing approve or reject on one case
at once. Exactly one succeeds; every other gets a conflict naming the event,
the login and the instant of the decision that won; history holds one
decision per case.

`test_reject_at_the_instant_auto_confirm_is_due`: a settlement rejected at
the very instant its auto-confirm timer is due while a worker sweeps: one
outcome, its email only, the timer fired or cancelled accordingly.
"""
from __future__ import annotations

import os

from .races import decision_races, timer_races

ROUNDS = int(os.environ.get("PARTNERFLOW_RACE_ROUNDS", "200"))


def test_concurrent_approve_reject_exactly_one_wins(db):
    report = decision_races(db.url, ROUNDS, seed=8)
    assert report.rounds == ROUNDS
    assert report.other_errors == []
    assert report.successes == report.rounds, report
    assert report.double_decisions == 0, report
    assert report.conflicts == report.threads - report.rounds
    assert report.conflicts_naming_winner == report.conflicts, report


def test_reject_at_the_instant_auto_confirm_is_due(db):
    report = timer_races(db.url, ROUNDS, seed=8)
    assert report.rounds == ROUNDS
    assert report.other_errors == []
    assert report.double_decisions == 0, report
    assert report.successes == report.rounds, report
    assert report.wrong_emails == 0, report
    assert sum(report.outcomes.values()) == ROUNDS
    # both orders happened, so the race was real
    assert report.outcomes.get("reject", 0) > 0 and report.outcomes.get("auto_confirm", 0) > 0, report.outcomes
    assert report.conflicts_naming_winner == report.conflicts, report
