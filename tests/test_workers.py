"""monitor.workers: jobs in worker processes, each with a deadline that kills a stuck worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator

import pytest

from monitor.errors import WorkerDied, WorkerTimeout
from monitor.workers import RemoteTraceback, WorkerPool


def children() -> set[int]:
    return {process.pid for process in multiprocessing.active_children() if process.pid}


def pid_after(seconds: float) -> int:
    """A job that takes `seconds` and says which process ran it."""
    time.sleep(seconds)
    return os.getpid()


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    workers = WorkerPool(2, name="test")
    try:
        yield workers
    finally:
        workers.close()


def test_a_job_runs_in_another_process(pool: WorkerPool) -> None:
    worker = asyncio.run(pool.run(os.getpid, deadline=10))
    assert worker != os.getpid()
    assert worker in children()


def test_a_job_past_its_deadline_is_stopped_and_its_worker_killed(pool: WorkerPool) -> None:
    before = children()

    async def run() -> float:
        started = time.monotonic()
        with pytest.raises(WorkerTimeout):
            await pool.run(time.sleep, 60, deadline=0.5)
        return time.monotonic() - started

    elapsed = asyncio.run(run())

    assert elapsed < 10
    assert children() == before, "the stuck worker was left running"
    assert asyncio.run(pool.run(pid_after, 0, deadline=10)) in children()


def test_a_worker_dying_under_its_job_is_worker_died(pool: WorkerPool) -> None:
    with pytest.raises(WorkerDied, match="exit code 3"):
        asyncio.run(pool.run(os._exit, 3, deadline=10))
    assert asyncio.run(pool.run(pid_after, 0, deadline=10)) in children()


def test_a_worker_killed_while_idle_is_replaced_and_the_job_not_lost(pool: WorkerPool) -> None:
    first = asyncio.run(pool.run(os.getpid, deadline=10))
    os.kill(first, signal.SIGKILL)
    for process in multiprocessing.active_children():
        if process.pid == first:
            process.join(10)

    second = asyncio.run(pool.run(os.getpid, deadline=10))

    assert second != first


def test_a_job_exception_comes_back_with_the_workers_traceback(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="invalid literal") as caught:
        asyncio.run(pool.run(int, "not a number", deadline=10))
    assert isinstance(caught.value.__cause__, RemoteTraceback)
    assert "ValueError" in str(caught.value.__cause__)
    assert asyncio.run(pool.run(int, "7", deadline=10)) == 7  # the worker is still in use


def test_at_most_size_workers_run_jobs_at_once(pool: WorkerPool) -> None:
    async def run() -> tuple[list[int], float]:
        started = time.monotonic()
        pids = await asyncio.gather(*(pool.run(pid_after, 0.4, deadline=10) for _ in range(4)))
        return list(pids), time.monotonic() - started

    pids, elapsed = asyncio.run(run())

    assert len(set(pids)) == 2
    assert elapsed >= 0.8  # four jobs of 0.4 s on two workers


def test_close_stops_every_worker_and_refuses_new_jobs() -> None:
    before = children()
    workers = WorkerPool(2, name="test")
    asyncio.run(pool_both(workers))
    assert len(children() - before) == 2

    workers.close()

    assert children() == before
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(workers.run(os.getpid, deadline=10))


async def pool_both(workers: WorkerPool) -> None:
    await asyncio.gather(*(workers.run(pid_after, 0.2, deadline=10) for _ in range(2)))


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(0, name="test")
