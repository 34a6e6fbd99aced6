"""Sign-in and sign-out with session cookies; failed attempts are limited per login and per address."""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from werkzeug.exceptions import TooManyRequests
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from engine.errors import Forbidden, NotFound

from . import services

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    login = StringField("Login", validators=[DataRequired(), Length(max=128)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def runtime():
    return current_app.config["RUNTIME"]


@bp.before_app_request
def load_actor() -> None:
    g.actor = None
    if request.path.startswith(("/api/", "/static/")):
        return
    login = session.get("login")
    if login:
        try:
            g.actor = runtime().actor(login)
        except (NotFound, Forbidden):
            session.clear()


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("actor") is None:
            return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
        return view(*args, **kwargs)

    return wrapped


def _safe_next(target: str | None) -> str:
    if not target:
        return url_for("inbox.index")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("inbox.index")
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if request.method == "POST":
        limit = current_app.config["LOGIN_ATTEMPTS_PER_MINUTE"]
        name = (form.login.data or "").strip().lower()[:128]
        keys = [f"login:{name}", f"ip:{request.remote_addr or '-'}"]
        if services.login_limited(runtime(), keys[:1], limit) or services.login_limited(runtime(), keys[1:], limit * 4):
            exc = TooManyRequests(f"too many failed sign-ins for {name or 'this address'} in the last minute; "
                                  "wait a minute and try again")
            exc.retry_after = 60  # type: ignore[attr-defined]
            raise exc
        if form.validate_on_submit():
            actor = services.authenticate(runtime(), form.login.data.strip(), form.password.data)
            if actor is not None:
                session.clear()
                session.permanent = True
                session["login"] = actor.login
                return redirect(_safe_next(request.args.get("next")))
            services.record_login_failure(runtime(), keys)
            flash("Wrong login or password.", "error")
            status = 401
        else:
            status = 400
    demo_users = services.demo_users(runtime()) if current_app.config.get("DEMO") else []
    return render_template("auth/login.html", form=form, demo_users=demo_users), status


@bp.post("/logout")
def logout():
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
