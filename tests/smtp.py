"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, with scripted replies.

`SmtpServer` records every message it accepts (envelope and raw bytes, parsed
back with the `email` package) and can be told to answer with a temporary or
permanent error: ``server.reply_next(3, "451 4.3.0 try again later")`` for the
next three messages (at the DATA stage), ``server.reject("x@example.com",
"550 5.1.1 no such mailbox")`` for one address (at RCPT), ``server.stop()`` /
``server.start()`` to take it down and bring it back on the same port. With
``auth=("user", "password")`` it offers AUTH and records who logged in; with
``tls=True`` it offers (and requires) STARTTLS with a self-signed certificate
(``server.ca_file`` is that certificate, for the client to trust).

Use the ``smtp_server`` fixture (tests/conftest.py): it starts a server and
points ``PARTNERFLOW_SMTP_HOST``/``PARTNERFLOW_SMTP_PORT`` at it.
"""
from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (aiosmtpd's Controller cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    login: str | None
    #: (host, port) of the client connection: one per SMTP session
    peer: tuple | None = None
    #: the session ran under TLS (STARTTLS)
    tls: bool = False

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]

    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()

    def html(self) -> str:
        return self.message.get_body(("html",)).get_content()


class _Handler:
    def __init__(self, server: "SmtpServer"):
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.server._rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.server._data_reply()
        if reply:
            return reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.server._accept(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content), login,
                                     tuple(session.peer) if session.peer else None, session.ssl is not None))
        return "250 2.0.0 Message accepted"


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 with scripted replies; see the module docstring."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None, *, auth: tuple[str, str] | None = None,
                 tls: bool = False, workdir: Path | None = None):
        self.host = host
        self.port = port or free_port(host)
        self.auth = auth
        self.tls = tls
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._data_script: list[str] = []
        self._rejects: dict[str, str] = {}
        self._controller: Controller | None = None
        self.ca_file: str | None = None
        self._tls_context = self._make_tls(workdir) if tls else None

    # ---------------------------------------------------------- control
    def start(self) -> "SmtpServer":
        kwargs: dict = {}
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True, auth_require_tls=self.tls)
        if self._tls_context is not None:
            kwargs.update(tls_context=self._tls_context, require_starttls=True)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def reply_next(self, count: int, reply: str) -> None:
        """Answer the next `count` messages with `reply` at the DATA stage (for example '451 4.3.0 busy')."""
        with self._lock:
            self._data_script.extend([reply] * count)

    def reject(self, address: str, reply: str) -> None:
        """Refuse `address` at RCPT with `reply` (for example '550 5.1.1 no such mailbox') until cleared."""
        with self._lock:
            self._rejects[address.lower()] = reply

    def clear(self) -> None:
        with self._lock:
            self._data_script.clear()
            self._rejects.clear()
            self.received.clear()

    # ---------------------------------------------------------- reading
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received]

    def to(self, address: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    def peers(self) -> set:
        """Distinct client connections that delivered messages."""
        with self._lock:
            return {r.peer for r in self.received}

    def message_ids(self) -> list[str]:
        with self._lock:
            return [r.message_id for r in self.received]

    # ---------------------------------------------------------- internals
    def _accept(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def _data_reply(self) -> str | None:
        with self._lock:
            return self._data_script.pop(0) if self._data_script else None

    def _rcpt_reply(self, address: str) -> str | None:
        with self._lock:
            return self._rejects.get(address.lower())

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword) and self.auth is not None
              and auth_data.login.decode() == self.auth[0] and auth_data.password.decode() == self.auth[1])
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _make_tls(self, workdir: Path | None) -> ssl.SSLContext:
        import tempfile

        folder = Path(workdir or tempfile.mkdtemp(prefix="pf-smtp-tls-"))
        cert, key = folder / "cert.pem", folder / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", f"/CN={self.host}", "-addext",
                        f"subjectAltName=IP:{self.host}"], check=True, capture_output=True)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        self.ca_file = str(cert)
        return context

    def env(self) -> dict[str, str]:
        """Environment variables that point the dispatcher at this server."""
        out = {"PARTNERFLOW_SMTP_HOST": self.host, "PARTNERFLOW_SMTP_PORT": str(self.port)}
        if self.auth:
            out.update(PARTNERFLOW_SMTP_USER=self.auth[0], PARTNERFLOW_SMTP_PASSWORD=self.auth[1])
        if self.tls:
            out.update(PARTNERFLOW_SMTP_STARTTLS="true", PARTNERFLOW_SMTP_CA_FILE=self.ca_file or "")
        return out


def outbox_render_problems(db) -> list[str]:
    """Every outbox row (except discarded ones) rendered in English and Chinese; the problems found.

    StrictUndefined makes a template that names a variable its lifecycle does
    not provide fail here, for both locales, whoever wrote the row. Rows of
    lifecycles declared only inside tests (not registered in `workflows/`)
    are left out; the package's own templates (the digest) are included.
    """
    from sqlalchemy import select

    from engine.models import Outbox
    from engine.registry import default_registry
    from notifications.render import LOCALES, RenderError, serialize_email

    known = {n.template for wf in default_registry() for n in wf.notifications}
    table = Outbox.__table__
    problems = []
    with db.read() as conn:
        rows = conn.execute(select(table).where(table.c.status != "discarded").order_by(table.c.id)).all()
    seen = set()
    for row in rows:
        if row.template not in known and not row.template.startswith("digest/"):
            continue
        for locale in LOCALES:
            item = {**row._mapping, "locale": locale}
            try:
                serialize_email(item, "partnerflow <partnerflow@localhost>")
            except RenderError as exc:
                key = (row.template, locale, exc.message)
                if key not in seen:
                    seen.add(key)
                    problems.append(f"outbox row {row.id} ({row.template}, {locale}): {exc.message}")
    return problems
