"""The web app: approver inbox (server-rendered HTML) and the JSON API under /api/v1.

`create_app(config=None)` builds the Flask app. `config["RUNTIME"]` is the
engine runtime (built from the environment when absent) and `config["DEMO"]`
lists the demo users on the login page. Everything else comes from
environment variables (see `web.config`). Blueprints: auth, inbox, cases,
api, mail, admin; views call `web.services` and the runtime only.
"""
from __future__ import annotations

from flask import Flask, g, redirect, request, url_for
from flask_wtf.csrf import CSRFProtect

from .config import load_config
from .security import IdConverter, SecureWhenHttpsSessionInterface, install_security_headers

csrf = CSRFProtect()


def create_app(config: dict | None = None) -> Flask:
    """Application factory; `config` overrides the environment (tests pass SECRET_KEY, RUNTIME, ...)."""
    app = Flask(__name__, instance_relative_config=False)
    load_config(app, config or {})
    if app.config.get("RUNTIME") is None:
        from engine.migrate import upgrade
        from engine.runtime import Runtime

        rt = Runtime()
        upgrade(rt.db)
        app.config["RUNTIME"] = rt
    app.url_map.converters["id"] = IdConverter
    app.session_interface = SecureWhenHttpsSessionInterface()
    if app.config.get("PROXY_FIX"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    csrf.init_app(app)
    install_security_headers(app)

    from . import admin, api, auth, cases, inbox, mail
    from .errors import install_error_handlers

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(cases.bp)
    app.register_blueprint(mail.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # token-authenticated, never by cookie
    install_error_handlers(app)
    app.jinja_env.globals["runtime"] = app.config["RUNTIME"]

    @app.get("/")
    def index():
        return redirect(url_for("inbox.index") if getattr(g, "actor", None) else url_for("auth.login"))

    @app.get("/healthz")
    def healthz():
        rt = app.config["RUNTIME"]
        return {"status": "ok", "now": rt.now().isoformat(), "clock": "simulated" if rt.clock.simulated else "system"}

    @app.context_processor
    def _globals():
        return {"actor": getattr(g, "actor", None), "demo": app.config.get("DEMO", False),
                "simulated": app.config["RUNTIME"].clock.simulated, "path": request.path}

    return app
