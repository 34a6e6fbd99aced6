"""The web app: approver inbox (HTML) and JSON API."""
from __future__ import annotations

from flask import Flask, jsonify

from engine.errors import PartnerflowError


def create_app(config: dict | None = None) -> Flask:
    """Application factory; `config["RUNTIME"]` is the engine runtime (built from the environment if absent)."""
    app = Flask(__name__)
    app.config.update(config or {})
    if app.config.get("RUNTIME") is None:
        from engine.runtime import Runtime

        app.config["RUNTIME"] = Runtime()
    rt = app.config["RUNTIME"]

    @app.errorhandler(PartnerflowError)
    def _error(exc: PartnerflowError):
        return jsonify(exc.to_dict()), exc.status

    @app.get("/")
    def index():
        items = [{"name": wf.name, "title": wf.title} for wf in rt.registry]
        return jsonify({"service": "partnerflow", "now": rt.now().isoformat(), "workflows": items})

    @app.get("/api/v1/cases/<int:case_id>")
    def case(case_id: int):
        return jsonify(rt.get(case_id))

    return app
