"""One `monitor run` per database: the file lock (SQLite) and the advisory lock (PostgreSQL).

The process-level behaviour (a second `monitor run` refused, a restart after SIGKILL) is in
test_service.py; here the locks are taken twice in one process, which they refuse the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.errors import AlreadyRunning, StoreError
from monitor.lock import FileLock, acquire_instance_lock


def test_the_file_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    database = tmp_path / "data" / "monitor.db"
    lock = acquire_instance_lock(f"sqlite:///{database}")
    assert isinstance(lock, FileLock) and lock.held()
    with pytest.raises(AlreadyRunning) as refused:
        acquire_instance_lock(f"sqlite:///{database}")
    message = str(refused.value)
    assert str(database) in message and f"{database}.lock" in message
    assert f"pid {os.getpid()}" in message
    lock.release()
    assert not lock.held()
    again = acquire_instance_lock(f"sqlite:///{database}")
    again.release()
    # An in-memory database is private to its process: nothing to lock.
    acquire_instance_lock("sqlite://").release()


@pytest.mark.postgres
def test_the_postgres_advisory_lock_refuses_a_second_holder(postgres_url: str) -> None:
    first = acquire_instance_lock(postgres_url)
    try:
        assert first.held()
        with pytest.raises(AlreadyRunning) as refused:
            acquire_instance_lock(postgres_url)
        assert f"pid {os.getpid()}" in str(refused.value)
        assert "advisory lock" in str(refused.value)
    finally:
        first.release()
    assert not first.held()
    second = acquire_instance_lock(postgres_url)
    second.release()


def test_a_database_directory_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    with pytest.raises(StoreError) as refused:
        acquire_instance_lock(f"sqlite:///{blocker / 'monitor.db'}")
    message = str(refused.value)
    assert message.startswith(f"cannot create {blocker / 'monitor.db.lock'}: ")
    assert f"uid {os.getuid()}" in message
