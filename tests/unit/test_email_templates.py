"""Email templates: every notification of every lifecycle in both languages; filters; escaping; header checks."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from engine.registry import default_registry
from notifications.render import (
    LOCALES,
    TEMPLATES_DIR,
    RenderError,
    UnsafeHeader,
    build_email,
    check_address,
    check_header,
    missing_templates,
    render_message,
)


def _context(**over):
    ctx = {
        "case": {"id": 12, "workflow": "exam_voucher", "title": "Exam voucher application", "state": "approved"},
        "data": {"exam": "Cloud Architect", "users": ["acme-dev1"]},
        "payload": {}, "event": "approve", "comment": "budget ok",
        "actor": {"login": "alice", "name": "Alice"},
        "partner": {"id": 1, "code": "ACME", "name": "Acme Cloud", "timezone": "Asia/Shanghai", "region": "CN"},
        "deadlines": [{"name": "remind_issue", "event": "remind_issue", "due_at": "2026-12-07T15:59:00+00:00",
                       "local": "2026-12-07 23:59 Asia/Shanghai"}],
        "tasks": [{"title": "Issue the approved exam vouchers", "role": "operations_manager",
                   "due_at": "2026-12-07T15:59:00+00:00", "local": "2026-12-07 23:59 Asia/Shanghai"}],
        "now": "2026-12-02T01:00:00+00:00",
    }
    ctx.update(over)
    return ctx


def _row(template="exam_voucher/approved", locale="en", timezone="Asia/Shanghai", **ctx):
    return {"template": template, "locale": locale, "timezone": timezone, "recipient": "oscar@example.com",
            "recipient_login": "oscar", "context": _context(**ctx), "message_id": "<m1@partnerflow>",
            "created_at": datetime(2026, 12, 2, 1, 0, tzinfo=UTC)}


def test_every_notification_of_every_lifecycle_has_english_and_chinese_templates():
    names = [n.template for wf in default_registry() for n in wf.notifications]
    assert "exam_voucher/applied" in names
    assert missing_templates(names) == []


def test_digest_templates_exist_in_both_languages():
    assert missing_templates(["digest/daily"]) == []


def test_missing_templates_names_the_missing_file_and_block(tmp_path):
    problems = missing_templates(["exam_voucher/no_such_message"])
    assert problems == ["notifications/templates/exam_voucher/no_such_message.en.j2 is missing",
                        "notifications/templates/exam_voucher/no_such_message.zh.j2 is missing"]


def test_template_names_cannot_leave_the_templates_folder():
    with pytest.raises(RenderError, match="must look like"):
        render_message(_row(template="../../etc/passwd"))


@pytest.mark.parametrize("locale", LOCALES)
def test_exam_voucher_templates_render_in_both_locales_with_deadline_and_link(locale):
    for message in ("applied", "approved", "issue_reminder", "issued", "rejected"):
        out = render_message(_row(template=f"exam_voucher/{message}", locale=locale))
        assert out.subject and "\n" not in out.subject
        assert "http://127.0.0.1:8000/cases/12" in out.text and 'href="http://127.0.0.1:8000/cases/12"' in out.html
        assert "#12" in out.subject
    approved = render_message(_row(locale=locale))
    assert "2026-12-07 23:59 Asia/Shanghai" in approved.text  # the deadline with its zone named
    assert "2026-12-07 23:59 Asia/Shanghai" in approved.html
    if locale == "zh":
        assert "已批准" in approved.subject and "截止时间" in approved.text
    else:
        assert "approved" in approved.subject and "by 2026-12-07 23:59" in approved.text


def test_deadline_is_shown_in_the_readers_time_zone_with_the_zone_named():
    out = render_message(_row(timezone="Europe/Berlin"))
    assert "2026-12-07 16:59 Europe/Berlin" in out.text
    assert "Asia/Shanghai" not in out.text


def test_unknown_locale_falls_back_to_english_and_zh_variants_to_chinese():
    assert "Hello" in render_message(_row(locale="fr")).text
    assert "您好" in render_message(_row(locale="zh-CN")).text


def test_base_url_setting_changes_links(monkeypatch):
    monkeypatch.setenv("PARTNERFLOW_BASE_URL", "https://flow.example.com/")
    out = render_message(_row())
    assert "https://flow.example.com/cases/12" in out.text and "https://flow.example.com/inbox" in out.text


def test_html_escapes_script_from_case_data_and_text_keeps_it_verbatim():
    out = render_message(_row(data={"exam": "<script>alert('x')</script>", "users": ["acme-dev1"]}))
    assert "<script>" not in out.html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in out.html
    assert "<script>alert('x')</script>" in out.text


def test_strict_undefined_names_the_missing_variable():
    ctx = _context()
    del ctx["data"]
    with pytest.raises(RenderError, match="'data' is undefined"):
        render_message({**_row(), "context": ctx})


def test_money_filter_formats_decimal_and_refuses_float():
    from notifications.render import money_filter

    assert money_filter(Decimal("12500.5"), "USD") == "12,500.50 USD"
    assert money_filter("0.10") == "0.10"
    with pytest.raises(RenderError, match="float"):
        money_filter(0.1)


@pytest.mark.parametrize("value", [
    "Hello\r\nBcc: victim@example.com",
    "Hello\nBcc: victim@example.com",
    "Hello\rX",
    "Hello\u2028Bcc: victim@example.com",
    "Hello\x85X",
    "Hello %0d%0aBcc: victim@example.com",
    "Hello &#13;&#10;Bcc: victim@example.com",
    "Hello =?utf-8?q?x=0D=0ABcc:_victim@example.com?=",
    "Hello =?utf-8?b?eA0KQmNjOiB2aWN0aW1AZXhhbXBsZS5jb20=?=",
    "Hello\x00",
])
def test_headers_refuse_line_breaks_and_encoded_line_breaks(value):
    with pytest.raises(UnsafeHeader, match="Subject"):
        check_header("Subject", value)


def test_plain_encoded_words_and_unicode_subjects_are_accepted():
    assert check_header("Subject", "考试券申请 =?utf-8?q?caf=C3=A9?= 100%") == "考试券申请 =?utf-8?q?caf=C3=A9?= 100%"


@pytest.mark.parametrize("value", ["a@example.com, b@example.com", "no-at-sign", "a@example.com\r\nBcc: b@x", ""])
def test_address_headers_take_exactly_one_address(value):
    with pytest.raises(UnsafeHeader):
        check_address("To", value)


def test_subject_with_smuggled_line_break_from_case_data_is_refused():
    row = _row(template="exam_voucher/applied", partner={"id": 1, "code": "ACME", "name": "Evil\u2028Bcc: victim@example.com",
                        "timezone": "Asia/Shanghai", "region": "CN"})
    with pytest.raises(UnsafeHeader, match="line break"):
        render_message(row)


def test_build_email_is_multipart_alternative_with_stable_headers():
    msg = build_email(_row(), "partnerflow <mail@partnerflow.example>")
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Message-ID"] == "<m1@partnerflow>" and msg["Auto-Submitted"] == "auto-generated"
    assert msg["To"] == "oscar@example.com" and msg["From"] == "partnerflow <mail@partnerflow.example>"
    assert msg["Date"] == "Wed, 02 Dec 2026 01:00:00 +0000"
    assert bytes(msg) == bytes(build_email(_row(), "partnerflow <mail@partnerflow.example>"))  # same on every attempt


def test_build_email_refuses_a_bad_message_id():
    with pytest.raises(UnsafeHeader, match="Message-ID"):
        build_email({**_row(), "message_id": "<a@b>\r\nBcc: x@y"})


def test_layout_wraps_html_and_footer_follows_text():
    out = render_message(_row(locale="zh"))
    assert out.html.startswith("<!DOCTYPE html>") and 'lang="zh-CN"' in out.html
    assert "请勿直接回复" in out.text and out.text.rstrip().endswith("http://127.0.0.1:8000/inbox")
    assert (TEMPLATES_DIR / "_layout.html.j2").is_file()
