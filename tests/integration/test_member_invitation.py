"""Member invitations (LIFECYCLES section 2, FAQ 3.2/3.3): who may invite, eligibility, 7-day expiry, association."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from engine import accounts
from engine.cli import main
from engine.directory import add_partner, add_user, partner_by_code, user_by_login
from engine.errors import EventNotAllowed, Forbidden, NotFound, RuleViolation
from engine.models import Outbox
from tests.helpers import counts

SEVEN_DAYS = timedelta(days=7)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def world(runtime, people):
    """Person accounts of every kind; zhao.hop was with three partners within the past 365 days."""
    now = runtime.now()
    with runtime.db.write() as conn:
        for code in ("P1", "P2", "P3"):
            add_partner(conn, {"code": code, "name": f"Partner {code}"}, now)
        for login, kind, certs in (("li.lei", "person", ["Cloud Architect Associate", "Security Specialist"]),
                                   ("han.mei", "person", []), ("globex", "enterprise", []),
                                   ("wang.wu", "person", []), ("zhao.hop", "person", []),
                                   ("acme-partner", "partner", [])):
            accounts.add_account(conn, {"login_id": login, "name": login.title(), "email": f"{login}@mail.example",
                                        "kind": kind, "certificates": certs,
                                        **({"partner": "ACME"} if kind == "partner" else {})}, now)
            if kind == "person":
                add_user(conn, {"login": login, "name": login.title(), "email": f"{login}@mail.example",
                                "roles": ["account"]}, now)
        accounts.associate(conn, accounts.account_by_login(conn, "wang.wu")["id"], partner_by_code(conn, "NORD")["id"], now)
        zhao = accounts.account_by_login(conn, "zhao.hop")["id"]
        for i, code in enumerate(("P1", "P2", "P3")):
            accounts.associate(conn, zhao, partner_by_code(conn, code)["id"], now,
                               associated_at=now - timedelta(days=300 - 90 * i),
                               ended_at=now - timedelta(days=250 - 90 * i))
    return people


def invite(runtime, people, login="li.lei", who="acme-admin", **extra):
    return runtime.start("member_invitation", {"login_id": login, **extra}, people[who])


def outbox(runtime, template):
    with runtime.db.read() as conn:
        return sorted(r.recipient for r in conn.execute(select(Outbox.__table__).where(
            Outbox.__table__.c.template == template)))


def member_logins(runtime, code="ACME"):
    with runtime.db.read() as conn:
        return [m["login_id"] for m in accounts.members(conn, partner_by_code(conn, code)["id"])]


# -- invite ----------------------------------------------------------------------------------
def test_invite_by_partner_admin_is_pending_with_link_email_and_7_day_timer(runtime, world):
    case = invite(runtime, world, message="Welcome!")
    assert case["state"] == "pending" and case["business_key"] == "li.lei"
    assert case["data"]["invitee_email"] == "li.lei@mail.example"
    assert case["data"]["expires_at"] == "2026-03-09T01:00:00+00:00"  # exactly 7 x 24 hours
    assert sorted((t["name"], t["due_at"]) for t in case["timers"]) == [
        ("expire", "2026-03-09T01:00:00+00:00"), ("reminder", "2026-03-08T01:00:00+00:00")]
    assert outbox(runtime, "member_invitation/invitation") == ["li.lei@mail.example"]


def test_invite_by_member_or_operator_is_forbidden_naming_the_role(runtime, world):
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="starting member_invitation needs role partner_admin; acme-dev1 has "
                                        "partner_member"):
        invite(runtime, world, who="acme-dev1")
    with pytest.raises(Forbidden, match="needs role partner_admin; alice has ecosystem_manager"):
        runtime.start("member_invitation", {"login_id": "li.lei", "partner": "ACME"}, world["alice"])
    assert counts(runtime.db) == before


def test_unknown_login_id_is_refused(runtime, world):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        invite(runtime, world, login="ghost")
    assert err.value.message == "login ID not found: 'ghost'"
    assert counts(runtime.db) == before


@pytest.mark.parametrize("login, reason", [
    ("globex", "verification failed: login ID 'globex' is authenticated as an enterprise"),
    ("acme-partner", "verification failed: login ID 'acme-partner' is itself a partner account"),
    ("wang.wu", "verification failed: login ID 'wang.wu' is already associated with another partner (NORD)"),
    ("zhao.hop", "verification failed: login ID 'zhao.hop' has been associated with three partners within the past "
                 "365 days (P1, P2, P3); it can join another partner from 2026-06-25 09:00 Asia/Shanghai"),
])
def test_ineligible_login_is_refused_with_the_exact_reason(runtime, world, login, reason):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        invite(runtime, world, login=login)
    assert err.value.message == reason
    assert counts(runtime.db) == before


def test_partner_users_without_association_rows_are_still_refused(runtime, world):
    """Users set up directly as a partner's admin or member (no invitation) count as partner account / associated."""
    with runtime.db.write() as conn:
        for login in ("nord-admin", "nord-dev", "acme-dev1"):
            accounts.add_account(conn, {"login_id": login, "name": login, "email": f"{login}@example.com"}, runtime.now())
    for login, reason in (("nord-admin", "is itself a partner account"),
                          ("nord-dev", "is already associated with another partner (NORD)"),
                          ("acme-dev1", "already is a member of partner ACME")):
        with pytest.raises(RuleViolation) as err:
            invite(runtime, world, login=login)
        assert err.value.message == f"verification failed: login ID {login!r} {reason}"


def test_login_id_is_matched_case_insensitively(runtime, world):
    assert invite(runtime, world, login="LI.LEI")["data"]["login_id"] == "li.lei"


def test_three_partner_rule_counts_only_the_past_365_days(runtime, world):
    # P1's association ended 250 days ago: it leaves the window at exactly 365 days after its end
    runtime.advance(timedelta(days=115) - MINUTE)
    with pytest.raises(RuleViolation, match="associated with three partners within the past 365 days"):
        invite(runtime, world, login="zhao.hop")
    runtime.advance(2 * MINUTE)
    assert invite(runtime, world, login="zhao.hop")["state"] == "pending"


def test_rejoining_one_of_the_three_recent_partners_is_allowed(runtime, world):
    with runtime.db.write() as conn:
        add_user(conn, {"login": "p1-admin", "name": "P1 Admin", "roles": ["partner_admin"], "partner": "P1"},
                 runtime.now())
    case = invite(runtime, world, login="zhao.hop", who="p1-admin")
    assert runtime.fire(case["id"], "accept", world["zhao.hop"])["state"] == "accepted"
    with runtime.db.read() as conn:
        assert [a["partner_code"] for a in accounts.association_history(conn, "zhao.hop")] == ["P1", "P2", "P3", "P1"]


def test_second_pending_invitation_for_same_person_and_partner_is_refused(runtime, world):
    first = invite(runtime, world)
    before = counts(runtime.db)
    with pytest.raises(RuleViolation) as err:
        invite(runtime, world, login="Li.Lei")
    assert err.value.message == (f"login ID 'li.lei' already has a pending invitation from ACME (case {first['id']}, "
                                 "valid until 2026-03-09 09:00 Asia/Shanghai); cancel it or wait until it expires")
    assert counts(runtime.db) == before
    # another partner may invite the same person meanwhile
    assert invite(runtime, world, who="nord-admin")["state"] == "pending"


# -- accept --------------------------------------------------------------------------------------
def test_accept_by_invitee_associates_member_and_certificates_count(runtime, world):
    case = invite(runtime, world)
    runtime.advance(timedelta(days=2))
    done = runtime.fire(case["id"], "accept", world["li.lei"])
    assert done["state"] == "accepted"
    assert member_logins(runtime) == ["li.lei"]
    with runtime.db.read() as conn:
        acme = partner_by_code(conn, "ACME")["id"]
        assert accounts.partner_certificates(conn, acme) == [
            {"login_id": "li.lei", "certificate": "Cloud Architect Associate"},
            {"login_id": "li.lei", "certificate": "Security Specialist"}]
        [assoc] = accounts.association_history(conn, "li.lei")
        assert assoc["associated_at"].isoformat() == "2026-03-04T01:00:00+00:00" and assoc["ended_at"] is None
        assert assoc["invitation_case_id"] == case["id"]
        user = user_by_login(conn, "li.lei")
        assert user["partner_id"] == acme and user["roles"] == ["partner_member"]
    assert outbox(runtime, "member_invitation/accepted") == ["acme-admin@example.com", "li.lei@mail.example"]
    assert done["timers"] == []


def test_only_the_invitee_may_accept(runtime, world):
    case = invite(runtime, world)
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="needs role account or customer; acme-admin has partner_admin"):
        runtime.fire(case["id"], "accept", world["acme-admin"])
    # another person cannot even see someone else's invitation
    with pytest.raises(NotFound, match=f"case {case['id']} not found"):
        runtime.fire(case["id"], "accept", world["han.mei"])
    assert counts(runtime.db) == before


def test_accept_refused_when_invitee_joined_another_partner_meanwhile(runtime, world):
    acme = invite(runtime, world)
    nord = invite(runtime, world, who="nord-admin")
    runtime.fire(nord["id"], "accept", world["li.lei"])
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="verification failed: login ID 'li.lei' is already associated with "
                                            "another partner \\(NORD\\)"):
        runtime.fire(acme["id"], "accept", world["li.lei"])
    assert counts(runtime.db) == before


def test_decline_tells_the_admin(runtime, world):
    case = invite(runtime, world)
    assert runtime.fire(case["id"], "decline", world["li.lei"])["state"] == "declined"
    assert outbox(runtime, "member_invitation/declined") == ["acme-admin@example.com"]
    assert invite(runtime, world)["state"] == "pending"


# -- 7-day expiry -------------------------------------------------------------------------------
def test_accept_one_minute_before_7_days_succeeds(runtime, world):
    case = invite(runtime, world)
    runtime.advance(SEVEN_DAYS - MINUTE)
    assert runtime.get(case["id"])["state"] == "pending"
    assert runtime.fire(case["id"], "accept", world["li.lei"])["state"] == "accepted"


def test_invitation_expires_one_minute_after_7_days_and_admin_is_emailed(runtime, world):
    case = invite(runtime, world)
    runtime.advance(SEVEN_DAYS - MINUTE)
    assert outbox(runtime, "member_invitation/expired") == []
    runtime.advance(2 * MINUTE)
    view = runtime.get(case["id"])
    assert view["state"] == "expired" and view["history"][-1]["actor"] == "system"
    assert outbox(runtime, "member_invitation/expired") == ["acme-admin@example.com"]
    with pytest.raises(EventNotAllowed, match="not allowed in state 'expired'"):
        runtime.fire(case["id"], "accept", world["li.lei"])
    assert member_logins(runtime) == []


def test_reminder_goes_to_invitee_the_day_before_expiry(runtime, world):
    invite(runtime, world)
    runtime.advance(timedelta(days=6) - MINUTE)
    assert outbox(runtime, "member_invitation/reminder") == []
    runtime.advance(2 * MINUTE)
    assert outbox(runtime, "member_invitation/reminder") == ["li.lei@mail.example"]


def test_reinvite_after_expiry_is_a_new_pending_case(runtime, world):
    first = invite(runtime, world)
    runtime.advance(SEVEN_DAYS + MINUTE)
    second = invite(runtime, world)
    assert second["id"] != first["id"] and second["state"] == "pending"
    assert runtime.get(first["id"])["state"] == "expired"
    assert second["data"]["expires_at"] == "2026-03-16T01:01:00+00:00"
    assert runtime.fire(second["id"], "accept", world["li.lei"])["state"] == "accepted"


# -- cancel and disassociate ---------------------------------------------------------------------
def test_cancel_only_by_partner_admin_then_invitee_is_emailed(runtime, world):
    case = invite(runtime, world)
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="event 'cancel' on member_invitation needs role partner_admin; acme-dev1 has "
                                        "partner_member"):
        runtime.fire(case["id"], "cancel", world["acme-dev1"])
    with pytest.raises(NotFound):
        runtime.fire(case["id"], "cancel", world["nord-admin"])  # another partner's admin cannot see it
    assert counts(runtime.db) == before
    assert runtime.fire(case["id"], "cancel", world["acme-admin"])["state"] == "cancelled"
    assert outbox(runtime, "member_invitation/cancelled") == ["li.lei@mail.example"]
    assert invite(runtime, world)["state"] == "pending"  # the pending slot is free again


def test_partner_admin_disassociates_a_member(runtime, world):
    case = invite(runtime, world)
    runtime.fire(case["id"], "accept", world["li.lei"])
    with pytest.raises(Forbidden, match="needs role partner_admin; acme-dev1 has partner_member"):
        runtime.fire(case["id"], "disassociate", world["acme-dev1"])
    runtime.advance(timedelta(days=30))
    done = runtime.fire(case["id"], "disassociate", world["acme-admin"], {"reason": "left the company"})
    assert done["state"] == "disassociated"
    assert member_logins(runtime) == []
    with runtime.db.read() as conn:
        [assoc] = accounts.association_history(conn, "li.lei")
        assert assoc["ended_at"].isoformat() == "2026-04-01T01:00:00+00:00" and assoc["end_reason"] == "left the company"
        assert user_by_login(conn, "li.lei")["roles"] == ["account"]
    assert outbox(runtime, "member_invitation/disassociated") == ["acme-admin@example.com", "li.lei@mail.example"]
    assert invite(runtime, world, who="nord-admin")["state"] == "pending"


def test_disassociate_refused_when_member_already_left(runtime, world):
    case = invite(runtime, world)
    runtime.fire(case["id"], "accept", world["li.lei"])
    with runtime.db.write() as conn:
        accounts.disassociate(conn, "li.lei", world["acme-admin"].partner_id, world["acme-admin"], runtime.now())
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="login ID 'li.lei' is no longer a member of partner ACME"):
        runtime.fire(case["id"], "disassociate", world["acme-admin"])
    assert counts(runtime.db) == before


def test_disassociate_service_refuses_other_partners_admin(runtime, world):
    with runtime.db.write() as conn:
        with pytest.raises(Forbidden, match="only the partner admin of this partner"):
            accounts.disassociate(conn, "wang.wu", world["nord-admin"].partner_id, world["acme-admin"], runtime.now())


# -- command line -----------------------------------------------------------------------------------
@pytest.fixture
def cli(db_url, monkeypatch, world):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def test_cli_invite_accept_list_and_remove(cli):
    out = cli("accounts", "add", "--login-id", "sun.li", "--name", "Sun Li", "--email", "sun.li@mail.example",
              "--certificate", "Data Engineer").stdout
    assert "account sun.li added (person, China (CN))" in out
    cli("users", "add", "--login", "sun.li", "--name", "Sun Li", "--email", "sun.li@mail.example", "--role", "account")
    started = json.loads(cli("start", "member_invitation", "--data", '{"login_id": "sun.li"}', "--as", "acme-admin",
                             "--json").stdout)
    cli("fire", str(started["id"]), "accept", "--as", "sun.li")
    members = json.loads(cli("members", "list", "--partner", "ACME", "--json").stdout)
    assert [m["login_id"] for m in members] == ["sun.li"] and members[0]["certificates"] == ["Data Engineer"]
    refused = cli("members", "remove", "sun.li", "--as", "acme-dev1", ok=False)
    assert refused.exit_code == 1 and "only the partner admin of this partner" in refused.stderr
    assert "sun.li is no longer a member" in cli("members", "remove", "sun.li", "--as", "acme-admin").stdout
    assert "partner ACME has no members" in cli("members", "list", "--partner", "ACME").stdout
    unknown = cli("start", "member_invitation", "--data", '{"login_id": "nobody"}', "--as", "acme-admin", ok=False)
    assert unknown.stderr.strip() == "error: login ID not found: 'nobody'"


def test_cli_associate_records_history_for_the_365_day_rule(cli):
    cli("accounts", "associate", "han.mei", "--partner", "P1", "--since", "2025-06-01T00:00:00+08:00",
        "--until", "2025-09-01T00:00:00+08:00")
    shown = cli("accounts", "show", "han.mei").stdout
    assert "member of P1 from 2025-05-31T16:00:00+00:00 to 2025-08-31T16:00:00+00:00" in shown


# -- emails render in both languages -------------------------------------------------------------------
def test_every_invitation_email_renders_in_both_languages(runtime, world):
    from notifications import render
    from workflows.member_invitation import WORKFLOW

    a = invite(runtime, world, message="<script>x</script>")
    runtime.fire(a["id"], "accept", world["li.lei"])
    runtime.fire(a["id"], "disassociate", world["acme-admin"], {"reason": "moved on"})
    b = invite(runtime, world, login="han.mei")
    runtime.fire(b["id"], "cancel", world["acme-admin"])
    c = invite(runtime, world, login="han.mei", who="nord-admin")
    runtime.fire(c["id"], "decline", world["han.mei"])
    invite(runtime, world, login="han.mei")
    runtime.advance(SEVEN_DAYS + MINUTE)
    with runtime.db.read() as conn:
        rows = conn.execute(select(Outbox.__table__).where(Outbox.__table__.c.template.like("member_invitation/%"))).all()
    seen = set()
    for row in rows:
        for locale in ("en", "zh"):
            msg = render.render_message({**row._mapping, "locale": locale})
            assert msg.subject and "<script>x" not in msg.html
            seen.add(row.template)
    assert seen == {n.template for n in WORKFLOW.notifications}


def test_two_simultaneous_invitations_of_one_person_leave_one_pending(runtime, world):
    import threading

    barrier, results = threading.Barrier(2), []

    def go():
        barrier.wait()
        try:
            results.append(invite(runtime, world)["id"])
        except (RuleViolation, Exception) as exc:  # noqa: BLE001 - the loser's refusal is what we count
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, int) for r in results) == 1, results
    assert [r for r in results if not isinstance(r, int)][0] in ("RuleViolation", "LockHeld")


def test_transition_table_is_exactly_these_edges():
    from workflows.member_invitation import WORKFLOW

    assert {(s, t.event, t.dest or s) for t in WORKFLOW.transitions for s in t.sources} == {
        ("pending", "accept", "accepted"), ("pending", "decline", "declined"), ("pending", "cancel", "cancelled"),
        ("pending", "remind", "pending"), ("pending", "expire", "expired"),
        ("accepted", "disassociate", "disassociated")}


# -- emails through a real SMTP server ------------------------------------------------------------------
def test_invitation_and_expiry_emails_arrive_over_smtp(runtime, world, smtp_server):
    from notifications.dispatcher import Dispatcher

    case = invite(runtime, world, message="Join our delivery team")
    assert Dispatcher(runtime).dispatch().sent == 1
    [got] = smtp_server.to("li.lei@mail.example")
    assert got.message["Subject"] == "Acme Cloud invites you to join as a member (valid until 2026-03-09 09:00 Asia/Shanghai)"
    text = got.text()
    assert "Acme Cloud (ACME) invited your account li.lei" in text and 'Message: "Join our delivery team"' in text
    assert "accept or decline it by 2026-03-09 09:00 Asia/Shanghai" in text
    assert f"http://127.0.0.1:8000/cases/{case['id']}" in text
    assert f'href="http://127.0.0.1:8000/cases/{case["id"]}"' in got.html()
    runtime.advance(SEVEN_DAYS + MINUTE)
    Dispatcher(runtime).dispatch()
    [reminder] = smtp_server.to("li.lei@mail.example")[1:]
    assert reminder.message["Subject"].startswith("Reminder: the invitation from Acme Cloud expires on 2026-03-09 09:00")
    [expired] = smtp_server.to("acme-admin@example.com")
    assert expired.message["Subject"] == "Invitation of li.lei to ACME expired"
    assert "invite them again; the new invitation is valid for 7 days" in expired.text()


def test_demo_seeds_an_invitation_about_to_expire_and_authentications_in_interesting_states(runtime):
    from engine.demo import seed
    from engine.models import Instance

    seed(runtime)
    inst = Instance.__table__
    with runtime.db.read() as conn:
        states = {(r.workflow, r.state) for r in conn.execute(select(inst.c.workflow, inst.c.state))}
        pending = conn.execute(select(inst.c.id).where(inst.c.workflow == "member_invitation",
                                                       inst.c.state == "pending")).scalar_one()
    assert {("member_invitation", "pending"), ("member_invitation", "accepted"),
            ("payment_authentication", "waiting_for_procurement"), ("payment_authentication", "under_review"),
            ("business_authentication", "under_review"), ("business_authentication", "approved"),
            ("registration_link", "verified")} <= states
    runtime.advance(timedelta(days=1, hours=1) - MINUTE)
    assert runtime.get(pending)["state"] == "pending"
    runtime.advance(2 * MINUTE)
    assert runtime.get(pending)["state"] == "expired"
