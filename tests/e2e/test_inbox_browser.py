"""The approver inbox in a real browser: sign in, filter, open a case, see deadlines and the diagram,
decide with a comment, read the email; a partner rejecting a reconciliation (server-side comment rule)."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e
DEMO_PASSWORD = "partnerflow-demo"


def sign_in(page: Page, server: str, login: str) -> None:
    page.goto(f"{server}/login")
    expect(page.get_by_role("heading", name="Demo users")).to_be_visible()
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()


def open_case_with_diagram(page: Page) -> None:
    expect(page.locator("pre.mermaid[data-rendered=yes] svg")).to_be_visible(timeout=20_000)
    # the current state is drawn with the 'current' class
    expect(page.locator("pre.mermaid svg g.current").first).to_be_attached()


def test_mdf_owner_filters_opens_approves_with_comment_and_reads_the_email(page: Page, live_server, shot):
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, live_server, "mona")
    shot(page, "inbox")
    page.get_by_label("Lifecycle").select_option("mdf_application")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"workflow=mdf_application"))
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("mdf_application")
    expect(rows.first).to_contain_text("ACME")
    expect(rows.first).to_contain_text("Asia/Shanghai")  # the due date, in the reader's zone
    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile(r"Case #\d+ · MDF"))).to_be_visible()
    expect(page.locator("#timers-h + ul")).to_contain_text(re.compile(r"due \d{4}-\d\d-\d\d \d\d:\d\d Asia/Shanghai"))
    open_case_with_diagram(page)
    shot(page, "case")
    page.get_by_label("Comment", exact=True).first.fill("Budget confirmed for the customer day")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash.info")).to_contain_text("approve done; the case is now approved")
    expect(page.locator(".timeline")).to_contain_text("Budget confirmed for the customer day")
    expect(page.locator(".timeline li").first).to_contain_text("approve by mona")
    shot(page, "approved")
    case_url = page.url
    page.get_by_role("link", name="Emails of this case").click()
    link = page.locator("table tbody tr a[href^='/mail/']").filter(has_text="approved").first
    expect(link).to_be_visible()
    link.click()
    expect(page.locator("pre.mail-text")).to_contain_text("Smart retail customer day")
    frame = page.frame_locator("iframe.mail-html")
    expect(frame.locator("body")).to_contain_text("Smart retail customer day")
    shot(page, "email")
    assert case_url.rsplit("/", 1)[1].isdigit()
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_ecosystem_manager_claims_and_approves_a_voucher_on_a_phone(browser, live_server, shot):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, live_server, "alice")
    page.get_by_label("Assigned").select_option("unassigned")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("table.tasks tbody tr").filter(has_text="exam_voucher").first
    row.get_by_role("button", name=re.compile("Claim task")).click()
    expect(page.locator(".flash.info")).to_contain_text("is yours now")
    shot(page, "claimed")
    page.get_by_label("Assigned").select_option("me")
    page.get_by_role("button", name="Filter").click()
    page.locator("table.tasks tbody tr").filter(has_text="exam_voucher").first.get_by_role("link").first.click()
    open_case_with_diagram(page)
    page.get_by_label("Comment", exact=True).first.fill("Vouchers approved for Q1")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator(".flash.info")).to_contain_text("the case is now approved")
    shot(page, "approved")
    context.close()


def test_partner_rejects_a_reconciliation_comment_enforced_by_the_server(page: Page, live_server, shot):
    sign_in(page, live_server, "acme-admin")
    page.get_by_role("link", name="Cases", exact=True).click()
    page.get_by_label("Lifecycle").select_option("incentive_reconciliation")
    page.get_by_role("button", name="Filter").click()
    page.locator("table tbody tr").filter(has_text="open").first.get_by_role("link").first.click()
    expect(page.locator("#timers-h + ul")).to_contain_text(re.compile(r"auto_confirm -> confirmed on .* Asia/Shanghai"))
    open_case_with_diagram(page)
    reject = page.locator("form.decision").filter(has=page.get_by_role("button", name="Reject"))
    reject.evaluate("form => form.noValidate = true")
    reject.get_by_role("button", name="Reject").click()
    expect(page.locator("#decision-error")).to_contain_text("comment: a comment is required to reject")
    shot(page, "refused")
    reject = page.locator("form.decision").filter(has=page.get_by_role("button", name="Reject"))
    reject.get_by_label(re.compile("Comment")).fill("The resale rebate is missing two February orders")
    reject.get_by_role("button", name="Reject").click()
    expect(page.locator(".flash.info")).to_contain_text("the case is now rejected")
    expect(page.locator(".timeline")).to_contain_text("The resale rebate is missing two February orders")
    shot(page, "rejected")
    page.keyboard.press("Tab")  # keyboard focus reaches the skip link first
    expect(page.locator(":focus")).to_have_text("Skip to content")
