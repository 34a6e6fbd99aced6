"""The inbox: open tasks for my roles, filters, keyset pages of 50, claim, unclaim, reassign, bulk claim."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine.errors import PartnerflowError

from . import services
from .auth import login_required, runtime

bp = Blueprint("inbox", __name__)


@bp.get("/inbox")
@login_required
def index():
    rt = runtime()
    query = services.parse_inbox_query(request.args, rt)
    page = services.inbox(rt, g.actor, query)
    partners = services.is_operator(g.actor)  # operators may filter by partner code
    return render_template("inbox/index.html", page=page, query=query, workflows=services.workflow_summaries(rt),
                           partners=partners, due_filters=services.DUE_FILTERS, back=_here())


def _here() -> str:
    return request.full_path if request.query_string else request.path


def _back():
    target = request.form.get("back") or url_for("inbox.index")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("inbox.index")
    return redirect(target, code=303)


def _act(fn, ok: str):
    try:
        result = fn()
    except PartnerflowError as exc:
        flash(exc.message, "error")
        return _back()
    flash(ok.format(**result) if isinstance(result, dict) else ok, "info")
    return _back()


@bp.post("/inbox/tasks/<id:task_id>/claim")
@login_required
def claim(task_id: int):
    return _act(lambda: services.claim(runtime(), g.actor, task_id), "Task {id} is yours now.")


@bp.post("/inbox/tasks/<id:task_id>/unclaim")
@login_required
def unclaim(task_id: int):
    return _act(lambda: services.unclaim(runtime(), g.actor, task_id), "Task {id} is back in the pool.")


@bp.post("/inbox/tasks/<id:task_id>/reassign")
@login_required
def reassign(task_id: int):
    return _act(lambda: services.reassign(runtime(), g.actor, task_id, request.form.get("assignee", "")),
                "Task {id} is now assigned to {assignee}.")


@bp.post("/inbox/claim")
@login_required
def bulk_claim():
    ids = request.form.getlist("task")
    try:
        result = services.bulk_claim(runtime(), g.actor, ids)
    except PartnerflowError as exc:
        flash(exc.message, "error")
        return _back()
    if result["claimed"]:
        flash(f"Claimed {len(result['claimed'])} task(s): {', '.join(map(str, result['claimed']))}.", "info")
    for skipped in result["skipped"]:
        flash(f"Task {skipped['id']} not claimed: {skipped['reason']}", "error")
    return _back()


@bp.post("/inbox/reassign")
@login_required
def bulk_reassign():
    ids = request.form.getlist("task")
    to = request.form.get("assignee", "")
    if not ids:
        flash("tasks: choose at least one task", "error")
        return _back()
    for tid in ids:
        try:
            services.reassign(runtime(), g.actor, tid, to)
            flash(f"Task {tid} is now assigned to {to.strip()}.", "info")
        except PartnerflowError as exc:
            flash(f"Task {tid} not reassigned: {exc.message}", "error")
    return _back()
