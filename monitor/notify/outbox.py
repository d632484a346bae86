"""The delivery loop: outbox rows -> notifiers, each row delivered once, retried when it may help.

    pending --claim--> sending --ok--> sent
                          |--temporary error--> pending (next attempt after a back-off)
                          '--permanent error--> failed  (visible in `monitor alerts`; resend)

A row is claimed (state `sending`) before its notifier is called, so two processes never send
the same row. A row still `sending` after a crash comes back with `in_flight=True`: the
notifier must check whether it already arrived before sending it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor import metrics
from monitor.errors import DeliveryDeferred, PermanentDeliveryError, TemporaryDeliveryError
from monitor.logs import event
from monitor.models import Delivery
from monitor.store import Store

log = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
DEFER_DELAY = timedelta(seconds=5)


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
) -> DeliveryReport:
    """Deliver every row that is due now (up to `limit`)."""
    sent = retried = failed = 0
    for delivery in store.due_deliveries(clock(), limit):
        notifier = notifiers.get(destination_kind(delivery.destination))
        now = clock()
        if notifier is None:
            # Its output was configured when the row was written and is not now: keep the row
            # until it is configured again (or someone resends it elsewhere).
            store.retry_delivery(
                delivery.id, f"{delivery.destination} is not configured", now + MAX_RETRY
            )
            metrics.record_delivery(delivery, "retried", now)
            retried += 1
            continue
        if not store.claim_delivery(delivery, now):
            continue  # another process is delivering it
        try:
            external_id = notifier.deliver(delivery)
        except DeliveryDeferred as exc:
            store.defer_delivery(delivery.id, str(exc), exc.retry_after or now + DEFER_DELAY)
            retried += 1
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
            retried += 1
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
            failed += 1
        else:
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
            sent += 1
    return DeliveryReport(sent, retried, failed)
