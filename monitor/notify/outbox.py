"""The delivery loop: outbox rows -> notifiers, each row delivered once, retried when it may help.
Each destination has a lane of its own: one channel's pace never holds up another's.

    pending --claim--> sending --ok--> sent
                          |--temporary error--> pending (next attempt after a back-off)
                          '--permanent error--> failed  (visible in `monitor alerts`; resend)

A row is claimed (state `sending`) before its notifier is called, so two processes never send
the same row. A row still `sending` after a crash comes back with `in_flight=True`: the
notifier must check whether it already arrived before sending it again.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from monitor import metrics
from monitor.errors import DeliveryDeferred, PermanentDeliveryError, TemporaryDeliveryError
from monitor.logs import event
from monitor.models import Delivery
from monitor.store import Store

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
DEFER_DELAY = timedelta(seconds=5)
RESCAN = 0.5  # seconds between two reads of due rows while delivery lanes are busy
MAX_PAGES = 10  # a read of due rows takes at most this many times `limit` rows


class Notifier(Protocol):
    """Delivers one outbox row to its destination.

    Returns the destination's id for the message (Slack `ts`, email Message-ID) or None.
    Raises TemporaryDeliveryError when trying again later may work, PermanentDeliveryError
    when it will not. When `delivery.in_flight`, it first checks for an earlier copy.
    """

    def deliver(self, delivery: Delivery) -> str | None: ...


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... up to an hour between attempts."""
    delay: timedelta = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 10))
    return min(delay, MAX_RETRY)


def destination_kind(destination: str) -> str:
    """`slack:#news` -> `slack`; `console` -> `console`."""
    return destination.split(":", 1)[0]


def deliver_due(
    store: Store,
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], datetime],
    limit: int = 100,
    keep_going: Callable[[], bool] = lambda: True,
) -> DeliveryReport:
    """Deliver every row that is due now, each destination in a lane (a thread) of its own.

    One destination's rows go out one after another, oldest first: Slack's pace of a message a
    second per channel, and a story's first message before its thread replies. Destinations do
    not wait for each other, so a burst of alerts to four channels goes out at a message a
    second in each of the four at once, not at one a second in turn.

    Due rows are read `limit` at a time (past those already queued in lanes), again whenever a
    lane runs dry and at least every RESCAN seconds while lanes are busy: rows that fall due
    meanwhile (a poll's new alerts) join their lane at once. Each row is handled at most once
    per call. Returns when every due row was handled, or when `keep_going()` turns false
    (checked before each row; a row being sent is finished). A lane that raises (a database
    outage) stops; the others finish, then the first error is raised here.
    """
    tally = _Tally()
    handled: set[int] = set()
    lanes: dict[str, _Lane] = {}
    changed = threading.Event()  # a lane ran dry or stopped
    try:
        while keep_going():
            changed.clear()
            # Rows queued in lanes are still due until sent: read past them, so that a long
            # backlog in one channel does not hide another channel's new rows (up to a point).
            queued = sum(lane.pending() for lane in lanes.values())
            page = min(limit + queued, limit * MAX_PAGES)
            fresh = [d for d in store.due_deliveries(clock(), page) if d.id not in handled]
            for delivery in fresh:
                handled.add(delivery.id)
                lane = lanes.get(delivery.destination)
                if lane is None:
                    lane = _Lane(store, notifiers, clock, keep_going, tally, changed)
                    lanes[delivery.destination] = lane
                lane.put(delivery)
            if any(lane.error is not None for lane in lanes.values()):
                break
            if not fresh and all(lane.pending() == 0 for lane in lanes.values()):
                break
            changed.wait(RESCAN)
    finally:
        for lane in lanes.values():
            lane.close()
        for lane in lanes.values():
            lane.join()
    for lane in lanes.values():
        if lane.error is not None:
            raise lane.error
    return DeliveryReport(tally.sent, tally.retried, tally.failed)


class _Tally:
    def __init__(self) -> None:
        self.sent = self.retried = self.failed = 0
        self._lock = threading.Lock()

    def add(self, outcome: str) -> None:
        with self._lock:
            setattr(self, outcome, getattr(self, outcome) + 1)


class _Lane(threading.Thread):
    """One destination's rows, delivered in order by a daemon thread (a Slack call stuck in the
    network must not keep the process from exiting)."""

    def __init__(
        self,
        store: Store,
        notifiers: Mapping[str, Notifier],
        clock: Callable[[], datetime],
        keep_going: Callable[[], bool],
        tally: _Tally,
        changed: threading.Event,
    ) -> None:
        super().__init__(name="deliver", daemon=True)
        self._store = store
        self._notifiers = notifiers
        self._clock = clock
        self._keep_going = keep_going
        self._tally = tally
        self._changed = changed
        self._rows: queue.SimpleQueue[Delivery | None] = queue.SimpleQueue()
        self._pending = 0  # rows put and not finished
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        self.start()

    def put(self, delivery: Delivery) -> None:
        with self._lock:
            self._pending += 1
        self._rows.put(delivery)

    def pending(self) -> int:
        """Rows given to this lane and not finished yet."""
        with self._lock:
            return self._pending

    def close(self) -> None:
        self._rows.put(None)

    def run(self) -> None:
        while (delivery := self._rows.get()) is not None:
            try:
                if self.error is None and self._keep_going():
                    outcome = deliver_one(self._store, self._notifiers, self._clock, delivery)
                    if outcome is not None:
                        self._tally.add(outcome)
            except BaseException as exc:  # raised by deliver_due once the lanes are done
                self.error = exc
            finally:
                with self._lock:
                    self._pending -= 1
                    dry = self._pending == 0
                if dry or self.error is not None:
                    self._changed.set()


def deliver_one(
    store: Store,
    notifiers: Mapping[str, Notifier],
    clock: Callable[[], datetime],
    delivery: Delivery,
) -> Literal["sent", "retried", "failed"] | None:
    """Deliver one due row; its outcome, or None when another process claimed it first."""
    notifier = notifiers.get(destination_kind(delivery.destination))
    now = clock()
    if notifier is None:
        # Its output was configured when the row was written and is not now: keep the row
        # until it is configured again (or someone resends it elsewhere).
        store.retry_delivery(
            delivery.id, f"{delivery.destination} is not configured", now + MAX_RETRY
        )
        metrics.record_delivery(delivery, "retried", now)
        return "retried"
    if not store.claim_delivery(delivery, now):
        return None  # another process is delivering it
    try:
        external_id = notifier.deliver(delivery)
    except DeliveryDeferred as exc:
        store.defer_delivery(delivery.id, str(exc), exc.retry_after or now + DEFER_DELAY)
        return "retried"
    except TemporaryDeliveryError as exc:
        at = now + retry_delay(delivery.attempts + 1)
        if exc.retry_after is not None:
            at = max(at, exc.retry_after)
        store.retry_delivery(delivery.id, str(exc), at)
        event(
            log,
            "delivery_retry",
            logging.WARNING,
            outbox=delivery.id,
            destination=delivery.destination,
            error=str(exc),
            next=at.isoformat(),
        )
        metrics.record_delivery(delivery, "retried", now)
        return "retried"
    except PermanentDeliveryError as exc:
        store.fail_delivery(delivery.id, str(exc))
        event(
            log,
            "delivery_failed",
            logging.ERROR,
            outbox=delivery.id,
            destination=delivery.destination,
            error=str(exc),
        )
        metrics.record_delivery(delivery, "failed", now)
        return "failed"
    delivered_at = clock()
    store.delivered(delivery.id, external_id, delivered_at)
    metrics.record_delivery(delivery, "sent", delivered_at)
    event(
        log,
        "delivered",
        outbox=delivery.id,
        destination=delivery.destination,
        external_id=external_id or "-",
    )
    return "sent"
