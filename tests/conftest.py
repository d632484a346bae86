"""Shared fixtures: the shared data folder, databases (SQLite and PostgreSQL), a local web, an
SMTP server."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy

from monitor.store import Store
from monitor.store.schema import Base
from tests.slack_standin import SlackStandIn
from tests.smtp import TLS_FILES, Security, SmtpServer, TlsFiles
from tests.web import LocalWeb

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# --- the test data that nobody on this project wrote ------------------------------------------


def shared_data_dir() -> Path | None:
    """`$MONITOR_TEST_DATA`, else `../shared/data` beside the project; None when absent."""
    configured = os.environ.get("MONITOR_TEST_DATA")
    path = Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; tests that need it skip, saying why, on a clone without it."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data is absent (set MONITOR_TEST_DATA); .ci/run always provides it")
    return path


# --- databases: every storage test runs on SQLite and on PostgreSQL ---------------------------

POSTGRES_URL = os.environ.get(
    "MONITOR_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_admin() -> sqlalchemy.Engine | None:
    engine = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("select 1"))
    except sqlalchemy.exc.OperationalError:
        engine.dispose()
        return None
    return engine


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own on the PostgreSQL server, for this test session only.

    Skips when PostgreSQL does not answer, unless MONITOR_REQUIRE_POSTGRES=1 (as .ci/run sets),
    where a missing server is a failure.
    """
    admin = _postgres_admin()
    if admin is None:
        if os.environ.get("MONITOR_REQUIRE_POSTGRES") == "1":
            pytest.fail(
                f"PostgreSQL does not answer at {POSTGRES_URL} (MONITOR_REQUIRE_POSTGRES=1)"
            )
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL}")
    name = f"monitor_test_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    url = sqlalchemy.engine.make_url(POSTGRES_URL).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def empty_postgres(url: str) -> None:
    """Remove every row (the schema stays, migrated)."""
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as connection:
        existing = set(sqlalchemy.inspect(connection).get_table_names())
        present = [f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name in existing]
        if present:
            connection.execute(
                sqlalchemy.text(f"TRUNCATE {', '.join(present)} RESTART IDENTITY CASCADE")
            )
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    return url


# --- the database of the monitor under test: SQLite, or PostgreSQL with the switch -------------

TEST_DATABASE_ENV = "MONITOR_TEST_DATABASE"
TEST_DATABASES = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql"}


def monitor_test_database() -> str:
    """`sqlite` (the default) or `postgresql`, from $MONITOR_TEST_DATABASE."""
    raw = os.environ.get(TEST_DATABASE_ENV, "").strip().lower() or "sqlite"
    if raw not in TEST_DATABASES:
        raise pytest.UsageError(
            f"{TEST_DATABASE_ENV}={raw!r}: use sqlite (the default) or postgresql"
        )
    return TEST_DATABASES[raw]


def pytest_configure(config: pytest.Config) -> None:
    monitor_test_database()  # a misspelt switch stops the run before any test


def pytest_report_header(config: pytest.Config) -> str:
    kind = monitor_test_database()
    server = sqlalchemy.engine.make_url(POSTGRES_URL).render_as_string(hide_password=True)
    where = f"PostgreSQL at {server}" if kind == "postgresql" else "a SQLite file"
    return (
        f"monitor under test: {where}, a fresh database per test "
        f"({TEST_DATABASE_ENV}={kind}); storage tests run on both"
    )


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sqlalchemy.Engine]:
    """An AUTOCOMMIT connection to the PostgreSQL server, to create and drop databases.

    With $MONITOR_TEST_DATABASE=postgresql a server that does not answer is a failure: the
    run asked for PostgreSQL. Otherwise it skips (or fails with MONITOR_REQUIRE_POSTGRES=1).
    """
    admin = _postgres_admin()
    if admin is None:
        if (
            os.environ.get("MONITOR_REQUIRE_POSTGRES") == "1"
            or monitor_test_database() == "postgresql"
        ):
            pytest.fail(f"PostgreSQL does not answer at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL}")
    try:
        yield admin
    finally:
        admin.dispose()


@pytest.fixture
def monitor_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The database of the monitor under test (`monitor poll`, `monitor run`, the CLI).

    A SQLite file in the test's directory by default; with $MONITOR_TEST_DATABASE=postgresql a
    PostgreSQL database of its own, created empty for this test and dropped after it (so a
    process under test may hold its locks and connections as in production). Tests about
    SQLite itself (WAL, the lock file, integrity_check) use a SQLite URL directly; storage tests
    take `database_url` and run on both.
    """
    if monitor_test_database() == "sqlite":
        yield f"sqlite:///{tmp_path / 'monitor.db'}"
        return
    admin: sqlalchemy.Engine = request.getfixturevalue("postgres_admin")
    name = f"monitor_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield (
            sqlalchemy.engine.make_url(POSTGRES_URL)
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def is_sqlite(url: str) -> bool:
    return sqlalchemy.engine.make_url(url).get_backend_name() == "sqlite"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated, empty Store, on SQLite and on PostgreSQL."""
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


# --- a local web: an HTTP server on 127.0.0.1 serving what a test puts in it -------------------


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    with LocalWeb() as local:
        yield local


# --- a Slack stand-in: Web API methods and a webhook on 127.0.0.1 (tests/slack_standin.py) -----


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    """A Slack stand-in with channels #news-alerts and #ussm-watch, driven by the real slack-sdk."""
    with SlackStandIn() as standin:
        yield standin


# --- SMTP: a real server on 127.0.0.1 (aiosmtpd), STARTTLS with a test CA ---------------------


@pytest.fixture(scope="session")
def tls_files() -> TlsFiles:
    """The test CA and the SMTP server's certificate for 127.0.0.1 (tests/data/tls)."""
    return TLS_FILES


@pytest.fixture
def smtp_server(tls_files: TlsFiles) -> Iterator[SmtpServer]:
    """The usual submission server: STARTTLS required, then AUTH (PLAIN or LOGIN) required.

    `smtp_server.settings()` points `email:` at it, `smtp_server.environ` holds the login and
    `tls_files.client_context()` trusts its certificate.
    """
    with SmtpServer("starttls", tls_files, ("monitor", secrets.token_urlsafe(16))) as server:
        yield server


@pytest.fixture
def start_smtp_server(tls_files: TlsFiles) -> Iterator[Callable[..., SmtpServer]]:
    """`start_smtp_server("ssl", credentials=None)`: another server, stopped after the test."""
    started: list[SmtpServer] = []

    def start(security: Security, credentials: tuple[str, str] | None = None) -> SmtpServer:
        server = SmtpServer(security, tls_files, credentials)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
