"""Security plumbing: session cookies Secure on HTTPS, response headers (CSP without inline scripts)."""
from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.routing import BaseConverter

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-src 'self'; frame-ancestors 'none'")
#: A rendered email shown inside the mail page: no scripts, no remote loads, framed only by us.
MAIL_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"


class SecureWhenHttpsSessionInterface(SecureCookieSessionInterface):
    """Session cookie marked Secure when configured, and always when the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        if app.config["SESSION_COOKIE_SECURE"]:
            return True
        try:
            return request.is_secure
        except RuntimeError:  # no request context
            return False


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def _headers(response):
        framed = request.endpoint == "mail.html_body"
        response.headers.setdefault("Content-Security-Policy", MAIL_CSP if framed else CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "SAMEORIGIN" if framed else "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store" if not request.path.startswith("/static/")
                                    else "public, max-age=3600")
        if request.is_secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response


class IdConverter(BaseConverter):
    """A database id in a URL: 1 to 18 digits, so it always fits a 64-bit column (longer ones are 404)."""

    regex = r"[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(int(value))
