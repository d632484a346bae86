"""Engines and migrations: SQLite (the default) and PostgreSQL behave the same to the rest.

SQLite is tuned for one service process plus the odd CLI command writing at once: WAL (readers
never block the writer), a busy timeout (a second writer waits instead of failing with
"database is locked") and BEGIN IMMEDIATE for every transaction (a transaction takes the write
lock up front, so two writers never deadlock upgrading a read lock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from monitor.errors import StoreError

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Pages read through a memory map rather than a system call each: storing an article looks up
# dozens of near-duplicate index pages (benchmarks/lookup_bench.py). Address space, not memory:
# the pages are the OS's file cache, shared by every connection.
SQLITE_MMAP_BYTES = 1 << 30


def create_db_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite's file created and tuned; PostgreSQL via psycopg 3."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        # Not quoted, nor chained: the URL may hold a password, and the redactor cannot pick
        # the password out of a URL it cannot parse.
        raise StoreError(
            "invalid database_url: expected sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_file = database not in ("", ":memory:")
        if in_file:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # A file's pool hands out the connection used last, whose page cache still holds what
        # the last write read. A connection that missed another's commit starts its next
        # transaction with its cache dropped: taken in turn (first in, first out), each did so
        # on every article stored, re-reading its index pages (0.1 ms an article of the ~0.4 it
        # costs). An in-memory database has one connection a thread, and no such choice.
        engine = create_engine(
            parsed,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_pre_ping=False,
            **({"pool_use_lifo": True} if in_file else {}),
        )
        event.listen(engine, "connect", _tune_sqlite)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_pre_ping=True)
    raise StoreError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE instead of pysqlite's deferred BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: a crash loses no committed txn
    cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already)."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database: {exc.orig}") from exc
