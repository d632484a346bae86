"""Worker processes for CPU work on bodies strangers wrote, every job with a deadline.

feedparser and trafilatura run over whatever a server sent, and some bodies keep them busy for
minutes: 10 MB of tiny or nested tags holds feedparser for one to two minutes, one tag with
half a million attributes longer still. In a thread such a job cannot be stopped, and its
Python code holds the GIL the event loop needs for every other source. Here each job runs in a
process of its own; when it passes its deadline that process is killed and a fresh one takes
its place, so one hostile body costs one core for at most the deadline.

    pool = WorkerPool(2, name="feed-parser")
    result = await pool.run(parse_feed, body, url, deadline=20.0)   # WorkerTimeout, WorkerDied
    pool.close()

Workers start on first use, from a forkserver (or are spawned): forking the parent would copy
its event loop and its threads' locks mid-use. A worker imports what its first job needs and
keeps it for the next ones. A job's own exception comes back as that exception, with the
worker's traceback as its cause.

Each worker is driven by a thread of its own (a lane), which keeps the worker's pipe holding
the next job while it runs one: a worker that ends a job reads the next at once, instead of
waiting for the parent to read its answer and send more. (That wait needs the GIL, which a busy
event loop can hold for milliseconds: extraction workers idled between jobs some 5-10 % of the
time.) The next job is sent only when the pipe's buffer can take it whole, so that sending
never blocks the lane: the lane alone watches the running job's deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import multiprocessing
import os
import queue
import signal
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.reduction import ForkingPickler
from typing import Any, TypeVar

from monitor.errors import WorkerDied, WorkerTimeout

T = TypeVar("T")

_CONTEXT: ForkServerContext | SpawnContext
if "forkserver" in multiprocessing.get_all_start_methods():
    _CONTEXT = multiprocessing.get_context("forkserver")
else:
    _CONTEXT = multiprocessing.get_context("spawn")
_STOP_WAIT = 5.0  # seconds an idle worker gets to leave on its own at close()
_START_WAIT = 120.0  # seconds a new worker may take to start and import its `preload`
_READY = "ready"  # what a worker says once it can take jobs
# The send buffer asked for on our end of a worker's pipe; a next job of up to a quarter of what
# the kernel grants (it counts its own overhead in) is sent while the worker is busy.
_PIPE_BUFFER = 4 * 1024 * 1024


def pool_size() -> int:
    """The number of CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, attached as its `__cause__`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


class _NotSent(Exception):
    """The job could not be handed to the worker: it had died while idle; nothing ran."""


class _Closing(Exception):
    """The pool is closing: a lane takes no more jobs."""


def _serve(connection: Connection, preload: tuple[str, ...]) -> None:
    """A worker's life: import `preload`, say it is ready, then take a job, run it, send back
    (ok, value, traceback); None ends it."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in preload:
        importlib.import_module(module)
    try:
        connection.send(_READY)
    except (EOFError, OSError):
        return
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        function, args = job
        try:
            answer: tuple[bool, Any, str] = (True, function(*args), "")
        except Exception as exc:
            answer = (False, exc, traceback.format_exc())
        try:
            connection.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the value or the exception would not pickle
            connection.send((False, RuntimeError(f"unpicklable answer: {exc!r}"), ""))


class _Worker:
    """One worker process and our end of its pipe."""

    def __init__(self, name: str, preload: tuple[str, ...]) -> None:
        self.connection, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(
            target=_serve, args=(child, preload), name=name, daemon=True
        )
        self.process.start()
        child.close()  # the worker holds its end; ours would keep the pipe open after it died
        self.pipelined_max = _pipelined_max(self.connection)

    def wait_ready(self) -> None:
        """Wait for the worker to have started and imported what its jobs need, so that a job's
        deadline counts the job alone (an interpreter starting on a busy machine can take
        seconds). Raises _NotSent when it dies or hangs first."""
        try:
            ready = self.connection.poll(_START_WAIT) and self.connection.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            raise _NotSent

    def send(self, payload: bytes) -> None:
        """Give the worker a pickled job; raises _NotSent when it is gone."""
        if not self.process.is_alive():
            raise _NotSent
        try:
            self.connection.send_bytes(payload)
        except OSError as exc:
            raise _NotSent from exc

    def answer(self, timeout: float) -> tuple[bool, Any, str]:
        """The running job's (ok, value, traceback); WorkerTimeout when none comes within
        `timeout` seconds, WorkerDied when the worker dies first."""
        # poll() also wakes when the worker dies (end of file); recv() then says so.
        if not self.connection.poll(max(0.0, timeout)):
            raise WorkerTimeout("no answer in time")
        try:
            answer: tuple[bool, Any, str] = self.connection.recv()
        except (EOFError, OSError) as exc:
            # Its end of the pipe closed as it exited: wait for the exit to read its status.
            self.process.join(_STOP_WAIT)
            code = self.process.exitcode
            raise WorkerDied(f"the worker process died (exit code {code})") from exc
        return answer

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.connection.close()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone: nothing to ask
            self.connection.send(None)
        self.process.join(_STOP_WAIT)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def _pipelined_max(connection: Connection) -> int:
    """The largest job that can wait in the worker's pipe without blocking the sender."""
    with socket.socket(fileno=os.dup(connection.fileno())) as sock:  # the same socket
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _PIPE_BUFFER)
        granted: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return granted // 4


@dataclass(eq=False)
class _Job:
    call: tuple[Callable[..., Any], tuple[Any, ...]]  # (function, args)
    deadline: float
    future: concurrent.futures.Future[Any]
    # The call pickled, made by the lane that takes the job: a queue of jobs must not hold a
    # second copy of every body waiting to be parsed (the caller holds the first).
    payload: bytes = b""
    sent_to_new_worker: bool = False  # a second new worker that cannot take it fails it

    def pickled(self) -> bool:
        """Make `payload`; False (and the job failed) when the call does not pickle."""
        try:
            self.payload = bytes(ForkingPickler.dumps(self.call))
        except Exception as exc:
            self.future.set_exception(exc)
            return False
        self.call = (self.call[0], ())  # the arguments are in the payload now
        return True


class WorkerPool:
    """At most `size` worker processes; `run` gives each job to the next free one, with a
    deadline.

    Thread-safe and usable from any event loop: jobs wait in a queue of the pool's own, which
    `size` lanes (threads) take from, each driving one worker; waiting jobs never occupy the
    event loop's default executor (which the database calls need).
    """

    def __init__(self, size: int, *, name: str, preload: tuple[str, ...] = ()) -> None:
        """`preload`: modules a worker imports before it takes jobs (their import time is not
        counted against a job's deadline)."""
        if size < 1:
            raise ValueError(f"workers must be at least 1, not {size}")
        self.size = size
        self.name = name
        self.preload = preload
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()  # None: a lane stops
        self._lanes: list[threading.Thread] = []
        self.workers: dict[int, _Worker] = {}  # by lane, while it has one
        self.busy = [False] * size  # by lane: has it a job to run?
        self.lock = threading.Lock()
        self._closed = False

    async def run(self, function: Callable[..., T], *args: Any, deadline: float) -> T:
        """`function(*args)` in a worker process, which is killed if it takes over `deadline`
        seconds (WorkerTimeout) or dies on its own (WorkerDied). `function` and its arguments
        must pickle: a module-level function and plain data."""
        job = _Job((function, args), deadline, concurrent.futures.Future())
        with self.lock:
            if self._closed:
                raise RuntimeError(f"{self.name} pool is closed")
            if not self._lanes:
                self._lanes = [
                    threading.Thread(
                        target=self._drive, args=(lane,), name=f"{self.name}-{lane}", daemon=True
                    )
                    for lane in range(self.size)
                ]
                for thread in self._lanes:
                    thread.start()
            self._jobs.put(job)
        result: T = await asyncio.wrap_future(job.future)
        return result

    def pids(self) -> list[int]:
        """The worker processes running now (for benchmarks and tests)."""
        with self.lock:
            return [w.process.pid for w in self.workers.values() if w.process.pid is not None]

    def close(self) -> None:
        """Stop every worker: queued jobs are cancelled, running ones (and a next job already
        in a worker's pipe) finish (within their deadline) first."""
        with self.lock:
            self._closed = True
            lanes = self._lanes
            while True:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.future.cancel()
            for _ in lanes:
                self._jobs.put(None)
        for thread in lanes:
            thread.join()

    # --- lanes ------------------------------------------------------------------------------

    def _drive(self, lane: int) -> None:
        """A lane's thread: see `_Lane`. A bug in it must not leave its jobs waiting forever."""
        driver = _Lane(self, lane)
        try:
            driver.run()
        except BaseException as exc:
            for job in driver.jobs:
                job.future.set_exception(exc)
            raise
        finally:
            driver.stop_worker()

    def next_job(self) -> _Job:
        """The next job nobody cancelled, waited for. Raises _Closing at close()."""
        while True:
            job = self._jobs.get()
            if job is None:
                raise _Closing
            if job.future.set_running_or_notify_cancel():
                return job

    def follower(self) -> _Job | None:
        """A job to wait in a busy worker's pipe: the next one nobody cancelled, if any, and
        only while every lane is busy (a free lane takes it: a job never queues behind a
        running one while a worker is free). Raises _Closing at close()."""
        while all(self.busy):
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return None
            if job is None:
                raise _Closing
            if job.future.set_running_or_notify_cancel():
                return job
        return None


class _Lane:
    """One worker and the jobs it was given: the running one, and the next when there is one
    and the pipe can take it whole. The lane waits for the running job's answer within its
    deadline; a job waiting in the pipe of a worker that is killed or dies goes to a new one."""

    def __init__(self, pool: WorkerPool, lane: int) -> None:
        self.pool = pool
        self.lane = lane
        self.worker: _Worker | None = None
        self.jobs: deque[_Job] = deque()  # taken, not yet answered, oldest first: it runs
        self.in_pipe = 0  # how many of `jobs` the worker holds
        self.started = 0.0  # when jobs[0] began to run

    def run(self) -> None:
        closing = False
        while self.jobs or not closing:
            if not self.jobs:
                self.pool.busy[self.lane] = False
                try:
                    job = self.pool.next_job()
                except _Closing:
                    closing = True
                    continue
                if not job.pickled():
                    continue
                self.jobs.append(job)
                self.pool.busy[self.lane] = True
            self._send()
            if len(self.jobs) == 1 and self.in_pipe == 1 and not closing:
                try:
                    follower = self.pool.follower()
                except _Closing:
                    closing, follower = True, None
                if follower is not None and follower.pickled():
                    self.jobs.append(follower)
                    self._send()
            if self.worker is not None and self.in_pipe:
                self._answer()

    def _send(self) -> None:
        """Hand the worker the running job if it lacks it, and the next if it fits its pipe."""
        while self.in_pipe < len(self.jobs):
            job = self.jobs[self.in_pipe]
            new_worker = self.worker is None
            if self.worker is None:
                self.worker = _Worker(f"{self.pool.name}-worker", self.pool.preload)
                with self.pool.lock:
                    self.pool.workers[self.lane] = self.worker
                job.sent_to_new_worker = True
            if self.in_pipe and len(job.payload) > self.worker.pipelined_max:
                return  # sent when the running one ends: a full pipe would block the lane
            try:
                if new_worker:
                    self.worker.wait_ready()
                self.worker.send(job.payload)
            except _NotSent:
                if self.in_pipe:  # it died under the running job: _answer() tells how
                    return
                # It died while idle (the OOM killer, an operator): a new one takes the job;
                # a new one that cannot is a failure.
                self._drop_worker()
                if job.sent_to_new_worker:
                    self.jobs.popleft().future.set_exception(
                        WorkerDied("a new worker process died before its first job")
                    )
                continue
            if self.in_pipe == 0:
                self.started = time.monotonic()
            self.in_pipe += 1

    def _answer(self) -> None:
        """Wait for the running job's answer, within its deadline, and hand it back."""
        assert self.worker is not None
        running = self.jobs[0]
        try:
            ok, value, remote = self.worker.answer(
                running.deadline - (time.monotonic() - self.started)
            )
        except (WorkerTimeout, WorkerDied) as exc:
            self._drop_worker()
            self.jobs.popleft()
            if isinstance(exc, WorkerTimeout):
                exc = WorkerTimeout(
                    f"no answer within {running.deadline:g} s; the worker was stopped"
                )
            running.future.set_exception(exc)
            return
        except Exception as exc:  # the answer would not unpickle here: the job failed
            ok, value, remote = False, exc, traceback.format_exc()
        self.jobs.popleft()
        self.in_pipe -= 1
        self.started = time.monotonic()  # the next job, already in the pipe, runs from now
        if ok:
            running.future.set_result(value)
        else:
            error = value if isinstance(value, BaseException) else RuntimeError(value)
            error.__cause__ = RemoteTraceback(remote)
            running.future.set_exception(error)

    def _drop_worker(self) -> None:
        """Kill the worker (stuck, dead or dying); what it held is sent to the next one."""
        assert self.worker is not None
        with self.pool.lock:
            self.pool.workers.pop(self.lane, None)
        self.worker.kill()
        self.worker, self.in_pipe = None, 0

    def stop_worker(self) -> None:
        if self.worker is not None:
            with self.pool.lock:
                self.pool.workers.pop(self.lane, None)
            self.worker.stop()
            self.worker = None
