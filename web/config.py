"""Configuration of the web app from environment variables.

| variable | default | meaning |
|---|---|---|
| `PARTNERFLOW_ENV` | `development` | `production` requires `PARTNERFLOW_SECRET_KEY` and secure cookies |
| `PARTNERFLOW_SECRET_KEY` | generated | signs session cookies and CSRF tokens; outside production a random key is created on first run and kept in the instance folder (`instance/secret_key`) |
| `PARTNERFLOW_INSTANCE_PATH` | `./instance` | where the generated secret key is kept |
| `PARTNERFLOW_SECURE_COOKIES` | off (on in production) | mark cookies Secure even on plain HTTP (they are always Secure on HTTPS requests) |
| `PARTNERFLOW_PROXY_FIX` | off | trust one proxy's `X-Forwarded-For/Proto/Host` |
| `PARTNERFLOW_LOGIN_ATTEMPTS_PER_MINUTE` | `5` | failed sign-ins per login per minute before 429 (per client address: four times as many) |
| `PARTNERFLOW_MAX_BODY_BYTES` | `1048576` | largest request body |
| `PARTNERFLOW_SESSION_HOURS` | `12` | session lifetime |
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise RuntimeError(f"{name}={raw!r} is not a whole number") from None


def load_config(app: Flask, overrides: dict) -> None:
    env = (overrides.get("ENV") or os.environ.get("PARTNERFLOW_ENV") or "development").strip().lower()
    production = env == "production"
    app.config.update(
        ENV_NAME=env,
        MAX_CONTENT_LENGTH=_int("PARTNERFLOW_MAX_BODY_BYTES", 1024 * 1024),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=_flag("PARTNERFLOW_SECURE_COOKIES", production),
        SESSION_COOKIE_NAME="partnerflow_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=_int("PARTNERFLOW_SESSION_HOURS", 12)),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        WTF_CSRF_SSL_STRICT=True,
        LOGIN_ATTEMPTS_PER_MINUTE=_int("PARTNERFLOW_LOGIN_ATTEMPTS_PER_MINUTE", 5),
        PROXY_FIX=_flag("PARTNERFLOW_PROXY_FIX"),
        JSON_SORT_KEYS=False,
    )
    app.config.update(overrides)
    if not app.config.get("SECRET_KEY"):
        key = os.environ.get("PARTNERFLOW_SECRET_KEY")
        if key:
            app.config["SECRET_KEY"] = key
        elif production:
            raise RuntimeError("PARTNERFLOW_SECRET_KEY must be set when PARTNERFLOW_ENV=production "
                               "(a long random string, the same for every web process)")
        else:
            app.config["SECRET_KEY"] = persisted_secret(Path(os.environ.get("PARTNERFLOW_INSTANCE_PATH")
                                                             or app.config.get("INSTANCE_PATH") or "instance"))
    if production and len(str(app.config["SECRET_KEY"])) < 32:
        raise RuntimeError("PARTNERFLOW_SECRET_KEY is too short: use at least 32 random characters")


def persisted_secret(folder: Path) -> str:
    """A random key made on first run and kept in `folder/secret_key` (readable by the owner only)."""
    path = folder / "secret_key"
    if path.exists():
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
    folder.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600) if not path.exists() else os.open(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    return value
