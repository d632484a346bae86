"""The crash loop of tests/test_crash.py, as long as you like: `monitor run` killed with SIGKILL
at random moments, restarted at once, then checked for lost and doubled deliveries.

    .venv/bin/python scripts/crash_loop.py --cycles 300 --seed 7
    .venv/bin/python scripts/crash_loop.py --cycles 100 --database postgres
    .venv/bin/python scripts/crash_loop.py --cycles 100 --real-time   # no clock fast-forward

Everything runs on 127.0.0.1: three outlets whose feeds grow, the Slack stand-in (bot token,
slow, with dropped answers, 429s and 500s), an SMTP server (STARTTLS + AUTH), the daily digest
due; see tests/crash_harness.py for what is killed when and what is checked. PostgreSQL runs use
a fresh database on $MONITOR_TEST_POSTGRES_URL's server (dropped afterwards). It prints a line
per cycle and a summary; the exit status is 1 when a guarantee failed, and the seed replays the
run's articles, faults and kill plan.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.crash_harness import CrashLoop, CrashOptions, CrashWorld  # noqa: E402

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A database of its own on the server of `server_url`, dropped at the end."""
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"monitor_crash_{secrets.token_hex(4)}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server_url).set(database=name).render_as_string(False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    yield f"sqlite:///{workdir / 'monitor.db'}"


def main() -> int:
    # aiosmtpd logs a warning about its own API at every login of the monitor; not news here.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=300, help="kill/restart cycles (300)")
    parser.add_argument("--seed", type=int, help="seed of articles, faults and kills (random)")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MONITOR_TEST_POSTGRES_URL", DEFAULT_POSTGRES),
        help="a PostgreSQL server to create the run's database on",
    )
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="never fast-forward the outbox clock: rows left in flight wait the real 2 "
        "minutes, back-offs their real time (slow; see tests/crash_harness.py)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the run's files here (a temp dir)")
    parser.add_argument("--quiet", action="store_true", help="only the summary")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crash-loop-"))
    workdir.mkdir(parents=True, exist_ok=True)
    options = CrashOptions(
        cycles=args.cycles,
        seed=seed,
        fast_forward=not args.real_time,
        final_timeout=240.0 if not args.real_time else 3600.0,
    )
    print(f"crash loop: seed {seed}, {args.cycles} cycles on {args.database}, files in {workdir}")
    database = (
        postgres_database(args.postgres_url)
        if args.database == "postgres"
        else sqlite_database(workdir)
    )
    with database as url, CrashWorld(workdir, url, seed) as world:
        log = (lambda _line: None) if args.quiet else (lambda line: print(line, flush=True))
        report = CrashLoop(world, options, log).run()
    print(report.summary())
    if not report.problems and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
