"""One `monitor run` per database, enforced by locks the operating system or server releases.

    SQLite      flock() on `<database file>.lock`; the file holds the holder's pid and host.
                The kernel drops the lock when the process dies, even by SIGKILL, so a restart
                after a crash starts at once.
    PostgreSQL  pg_try_advisory_lock on a connection of its own, held for the process
                lifetime; the server drops it when that connection ends. The holder's pid is in
                the connection's application_name, which a refused process reads back.

A refused process raises `AlreadyRunning` saying which database and which pid holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from monitor.errors import AlreadyRunning, StoreError

# pg_try_advisory_lock(int4, int4): a namespace of our own ('moni') and the lock's number in it.
PG_LOCK_NAMESPACE = 0x6D6F6E69
PG_LOCK_RUN = 1
PG_LOCK_ARTICLES = 2  # a transaction lock: one article at a time finds its story (store.py)


class InstanceLock(Protocol):
    """Held from `acquire_instance_lock` until `release`."""

    def held(self) -> bool:
        """False when the lock was lost (PostgreSQL: its connection dropped)."""
        ...

    def release(self) -> None: ...


def acquire_instance_lock(database_url: str) -> InstanceLock:
    """The single-instance lock for `database_url`, or AlreadyRunning when another holds it."""
    try:
        url = make_url(database_url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database_url: {exc}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            return _NoLock()  # a private in-memory database: nothing to share
        return FileLock.acquire(Path(url.database))
    if backend == "postgresql":
        return AdvisoryLock.acquire(database_url)
    raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")


def holder_label() -> str:
    """`pid 1234 on host-a`: who we are, as a refused process will be told."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


class _NoLock:
    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None


class FileLock:
    """An exclusive flock() on a file beside the SQLite database."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, database: Path) -> FileLock:
        path = database.with_name(database.name + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opened without truncating: the holder's pid must survive a refused contender.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(
                f"cannot create {path}: {exc.strerror or exc}; the SQLite database's directory "
                f"must be a directory this user (uid {os.getuid()}) can write"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "pid unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another `monitor run` ({holder}) is already running on {database} "
                f"(it holds {path}); stop it first, or point this one at another database_url"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder_label() + "\n").encode(), 0)
        return cls(path, fd)

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close. The file stays: removing it would let a process that opened the
        old file and one that creates a new one both believe they hold the lock."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock on a dedicated autocommit connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection: Connection | None = connection
        # The health check asks from its own thread; a connection serves one caller at a time.
        self._guard = threading.Lock()

    @classmethod
    def acquire(cls, database_url: str) -> AdvisoryLock:
        url = make_url(database_url)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        # Autocommit: holding a transaction open for days would hold back VACUUM.
        engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        try:
            connection = engine.connect()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot connect to the database: {exc}") from exc
        try:
            connection.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": f"monitor run ({holder_label()})"[:63]},
            )
            got = connection.scalar(
                text("SELECT pg_try_advisory_lock(:namespace, :lock)"),
                {"namespace": PG_LOCK_NAMESPACE, "lock": PG_LOCK_RUN},
            )
            if not got:
                holder = _advisory_holder(connection)
                raise AlreadyRunning(
                    f"another `monitor run` ({holder}) is already running on "
                    f"{url.render_as_string(hide_password=True)} (it holds the advisory lock "
                    f"{PG_LOCK_NAMESPACE},{PG_LOCK_RUN}); stop it first, or point this one at "
                    "another database_url"
                )
        except BaseException:
            connection.close()
            engine.dispose()
            raise
        return cls(connection)

    def held(self) -> bool:
        with self._guard:
            if self._connection is None:
                return False
            try:
                count = self._connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() "
                        "AND locktype = 'advisory' AND classid = :namespace "
                        "AND objid = :lock AND granted"
                    ),
                    {"namespace": PG_LOCK_NAMESPACE, "lock": PG_LOCK_RUN},
                )
            except SQLAlchemyError:
                return False
            return bool(count)

    def release(self) -> None:
        with self._guard:
            connection, self._connection = self._connection, None
        if connection is None:
            return
        # A dead connection has lost the lock already; closing it is all there is to do.
        with contextlib.suppress(SQLAlchemyError):
            connection.execute(
                text("SELECT pg_advisory_unlock(:namespace, :lock)"),
                {"namespace": PG_LOCK_NAMESPACE, "lock": PG_LOCK_RUN},
            )
        with contextlib.suppress(SQLAlchemyError):
            connection.close()
        connection.engine.dispose()


def _advisory_holder(connection: Connection) -> str:
    """The holder as its application_name says (`pid 1234 on host-a`), when we may see it."""
    name = connection.scalar(
        text(
            "SELECT a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.classid = :namespace AND l.objid = :lock "
            "AND l.granted AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        {"namespace": PG_LOCK_NAMESPACE, "lock": PG_LOCK_RUN},
    )
    if isinstance(name, str) and name.startswith("monitor run (") and name.endswith(")"):
        return name.removeprefix("monitor run (").removesuffix(")")
    return "pid unknown"
