"""Hot-path statements run straight on the transaction's DBAPI connection.

A transition costs a handful of small statements (load the case, update it,
append history, cancel and arm timers, close tasks). Through SQLAlchemy's
`Connection.execute` each of them pays for an execution context, result
metadata and event dispatch, which costs many times the database's own work
on SQLite. A `Fast` statement is plain SQL written once with ``:name``
parameters, translated per dialect (``%(name)s`` for psycopg), whose
parameters and result columns go through the very bind and result
processors SQLAlchemy would use for the table's column types (aware UTC
datetimes, JSON), so the rows it writes and reads are the same. It runs in
the caller's SQLAlchemy transaction, on the same DBAPI connection, so
commit, rollback and savepoints stay SQLAlchemy's. Engine
``before_cursor_execute``/``after_cursor_execute`` listeners are called as for
any statement, and driver errors are raised as SQLAlchemy's `DBAPIError`
subclasses (a lost connection invalidates it, as SQLAlchemy does).
Listeners set on one connection alone are called too.

Everything not on the hot path keeps using SQLAlchemy Core.
"""
from __future__ import annotations

import json
import re
from collections import namedtuple
from datetime import date, datetime
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import Column, Connection, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import Numeric, Text, TypeDecorator, TypeEngine

_PARAM = re.compile(r"(?<![:\w]):(\w+)")
_MISSING = object()


class _Prepared:
    __slots__ = ("sql", "binds", "results", "row")

    def __init__(self, sql, binds, results, row):
        self.sql, self.binds, self.results, self.row = sql, binds, results, row


class IdList(TypeDecorator):
    """A list of whole numbers bound as one parameter: JSON text on SQLite (read with ``json_each``), an array
    on PostgreSQL (``= ANY``). See `each_dialect`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return json.dumps(list(value)) if dialect.name == "sqlite" else list(value)


#: Bind types of a statement over a batch of ids (the ``:ids`` of ``{in_ids}``).
ID_LIST_BINDS = {"ids": IdList()}

_DIALECT_PARTS = {
    "sqlite": {"lock": "", "skip_locked": "", "in_ids": "IN (SELECT value FROM json_each(:ids))"},
    "postgresql": {"lock": " FOR UPDATE", "skip_locked": " FOR UPDATE SKIP LOCKED", "in_ids": "= ANY(:ids)"},
}


def each_dialect(template: str) -> dict[str, str]:
    """`template` written once, as SQL for each dialect partnerflow supports.

    ``{lock}`` row-locks what a SELECT reads on PostgreSQL (SQLite's one
    writer already holds the whole database); ``{skip_locked}`` also skips
    rows other transactions hold; ``column {in_ids}`` tests a column against
    the id list ``:ids`` (bind it with `ID_LIST_BINDS`): one parameter however
    long the list, so the statement is written once and costs no compilation.
    """
    return {dialect: template.format(**parts) for dialect, parts in _DIALECT_PARTS.items()}


def _per_dialect(sql: str | Mapping[str, str]) -> dict[str, str]:
    texts = {"": sql} if isinstance(sql, str) else dict(sql)
    return {k: " ".join(v.split()) for k, v in texts.items()}


class Fast:
    """One hot-path statement.

    `sql` uses ``:name`` parameters; where dialects need different text it is
    a mapping from dialect name (``sqlite``, ``postgresql``) to SQL, usually
    made by `each_dialect`. A
    parameter named like a column of `table` gets that column's type; `binds`
    names the types of the others that need conversion (datetimes, JSON, id
    lists). `result` lists the columns a SELECT returns, in order; rows come
    back as named tuples with those names.
    """

    def __init__(self, sql: str | Mapping[str, str], *, table: Table | None = None,
                 binds: Mapping[str, TypeEngine] | None = None, result: Sequence[Column] | None = None):
        self.texts = _per_dialect(sql)
        self.sql = next(iter(self.texts.values()))
        names = set().union(*(_PARAM.findall(t) for t in self.texts.values()))
        types: dict[str, TypeEngine] = {c.name: c.type for c in table.c} if table is not None else {}
        types.update(binds or {})
        self.types = {n: types[n] for n in names if n in types}
        self.result = list(result) if result is not None else None
        self._prepared: dict[str, _Prepared] = {}

    @classmethod
    def select(cls, columns: Sequence[Column], rest: str | Mapping[str, str],
               binds: Mapping[str, TypeEngine] | None = None) -> "Fast":
        """``SELECT columns FROM their table <rest>``, returning rows named like the columns."""
        columns = list(columns)
        head = f"SELECT {', '.join(c.name for c in columns)} FROM {columns[0].table.name} "
        texts = {k: head + v for k, v in _per_dialect(rest).items()}
        return cls(texts.get("", texts), binds=binds, result=columns)

    def _prepare(self, dialect) -> _Prepared:
        prepared = self._prepared.get(dialect.name)
        if prepared is not None:
            return prepared
        text = self.texts.get(dialect.name, self.texts.get(""))
        if text is None:
            raise NotImplementedError(f"fast statement has no SQL for {dialect.name}: {self.sql[:60]}")
        if dialect.name == "sqlite":
            sql = text  # sqlite3 takes :name parameters natively
        elif dialect.paramstyle == "pyformat":
            sql = _PARAM.sub(lambda m: f"%({m.group(1)})s", text.replace("%", "%%"))
        else:  # pragma: no cover - the two stores partnerflow supports are above
            raise NotImplementedError(f"fast statements do not support the {dialect.name} driver")
        binds = tuple((n, _last_one(p) if _immutable(t) else p) for n, t in self.types.items()
                      if (p := t.dialect_impl(dialect).bind_processor(dialect)) is not None)
        results = row = None
        if self.result is not None:
            results = tuple(_result_processor(c, dialect) for c in self.result)
            row = namedtuple("Row", [c.name for c in self.result])
        prepared = self._prepared[dialect.name] = _Prepared(sql, binds, results, row)
        return prepared

    def render(self, dialect, params: Mapping) -> tuple[str, dict]:
        """The SQL text and converted parameters this statement sends to `dialect`'s driver (for EXPLAIN)."""
        prepared = self._prepare(dialect)
        return prepared.sql, self._convert(prepared, params)

    @staticmethod
    def _convert(prepared: _Prepared, params: Mapping) -> dict:
        params = dict(params)
        for name, process in prepared.binds:
            if name in params:
                params[name] = process(params[name])
        return params

    @staticmethod
    def _convert_many(prepared: _Prepared, rows: list) -> list[dict]:
        out = [dict(r) for r in rows]
        for name, process in prepared.binds:
            seen, done = _MISSING, None  # a batch shares values ("now"): convert each object once
            for r in out:
                if name in r:
                    value = r[name]
                    if value is not seen:
                        seen, done = value, process(value)
                    r[name] = done
        return out

    def _run(self, conn: Connection, params, many: bool):
        dialect = conn.dialect
        prepared = self._prepare(dialect)
        if many:
            converted = self._convert_many(prepared, params)
        else:
            converted = self._convert(prepared, params)
        raw = conn.connection.driver_connection
        cursor = raw.cursor()
        # the engine's own listeners (a connection joined to them would build a joined dispatcher per access)
        dispatch = conn.dispatch if conn._has_events else conn.engine.dispatch
        sql = prepared.sql
        try:
            if dispatch.before_cursor_execute:
                for fn in dispatch.before_cursor_execute:
                    fn(conn, cursor, sql, converted, None, many)
            if many:
                cursor.executemany(sql, converted)
            else:
                cursor.execute(sql, converted)
            if dispatch.after_cursor_execute:
                for fn in dispatch.after_cursor_execute:
                    fn(conn, cursor, sql, converted, None, many)
        except dialect.loaded_dbapi.Error as exc:
            raise driver_error(conn, exc, sql, converted, cursor) from exc
        return prepared, cursor

    def execute(self, conn: Connection, params: Mapping) -> int:
        """Run a statement that returns no rows; returns the row count."""
        return self._run(conn, params, False)[1].rowcount

    def executemany(self, conn: Connection, params: Iterable[Mapping]) -> int:
        """Run the statement once per parameter set; returns the total row count where the driver tells it."""
        params = list(params)
        if not params:
            return 0
        if len(params) == 1:  # psycopg's executemany enters pipeline mode: several round trips for one row
            return self.execute(conn, params[0])
        return self._run(conn, params, True)[1].rowcount

    def all(self, conn: Connection, params: Mapping) -> list:
        """Run a SELECT; returns its rows as named tuples of converted values."""
        prepared, cursor = self._run(conn, params, False)
        raw_rows = cursor.fetchall()
        cursor.close()
        processors, make = prepared.results, prepared.row
        return [make(*[p(v) if p is not None else v for p, v in zip(processors, r)]) for r in raw_rows]

    def first(self, conn: Connection, params: Mapping):
        """The first row of a SELECT, or None."""
        rows = self.all(conn, params)
        return rows[0] if rows else None



def _result_processor(column: Column, dialect):
    """SQLAlchemy's result processor for `column` on `dialect`. psycopg returns NUMERIC as `Decimal` already,
    and SQLAlchemy's PostgreSQL numeric processor needs the cursor's type code, which a statement prepared
    before it runs does not have."""
    impl = column.type.dialect_impl(dialect)
    if dialect.name == "postgresql" and isinstance(impl, Numeric):
        return None
    return impl.result_processor(dialect, None)


def _immutable(type_: TypeEngine) -> bool:
    try:
        return type_.python_type in (datetime, date)
    except NotImplementedError:
        return False


def _last_one(process):
    """`process` remembering its last value: a transaction binds its one "now" to several statements.

    For immutable values only (datetimes); the remembered value is held, so
    no other object can take its identity meanwhile.
    """
    last = [(_MISSING, None)]

    def convert(value):
        pair = last[0]
        if pair[0] is value:
            return pair[1]
        out = process(value)
        last[0] = (value, out)
        return out

    return convert


def driver_error(conn: Connection, exc: Exception, sql: str, params, cursor=None) -> DBAPIError:
    """A driver's error as SQLAlchemy would raise it (`OperationalError`, `IntegrityError`...), for a
    statement run straight on the driver; a lost connection is invalidated first, as SQLAlchemy does."""
    dialect = conn.dialect
    invalidated = dialect.is_disconnect(exc, conn.connection.driver_connection, cursor)
    if invalidated and not conn.invalidated:
        conn.invalidate(exc)
    return DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error, connection_invalidated=invalidated,
                               dialect=dialect)
