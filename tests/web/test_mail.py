"""/mail: outbox list and rendered messages (text, and HTML in a sandboxed iframe with its own CSP)."""
from __future__ import annotations

import re

from tests.web.conftest import start_voucher


def test_mail_list_and_message_rendered_text_and_html(browser, rt, users):
    case = start_voucher(rt, users)
    alice = browser("alice")
    html = alice.text("/mail")
    ids = re.findall(r'href="/mail/(\d+)"', html)
    assert ids and "exam_voucher/applied" in html and "alice@example.com" in html
    page = alice.text(f"/mail/{ids[0]}")
    assert f'href="/cases/{case["id"]}"' in page
    assert '<iframe class="mail-html" title="HTML version of the email" sandbox src="/mail/' in page
    assert '<pre class="mail-text">' in page and "Cloud Architect" in page
    body = alice.get(f"/mail/{ids[0]}/body.html")
    assert body.status_code == 200 and body.mimetype == "text/html"
    csp = body.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "frame-ancestors 'self'" in csp
    assert body.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Cloud Architect" in body.get_data(as_text=True)


def test_mail_filter_by_case(browser, rt, users):
    first = start_voucher(rt, users)
    second = start_voucher(rt, users)
    html = browser("alice").text(f"/mail?case={second['id']}")
    assert f'href="/cases/{second["id"]}"' in html and f'href="/cases/{first["id"]}"' not in html


def test_partner_user_sees_only_mail_addressed_to_them(browser, rt, users):
    case = start_voucher(rt, users)
    rt.fire(case["id"], "reject", users["alice"], comment="no budget this quarter")
    acme = browser("acme-admin")
    html = acme.text("/mail")
    assert "exam_voucher/rejected" in html and "exam_voucher/applied" not in html
    operator_ids = re.findall(r'href="/mail/(\d+)"', browser("alice").text("/mail"))
    mine = set(re.findall(r'href="/mail/(\d+)"', html))
    other = next(i for i in operator_ids if i not in mine)
    assert acme.get(f"/mail/{other}").status_code == 404
    assert acme.get(f"/mail/{other}/body.html").status_code == 404
    assert browser("nord-admin").text("/mail").count('href="/mail/') == 0


def test_mail_needs_sign_in(app):
    resp = app.test_client().get("/mail")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
