"""The inbox: open tasks for my roles, filters, keyset pages of 50, claim, unclaim, reassign, bulk claim."""
from __future__ import annotations

from html import escape

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup

from engine.errors import PartnerflowError
from engine.roles import ADMIN

from . import services
from .auth import login_required, runtime

bp = Blueprint("inbox", __name__)


@bp.get("/inbox")
@login_required
def index():
    rt = runtime()
    query = services.parse_inbox_query(request.args, rt)
    now = rt.now()  # one clock read (a query with the simulated clock) for the tasks and the page header
    page = services.inbox(rt, g.actor, query, now)
    partners = services.is_operator(g.actor)  # operators may filter by partner code
    return render_template("inbox/index.html", page=page, query=query, workflows=services.workflow_choices(rt),
                           partners=partners, due_filters=services.DUE_FILTERS, back=_here(), clock_now=now,
                           rows=task_rows(page["items"], ADMIN in g.actor.roles))


# One table row per task. Fifty rows of eleven cells through Jinja cost about three times as much as this
# format string (every output expression there is a call to escape, even for ids). Every text value is
# escaped here with the standard library's `html.escape`, twice as fast as markupsafe's on short strings.
_ROW = ('''
    <tr{row_class}>
      <td><input type="checkbox" name="task" value="{id}" id="sel-{id}" aria-label="Select task {id}"></td>
      <td data-label="Case"><a href="/cases/{case}">#{case}</a><br><small>{title}</small></td>
      <td data-label="Lifecycle">{workflow}</td>
      <td data-label="Partner">{partner}</td>
      <td data-label="State">{state}</td>
      <td data-label="Waiting since">{waiting}</td>
      <td data-label="Due">{due}{mark}</td>
      <td data-label="Amount" class="num">{amount}</td>
      <td data-label="Flags">{flags}</td>
      <td data-label="Assignee">{assignee}</td>
      <td data-label="Actions" class="actions">{action}
      </td>
    </tr>''')
_MARKS = {"overdue": "overdue", "due today": "due-today"}  # due mark -> CSS class


def task_rows(items: list[dict], is_admin: bool) -> Markup:
    """The <tr> rows of the inbox table for `items` of `services.inbox` (claim or release button per row)."""
    out = []
    for t in items:
        tid, mark, assignee = int(t["id"]), t["due_mark"], t["assignee"]
        css = _MARKS.get(mark, "")
        if not assignee:
            action = (f'<button type="submit" formaction="/inbox/tasks/{tid}/claim" '
                      f'aria-label="Claim task {tid}">Claim</button>')
        elif t["mine"] or is_admin:
            action = (f'<button type="submit" formaction="/inbox/tasks/{tid}/unclaim" '
                      f'aria-label="Release task {tid}">Release</button>')
        else:
            action = ""
        out.append(_ROW.format(
            row_class=f' class="{css}"' if mark else "", id=tid, case=int(t["case"]), title=escape(t["title"]),
            workflow=escape(t["workflow"]), partner=escape(t["partner"] or "-"),
            state=escape(t["state"].replace("_", " ")), waiting=escape(t["waiting_since_local"]),
            due=escape(t["due_local"] or "-"),
            mark=f' <strong class="mark {css}">{escape(mark)}</strong>' if mark else "",
            amount=f'{escape(t["amount"])} {escape(t["currency"] or "")}' if t["amount"] else "-",
            flags="".join(f'<span class="flag">{escape(str(f))}</span> ' for f in t["flags"]),
            assignee=escape(assignee or "unassigned"), action=action))
    return Markup("".join(out))


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
