"""/mail: outbox messages (captured ones in the embedded default) and their rendering, text and HTML.

The HTML body is served by its own route with a locked-down CSP (no scripts,
no remote loads, `sandbox`) and shown inside a sandboxed iframe.
"""
from __future__ import annotations

from flask import Blueprint, Response, g, render_template, request

from . import services
from .auth import login_required, runtime

bp = Blueprint("mail", __name__)


@bp.get("/mail")
@login_required
def index():
    page = services.list_outbox(runtime(), g.actor, request.args)
    return render_template("mail/index.html", page=page, case=request.args.get("case"))


@bp.get("/mail/<id:message_id>")
@login_required
def show(message_id: int):
    row, rendered = services.outbox_message(runtime(), g.actor, message_id)
    return render_template("mail/show.html", row=row, rendered=rendered)


@bp.get("/mail/<id:message_id>/body.html")
@login_required
def html_body(message_id: int):
    _row, rendered = services.outbox_message(runtime(), g.actor, message_id)
    return Response(rendered.html or "<p>(no HTML part)</p>", mimetype="text/html")
