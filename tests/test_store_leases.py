"""Store queries the service uses, on SQLite and PostgreSQL: leases, make_due, outbox counts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from monitor.models import SourceState
from monitor.store import Store

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def test_leases_keep_two_processes_off_one_source(store: Store) -> None:
    until = NOW + timedelta(minutes=5)
    store.save_source_state(SourceState(name="later", next_poll_at=NOW + timedelta(hours=1)))
    store.save_source_state(SourceState(name="due", next_poll_at=NOW - timedelta(seconds=1)))

    names = ["new", "due", "later"]
    got = store.lease_sources(names, owner="run:x:1", now=NOW, until=until, due_only=True)
    assert got == ["new", "due"]  # never polled, and due; not the one due in an hour
    # Another process gets none of them while the leases hold, even ignoring the schedule.
    assert store.lease_sources(names, owner="poll:x:2", now=NOW, until=until, due_only=False) == [
        "later"
    ]
    # The holder may renew; an expired lease is free for anyone.
    assert store.lease_sources(["due"], owner="run:x:1", now=NOW, until=until, due_only=True) == [
        "due"
    ]
    after = until + timedelta(seconds=1)
    held = after + timedelta(hours=1)
    assert store.lease_sources(
        ["new"], owner="poll:x:2", now=after, until=held, due_only=False
    ) == ["new"]

    store.release_sources(["due", "new"], "run:x:1")  # only its own: "new" is poll's now
    assert store.lease_sources(["due"], owner="poll:x:2", now=NOW, until=until, due_only=True) == [
        "due"
    ]
    assert (
        store.lease_sources(["new"], owner="run:x:3", now=after, until=until, due_only=False) == []
    )
    assert store.release_leases("poll:") == 3
    assert store.lease_sources(names, owner="run:x:3", now=NOW, until=until, due_only=True) == [
        "new",
        "due",
    ]
    # Saving a poll's result does not touch the lease.
    store.save_source_state(replace(store.source_state("due"), polls_total=1))
    assert (
        store.lease_sources(["due"], owner="poll:x:2", now=NOW, until=until, due_only=False) == []
    )


def test_make_due_brings_a_changed_source_forward(store: Store) -> None:
    later = NOW + timedelta(hours=1)
    store.save_source_state(SourceState(name="a", next_poll_at=later))
    store.save_source_state(SourceState(name="b", next_poll_at=later))
    store.make_due(["a"], NOW)
    assert store.due_sources(["a", "b"], NOW) == ["a"]


def test_outbox_counts_per_destination_and_state(store: Store) -> None:
    for key, destination in (("n1", "console"), ("n2", "console"), ("n3", "webhook")):
        store.enqueue_notice(key, {"kind": "test", "text": key}, [destination], NOW)
    first = store.due_deliveries(NOW)[0]
    store.claim_delivery(first, NOW)
    store.fail_delivery(store.due_deliveries(NOW)[-1].id, "no such webhook")
    assert store.outbox_counts() == {
        ("console", "sending"): 1,
        ("console", "pending"): 1,
        ("webhook", "failed"): 1,
    }
