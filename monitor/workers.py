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
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext, SpawnContext
from typing import Any, TypeVar

from monitor.errors import WorkerDied, WorkerTimeout

T = TypeVar("T")

_CONTEXT: ForkServerContext | SpawnContext
if "forkserver" in multiprocessing.get_all_start_methods():
    _CONTEXT = multiprocessing.get_context("forkserver")
else:
    _CONTEXT = multiprocessing.get_context("spawn")
_STOP_WAIT = 5.0  # seconds an idle worker gets to leave on its own at close()


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


def _serve(connection: Connection) -> None:
    """A worker's life: take a job, run it, send back (ok, value, traceback); None ends it."""
    # Ctrl-C in a terminal reaches the whole process group: the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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

    def __init__(self, name: str) -> None:
        self.connection, child = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(child,), name=name, daemon=True)
        self.process.start()
        child.close()  # the worker holds its end; ours would keep the pipe open after it died

    def call(self, function: Callable[..., Any], args: tuple[Any, ...], deadline: float) -> Any:
        """Run one job; raises WorkerTimeout, WorkerDied, _NotSent or the job's exception."""
        if not self.process.is_alive():
            raise _NotSent
        try:
            self.connection.send((function, args))
        except OSError as exc:
            raise _NotSent from exc
        # poll() also wakes when the worker dies (end of file); recv() then says so.
        if not self.connection.poll(deadline):
            raise WorkerTimeout(f"no answer within {deadline:g} s; the worker was stopped")
        try:
            ok, value, remote = self.connection.recv()
        except (EOFError, OSError) as exc:
            # Its end of the pipe closed as it exited: wait for the exit to read its status.
            self.process.join(_STOP_WAIT)
            code = self.process.exitcode
            raise WorkerDied(f"the worker process died (exit code {code})") from exc
        if ok:
            return value
        raise value from RemoteTraceback(remote)

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


class WorkerPool:
    """At most `size` worker processes; `run` gives each job to an idle one, with a deadline.

    Thread-safe and usable from any event loop: jobs wait in a pool of `size` threads of its
    own, each of which drives one worker at a time, so waiting jobs never occupy the event
    loop's default executor (which the database calls need).
    """

    def __init__(self, size: int, *, name: str) -> None:
        if size < 1:
            raise ValueError(f"workers must be at least 1, not {size}")
        self.size = size
        self.name = name
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, function: Callable[..., T], *args: Any, deadline: float) -> T:
        """`function(*args)` in a worker process, which is killed if it takes over `deadline`
        seconds (WorkerTimeout) or dies on its own (WorkerDied). `function` and its arguments
        must pickle: a module-level function and plain data."""
        if self._closed:
            raise RuntimeError(f"{self.name} pool is closed")
        loop = asyncio.get_running_loop()
        result: T = await loop.run_in_executor(self._threads, self._call, function, args, deadline)
        return result

    def close(self) -> None:
        """Stop every worker: queued jobs are cancelled, running ones finish (within their
        deadline) first."""
        self._closed = True
        self._threads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.stop()

    def _call(self, function: Callable[..., Any], args: tuple[Any, ...], deadline: float) -> Any:
        try:
            return self._call_once(function, args, deadline)
        except _NotSent:
            # The worker died between being checked and taking the job: nothing ran.
            try:
                return self._call_once(function, args, deadline)
            except _NotSent as exc:
                raise WorkerDied("a new worker process died before its first job") from exc

    def _call_once(
        self, function: Callable[..., Any], args: tuple[Any, ...], deadline: float
    ) -> Any:
        worker = self._take()
        try:
            value = worker.call(function, args, deadline)
        except (_NotSent, WorkerTimeout, WorkerDied):
            worker.kill()
            raise
        except BaseException:
            self._give_back(worker)  # the job raised; the worker itself is fine
            raise
        self._give_back(worker)
        return value

    def _take(self) -> _Worker:
        """An idle worker that is still alive, else a new one. Idle workers that died (the OOM
        killer, an operator) are cleared away: the job goes to a live one, not lost."""
        while True:
            with self._lock:
                worker = self._idle.pop() if self._idle else None
            if worker is None:
                return _Worker(f"{self.name}-worker")
            if worker.process.is_alive():
                return worker
            worker.kill()

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.stop()
