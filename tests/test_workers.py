"""monitor.workers: jobs in worker processes, each with a deadline that kills a stuck worker."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

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


# --- a worker's pipe holds the next job while it runs one (see monitor.workers) -----------------


def started_at(seconds: float) -> tuple[int, float]:
    """A job that says which process ran it and when (the system's monotonic clock) it began."""
    began = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), began


def touch(path: str) -> None:
    Path(path).touch()


@pytest.fixture
def one_worker() -> Iterator[WorkerPool]:
    workers = WorkerPool(1, name="test")
    try:
        yield workers
    finally:
        workers.close()


def test_a_job_waiting_behind_a_stuck_one_runs_on_a_new_worker(one_worker: WorkerPool) -> None:
    async def run() -> tuple[BaseException | int, BaseException | int]:
        stuck = asyncio.ensure_future(one_worker.run(time.sleep, 60, deadline=0.5))
        await asyncio.sleep(0.1)  # the stuck job is running; the next one waits in its pipe
        after = asyncio.ensure_future(one_worker.run(pid_after, 0, deadline=10))
        results = await asyncio.gather(stuck, after, return_exceptions=True)
        return results[0], results[1]

    stuck, after = asyncio.run(run())

    assert isinstance(stuck, WorkerTimeout)
    assert isinstance(after, int)
    assert after in children()


def test_a_job_waiting_behind_one_that_kills_its_worker_is_not_lost(
    one_worker: WorkerPool,
) -> None:
    async def run() -> list[BaseException | int]:
        jobs = [one_worker.run(os._exit, 3, deadline=10)]
        jobs += [one_worker.run(pid_after, 0, deadline=10) for _ in range(3)]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    died, *after = asyncio.run(run())

    assert isinstance(died, WorkerDied)
    assert all(isinstance(pid, int) for pid in after), after


def test_a_waiting_jobs_deadline_counts_from_when_it_starts(one_worker: WorkerPool) -> None:
    async def run() -> list[tuple[int, float]]:
        # 0.4 s behind the first job, the second would miss a 0.3 s deadline counted from
        # when it was handed over; it takes 0.1 s of its own.
        return list(
            await asyncio.gather(
                one_worker.run(started_at, 0.4, deadline=10),
                one_worker.run(started_at, 0.1, deadline=0.3),
            )
        )

    (first_pid, first_began), (second_pid, second_began) = asyncio.run(run())

    assert first_pid == second_pid  # it waited in the same worker's pipe
    assert second_began >= first_began + 0.4


def test_jobs_are_answered_in_order_of_their_own_results(one_worker: WorkerPool) -> None:
    async def run() -> list[int]:
        return list(
            await asyncio.gather(*(one_worker.run(int, str(n), deadline=10) for n in range(50)))
        )

    assert asyncio.run(run()) == list(range(50))


def test_a_job_cancelled_while_queued_never_runs(one_worker: WorkerPool, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    async def run() -> None:
        first = asyncio.ensure_future(one_worker.run(pid_after, 0.5, deadline=10))
        second = asyncio.ensure_future(one_worker.run(pid_after, 0, deadline=10))
        await asyncio.sleep(0.2)  # the first runs, the second waits in its pipe
        third = asyncio.ensure_future(one_worker.run(touch, str(marker), deadline=10))
        await asyncio.sleep(0.05)
        third.cancel()
        await asyncio.gather(first, second)

    asyncio.run(run())
    one_worker.close()  # every job taken has finished

    assert not marker.exists()


def test_a_job_too_big_for_the_pipe_waits_for_the_worker_and_still_runs(
    one_worker: WorkerPool,
) -> None:
    big = b"x" * (16 * 1024 * 1024)  # past any pipe buffer the kernel grants

    async def run() -> list[int]:
        return list(
            await asyncio.gather(
                one_worker.run(pid_after, 0.3, deadline=10),
                one_worker.run(len, big, deadline=10),
            )
        )

    pid, size = asyncio.run(run())

    assert pid in children()
    assert size == len(big)


def test_two_jobs_on_two_free_workers_run_side_by_side(pool: WorkerPool) -> None:
    async def run() -> list[int]:
        return list(await asyncio.gather(*(pool.run(pid_after, 0.3, deadline=10) for _ in "ab")))

    assert len(set(asyncio.run(run()))) == 2  # neither waited behind the other


def test_a_workers_start_up_does_not_count_against_its_first_jobs_deadline() -> None:
    # The worker imports a module that takes 3 s before it takes jobs; the job's 2 s deadline
    # counts from when the worker is ready.
    workers = WorkerPool(1, name="test", preload=("tests.slow_import",))
    try:
        pid = asyncio.run(workers.run(pid_after, 0, deadline=2.0))
    finally:
        workers.close()
    assert pid != os.getpid()


def test_a_job_whose_arguments_do_not_pickle_fails_alone(pool: WorkerPool) -> None:
    async def run() -> list[BaseException | int]:
        jobs = [pool.run(pid_after, lambda: 0, deadline=10), pool.run(pid_after, 0, deadline=10)]
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    unpicklable, after = asyncio.run(run())

    assert isinstance(unpicklable, Exception)
    assert "pickle" in str(unpicklable).lower()
    assert isinstance(after, int)
