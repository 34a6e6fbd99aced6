"""The inbox page: my roles' open tasks, columns, due marks, filters, keyset pages, claim/unclaim/reassign/bulk."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import insert, select

from engine.models import Task
from tests.web.conftest import start_probe, start_voucher

TK = Task.__table__


def task_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'name="task" value="(\d+)"', html)]


def test_inbox_shows_open_tasks_of_my_roles_with_columns(browser, rt, users):
    probe = start_probe(rt, users, amount="25000.00")
    start_voucher(rt, users)
    html = browser("mona").text("/inbox")
    assert f'href="/cases/{probe["id"]}"' in html
    assert "web_probe" in html and "exam_voucher" not in html.split("<tbody>")[1]  # vouchers are for ecosystem managers
    row = html.split("<tbody>")[1]
    for column in ("ACME", "submitted", "2026-03-02 09:00 Asia/Shanghai", "2026-03-04 09:00 Asia/Shanghai",
                   "25000.00 CNY", "large", "unassigned"):
        assert column in row, column


def test_partner_user_sees_only_own_partner_tasks(browser, rt, users):
    acme = start_probe(rt, users)
    nord = start_probe(rt, users, who="nord-admin")
    for case in (acme, nord):
        rt.fire(case["id"], "return_to_partner", users["mona"], comment="add the invoice")
    html = browser("acme-admin").text("/inbox")
    assert f"/cases/{acme['id']}" in html and f"/cases/{nord['id']}" not in html
    assert browser("acme-admin").get("/inbox?partner=NORD").status_code == 403


def test_due_marks_overdue_and_due_today_in_user_zone(browser, rt, users):
    case = start_probe(rt, users)  # task due 2 days after 2026-03-02 09:00 Beijing time
    rt.clock.set(rt.now() + timedelta(days=1, hours=20))  # 2026-03-04 05:00 Beijing: due today
    html = browser("mona").text("/inbox")
    assert "due today" in html and "overdue</strong>" not in html
    rt.clock.set(rt.now() + timedelta(hours=5))  # 10:00: an hour late
    html = browser("mona").text("/inbox")
    assert 'class="mark overdue">overdue' in html
    assert task_ids(browser("mona").text("/inbox?due=overdue")) and f"/cases/{case['id']}" in html
    assert task_ids(browser("mona").text("/inbox?due=today")) == task_ids(html)


def test_filters_lifecycle_partner_assigned_and_due(browser, rt, users):
    root = users["root"]
    a = start_probe(rt, users)
    n = start_probe(rt, users, who="nord-admin")
    v = start_voucher(rt, users)
    admin = browser("root")
    assert len(task_ids(admin.text("/inbox"))) == 3
    only_probe = task_ids(admin.text("/inbox?workflow=web_probe"))
    assert len(only_probe) == 2
    nord_html = admin.text("/inbox?partner=NORD")
    assert f"/cases/{n['id']}" in nord_html and f"/cases/{a['id']}" not in nord_html
    first = task_ids(admin.text("/inbox?workflow=exam_voucher"))[0]
    assert admin.post(f"/inbox/tasks/{first}/claim").status_code == 303
    mine = admin.text("/inbox?assigned=me")
    assert task_ids(mine) == [first] and f"/cases/{v['id']}" in mine
    assert first not in task_ids(admin.text("/inbox?assigned=unassigned"))
    assert task_ids(admin.text("/inbox?due=none")) == []
    assert root.login == "root"


def test_bad_filter_is_refused_naming_the_field(browser):
    resp = browser("mona").get("/inbox?due=yesterday")
    assert resp.status_code == 422
    assert "due: &#39;yesterday&#39; is not one of: overdue, today, week, none" in resp.get_data(as_text=True)
    assert browser("mona").get("/inbox?after=garbage").status_code == 422


def test_keyset_pages_of_50_cover_every_task_once_in_due_order(browser, rt, users):
    # 60 dated tasks share one due instant per day (ties broken by id) plus 5 tasks without a due date
    for i in range(60):
        if i % 20 == 0 and i:
            rt.clock.set(rt.now() + timedelta(days=1))
        start_probe(rt, users)
    with rt.db.write() as conn:
        for i in range(5):
            conn.execute(insert(TK).values(instance_id=1, workflow="web_probe", partner_id=None, state="submitted",
                                           name=f"extra{i}", role="mdf_owner", title="Undated", status="open",
                                           due_at=None, flags=[], created_at=rt.now()))
    mona = browser("mona")
    seen, url = [], "/inbox"
    pages = 0
    while url:
        html = mona.text(url)
        ids = task_ids(html)
        assert len(ids) <= 50
        seen.extend(ids)
        pages += 1
        match = re.search(r'rel="next" href="([^"]+)"', html)
        url = match.group(1).replace("&amp;", "&") if match else None
    assert pages == 2 and len(seen) == 65 and len(set(seen)) == 65
    with rt.db.read() as conn:
        rows = {r.id: r for r in conn.execute(select(TK).where(TK.c.id.in_(seen)))}
    dated = [rows[i] for i in seen if rows[i].due_at is not None]
    assert [(r.due_at, r.id) for r in dated] == sorted((r.due_at, r.id) for r in dated)
    assert all(rows[i].due_at is None for i in seen[60:])


def test_claim_unclaim_reassign_and_conflicts(browser, rt, users):
    case = start_probe(rt, users)
    tid = rt.get(case["id"])["tasks"][0]["id"]
    mona, root, alice = browser("mona"), browser("root"), browser("alice")
    resp = mona.post(f"/inbox/tasks/{tid}/claim", follow_redirects=True)
    assert f"Task {tid} is yours now." in resp.get_data(as_text=True)
    resp = root.post(f"/inbox/tasks/{tid}/claim", follow_redirects=True)
    assert f"task {tid} is already claimed by mona" in resp.get_data(as_text=True)
    resp = alice.post(f"/inbox/tasks/{tid}/claim", follow_redirects=True)
    assert f"task {tid} is for role mdf_owner; alice has ecosystem_manager" in resp.get_data(as_text=True)
    resp = mona.post(f"/inbox/tasks/{tid}/reassign", {"assignee": "alice"}, follow_redirects=True)
    assert "alice does not hold role mdf_owner" in resp.get_data(as_text=True)
    resp = mona.post(f"/inbox/tasks/{tid}/reassign", {"assignee": "root"}, follow_redirects=True)
    assert f"Task {tid} is now assigned to root." in resp.get_data(as_text=True)
    resp = mona.post(f"/inbox/tasks/{tid}/unclaim", follow_redirects=True)
    assert "only they or an admin may release it" in resp.get_data(as_text=True)
    resp = root.post(f"/inbox/tasks/{tid}/unclaim", follow_redirects=True)
    assert f"Task {tid} is back in the pool." in resp.get_data(as_text=True)
    assert rt.get(case["id"])["tasks"][0]["assignee"] is None


def test_bulk_claim_claims_free_tasks_and_reports_the_rest(browser, rt, users):
    ids = [rt.get(start_probe(rt, users)["id"])["tasks"][0]["id"] for _ in range(3)]
    browser("root").post(f"/inbox/tasks/{ids[0]}/claim")
    resp = browser("mona").post("/inbox/claim", {"task": [str(i) for i in ids]}, follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert f"Claimed 2 task(s): {ids[1]}, {ids[2]}." in html
    assert f"Task {ids[0]} not claimed: task {ids[0]} is already claimed by root" in html
    resp = browser("mona").post("/inbox/claim", {}, follow_redirects=True)
    assert "tasks: choose at least one task" in resp.get_data(as_text=True)


def test_partner_cannot_claim_another_partners_task(browser, rt, users):
    case = start_probe(rt, users, who="nord-admin")
    rt.fire(case["id"], "return_to_partner", users["mona"], comment="missing invoice")
    tid = rt.get(case["id"])["tasks"][0]["id"]
    resp = browser("acme-admin").post(f"/inbox/tasks/{tid}/claim", follow_redirects=True)
    assert f"task {tid} not found" in resp.get_data(as_text=True)
    assert rt.get(case["id"])["tasks"][0]["assignee"] is None
    resp = browser("nord-admin").post(f"/inbox/tasks/{tid}/claim", follow_redirects=True)
    assert f"Task {tid} is yours now." in resp.get_data(as_text=True)


def test_bulk_reassign_selected_tasks(browser, rt, users):
    ids = [rt.get(start_probe(rt, users)["id"])["tasks"][0]["id"] for _ in range(2)]
    root = browser("root")
    html = root.text("/inbox")
    assert 'for="reassign-to">Reassign selected to' in html
    resp = root.post("/inbox/reassign", {"task": [str(i) for i in ids], "assignee": "mona"}, follow_redirects=True)
    text = resp.get_data(as_text=True)
    assert all(f"Task {i} is now assigned to mona." in text for i in ids)
    resp = root.post("/inbox/reassign", {"task": [str(ids[0])], "assignee": "fiona"}, follow_redirects=True)
    assert f"Task {ids[0]} not reassigned: assignee: fiona does not hold role mdf_owner" in resp.get_data(as_text=True)
    assert "choose at least one task" in root.post("/inbox/reassign", {"assignee": "mona"},
                                                   follow_redirects=True).get_data(as_text=True)


def test_row_text_is_escaped_and_buttons_follow_the_assignee(browser, rt, users):
    case = start_probe(rt, users)
    with rt.db.write() as conn:
        tid = conn.execute(insert(TK).values(
            instance_id=case["id"], workflow="web_probe", partner_id=None, state="needs_<b>fix</b>", name="x", role="mdf_owner",
            title='<script>alert("t")</script>', status="open", due_at=rt.now() - timedelta(hours=1), amount="5.00",
            currency="<u>", flags=["<i>big</i>"], created_at=rt.now()).returning(TK.c.id)).scalar_one()
    html = browser("mona").text("/inbox")
    row = html.split("<tbody>")[1].split("</tbody>")[0]
    for raw in ("<script>", "<b>", "<u>", "<i>"):
        assert raw not in row, raw
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt;" in row
    assert "needs &lt;b&gt;fix&lt;/b&gt;" in row and "5.00 &lt;u&gt;" in row and "&lt;i&gt;big&lt;/i&gt;" in row
    assert '<tr class="overdue">' in row and f'aria-label="Claim task {tid}"' in row
    assert browser("mona").post(f"/inbox/tasks/{tid}/claim").status_code == 303
    assert f'aria-label="Release task {tid}"' in browser("mona").text("/inbox")  # mine
    assert f'aria-label="Release task {tid}"' in browser("root").text("/inbox")  # an admin may release it
    other = browser("root").text("/inbox?assigned=unassigned")
    assert f'value="{tid}"' not in other
