"""Error responses: application/problem+json under /api/, an HTML page elsewhere; never a stack trace."""
from __future__ import annotations

import logging

from flask import Flask, Response, json, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from engine.errors import PartnerflowError

log = logging.getLogger("partnerflow.web")

TITLES = {400: "Bad request", 401: "Sign-in required", 403: "Forbidden", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 413: "Request body too large", 415: "Unsupported media type", 422: "Unprocessable input",
          429: "Too many requests", 500: "Internal error"}


def is_api() -> bool:
    return request.path.startswith("/api/")


def problem(status: int, detail: str, code: str | None = None, **extra) -> Response:
    body = {"type": f"https://partnerflow.dev/problems/{code or status}", "title": TITLES.get(status, "Error"),
            "status": status, "detail": detail, **({"code": code} if code else {}), **extra}
    resp = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="partnerflow"'
    return resp


def error_page(status: int, detail: str) -> Response:
    return Response(render_template("error.html", status=status, title=TITLES.get(status, "Error"), detail=detail),
                    status=status, mimetype="text/html")


def respond_error(status: int, detail: str, code: str | None = None, **extra) -> Response:
    return problem(status, detail, code, **extra) if is_api() else error_page(status, detail)


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(PartnerflowError)
    def _engine(exc: PartnerflowError):
        data = exc.to_dict()
        data.pop("detail", None)
        code = data.pop("code", None)
        return respond_error(exc.status, exc.message, code, **data)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return respond_error(400, f"Security check failed: {exc.description.rstrip('.')}. Reload the page and "
                                  "submit the form again.", "csrf")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        status = exc.code or 500
        detail = exc.description or TITLES.get(status, "Error")
        if status == 413:
            detail = f"the request body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        resp = respond_error(status, detail, getattr(exc, "problem_code", None))
        if status == 405 and exc.get_response().headers.get("Allow"):
            resp.headers["Allow"] = exc.get_response().headers["Allow"]
        if status == 429 and getattr(exc, "retry_after", None):
            resp.headers["Retry-After"] = str(exc.retry_after)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return respond_error(500, "an unexpected error occurred; it has been logged", "internal")
