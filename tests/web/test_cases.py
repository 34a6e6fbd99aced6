"""The case page and decisions: data, timeline, timers, diagram, forms, comment rule, four-eyes, stale version."""
from __future__ import annotations

import re

from tests.helpers import counts
from tests.web.conftest import start_probe, start_voucher


def test_case_page_shows_data_history_timers_tasks_and_diagram(browser, rt, users):
    case = start_probe(rt, users, amount="1200.50", note="Roadshow in Hangzhou")
    html = browser("mona").text(f"/cases/{case['id']}")
    assert f"Case #{case['id']} · Web probe request" in html
    assert "Roadshow in Hangzhou" in html and "1200.50" in html
    assert "expire -&gt; expired on 2026-03-12 09:00 Asia/Shanghai" in html  # the timer says what it will do
    assert "Decide on the probe request, due 2026-03-04 09:00 Asia/Shanghai" in html
    assert "start</strong> by acme-admin" in html and "2026-03-02 09:00 Asia/Shanghai" in html
    diagram = re.search(r'<pre class="mermaid"[^>]*>(.*?)</pre>', html, re.S).group(1)
    assert diagram.startswith("stateDiagram-v2") and "class s_submitted current" in diagram
    assert "class s_approved,s_returned reachable" in diagram
    assert '<script src="/static/vendor/mermaid/mermaid.min.js"></script>' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None  # no inline script anywhere


def test_vendored_mermaid_and_licence_are_served(app):
    client = app.test_client()
    js = client.get("/static/vendor/mermaid/mermaid.min.js")
    assert js.status_code == 200 and len(js.data) > 1_000_000
    js.close()
    licence = client.get("/static/vendor/mermaid/LICENSE")
    assert b"MIT" in licence.data or b"Permission is hereby granted" in licence.data
    licence.close()


def test_decision_form_lists_my_events_with_payload_fields_and_comment_rule(browser, rt, users):
    case = start_probe(rt, users)
    html = browser("mona").text(f"/cases/{case['id']}")
    events = re.findall(r'action="/cases/\d+/events/(\w+)"', html)
    assert events == ["approve", "edit", "return_to_partner"]  # never the system's 'expire'
    assert 'id="ev-approve-approved_amount"' in html and 'id="ev-approve-level"' in html
    assert 'for="comment-return_to_partner">Comment (required)' in html
    assert 'name="expected_version" value="1"' in html
    partner_html = browser("acme-admin").text(f"/cases/{case['id']}")
    assert re.findall(r'action="/cases/\d+/events/(\w+)"', partner_html) == []


def test_approve_with_comment_and_payload_from_the_form(browser, rt, users):
    case = start_probe(rt, users)
    mona = browser("mona")
    resp = mona.post(f"/cases/{case['id']}/events/approve",
                     {"expected_version": "1", "comment": "Budget checked", "field_approved_amount": "1000.00",
                      "field_level": "high", "field_urgent": "on", "field_codes": "A1\nB2\n", "field_count": "3"})
    assert resp.status_code == 303
    view = rt.get(case["id"])
    assert view["state"] == "approved" and view["data"]["approved_amount"] == "1000.00"
    last = view["history"][-1]
    assert last["comment"] == "Budget checked" and last["actor"] == "mona"
    assert last["payload"] == {"approved_amount": "1000.00", "level": "high", "urgent": True, "codes": ["A1", "B2"],
                               "count": 3}
    html = mona.text(f"/cases/{case['id']}")
    assert "approve done; the case is now approved" in html and "<blockquote>Budget checked</blockquote>" in html


def test_return_without_comment_is_refused_and_saves_nothing(browser, rt, users):
    case = start_probe(rt, users)
    before = counts(rt.db)
    resp = browser("mona").post(f"/cases/{case['id']}/events/return_to_partner", {"expected_version": "1"})
    assert resp.status_code == 422
    assert "comment: a comment is required to return_to_partner" in resp.get_data(as_text=True)
    assert counts(rt.db) == before


def test_bad_payload_field_is_named_and_input_kept(browser, rt, users):
    case = start_probe(rt, users)
    resp = browser("mona").post(f"/cases/{case['id']}/events/approve",
                                {"expected_version": "1", "field_approved_amount": "12.345", "comment": "keep me"})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "approved_amount: has more than 2 decimal places" in html and ">keep me</textarea>" in html


def test_stale_version_is_a_conflict_with_reload_advice(browser, rt, users):
    case = start_probe(rt, users)
    rt.fire(case["id"], "edit", users["alice"], {"note": "typo"})
    resp = browser("mona").post(f"/cases/{case['id']}/events/approve", {"expected_version": "1"})
    assert resp.status_code == 409
    assert "is at version 2, not 1" in resp.get_data(as_text=True)
    assert rt.get(case["id"])["state"] == "submitted"


def test_event_not_allowed_lists_allowed_events(browser, rt, users):
    case = start_voucher(rt, users)
    rt.fire(case["id"], "approve", users["alice"])
    resp = browser("bob").post(f"/cases/{case['id']}/events/approve", {})
    assert resp.status_code == 409
    assert "event &#39;approve&#39; is not allowed in state &#39;approved&#39;" in resp.get_data(as_text=True)


def test_role_refusal_is_403_with_the_roles_needed(browser, rt, users):
    case = start_probe(rt, users)
    resp = browser("fiona").post(f"/cases/{case['id']}/events/approve", {})
    assert resp.status_code == 403
    assert "needs role admin or ecosystem_manager or mdf_owner; fiona has finance" in resp.get_data(as_text=True)


def test_four_eyes_editor_cannot_approve_and_page_says_why(browser, rt, users):
    case = start_probe(rt, users)
    rt.fire(case["id"], "edit", users["mona"], {"amount": "900.00"})
    mona = browser("mona")
    html = mona.text(f"/cases/{case['id']}")
    assert "four-eyes rule: you submitted or edited this case" in html
    before = counts(rt.db)
    resp = mona.post(f"/cases/{case['id']}/events/approve", {"expected_version": "2"})
    assert resp.status_code == 403
    text = resp.get_data(as_text=True)
    assert "Not allowed:</strong>" in text and f"four-eyes rule: mona submitted or edited case {case['id']}" in text
    assert counts(rt.db) == before
    resp = browser("alice").post(f"/cases/{case['id']}/events/approve", {"expected_version": "2"})
    assert resp.status_code == 303 and rt.get(case["id"])["state"] == "approved"


def test_delegate_of_the_editor_cannot_approve(browser, rt, users):
    case = start_probe(rt, users)
    rt.fire(case["id"], "edit", users["mona"], {"note": "clarified"})
    root = browser("root")
    resp = root.post("/admin/users/alice/delegates", {"delegate_of": "mona"}, follow_redirects=True)
    assert "alice is now a delegate of: mona." in resp.get_data(as_text=True)
    alice = browser("alice")
    assert "you are a delegate of mona" in alice.text(f"/cases/{case['id']}")
    resp = alice.post(f"/cases/{case['id']}/events/approve", {"expected_version": "2"})
    assert resp.status_code == 403
    assert "alice is a delegate of mona, who submitted or edited case" in resp.get_data(as_text=True)
    root.post("/admin/users/alice/delegates", {"delegate_of": ""})
    assert browser("alice").post(f"/cases/{case['id']}/events/approve", {"expected_version": "2"}).status_code == 303


def test_cross_partner_case_is_404_for_page_and_decision(browser, rt, users):
    case = start_probe(rt, users)
    nord = browser("nord-admin")
    assert nord.get(f"/cases/{case['id']}").status_code == 404
    resp = nord.post(f"/cases/{case['id']}/events/approve", {})
    assert resp.status_code == 404 and f"case {case['id']} not found" in resp.get_data(as_text=True)
    assert browser("acme-dev1").get(f"/cases/{case['id']}").status_code == 200


def test_partner_starts_a_case_from_the_form_and_resubmits(browser, rt, users):
    acme = browser("acme-admin")
    html = acme.text("/cases/new")
    assert 'action="/cases/new/web_probe"' in html and 'id="start-web_probe-amount"' in html
    resp = acme.post("/cases/new/web_probe", {"field_amount": "-5"})
    assert resp.status_code == 422 and "amount: must not be negative" in resp.get_data(as_text=True)
    resp = acme.post("/cases/new/web_probe", {"field_amount": "300", "field_currency": "USD", "comment": "go"})
    assert resp.status_code == 303
    case_id = int(resp.headers["Location"].rsplit("/", 1)[1])
    assert rt.get(case_id)["data"] == {"amount": "300.00", "currency": "USD"}
    rt.fire(case_id, "return_to_partner", users["mona"], comment="wrong currency")
    resp = acme.post(f"/cases/{case_id}/events/resubmit", {"expected_version": "2"})
    assert resp.status_code == 303 and rt.get(case_id)["state"] == "submitted"


def test_operator_start_form_needs_partner(browser, rt, users):
    resp = browser("root").post("/cases/new/exam_voucher", {"field_exam": "X", "field_users": "acme-dev1"})
    assert resp.status_code == 403  # only partner people may apply for vouchers
    assert "starting exam_voucher needs role" in resp.get_data(as_text=True)


def test_unknown_case_is_404_and_huge_id_is_404_not_500(browser):
    mona = browser("mona")
    assert mona.get("/cases/999999").status_code == 404
    assert mona.get("/cases/99999999999999999999999").status_code == 404


def test_case_list_page_scoped_filtered_and_paged(browser, rt, users):
    acme = [start_probe(rt, users)["id"] for _ in range(3)]
    nord = start_probe(rt, users, who="nord-admin")["id"]
    html = browser("acme-admin").text("/cases")
    assert all(f'href="/cases/{i}"' in html for i in acme) and f'href="/cases/{nord}"' not in html
    html = browser("mona").text("/cases?partner=NORD&workflow=web_probe&final=false")
    assert f'href="/cases/{nord}"' in html and f'href="/cases/{acme[0]}"' not in html
    assert browser("mona").get("/cases?final=maybe").status_code == 422
    assert browser("acme-admin").get("/cases?partner=NORD").status_code == 403
