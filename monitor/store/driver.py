"""Statements handed straight to the database driver, for the calls made on every poll.

Through the ORM, one statement costs the main process some 0.3-1 ms of CPU (a session, its
unit of work, the statement cache, result objects), against 0.05-0.1 ms for the driver's
own `execute`. The calls made for every source on every poll (read its state, write it back,
ask which of its entries are new) were most of a poll's CPU when the feed had not changed
(benchmarks/polling_bench.py). They are written here as plain SQL that SQLite and PostgreSQL
both accept, with each column's values converted by SQLAlchemy's own type processors for the
dialect, so they read and write exactly what the ORM would.

    with driver_transaction(engine, write=True) as statements:
        statements.execute("UPDATE sources SET etag = ? WHERE name = ?", [etag, name])

"?" stands for a parameter whatever the driver's own placeholder is.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import ColumnElement, Dialect, Engine, Table
from sqlalchemy.exc import DBAPIError, OperationalError

from monitor.errors import StoreError

_Convert = Callable[[Any], Any]


@functools.cache
def driver_sql(statement: str, paramstyle: str) -> str:
    """`statement` with the driver's placeholders: "?" (sqlite3) or "%s" (psycopg)."""
    if paramstyle == "qmark":
        return statement
    if paramstyle in ("format", "pyformat"):
        return statement.replace("%", "%%").replace("?", "%s")
    raise StoreError(f"unsupported database driver paramstyle {paramstyle!r}")


def placeholders(count: int) -> str:
    """ "?, ?, ?" for an IN list of `count` values (no data ever goes into a statement)."""
    return ", ".join("?" * count)


class ColumnCodec:
    """Values of some columns as the driver takes and gives them, converted both ways as
    SQLAlchemy converts them for the dialect (UTC datetimes, booleans, JSON...)."""

    def __init__(self, columns: Sequence[ColumnElement[Any]], dialect: Dialect) -> None:
        implementations = [column.type.dialect_impl(dialect) for column in columns]
        self._binds: tuple[_Convert | None, ...] = tuple(
            impl.bind_processor(dialect) for impl in implementations
        )
        self._results: tuple[_Convert | None, ...] = tuple(
            impl.result_processor(dialect, None) for impl in implementations
        )

    def bind(self, values: Sequence[Any]) -> list[Any]:
        # None goes through too, as SQLAlchemy sends it: a JSON column stores it as JSON null.
        return [
            convert(value) if convert is not None else value
            for convert, value in zip(self._binds, values, strict=True)
        ]

    def result(self, row: Sequence[Any]) -> list[Any]:
        return [
            convert(value) if convert is not None else value
            for convert, value in zip(self._results, row, strict=True)
        ]


class Insert:
    """An INSERT of some columns of a table, with their conversions."""

    def __init__(self, table: Table, columns: Sequence[str], dialect: Dialect) -> None:
        self.table = table.name
        self.sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - names, no data
            f"VALUES ({placeholders(len(columns))})"
        )
        self.codec = ColumnCodec([table.c[name] for name in columns], dialect)


class Statements:
    """A cursor inside one transaction, taking statements written with "?"."""

    def __init__(self, cursor: Any, dialect: Dialect) -> None:
        self._cursor = cursor
        self.dialect = dialect

    def execute(self, statement: str, parameters: Sequence[Any] = ()) -> Any:
        """Run `statement`; returns the cursor, for its rows or `rowcount`. Driver errors come
        out as SQLAlchemy's (IntegrityError, OperationalError...), as the ORM raises them."""
        sql = driver_sql(statement, self.dialect.paramstyle)
        with self._errors(sql, parameters):
            self._cursor.execute(sql, parameters)
        return self._cursor

    def insert(self, insert: Insert, rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values in `insert`'s column order), in one executemany."""
        if not rows:
            return
        sql = driver_sql(insert.sql, self.dialect.paramstyle)
        bound = [insert.codec.bind(row) for row in rows]
        with self._errors(sql, bound[0]):
            self._cursor.executemany(sql, bound)

    def insert_returning_id(self, insert: Insert, row: Sequence[Any]) -> int:
        """Insert one row; its new `id`."""
        bound = insert.codec.bind(row)
        if self.dialect.name == "sqlite":  # lastrowid is the rowid, which an id column is
            self.execute(insert.sql, bound)
            return int(self._cursor.lastrowid)
        (new_id,) = self.execute(f"{insert.sql} RETURNING id", bound).fetchone()
        return int(new_id)

    @contextmanager
    def _errors(self, sql: str, parameters: Sequence[Any]) -> Iterator[None]:
        try:
            yield
        except self.dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                sql, parameters, exc, self.dialect.loaded_dbapi.Error
            ) from exc


@contextmanager
def driver_transaction(engine: Engine, *, write: bool) -> Iterator[Statements]:
    """One transaction on a pooled connection: committed when the block ends, rolled back when
    it raises. On SQLite a write takes the write lock up front (BEGIN IMMEDIATE, as every ORM
    transaction of `Store` does) and a read takes none. OperationalError (locked, gone, ...)
    becomes StoreError, as in `Store._transaction`."""
    dialect = engine.dialect
    try:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            statements = Statements(cursor, dialect)
            if dialect.name == "sqlite":  # its connections run in autocommit mode (db.py)
                statements.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield statements
            except BaseException:
                connection.rollback()
                raise
            try:
                connection.commit()
            except dialect.loaded_dbapi.Error as exc:
                raise DBAPIError.instance("COMMIT", (), exc, dialect.loaded_dbapi.Error) from exc
        finally:
            connection.close()  # back to the pool, which rolls back whatever is left open
    except OperationalError as exc:
        raise StoreError(f"database error: {exc.orig}") from exc
