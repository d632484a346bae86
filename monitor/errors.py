"""The monitor's exceptions: one tree, so callers can catch exactly what they mean.

    MonitorError                      anything the monitor raises on purpose
    ├── ConfigError                   config files or environment invalid; carries every problem
    ├── QueryError                    a keyword or boolean query that cannot be parsed
    ├── UrlError                      a URL that is not an absolute http(s) URL we can use
    ├── FetchError                    one HTTP fetch did not give us a usable body
    │   ├── FetchRefused              SSRF guard: scheme or address not allowed (no connection made)
    │   ├── FetchTimeout              the whole-request deadline passed
    │   ├── FetchTooLarge             the body (after decompression) passed `max_bytes`
    │   ├── TooManyRedirects          a redirect loop or a chain longer than `max_redirects`
    │   ├── HttpStatusError           4xx/5xx answer (carries status and Retry-After)
    │   └── TransportError            connection refused/reset, TLS, DNS, protocol errors
    ├── WorkerError                   a job in a worker process (workers.py) gave no answer
    │   ├── WorkerTimeout             it passed its deadline; the worker was killed
    │   └── WorkerDied                the worker process died under it (out of memory, killed)
    ├── StoreError                    the database refused or is unusable
    │   └── AlreadyRunning            another `monitor run` holds the database
    └── DeliveryError                 a notifier could not deliver one outbox row
        ├── TemporaryDeliveryError    worth retrying later (connection, 5xx, 429, SMTP 4xx)
        │   └── DeliveryDeferred      not attempted: it must wait for another message first
        └── PermanentDeliveryError    retrying will not help (bad channel, bad token, SMTP 5xx)

Third-party exceptions (httpx, SQLAlchemy, slack-sdk, smtplib) are converted into these at the
module that talks to the library, with `raise ... from exc`. Anything outside this tree that
escapes is a bug and is allowed to crash loudly.

Fetch errors normally travel as values (`models.FetchFailed`) between stages; the exception
classes exist so the fetch code can raise them internally and tests can name them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class MonitorError(Exception):
    """Base of every exception the monitor raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the config, located in its file."""

    file: str
    line: int  # 1-based; 0 when the problem is not tied to a line (e.g. a missing file)
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ConfigError(MonitorError):
    """The config did not validate. `problems` holds every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class QueryError(MonitorError):
    """A keyword or query that cannot be parsed; `position` is a 0-based offset when known."""

    def __init__(self, message: str, position: int | None = None) -> None:
        self.message = message
        self.position = position
        where = f" (at character {position + 1})" if position is not None else ""
        super().__init__(f"{message}{where}")


class UrlError(MonitorError):
    """A URL we cannot use: not absolute, not http(s), or malformed."""


class FetchError(MonitorError):
    """One fetch failed. `retry_after` is set when the server told us when to come back."""

    def __init__(self, message: str, *, retry_after: datetime | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class FetchRefused(FetchError):
    """The SSRF guard refused the URL or the address it resolves to; nothing was sent."""


class FetchTimeout(FetchError):
    """The whole-request deadline (`fetch.timeout`) passed."""


class FetchTooLarge(FetchError):
    """The decoded body passed `fetch.max_bytes`."""


class TooManyRedirects(FetchError):
    """More than `fetch.max_redirects` redirects, or a redirect loop."""


class HttpStatusError(FetchError):
    """The server answered with an error status."""

    def __init__(self, status: int, *, retry_after: datetime | None = None) -> None:
        self.status = status
        super().__init__(f"HTTP {status}", retry_after=retry_after)


class TransportError(FetchError):
    """The connection failed: refused, reset, DNS, TLS or a protocol error."""


class WorkerError(MonitorError):
    """A job given to a worker process (`workers.WorkerPool`) gave no answer."""


class WorkerTimeout(WorkerError):
    """The job passed its deadline; its worker process was killed."""


class WorkerDied(WorkerError):
    """The worker process died while it held the job (killed for memory, crashed)."""


class StoreError(MonitorError):
    """The database refused an operation or is unusable."""


class AlreadyRunning(StoreError):
    """Another `monitor run` already works on this database."""


class DeliveryError(MonitorError):
    """A notifier could not deliver one outbox row."""

    def __init__(self, message: str, *, retry_after: datetime | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class TemporaryDeliveryError(DeliveryError):
    """Worth retrying later: connection errors, timeouts, 5xx, 429, SMTP 4xx."""


class DeliveryDeferred(TemporaryDeliveryError):
    """Nothing was sent: the row waits for another one (a reply for its thread's first message).

    It comes back at `retry_after` exactly, and the wait does not count as an attempt.
    """


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help until someone fixes something: bad channel, bad token, SMTP 5xx."""
