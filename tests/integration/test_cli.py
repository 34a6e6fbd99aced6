"""The `partnerflow` command line, end to end on a real database with the simulated clock."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import main


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


def test_workflows_list_json_lists_exam_voucher(cli):
    items = json.loads(cli("workflows", "list", "--json").stdout)
    assert "exam_voucher" in [i["name"] for i in items]


def test_workflows_show_prints_table_and_mermaid(cli):
    out = cli("workflows", "show", "exam_voucher").stdout
    assert "approve" in out and "ecosystem_manager" in out
    assert "in approved: remind_issue" in out
    assert "stateDiagram-v2" in out and "s_applied --> s_approved: approve" in out


def test_approve_then_advance_5d_puts_reminder_in_operations_tasks(cli):
    started = json.loads(cli("start", "exam_voucher", "--data", '{"exam": "Architect", "users": ["acme-dev1"]}',
                             "--as", "acme-admin", "--json").stdout)
    cid = str(started["id"])
    assert "approved" in cli("fire", cid, "approve", "--as", "alice", "--comment", "fine").stdout
    out = cli("clock", "advance", "5d").stdout
    assert "1 timer(s) fired" in out
    shown = cli("show", cid).stdout
    assert "remind_issue approved -> approved" in shown
    assert "[operations_manager] Reminder: approved exam vouchers are still not issued" in shown
    view = json.loads(cli("show", cid, "--json").stdout)
    assert {t["role"] for t in view["tasks"]} == {"operations_manager"}
    assert "Reminder" in cli("tasks", "--as", "oscar").stdout


def test_errors_are_one_line_on_stderr_with_nonzero_exit(cli):
    result = cli("fire", "424242", "approve", "--as", "alice", ok=False)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: case 424242 not found"
    result = cli("start", "exam_voucher", "--data", "{not json", "--as", "acme-admin", ok=False)
    assert result.exit_code == 1 and result.stderr.startswith("error: data: is not valid JSON")
    result = cli("start", "nope", "--as", "acme-admin", ok=False)
    assert "no workflow named 'nope'" in result.stderr
    result = cli("start", "exam_voucher", "--as", "ghost", ok=False)
    assert result.stderr.strip() == "error: no user with login 'ghost'"
    result = cli("clock", "advance", "soon", ok=False)
    assert "duration" in result.stderr


def test_clock_now_and_advance_json(cli):
    assert "(simulated)" in cli("clock", "now").stdout
    summary = json.loads(cli("clock", "advance", "36h", "--json").stdout)
    assert summary["to"] == "2026-03-03T13:00:00+00:00"


def test_system_clock_refuses_advance(cli, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "system")
    result = cli("clock", "advance", "1d", ok=False)
    assert "PARTNERFLOW_CLOCK=simulated" in result.stderr


def test_partners_and_users_add(cli):
    assert "partner SUN added" in cli("partners", "add", "--code", "SUN", "--name", "Sun Ltd", "--tier", "Premier").stdout
    assert "user sun-admin added" in cli("users", "add", "--login", "sun-admin", "--name", "Sun Admin",
                                         "--role", "partner_admin", "--partner", "SUN").stdout
    bad = cli("users", "add", "--login", "x", "--name", "X", "--role", "partner_admin", ok=False)
    assert "partner roles need the partner's code" in bad.stderr
    bad = cli("partners", "add", "--code", "SUN", "--name", "Again", ok=False)
    assert "already exists" in bad.stderr
    users = json.loads(cli("users", "list", "--json").stdout)
    assert all("password_hash" not in u for u in users)


def test_vouchers_visible_only_once_issued(cli):
    started = json.loads(cli("start", "exam_voucher", "--data", '{"exam": "Architect", "users": ["acme-dev1"]}',
                             "--as", "acme-admin", "--json").stdout)
    cid = str(started["id"])
    cli("fire", cid, "approve", "--as", "alice")
    assert "no issued vouchers" in cli("vouchers", "acme-dev1").stdout
    cli("fire", cid, "issue", "--as", "oscar", "--data", '{"codes": ["AB-1"]}')
    assert json.loads(cli("vouchers", "acme-dev1", "--json").stdout) == [
        {"case": int(cid), "exam": "Architect", "code": "AB-1"}]


@pytest.mark.parametrize("args, message", [
    (("accounts", "show", "ghost"), "error: login ID not found: 'ghost'"),
    (("members", "list", "--partner", "NOPE"), "error: partner: no partner with code 'NOPE'"),
    (("customers", "show", "ghost@example.com"), None),
    (("mdf", "budget", "NOPE"), None),
    (("solutions", "add", "--partner", "NOPE", "--name", "X"), None),
    (("bills", "add", "--partner", "NOPE", "--number", "B1", "--cycle", "2026-02", "--amount", "1.00"), None),
    (("authentication", "apply", "--business", "{x", "--payment", "{}", "--as", "acme-admin"),
     "error: business: is not valid JSON: Expecting property name enclosed in double quotes at character 1"),
    (("authentication", "status", "NOPE"), "error: partner: no partner with code 'NOPE'"),
    (("incentives", "person", "--partner", "ACME", "--name", "Li", "--started", "2026-02-30"),
     "error: started: '2026-02-30' is not a date as YYYY-MM-DD"),
    (("incentives", "withholding", "CN"), "error: rate: is required when a country is given"),
    (("programs", "set", "competency", "--title", "Competency", "--closes", "31.12.2024"),
     "error: closes: '31.12.2024' is not a date as YYYY-MM-DD"),
])
def test_every_command_group_reports_a_refusal_as_one_line_and_exit_1(cli, args, message):
    result = cli(*args, ok=False)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    if message is not None:
        assert lines[0] == message


@pytest.mark.parametrize("ticket, message", [
    ("²", "error: ticket: '²' is not a service ticket number"),
    ("12345678901234567890", "error: ticket: 12345678901234567890 is out of range (1 to 9223372036854775807)"),
    ("#0", "error: ticket: 0 is out of range (1 to 9223372036854775807)"),
])
def test_change_country_refuses_a_ticket_that_is_no_case_number_in_one_line(cli, ticket, message):
    cli("accounts", "add", "--login-id", "acme-partner", "--name", "Acme Cloud", "--kind", "partner",
        "--partner", "ACME")
    result = cli("accounts", "change-country", "acme-partner", "--country", "DE", "--ticket", ticket, "--as", "oscar",
                 ok=False)
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_date_options_ignore_spaces_around_the_date(cli):
    person = json.loads(cli("incentives", "person", "--partner", "ACME", "--name", "Li", "--started", " 2026-01-05 ",
                            "--ended", "2026-03-31\t").stdout)
    assert (person["started_on"], person["ended_on"]) == ("2026-01-05", "2026-03-31")
