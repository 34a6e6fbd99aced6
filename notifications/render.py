"""Render outbox rows into emails: Jinja2 templates in English and Simplified Chinese.

Convention: a notification's template name ``"<workflow>/<message>"`` maps to
two files, ``notifications/templates/<workflow>/<message>.en.j2`` and
``<message>.zh.j2``, each defining three blocks: ``subject``, ``text`` and
``html``. The blocks are rendered separately, each with a fresh context:
``subject`` and ``text`` in a plain environment, ``html`` in an environment
that autoescapes every value, so a ``<script>`` typed into a case arrives as
text. Everything is rendered with `StrictUndefined`: a template that names a
variable the lifecycle does not provide fails loudly instead of printing
nothing. (Top-level ``{% set %}`` and ``{% import %}`` are not seen by blocks
rendered on their own; put them inside the block.)

The context is the one the runtime wrote to the outbox row (``case``,
``data``, ``payload``, ``event``, ``comment``, ``actor``, ``partner``,
``deadlines``, ``now``) plus what the renderer adds: ``recipient`` (email,
login, locale, timezone), ``links`` (``case``, ``inbox``), ``deadline`` (the
earliest pending deadline or ``None``) and ``locale``. Filters: ``local``
(an instant in the reader's time zone with the zone named), ``date`` (the
reader's local date), ``money`` (a Decimal with two places and thousands
separators, optional currency).

The HTML block is wrapped in the shared layout ``_layout.html.j2`` and the
text block followed by the shared footer ``_footer.text.j2``.

Headers are checked before an email is built: a CR or LF (or a line
separator, or one hidden in an RFC 2047 encoded word, a percent escape or an
HTML character reference) raises `UnsafeHeader`, which the dispatcher treats
as a permanent failure.
"""
from __future__ import annotations

import base64
import hashlib
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email import policy
from email import message_from_bytes
from email import quoprimime
from email.header import Header, decode_header
from email.message import EmailMessage
from email.policy import compat32
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, pass_context
from markupsafe import Markup

from engine.errors import PartnerflowError

TEMPLATES_DIR = Path(__file__).parent / "templates"
LOCALES = ("en", "zh")
DEFAULT_LOCALE = "en"
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"
BLOCKS = ("subject", "text", "html")
DEFAULT_SENDER = "partnerflow <partnerflow@localhost>"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*/[a-z0-9][a-z0-9_]*$")


class RenderError(PartnerflowError):
    """A message cannot be rendered (missing template or block, undefined variable, bad row)."""

    status = 500


class UnsafeHeader(RenderError):
    """A header value would break out of its line (CR/LF injection) or is not a valid address."""

    status = 422


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    text: str
    html: str


# ---------------------------------------------------------------- environment
def base_url() -> str:
    """Where links in emails point: ``PARTNERFLOW_BASE_URL`` (default http://127.0.0.1:8000)."""
    return (os.environ.get("PARTNERFLOW_BASE_URL") or DEFAULT_BASE_URL).strip().rstrip("/")


def normalise_locale(locale: str | None) -> str:
    """'zh', 'zh-CN', 'zh_Hans' -> 'zh'; anything else (or nothing) -> 'en'."""
    value = (locale or "").strip().lower().replace("_", "-")
    return "zh" if value == "zh" or value.startswith("zh-") else DEFAULT_LOCALE


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RenderError(f"unknown time zone {name!r} for the recipient") from exc


def _instant(value: Any) -> datetime | date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise RenderError(f"naive datetime {value.isoformat()} given to a date filter; instants must be aware")
        return value
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                return date.fromisoformat(text)
            except ValueError:
                pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RenderError(f"{value!r} is not an ISO date or instant") from None
        if parsed.tzinfo is None:
            raise RenderError(f"instant {value!r} has no time zone offset")
        return parsed
    raise RenderError(f"cannot read a date or instant from {type(value).__name__}")


def _reader_zone(ctx) -> tuple[ZoneInfo, str]:
    recipient = ctx.get("recipient") or {}
    name = recipient.get("timezone") if isinstance(recipient, Mapping) else None
    name = name or DEFAULT_TIMEZONE
    return _zone(name), name


@pass_context
def local_filter(ctx, value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An instant as the reader's local time with the zone named: '2026-12-07 23:59 Asia/Shanghai'."""
    instant = _instant(value)
    if instant is None:
        return ""
    if not isinstance(instant, datetime):  # a plain date has no zone to convert
        return instant.isoformat()
    tz, name = _reader_zone(ctx)
    return f"{instant.astimezone(tz).strftime(fmt)} {name}"


@pass_context
def date_filter(ctx, value: Any) -> str:
    """The reader's local calendar date of an instant (a plain date stays as it is): '2026-12-07'."""
    instant = _instant(value)
    if instant is None:
        return ""
    if isinstance(instant, datetime):
        tz, _ = _reader_zone(ctx)
        return instant.astimezone(tz).date().isoformat()
    return instant.isoformat()


def money_filter(value: Any, currency: str | None = None) -> str:
    """Decimal money with two places and thousands separators, e.g. '12,500.00 USD'. Floats are refused."""
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        raise RenderError(f"money must not be a float ({value!r}); store it as Decimal text")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise RenderError(f"{value!r} is not an amount of money") from None
    text = f"{amount.quantize(Decimal('0.01')):,.2f}"
    return f"{text} {currency}" if currency else text


def _make_env(autoescape: bool) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=True,
    )
    env.filters["local"] = local_filter
    env.filters["date"] = date_filter
    env.filters["money"] = money_filter
    return env


@lru_cache(maxsize=1)
def environments() -> tuple[Environment, Environment]:
    """(plain environment for subject and text, autoescaping environment for HTML)."""
    return _make_env(False), _make_env(True)


def template_files(name: str) -> dict[str, Path]:
    """The template file of each locale for a template name '<workflow>/<message>'."""
    check_template_name(name)
    return {loc: TEMPLATES_DIR / f"{name}.{loc}.j2" for loc in LOCALES}


def check_template_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RenderError(f"template name {name!r} must look like '<workflow>/<message>' (lowercase, digits, _)")


def missing_templates(names) -> list[str]:
    """Template files (relative paths) that do not exist or lack a block, for the given template names."""
    problems = []
    for name in sorted(set(names)):
        for loc, path in template_files(name).items():
            rel = path.relative_to(TEMPLATES_DIR.parent.parent)
            if not path.is_file():
                problems.append(f"{rel} is missing")
                continue
            plain, _ = environments()
            tmpl = plain.get_template(f"{name}.{loc}.j2")
            for block in BLOCKS:
                if block not in tmpl.blocks:
                    problems.append(f"{rel} has no {{% block {block} %}}")
    return problems


# ---------------------------------------------------------------- rendering
def _get(row, key: str, default=None):
    if isinstance(row, Mapping):
        return row.get(key, default)
    mapping = getattr(row, "_mapping", None)
    if mapping is not None:
        return mapping.get(key, default)
    return getattr(row, key, default)


def message_context(row) -> dict:
    """The template context of an outbox row: what the runtime wrote plus recipient, links, deadline, locale."""
    context = dict(_get(row, "context") or {})
    locale = normalise_locale(_get(row, "locale"))
    tz = _get(row, "timezone") or DEFAULT_TIMEZONE
    _zone(tz)
    base = base_url()
    case = context.get("case") or {}
    case_id = case.get("id") if isinstance(case, Mapping) else None
    context["recipient"] = {"email": _get(row, "recipient"), "login": _get(row, "recipient_login"),
                            "locale": locale, "timezone": tz}
    context["links"] = {"case": f"{base}/cases/{case_id}" if case_id is not None else f"{base}/inbox",
                        "inbox": f"{base}/inbox", "base": base}
    context["locale"] = locale
    deadlines = context.get("deadlines") or []
    context.setdefault("deadline", deadlines[0] if deadlines else None)
    return context


class TemplateCache:
    """Compiled templates looked up once each, for rendering many messages in a row (a dispatcher batch).

    The environments keep every compiled template, but check the file's
    modification time on each lookup so that an edited template shows at
    once; a cache looks each template up once and keeps it, so an edit shows
    from the next cache (the next batch) on.
    """

    def __init__(self):
        self._envs = environments()
        self._found: dict[tuple[int, str], Any] = {}

    def get(self, escaping: bool, name: str):
        key = (int(escaping), name)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._envs[key[0]].get_template(name)
        return found


def _render_block(templates: TemplateCache, escaping: bool, template_name: str, block: str, context: dict) -> str:
    tmpl = templates.get(escaping, template_name)
    fn = tmpl.blocks.get(block)
    if fn is None:
        raise RenderError(f"template {template_name} has no {{% block {block} %}}")
    return "".join(fn(tmpl.new_context(context)))  # a fresh context: new_context copies the mapping


def render_message(row, templates: TemplateCache | None = None) -> RenderedMessage:
    """Render an outbox row (mapping or row with template, locale, timezone, recipient, context ...).

    Give a `TemplateCache` to render many rows with each template looked up once.
    """
    from jinja2 import TemplateError, UndefinedError

    name = _get(row, "template")
    check_template_name(name)
    context = message_context(row)
    locale = context["locale"]
    file = f"{name}.{locale}.j2"
    templates = templates or TemplateCache()
    try:
        subject = _render_block(templates, False, file, "subject", context)
        text = _render_block(templates, False, file, "text", context)
        body = _render_block(templates, True, file, "html", context)
        footer = templates.get(False, "_footer.text.j2").render({**context, "subject": subject})
        html = templates.get(True, "_layout.html.j2").render({**context, "subject": " ".join(subject.split()),
                                                              "body": Markup(body)})
    except TemplateNotFound as exc:
        raise RenderError(f"template file notifications/templates/{exc.name} is missing") from None
    except UndefinedError as exc:
        raise RenderError(f"template {file}: {exc.message}") from None
    except TemplateError as exc:
        raise RenderError(f"template {file}: {exc}") from None
    subject = subject.strip()
    check_header("Subject", subject)
    if not subject:
        raise RenderError(f"template {file}: the subject is empty")
    text = _tidy_text(text) + "\n\n" + footer.strip() + "\n"
    return RenderedMessage(subject=subject, text=text, html=html)


def _tidy_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    out: list[str] = []
    for line in lines:  # at most one blank line in a row
        if line == "" and out and out[-1] == "":
            continue
        out.append(line)
    return "\n".join(out)


# ---------------------------------------------------------------- headers
_LINE_BREAKS = {"\r", "\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"}
_ENCODED_BREAK = re.compile(r"%0[ad]|&#0*1[03];|&#x0*[ad];", re.IGNORECASE)
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def check_header(name: str, value: str) -> str:
    """Refuse a header value that contains or smuggles a line break or a control character; return it."""
    if not isinstance(value, str):
        raise UnsafeHeader(f"header {name}: expected text, got {type(value).__name__}")
    plain = value.isascii() and value.isprintable()  # printable ASCII holds no line break or control character
    for ch in () if plain else value:
        if ch in _LINE_BREAKS:
            raise UnsafeHeader(f"header {name} contains a line break ({ch!r}); refused to prevent header injection")
        if unicodedata.category(ch) == "Cc" and ch != "\t":
            raise UnsafeHeader(f"header {name} contains the control character {ch!r}; refused")
    if _ENCODED_BREAK.search(value):
        raise UnsafeHeader(f"header {name} contains an encoded line break "
                           f"({_ENCODED_BREAK.search(value).group(0)!r}); refused to prevent header injection")
    for word in _ENCODED_WORD.findall(value):
        try:
            parts = decode_header(word)
            decoded = "".join(p.decode(c or "latin-1", "replace") if isinstance(p, bytes) else p for p, c in parts)
        except Exception as exc:  # noqa: BLE001 - any undecodable word is refused
            raise UnsafeHeader(f"header {name} contains an undecodable encoded word {word!r}") from exc
        if any(ch in _LINE_BREAKS for ch in decoded):
            raise UnsafeHeader(f"header {name} contains an encoded word hiding a line break ({word!r}); refused")
    return value


def check_address(name: str, value: str) -> str:
    """One mailbox (``a@b`` or ``Name <a@b>``) with no line break; refuse lists and junk."""
    check_header(name, value)
    if is_plain_address(value):  # what the parse below accepts as it is, without parsing
        return value
    pairs = getaddresses([value])
    if len(pairs) != 1 or not pairs[0][1] or "@" not in pairs[0][1]:
        raise UnsafeHeader(f"header {name}: {value!r} is not a single email address")
    local, _, domain = pairs[0][1].rpartition("@")
    if not local or not domain or " " in pairs[0][1]:
        raise UnsafeHeader(f"header {name}: {value!r} is not a valid email address")
    return value


_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def is_plain_address(value: str) -> bool:
    """A bare ``local@domain`` of letters, digits, dots, ``_``, ``+`` and ``-`` (what most recipients are)."""
    return _PLAIN_ADDRESS.fullmatch(value) is not None


@lru_cache(maxsize=4096)
def envelope_address(value: str) -> str:
    """The bare address of a mailbox (``Name <a@b>`` -> ``a@b``), for the SMTP envelope."""
    return value if is_plain_address(value) else parseaddr(value)[1]


def check_message_id(value: str) -> str:
    check_header("Message-ID", value)
    if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", value or ""):
        raise UnsafeHeader(f"header Message-ID: {value!r} must look like <id@domain>")
    return value


def default_sender() -> str:
    """The From address: ``PARTNERFLOW_MAIL_FROM`` (default 'partnerflow <partnerflow@localhost>')."""
    return (os.environ.get("PARTNERFLOW_MAIL_FROM") or DEFAULT_SENDER).strip()


def serialize_email(row, sender: str | None = None, rendered: RenderedMessage | None = None, *,
                    templates: "TemplateCache | None" = None) -> bytes:
    """The wire bytes of an outbox row's email: multipart/alternative, text then HTML.

    Every line ends with CRLF, the last one included (the closing boundary):
    the dispatcher sends these bytes after DATA as they are, only doubling
    leading dots.

    Assembled directly rather than through the `email` package's generator
    (about a millisecond per message, which matters at hundreds of emails per
    second), with the same header folding: a header that is short printable
    ASCII is written as it is, any other goes through ``compat32.fold_binary``.
    Each part is UTF-8 in quoted-printable (the standard library's encoder),
    or in base64 when that is shorter (text that is mostly not ASCII, such as
    Chinese: a third of the size). The boundary is derived from the
    Message-ID, so every attempt sends exactly the same bytes.
    """
    from_line = _from_line(sender or default_sender())
    rendered = rendered or render_message(row, templates)
    recipient = _get(row, "recipient")
    message_id = _get(row, "message_id")
    check_address("To", recipient or "")
    check_message_id(message_id or "")
    template = check_header("X-Partnerflow-Template", _get(row, "template") or "")
    created = _get(row, "created_at")
    when = created if isinstance(created, datetime) and created.tzinfo else datetime.now(UTC)
    boundary = "=_pf_" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    subject = rendered.subject
    out = [
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\nMIME-Version: 1.0\r\n',
        from_line,
        _fold("To", recipient),
        _fold("Subject", subject if subject.isascii() else Header(subject, "utf-8", header_name="Subject")),
        _fold("Date", format_datetime(when.astimezone(UTC))),
        _fold("Message-ID", message_id),
        "Auto-Submitted: auto-generated\r\n",
        "Content-Language: zh-CN\r\n" if normalise_locale(_get(row, "locale")) == "zh" else "Content-Language: en\r\n",
        _fold("X-Partnerflow-Template", template),
    ]
    case = (_get(row, "context") or {}).get("case") or {}
    if isinstance(case, Mapping) and case.get("id") is not None:
        out.append(_fold("X-Partnerflow-Case", str(int(case["id"]))))
    out += ["\r\n--", boundary, "\r\n", _part("text/plain", rendered.text), "\r\n--", boundary, "\r\n",
            _part("text/html", rendered.html), "\r\n--", boundary, "--\r\n"]
    return "".join(out).encode("ascii", "surrogateescape")


_PLAIN_HEADER = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_PART_HEAD = 'Content-Type: {}; charset="utf-8"\r\nMIME-Version: 1.0\r\nContent-Transfer-Encoding: {}\r\n\r\n'
_QP_UNSAFE_ASCII = re.compile(r"[^\t\n\r -~]")
_QP_TO_WRAP = re.compile(r"[^\r\n]{77}|[ \t](?:\r\n|\r|\n|\Z)")


def _fold(name: str, value) -> str:
    """One header line as the compat32 generator writes it (CRLF line ends)."""
    if isinstance(value, str) and len(name) + 2 + len(value) <= 78 and _PLAIN_HEADER.fullmatch(value):
        return f"{name}: {value}\r\n"  # what folding gives for short printable ASCII with single spaces
    return _WIRE.fold_binary(name, value).decode("ascii", "surrogateescape")


def _part(content_type: str, text: str) -> str:
    """A body part: its headers and its content, quoted-printable or base64, whichever is shorter."""
    data = text.encode("utf-8")
    ascii_kept = len(text.encode("ascii", "ignore")) - text.count("=")
    if 6 * (len(data) - ascii_kept) > len(data):  # quoted-printable (3 chars a byte) would outgrow base64 (4/3)
        canonical = _NEWLINES.sub("\r\n", text).encode("utf-8")
        encoded = base64.encodebytes(canonical).decode("ascii").rstrip("\n").replace("\n", "\r\n")
        return _PART_HEAD.format(content_type, "base64") + encoded
    return _PART_HEAD.format(content_type, "quoted-printable") + _qp(text)


def _qp(text: str) -> str:
    """UTF-8 quoted-printable with CRLF line ends, as `MIMEText` and the compat32 generator give it.

    `email.quoprimime.body_encode`, with its character mapping (a third of
    its cost) done by one replace when the text is printable ASCII.
    """
    if text.isascii() and not _QP_UNSAFE_ASCII.search(text):
        mapped = text.replace("=", "=3D")
        if not _QP_TO_WRAP.search(mapped):  # no line to wrap, no whitespace to quote: the lines stay as they are
            return _NEWLINES.sub("\r\n", mapped)
        encoded = _qp_lines(mapped)
    else:
        encoded = quoprimime.body_encode(text.encode("utf-8").decode("latin-1"))
    return "\r\n".join(_NEWLINES.split(encoded))


def _qp_lines(body: str, maxlinelen: int = 76, eol: str = "\n") -> str:
    """The line wrapping of `email.quoprimime.body_encode` (Python 3.11), for a body already mapped."""
    soft_break = "=" + eol
    maxlinelen1 = maxlinelen - 1
    encoded_body = []
    append = encoded_body.append
    for line in body.splitlines():
        start = 0
        laststart = len(line) - 1 - maxlinelen
        while start <= laststart:
            stop = start + maxlinelen1
            if line[stop - 2] == "=":  # do not break an escape sequence
                append(line[start:stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                append(line[start:stop])
                start = stop - 1
            else:
                append(line[start:stop] + "=")
                start = stop
        if line and line[-1] in " \t":  # whitespace at the end of a line is quoted
            room = start - laststart
            if room >= 3:
                q = quoprimime.quote(line[-1])
            elif room == 2:
                q = line[-1] + soft_break
            else:
                q = soft_break + quoprimime.quote(line[-1])
            append(line[start:-1] + q)
        else:
            append(line[start:])
    if body[-1] in "\r\n":
        append("")
    return eol.join(encoded_body)


@lru_cache(maxsize=64)
def _from_line(sender: str) -> str:
    check_address("From", sender)
    name, address = parseaddr(sender)
    return _fold("From", formataddr((name, address), charset="utf-8") if name else address)


def build_email(row, sender: str | None = None, rendered: RenderedMessage | None = None) -> EmailMessage:
    """The MIME message of an outbox row: multipart/alternative (text, HTML), with its stable Message-ID.

    It is the parsed form of exactly the bytes the dispatcher sends (`serialize_email`).
    """
    return message_from_bytes(serialize_email(row, sender, rendered), policy=policy.default)  # type: ignore[return-value]


_WIRE = compat32.clone(linesep="\r\n")


__all__ = ["RenderedMessage", "RenderError", "UnsafeHeader", "TemplateCache", "render_message", "build_email", "serialize_email", "message_context",
           "check_header", "check_address", "missing_templates", "template_files", "LOCALES", "TEMPLATES_DIR",
           "base_url", "default_sender"]
