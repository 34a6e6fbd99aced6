"""Administration: users (create, roles, delegates for the four-eyes rule), partners, API tokens."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine.errors import PartnerflowError
from engine.roles import ALL_ROLES

from . import services
from .auth import login_required, runtime

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def _admin_only():
    services.require_admin(g.actor)


def _page(error=None, status=200, token=None):
    rt = runtime()
    return render_template("admin/index.html", users=services.list_users(rt, g.actor),
                           partners=services.list_partners(rt, g.actor), roles=sorted(ALL_ROLES),
                           tokens=services.list_tokens(rt), error=error, token=token, submitted=request.form), status


@bp.get("/")
def index():
    return _page()


@bp.post("/users")
def add_user():
    form = request.form
    values = {k: form.get(k) for k in ("login", "name", "email", "partner", "timezone", "password", "locale")
              if form.get(k)}
    values["roles"] = form.getlist("roles")
    try:
        user = services.create_user(runtime(), g.actor, values)
    except PartnerflowError as exc:
        return _page(exc, exc.status)
    flash(f"User {user['login']} added.", "info")
    return redirect(url_for("admin.index"), code=303)


@bp.post("/users/<login>/delegates")
def delegates(login: str):
    text = request.form.get("delegate_of", "")
    logins = [x.strip() for x in text.replace(",", " ").split() if x.strip()]
    try:
        user = services.set_delegates(runtime(), g.actor, login, {"delegate_of": logins})
    except PartnerflowError as exc:
        return _page(exc, exc.status)
    flash(f"{user['login']} is now a delegate of: {', '.join(user['delegate_of']) or 'nobody'}.", "info")
    return redirect(url_for("admin.index"), code=303)


@bp.post("/partners")
def add_partner():
    form = request.form
    values = {k: form.get(k) for k in ("code", "name", "program", "tier", "region", "timezone", "admin_login",
                                       "contact_email") if form.get(k)}
    try:
        partner = services.create_partner(runtime(), g.actor, values)
    except PartnerflowError as exc:
        return _page(exc, exc.status)
    flash(f"Partner {partner['code']} added.", "info")
    return redirect(url_for("admin.index"), code=303)


@bp.post("/tokens")
def add_token():
    try:
        token = services.create_token(runtime(), request.form.get("login", "").strip(),
                                      request.form.get("name", "").strip() or "api")
    except PartnerflowError as exc:
        return _page(exc, exc.status)
    return _page(token=token)


@bp.post("/tokens/<id:token_id>/revoke")
def revoke_token(token_id: int):
    try:
        services.revoke_token(runtime(), token_id)
    except PartnerflowError as exc:
        return _page(exc, exc.status)
    flash(f"Token {token_id} revoked.", "info")
    return redirect(url_for("admin.index"), code=303)
