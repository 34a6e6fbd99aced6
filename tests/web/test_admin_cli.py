"""Admin pages (admin only) and `partnerflow tokens create|list|revoke`."""
from __future__ import annotations

import json

from click.testing import CliRunner

from engine.cli import main


def test_admin_pages_are_for_admins_only(browser):
    assert browser("mona").get("/admin/").status_code == 403
    html = browser("root").text("/admin/")
    assert "Users and delegates" in html and "API tokens" in html and 'for="del-alice"' in html


def test_admin_adds_user_partner_and_token(browser, rt, users):
    root = browser("root")
    resp = root.post("/admin/partners", {"code": "ZED", "name": "Zed Ltd", "tier": "Core", "region": "CN",
                                         "timezone": "Asia/Shanghai"}, follow_redirects=True)
    assert "Partner ZED added." in resp.get_data(as_text=True)
    resp = root.post("/admin/users", {"login": "zed", "name": "Zed", "partner": "ZED", "roles": ["finance"]})
    assert resp.status_code == 422
    assert "a partner&#39;s user cannot hold operator roles (finance)" in resp.get_data(as_text=True)
    resp = root.post("/admin/users", {"login": "zed", "name": "Zed", "partner": "ZED", "roles": ["partner_admin"],
                                      "password": "zed-password"}, follow_redirects=True)
    assert "User zed added." in resp.get_data(as_text=True)
    resp = root.post("/admin/tokens", {"login": "zed", "name": "ci"})
    token = resp.get_data(as_text=True).split('id="new-token">')[1].split("<")[0]
    me = root.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert me["login"] == "zed"
    assert browser("root").post("/admin/users/nobody/delegates", {"delegate_of": "alice"}).status_code == 404


def test_tokens_cli_create_list_revoke(db_url, monkeypatch, app, users):
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    result = runner.invoke(main, ["tokens", "create", "--user", "mona", "--name", "scenario"], catch_exceptions=False)
    assert result.exit_code == 0
    token = result.stdout.strip()
    assert token.startswith("pf_")
    client = app.test_client()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()["login"] == "mona"
    listed = json.loads(runner.invoke(main, ["tokens", "list", "--json"]).stdout)
    assert [t["name"] for t in listed] == ["scenario"] and token not in json.dumps(listed)
    assert runner.invoke(main, ["tokens", "revoke", str(listed[0]["id"])]).exit_code == 0
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    bad = runner.invoke(main, ["tokens", "create", "--user", "ghost"])
    assert bad.exit_code == 1 and "no user with login 'ghost'" in bad.stderr
