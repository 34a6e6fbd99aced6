"""The case page (data, history timeline, pending timers, diagram, decision forms) and starting a case."""
from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from engine.errors import PartnerflowError, ValidationError

from . import services
from .auth import login_required, runtime

bp = Blueprint("cases", __name__)


def _render_case(case_id: int, error: PartnerflowError | None = None, status: int = 200, form=None):
    page = services.case_page(runtime(), g.actor, case_id)
    return render_template("cases/show.html", page=page, case=page["case"], error=error,
                           submitted=form or {}), status


@bp.get("/cases")
@login_required
def index():
    rt = runtime()
    page = services.list_cases(rt, g.actor, request.args)
    partners = services.list_partners(rt, g.actor) if services.is_operator(g.actor) else []
    return render_template("cases/index.html", page=page, args=request.args, partners=partners,
                           workflows=services.workflow_summaries(rt))


@bp.get("/cases/<id:case_id>")
@login_required
def show(case_id: int):
    return _render_case(case_id)


@bp.get("/join/customer/<code>")
@login_required
def join_customer(code: str):
    """The link of a customer invitation (in its email, or the QR code handed over offline): the invited
    customer, once signed in, lands on the case, where they accept or decline it."""
    case_id = services.invitation_case(runtime(), g.actor, code)
    return redirect(url_for("cases.show", case_id=case_id))


@bp.post("/cases/<id:case_id>/events/<event>")
@login_required
def decide(case_id: int, event: str):
    rt = runtime()
    form = request.form
    try:
        view = rt.get(case_id, g.actor)
        rows = rt.registry.get(view["workflow"]).candidates(view["state"], event)
        payload = services.payload_from_form(rows[0].payload, form) if rows else {}
        version = form.get("expected_version", "")
        try:
            expected = int(version) if version.strip() else None
        except ValueError:
            raise ValidationError("expected_version", f"{version!r} is not a version number") from None
        after = rt.fire(case_id, event, g.actor, payload, expected, form.get("comment"))  # checked by the runtime
    except PartnerflowError as exc:
        if exc.status == 404:
            raise
        return _render_case(case_id, exc, exc.status, {**form, "event": event})
    flash(f"Case {case_id}: {event.replace('_', ' ')} done; the case is now {after['state'].replace('_', ' ')}.", "info")
    return redirect(url_for("cases.show", case_id=case_id), code=303)


@bp.get("/cases/new")
@login_required
def new():
    return render_template("cases/new.html", workflows=services.startable_workflows(runtime(), g.actor),
                           partners=services.list_partners(runtime(), g.actor), error=None, submitted={})


@bp.post("/cases/new/<workflow>")
@login_required
def start(workflow: str):
    rt = runtime()
    try:
        wf = rt.registry.get(workflow)
        data = services.payload_from_form(wf.start_schema, request.form)
        if request.form.get("partner"):
            data["partner"] = request.form["partner"]
        view = rt.start(workflow, data, g.actor, request.form.get("comment"))  # checked by the runtime
    except PartnerflowError as exc:
        return render_template("cases/new.html", workflows=services.startable_workflows(rt, g.actor),
                               partners=services.list_partners(rt, g.actor), error=exc,
                               submitted={**request.form, "workflow": workflow}), exc.status
    flash(f"Case {view['id']} started ({view['title']}); it is now {view['state'].replace('_', ' ')}.", "info")
    return redirect(url_for("cases.show", case_id=view["id"]), code=303)
