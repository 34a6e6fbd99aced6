"""Customer invitation and association (FAQ 5.3, 5.1.9-5.1.11, 6): preconditions, balance rules, model, locks."""
from __future__ import annotations

import json
from datetime import timedelta
from itertools import count as counter

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine import locks
from engine.customers import add_reserved_instance, lock_key
from engine.errors import (
    NotFound,
    EventNotAllowed,
    Forbidden,
    LockHeld,
    PartnerflowError,
    RuleViolation,
    ValidationError,
)
from tests.conftest import START
from tests.helpers import counts

from .test_customer_preregistration import account, add_account, outbox, prereg, render_all, set_account

INVITE_END = START + timedelta(days=7)


def invite(runtime, actor, email="ann@example.com", model="referral", **extra):
    return runtime.start("customer_association", {"email": email, "model": model, **extra}, actor)


@pytest.fixture
def ann(runtime, people):
    """A customer account in China with its own customer user."""
    return add_account(runtime, "ann@example.com", country="CN", login="ann")


# ------------------------------------------------------------------ invitation and acceptance
def test_email_invitation_accepted_associates_and_emails_the_customer(runtime, people, ann):
    case = invite(runtime, people["acme-dev1"], email=" Ann@Example.com")
    assert case["state"] == "invited" and case["data"]["email"] == "ann@example.com"
    assert case["data"]["expires_at"] == INVITE_END.isoformat() and case["data"]["valid"] == "7 days"
    assert [t["due_at"] for t in case["timers"]] == [INVITE_END.isoformat()]
    assert [r.recipient for r in outbox(runtime, "customer_association/invitation")] == ["ann@example.com"]
    done = runtime.fire(case["id"], "accept", people["ann"])
    assert done["state"] == "associated" and done["timers"] == []
    customer = account(runtime, "ann@example.com")
    assert (customer["partner"], customer["model"], customer["associated_at"]) == ("ACME", "referral", START)
    assert {r.recipient for r in outbox(runtime, "customer_association/associated")} == {
        "ann@example.com", "acme-admin@example.com", "contact@acme.example"}


def test_email_invitation_expires_at_its_validity(runtime, people, ann):
    case = invite(runtime, people["acme-admin"])
    runtime.advance_to(INVITE_END - timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "invited"
    runtime.advance(timedelta(minutes=2))
    assert runtime.get(case["id"])["state"] == "expired"
    before = counts(runtime.db)
    with pytest.raises(EventNotAllowed, match="not allowed in state 'expired'"):
        runtime.fire(case["id"], "accept", people["ann"])
    assert counts(runtime.db) == before
    assert [r.recipient for r in outbox(runtime, "customer_association/expired")] == [
        "acme-admin@example.com", "contact@acme.example"]
    assert invite(runtime, people["acme-admin"])["state"] == "invited"  # invite again


def test_invitation_validity_is_configurable(runtime, people, ann, monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_CUSTOMER_INVITATION_DAYS", "3")
    case = invite(runtime, people["acme-admin"])
    assert case["data"]["expires_at"] == (START + timedelta(days=3)).isoformat()
    runtime.advance(timedelta(days=3, minutes=1))
    assert runtime.get(case["id"])["state"] == "expired"


def test_offline_link_and_qr_code_never_expire(runtime, people, ann):
    case = invite(runtime, people["acme-admin"], channel="offline")
    assert case["timers"] == [] and "expires_at" not in case["data"] and case["data"]["valid"] == "permanently"
    assert case["data"]["qr_payload"] == case["data"]["link"] and "/join/customer/" in case["data"]["link"]
    assert [r.recipient for r in outbox(runtime, "customer_association/offline_link")] == ["acme-admin@example.com"]
    assert outbox(runtime, "customer_association/invitation") == []
    from workflows.customer_association import invitation_by_code

    with runtime.db.read() as conn:
        assert invitation_by_code(conn, case["data"]["link"].rsplit("/", 1)[1]) == case["id"]
        assert invitation_by_code(conn, "not-a-code") is None
    runtime.advance(timedelta(days=400))
    assert runtime.fire(case["id"], "accept", people["ann"])["state"] == "associated"


def test_only_the_invited_customer_answers(runtime, people, ann):
    add_account(runtime, "bob@example.com", login="bobc")
    case = invite(runtime, people["acme-admin"])
    before = counts(runtime.db)
    # another customer cannot even see someone else's invitation
    with pytest.raises(NotFound, match=f"case {case['id']} not found"):
        runtime.fire(case["id"], "accept", people["bobc"])
    with pytest.raises(Forbidden, match="needs role customer"):
        runtime.fire(case["id"], "accept", people["acme-admin"])
    assert counts(runtime.db) == before
    assert runtime.fire(case["id"], "decline", people["ann"])["state"] == "declined"


def test_accepting_needs_a_customer_account(runtime, people):
    case = invite(runtime, people["acme-admin"], email="new@example.com", country="CN")
    with runtime.db.write() as conn:
        from engine.directory import add_user
        add_user(conn, {"login": "newc", "name": "New", "email": "new@example.com", "roles": ["customer"]}, runtime.now())
    with pytest.raises(ValidationError, match="no customer account with email new@example.com: the customer must "
                                              "register an account"):
        runtime.fire(case["id"], "accept", people["newc"])
    add_account(runtime, "new@example.com", country="CN")
    set_account(runtime, "new@example.com", login="newc")
    assert runtime.fire(case["id"], "accept", people["newc"])["state"] == "associated"


def test_one_open_invitation_per_partner_and_email(runtime, people, ann):
    first = invite(runtime, people["acme-admin"])
    with pytest.raises(RuleViolation, match=rf"already open \(case {first['id']}, invited\)"):
        invite(runtime, people["acme-dev1"], model="reseller")
    runtime.fire(first["id"], "cancel", people["acme-dev1"])
    assert invite(runtime, people["acme-dev1"])["state"] == "invited"


# ------------------------------------------------------------------ pre-registration locks
def test_locking_partners_invitation_accepted_within_the_lock_associates(runtime, people, ann):
    lock = prereg(runtime, people["acme-admin"])
    case = invite(runtime, people["acme-admin"])
    runtime.advance_to(START + timedelta(days=15) - timedelta(minutes=1))
    assert runtime.get(case["id"])["state"] == "expired"  # the emailed invitation lapsed after 7 days
    offline = invite(runtime, people["acme-admin"], channel="offline")
    assert runtime.fire(offline["id"], "accept", people["ann"])["state"] == "associated"
    closed = runtime.get(lock["id"])
    assert closed["state"] == "associated" and closed["timers"] == []
    with runtime.db.read() as conn:
        assert locks.holder(conn, lock_key("ann@example.com"), runtime.now()) is None
    assert runtime.get(offline["id"])["data"]["preregistration_case"] == lock["id"]


def test_other_partners_invitation_during_the_lock_is_refused_naming_its_end(runtime, people, ann):
    prereg(runtime, people["acme-admin"])
    before = counts(runtime.db)
    with pytest.raises(LockHeld, match="pre-registered by another partner until 2026-03-17 02:00 Europe/Berlin"):
        invite(runtime, people["nord-admin"])
    assert counts(runtime.db) == before


def test_other_partners_earlier_link_cannot_be_accepted_during_the_lock(runtime, people, ann):
    set_account(runtime, "ann@example.com", country="DE")  # NORD's own country: no pre-registration needed
    nord = invite(runtime, people["nord-admin"], channel="offline")
    lock = prereg(runtime, people["acme-admin"])  # ACME's claim, made before the customer answered NORD
    runtime.advance_to(START + timedelta(days=15) - timedelta(minutes=1))
    before = counts(runtime.db)
    with pytest.raises(LockHeld) as err:
        runtime.fire(nord["id"], "accept", people["ann"])
    assert "until 2026-03-17 02:00 Europe/Berlin" in err.value.message
    assert counts(runtime.db) == before
    runtime.advance(timedelta(minutes=2))  # the lock ended: the permanent link works again
    assert runtime.get(lock["id"])["state"] == "expired"
    assert runtime.fire(nord["id"], "accept", people["ann"])["state"] == "associated"
    assert account(runtime, "ann@example.com")["partner"] == "NORD"


def test_across_countries_association_needs_a_live_preregistration(runtime, people, ann):
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="ann@example.com is in CN and partner NORD in DE: across countries .* "
                                            r"pre-register the customer first \(FAQ 5.3.6\)"):
        invite(runtime, people["nord-admin"])
    assert counts(runtime.db) == before
    prereg(runtime, people["nord-admin"])
    case = invite(runtime, people["nord-admin"], channel="offline")
    runtime.advance(timedelta(days=15, minutes=1))  # the lock ended before the customer answered
    with pytest.raises(RuleViolation, match="across countries"):
        runtime.fire(case["id"], "accept", people["ann"])
    prereg(runtime, people["nord-admin"])
    assert runtime.fire(case["id"], "accept", people["ann"])["state"] == "associated"


# ------------------------------------------------------------------ association preconditions (FAQ 5.3.1)
@pytest.mark.parametrize("attribute, reason", [
    ("in_arrears", "the account is in arrears"),
    ("special_contract", "the account has a special contract with the vendor"),
    ("internal", "it is an internal account"),
])
def test_account_preconditions_refuse_invitation_and_acceptance(runtime, people, ann, attribute, reason):
    set_account(runtime, "ann@example.com", **{attribute: True})
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=f"customer ann@example.com cannot be associated: {reason}"):
        invite(runtime, people["acme-admin"])
    assert counts(runtime.db) == before
    set_account(runtime, "ann@example.com", **{attribute: False})
    case = invite(runtime, people["acme-admin"])
    set_account(runtime, "ann@example.com", **{attribute: True})  # changed after the invitation
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match=reason):
        runtime.fire(case["id"], "accept", people["ann"])
    assert counts(runtime.db) == before
    assert account(runtime, "ann@example.com")["partner"] is None


def test_unexpired_reserved_instances_refuse_until_the_last_expires(runtime, people, ann):
    expiry = START + timedelta(days=10)
    with runtime.db.write() as conn:
        add_reserved_instance(conn, "ann@example.com", "ri-web-01", expiry, runtime.now())
        add_reserved_instance(conn, "ann@example.com", "ri-db-01", START + timedelta(days=2), runtime.now())
    with pytest.raises(RuleViolation, match=r"2 unexpired reserved instance\(s\) \(ri-db-01, ri-web-01\); the last "
                                            "expires 2026-03-12 09:00 Asia/Shanghai"):
        invite(runtime, people["acme-admin"])
    runtime.advance_to(expiry - timedelta(minutes=1))
    with pytest.raises(RuleViolation, match=r"1 unexpired reserved instance\(s\) \(ri-web-01\)"):
        invite(runtime, people["acme-admin"], channel="offline")
    runtime.advance(timedelta(minutes=2))
    case = invite(runtime, people["acme-admin"], channel="offline")
    assert runtime.fire(case["id"], "accept", people["ann"])["state"] == "associated"


def test_a_customer_has_only_one_partner(runtime, people, ann):
    set_account(runtime, "ann@example.com", country="DE")
    nord = invite(runtime, people["nord-admin"], channel="offline")
    prereg(runtime, people["acme-admin"])  # across countries ACME needs its pre-registration
    acme = invite(runtime, people["acme-admin"], channel="offline", model="reseller")
    assert runtime.fire(acme["id"], "accept", people["ann"])["state"] == "associated"
    before = counts(runtime.db)
    with pytest.raises(RuleViolation, match="ann@example.com already has a partner; a customer can be associated "
                                            r"with only one partner \(FAQ 5.3.1\)"):
        runtime.fire(nord["id"], "accept", people["ann"])
    with pytest.raises(RuleViolation, match="already has a partner"):
        invite(runtime, people["nord-admin"], model="reseller")
    assert counts(runtime.db) == before
    assert account(runtime, "ann@example.com")["partner"] == "ACME"


# ------------------------------------------------------------------ reseller balance rules
@pytest.mark.parametrize("choice", ["keep_balance", "withdraw_balance"])
def test_balance_and_outstanding_at_2000_00_lets_the_customer_choose(runtime, people, ann, choice):
    set_account(runtime, "ann@example.com", balance="500.00", outstanding_invoices="2000.00")
    case = invite(runtime, people["acme-admin"], model="reseller")
    chosen = runtime.fire(case["id"], "accept", people["ann"])
    assert chosen["state"] == "choosing_balance" and chosen["data"]["balance"] == "500.00"
    assert [r.recipient for r in outbox(runtime, "customer_association/choose_balance")] == ["ann@example.com"]
    with pytest.raises(Forbidden, match="needs role customer"):
        runtime.fire(case["id"], choice, people["acme-admin"])
    done = runtime.fire(case["id"], choice, people["ann"])
    assert done["state"] == "associated"
    customer = account(runtime, "ann@example.com")
    assert customer["model"] == "reseller"
    if choice == "keep_balance":
        assert done["data"]["balance_transferred"] == "500.00" and str(customer["balance"]) == "500.00"
    else:
        assert done["data"]["balance_withdrawn"] == "500.00" and str(customer["balance"]) == "0.00"


def test_outstanding_invoices_of_2000_01_go_to_manual_review(runtime, people, ann):
    set_account(runtime, "ann@example.com", balance="500.00", outstanding_invoices="2000.01")
    case = invite(runtime, people["acme-admin"], model="reseller")
    review = runtime.fire(case["id"], "accept", people["ann"])
    assert review["state"] == "manual_review"
    assert [(t["role"], t["flags"]) for t in review["tasks"]] == [
        ("ecosystem_manager", ["outstanding invoices 2000.01 RMB > 2000.00 RMB"])]
    assert review["tasks"][0]["due_local"] == "2026-03-09 23:59 Asia/Shanghai"
    assert {r.recipient for r in outbox(runtime, "customer_association/manual_review")} >= {
        "alice@example.com", "bob@example.com", "acme-admin@example.com"}
    assert account(runtime, "ann@example.com")["partner"] is None
    with pytest.raises(Forbidden):
        runtime.fire(case["id"], "approve", people["acme-admin"])
    done = runtime.fire(case["id"], "approve", people["alice"], {"balance": "withdraw"}, comment="invoices checked")
    assert done["state"] == "associated" and done["data"]["reviewed_by"] == "alice"
    assert done["tasks"] == [] and str(account(runtime, "ann@example.com")["balance"]) == "0.00"


def test_top_up_rewards_go_to_manual_review_and_may_be_rejected(runtime, people, ann):
    set_account(runtime, "ann@example.com", topup_rewards="0.01")
    case = invite(runtime, people["acme-admin"], model="reseller")
    review = runtime.fire(case["id"], "accept", people["ann"])
    assert review["state"] == "manual_review" and review["tasks"][0]["flags"] == ["top-up rewards 0.01 RMB"]
    with pytest.raises(ValidationError, match="a comment is required to reject"):
        runtime.fire(case["id"], "reject", people["bob"])
    assert runtime.fire(case["id"], "reject", people["bob"], comment="rewards must be used first")["state"] == "rejected"
    assert account(runtime, "ann@example.com")["partner"] is None


def test_referral_model_has_no_balance_step_and_zero_balance_reseller_associates_directly(runtime, people, ann):
    add_account(runtime, "zed@example.com", login="zed")
    set_account(runtime, "ann@example.com", balance="900.00", outstanding_invoices="5000.00")
    case = invite(runtime, people["acme-admin"], model="referral")
    assert runtime.fire(case["id"], "accept", people["ann"])["state"] == "associated"
    reseller = invite(runtime, people["acme-admin"], email="zed@example.com", model="reseller")
    assert runtime.fire(reseller["id"], "accept", people["zed"])["state"] == "associated"


# ------------------------------------------------------------------ model and disassociation
def test_model_is_permanent_and_only_an_operator_changes_it_with_a_comment(runtime, people, ann):
    case = invite(runtime, people["acme-admin"], model="referral")
    runtime.fire(case["id"], "accept", people["ann"])
    before = counts(runtime.db)
    with pytest.raises(Forbidden, match="change_model"):
        runtime.fire(case["id"], "change_model", people["acme-admin"], {"model": "reseller"}, comment="please")
    with pytest.raises(ValidationError, match="a comment is required to change_model"):
        runtime.fire(case["id"], "change_model", people["alice"], {"model": "reseller"})
    with pytest.raises(RuleViolation, match="already under the referral model"):
        runtime.fire(case["id"], "change_model", people["alice"], {"model": "referral"}, comment="no-op")
    with runtime.db.write() as conn, pytest.raises(ValidationError, match="model: cannot be changed here"):
        from engine.customers import update_customer
        update_customer(conn, "ann@example.com", {"model": "reseller"}, runtime.now())
    assert counts(runtime.db) == before
    changed = runtime.fire(case["id"], "change_model", people["oscar"], {"model": "reseller"},
                           comment="contract signed 2026-03-01")
    assert changed["state"] == "associated" and changed["data"]["model"] == "reseller"
    assert changed["data"]["model_changes"][0] | {"at": None} == {
        "from": "referral", "to": "reseller", "by": "oscar", "at": None, "comment": "contract signed 2026-03-01"}
    assert account(runtime, "ann@example.com")["model"] == "reseller"
    assert {r.recipient for r in outbox(runtime, "customer_association/model_changed")} >= {"ann@example.com"}


def test_reseller_customer_may_request_disassociation(runtime, people, ann):
    case = invite(runtime, people["acme-admin"], model="reseller")
    runtime.fire(case["id"], "accept", people["ann"])
    asked = runtime.fire(case["id"], "request_disassociation", people["ann"])
    assert asked["state"] == "disassociation_requested" and asked["tasks"][0]["role"] == "ecosystem_manager"
    assert runtime.fire(case["id"], "decline_disassociation", people["alice"],
                        comment="open orders first")["state"] == "associated"
    assert len(outbox(runtime, "customer_association/associated")) == 3  # not re-sent on decline
    runtime.fire(case["id"], "request_disassociation", people["ann"])
    done = runtime.fire(case["id"], "approve_disassociation", people["alice"])
    assert done["state"] == "disassociated"
    assert (account(runtime, "ann@example.com")["partner"], account(runtime, "ann@example.com")["model"]) == (None, None)
    nord_free = invite(runtime, people["acme-admin"])  # free again
    assert nord_free["state"] == "invited"


def test_referral_customer_cannot_request_disassociation(runtime, people, ann):
    case = invite(runtime, people["acme-admin"], model="referral")
    runtime.fire(case["id"], "accept", people["ann"])
    with pytest.raises(RuleViolation, match=r"only a reseller customer may request disassociation \(FAQ 6.7\)"):
        runtime.fire(case["id"], "request_disassociation", people["ann"])


# ------------------------------------------------------------------ emails and command line
def test_emails_render_in_both_languages(runtime, people, ann):
    set_account(runtime, "ann@example.com", balance="10.00")
    case = invite(runtime, people["acme-admin"], model="reseller", message="Welcome <b>aboard</b>")
    runtime.fire(case["id"], "accept", people["ann"])
    runtime.fire(case["id"], "keep_balance", people["ann"])
    runtime.fire(case["id"], "change_model", people["alice"], {"model": "referral"}, comment="customer asked")
    runtime.fire(case["id"], "change_model", people["alice"], {"model": "reseller"}, comment="back")
    runtime.fire(case["id"], "request_disassociation", people["ann"])
    runtime.fire(case["id"], "approve_disassociation", people["alice"])
    set_account(runtime, "ann@example.com", topup_rewards="5.00")
    review = invite(runtime, people["acme-admin"], model="reseller", channel="offline")
    runtime.fire(review["id"], "accept", people["ann"])
    runtime.fire(review["id"], "reject", people["alice"], comment="rewards")
    lapsed = invite(runtime, people["acme-admin"])
    runtime.advance(timedelta(days=8))
    assert runtime.get(lapsed["id"])["state"] == "expired"
    rendered = render_all(runtime, "customer_association/")
    assert {row.template.split("/")[1] for row, _ in rendered} == {
        "invitation", "choose_balance", "associated", "model_changed", "disassociation_requested", "disassociated",
        "offline_link", "manual_review", "rejected", "expired"}
    invitation = next(m for row, m in rendered if row.template.endswith("/invitation"))
    assert "2026-03-09 09:00 Asia/Shanghai" in invitation.text and "Welcome &lt;b&gt;aboard" in invitation.html
    associated = next(m for row, m in rendered if row.template.endswith("/associated") and row.recipient == "ann@example.com")
    assert "reseller" in associated.text and "10.00 RMB was transferred" in associated.text


@pytest.fixture
def cli(db_url, monkeypatch, people):
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("PARTNERFLOW_CLOCK", "simulated")
    from engine.cli import main

    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    return run


def test_customers_cli_adds_shows_and_refuses_model_changes(cli, runtime):
    cli("users", "add", "--login", "ann", "--name", "Ann", "--email", "ann@example.com", "--role", "customer")
    out = cli("customers", "add", "--email", " Ann@Example.com", "--name", "Ann Ltd", "--country", "cn",
              "--login", "ann", "--balance", "2000.00", "--outstanding-invoices", "2000.01", "--json").stdout
    added = json.loads(out)
    assert (added["email"], added["country"], added["balance"], added["outstanding_invoices"]) == (
        "ann@example.com", "CN", "2000.00", "2000.01")
    cli("customers", "set", "ann@example.com", "--in-arrears")
    cli("customers", "reserve", "ann@example.com", "--name", "ri-1", "--expires", "2026-03-05T00:00:00+08:00")
    shown = cli("customers", "show", "ANN@example.com").stdout
    assert "flags: in_arrears" in shown and "reserved instance ri-1 expires 2026-03-04T16:00:00+00:00" in shown
    ghost = cli("customers", "add", "--email", "g@example.com", "--name", "G", "--country", "CN", "--login", "ghost",
                ok=False)
    assert ghost.stderr.strip() == ("error: login: no user with login 'ghost'; add the customer's user first "
                                    "(partnerflow users add --role customer)")
    bad = cli("customers", "add", "--email", "ann@example.com", "--name", "x", "--country", "CN", ok=False)
    assert bad.exit_code == 1 and bad.stderr.strip() == "error: a customer with email 'ann@example.com' already exists"
    refused = cli("start", "customer_association", "--data", '{"email": "ann@example.com", "model": "reseller"}',
                  "--as", "acme-admin", ok=False)
    assert refused.exit_code == 1 and "the account is in arrears (FAQ 5.3.1)" in refused.stderr
    cli("customers", "set", "ann@example.com", "--not-in-arrears")
    refused = cli("start", "customer_association", "--data", '{"email": "ann@example.com", "model": "reseller"}',
                  "--as", "acme-admin", ok=False)
    assert "1 unexpired reserved instance(s) (ri-1); the last expires 2026-03-05 00:00 Asia/Shanghai" in refused.stderr
    cli("clock", "advance", "3d")
    started = json.loads(cli("start", "customer_association", "--data",
                             '{"email": "ann@example.com", "model": "reseller", "channel": "offline"}',
                             "--as", "acme-admin", "--json").stdout)
    assert "manual_review" in cli("fire", str(started["id"]), "accept", "--as", "ann").stdout
    listed = json.loads(cli("customers", "list", "--json").stdout)
    assert [c["email"] for c in listed] == ["ann@example.com"]
    assert "allowed" in cli("customers", "purchase-check", "ann@example.com", "subscription").stdout


# ------------------------------------------------------------------ property: one partner at most
ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("prereg"), st.sampled_from(["ACME", "NORD", "EAST"])),
    st.tuples(st.just("invite"), st.sampled_from(["ACME", "NORD", "EAST"]), st.sampled_from(["email", "offline"])),
    st.tuples(st.just("accept"), st.integers(min_value=0, max_value=5)),
    st.tuples(st.just("release"), st.sampled_from(["ACME", "NORD", "EAST"])),
    st.tuples(st.just("advance"), st.integers(min_value=1, max_value=10 * 24 * 60)),
), min_size=1, max_size=14)

_serial = counter()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_property_at_most_one_partner_ever_holds_the_customer(runtime, people, actions):
    """Random pre-registrations, invitations, acceptances, releases and clock moves over 30 days on one email.

    A model of the rules predicts each outcome; the engine must agree, and the
    customer never has more than one partner nor changes partner.
    """
    from engine.directory import add_partner

    n = next(_serial)
    runtime.clock.set(START)  # every example lives in the same 30 days
    with runtime.db.write() as conn:
        from engine.directory import partner_by_code
        try:
            partner_by_code(conn, "EAST")
        except PartnerflowError:
            add_partner(conn, {"code": "EAST", "name": "East Cloud", "admin_login": "east-admin"}, runtime.now())
            from engine.directory import add_user
            add_user(conn, {"login": "east-admin", "name": "East", "email": "east@example.com",
                            "roles": ["partner_admin"], "partner": "EAST"}, runtime.now())
    email = f"prop{n}@example.com"
    login = f"prop{n}"
    add_account(runtime, email, country="CN", login=login)
    admins = {"ACME": people["acme-admin"], "NORD": people["nord-admin"], "EAST": people["east-admin"]}
    country = {"ACME": "CN", "NORD": "DE", "EAST": "CN"}
    lock: dict = {}  # owner, until, case
    invitations: list[dict] = []
    holder: str | None = None
    end = START + timedelta(days=30)

    def lock_live(now):
        return lock.get("until") is not None and lock["until"] > now

    for action in actions:
        now = runtime.now()
        kind = action[0]
        if kind == "advance":
            target = min(now + timedelta(minutes=action[1]), end)
            runtime.advance_to(target)
            continue
        if kind == "prereg":
            p = action[1]
            expect = holder is None and not lock_live(now)
            try:
                case = prereg(runtime, admins[p], email=email)
                ok = True
            except (RuleViolation, LockHeld):
                ok = False
            assert ok == expect, (action, lock, holder)
            event(f"pre-register {'locked' if ok else 'refused'}")
            if ok:
                lock = {"owner": p, "until": now + timedelta(days=15), "case": case["id"]}
        elif kind == "release":
            p = action[1]
            expect = lock_live(now) and lock["owner"] == p and holder is None
            try:
                if not lock or lock["owner"] != p:
                    raise EventNotAllowed("release", "none", [])
                runtime.fire(lock["case"], "release", admins[p])
                ok = True
            except EventNotAllowed:
                ok = False
            assert ok == expect, (action, lock, holder)
            if ok:
                lock = {}
        else:
            if kind == "invite":
                p, channel = action[1], action[2]
            else:
                if not invitations:
                    continue
                inv = invitations[action[1] % len(invitations)]
                p = inv["partner"]
            other_lock = lock_live(now) and lock["owner"] != p
            own_lock = lock_live(now) and lock["owner"] == p
            allowed = holder is None and not other_lock and (country[p] == "CN" or own_lock)
            if kind == "invite":
                open_ = any(i["partner"] == p and i["state"] == "invited"
                            and (i["expires"] is None or i["expires"] > now) for i in invitations)
                expect = allowed and not open_
                try:
                    case = invite(runtime, admins[p], email=email, channel=channel)
                    ok = True
                except (RuleViolation, LockHeld):
                    ok = False
                assert ok == expect, (action, lock, holder, invitations)
                if ok:
                    invitations.append({"id": case["id"], "partner": p, "state": "invited",
                                        "expires": now + timedelta(days=7) if channel == "email" else None})
            else:
                live = inv["state"] == "invited" and (inv["expires"] is None or inv["expires"] > now)
                expect = allowed and live
                try:
                    runtime.fire(inv["id"], "accept", people[login])
                    ok = True
                except (RuleViolation, LockHeld, EventNotAllowed):
                    ok = False
                assert ok == expect, (action, lock, holder, inv)
                event(f"accept {'associated' if ok else 'refused'}")
                if ok:
                    inv["state"] = "associated"
                    holder = p
                    if lock.get("owner") == p:
                        lock = {}
        customer = account(runtime, email)
        assert customer["partner"] == holder
    with runtime.db.read() as conn:
        from sqlalchemy import select

        from engine.models import Instance
        I = Instance.__table__
        associated = conn.execute(select(I.c.partner_id).where(
            I.c.workflow == "customer_association", I.c.business_key == email, I.c.state == "associated")).all()
    assert len(associated) <= 1
    assert account(runtime, email)["partner"] == holder
