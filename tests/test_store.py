"""Storage, on SQLite and on PostgreSQL: migrations, "seen before", stories, alerts, outbox."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from monitor import dedupe
from monitor.models import Article, Entry, SourceState, StoredArticle, TopicMatch
from monitor.store import Candidate, Store
from monitor.store.db import create_db_engine, migrate
from monitor.store.driver import driver_transaction
from monitor.store.schema import AlertRow, ArticleUrlRow, Base, OutboxRow

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TEXT = " ".join(
    f"Sentence {i} about the minerals agreement signed in Islamabad with details of the "
    f"refinery, shipments number {i}, and reactions from Quetta and Washington."
    for i in range(40)
)
OTHER_TEXT = " ".join(
    f"Paragraph {i} of a cricket report: the home side batted first and scored {i * 7} runs "
    f"before the rain came, with the crowd in Lahore cheering every boundary."
    for i in range(40)
)


def article(url: str, *, outlet: str = "dawn.com", text: str = TEXT, **changes: object) -> Article:
    base = Article(
        url=url,
        link=url,
        source="dawn",
        outlet=outlet,
        title="Pakistan ships minerals to US firm",
        summary="A first shipment left Karachi.",
        text=text,
        text_from="page",
        published=NOW - timedelta(hours=2),
        guid=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


MATCH = TopicMatch("ussm", ("USSM",), "Pakistan signed with USSM.")


def save(
    store: Store, item: Article, matches: tuple[TopicMatch, ...] = (MATCH,)
) -> StoredArticle | None:
    return store.save_article(
        item,
        matches,
        dedupe.text_fingerprint(item.text),
        None,
        lambda topics: ("console", "slack:#news") if "ussm" in topics else ("console",),
        NOW,
    )


def test_migrations_create_exactly_the_models(database_url: str) -> None:
    engine = create_db_engine(database_url)
    migrate(engine)
    migrate(engine)  # a second run is a no-op
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_runs_in_wal_with_a_busy_timeout(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_a_sqlite_file_reuses_the_connection_used_last(tmp_path: Path) -> None:
    # Its page cache is still valid; a connection taken in turn starts from a dropped one.
    store = Store.open(f"sqlite:///{tmp_path / 'm.db'}")
    first, second = store.engine.raw_connection(), store.engine.raw_connection()
    first_driver, second_driver = first.driver_connection, second.driver_connection
    first.close()
    second.close()
    again = store.engine.raw_connection()
    assert again.driver_connection is second_driver is not first_driver
    again.close()
    store.close()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_sqlite_database_opens_and_stores(url: str) -> None:
    store = Store.open(url)
    try:
        assert store.save_article(article("https://dawn.com/a"), [], None, None, lambda t: (), NOW)
        assert store.count_articles() == 1
    finally:
        store.close()


def test_source_state_round_trips(store: Store) -> None:
    assert store.source_state("dawn") == SourceState(name="dawn")
    state = SourceState(
        name="dawn",
        next_poll_at=NOW,
        consecutive_failures=2,
        last_error="HTTP 503",
        etag='"abc"',
        items_total=7,
        parked=True,
    )
    store.save_source_state(state)
    assert store.source_state("dawn") == state
    store.save_source_state(replace(state, consecutive_failures=0, parked=False))
    assert store.source_states()["dawn"].consecutive_failures == 0


def test_every_field_of_a_source_state_reads_back_the_same_by_driver_sql_and_by_the_orm(
    store: Store,
) -> None:
    # save_source_state and source_state use driver SQL (store/driver.py); source_states and
    # save_source_state_with_notice the ORM: both must see the very same values.
    state = SourceState(
        name="dawn-ملتان",
        next_poll_at=NOW + timedelta(microseconds=123_456),
        interval_seconds=420,
        last_polled_at=NOW - timedelta(minutes=1),
        last_success_at=NOW - timedelta(hours=1),
        last_new_item_at=NOW - timedelta(days=2),
        last_error="HTTP 503 – «Service Unavailable»",
        last_error_at=NOW - timedelta(seconds=30),
        last_problem="3 entries without a link",
        consecutive_failures=4,
        retry_after_until=NOW + timedelta(hours=24),
        parked=True,
        down_notified=True,
        etag='W/"abc"',
        last_modified="Mon, 23 Nov 2026 07:00:00 GMT",
        body_hash="f" * 64,
        items_total=1234,
        polls_total=99,
        failures_total=12,
        typical_gap_seconds=3600,
    )
    store.save_source_state(state)
    assert store.source_state(state.name) == state
    assert store.source_states()[state.name] == state

    changed = replace(state, parked=False, down_notified=False, etag=None, next_poll_at=NOW)
    store.save_source_state_with_notice(changed, "up:dawn", {"kind": "up"}, ["console"], NOW)
    assert store.source_state(state.name) == changed


def test_saving_a_source_state_keeps_its_lease(store: Store) -> None:
    assert store.lease_sources(
        ["dawn"], owner="run-1", now=NOW, until=NOW + timedelta(minutes=5), due_only=False
    ) == ["dawn"]
    store.save_source_state(SourceState(name="dawn", next_poll_at=NOW + timedelta(minutes=15)))
    assert (
        store.lease_sources(
            ["dawn"], owner="poll-2", now=NOW, until=NOW + timedelta(minutes=5), due_only=False
        )
        == []
    )


def test_a_driver_transaction_that_fails_stores_nothing(store: Store) -> None:
    insert = (
        "INSERT INTO sources (name, consecutive_failures, parked, down_notified, "
        "items_total, polls_total, failures_total) VALUES (?, 0, ?, ?, 0, 0, 0)"
    )
    with (
        pytest.raises(sa.exc.IntegrityError),
        driver_transaction(store.engine, write=True) as statements,
    ):
        statements.execute(insert, ["ghost", False, False])
        statements.execute(insert, ["ghost", False, False])  # the same key again
    assert store.source_states() == {}


def test_due_sources_are_the_never_polled_and_the_overdue(store: Store) -> None:
    store.save_source_state(SourceState(name="soon", next_poll_at=NOW + timedelta(minutes=5)))
    store.save_source_state(SourceState(name="late", next_poll_at=NOW - timedelta(minutes=5)))
    assert store.due_sources(["soon", "late", "never"], NOW) == ["late", "never"]


def test_unseen_filters_known_urls_and_guids(store: Store) -> None:
    save(store, article("https://dawn.com/news/1", guid="g-1"))
    entries = [
        Candidate(Entry("https://dawn.com/news/1?utm_source=x"), "https://dawn.com/news/1"),
        Candidate(Entry("https://dawn.com/news/2", guid="g-1"), "https://dawn.com/news/2"),
        Candidate(Entry("https://dawn.com/news/3", guid="g-3"), "https://dawn.com/news/3"),
        Candidate(Entry("https://dawn.com/news/3#top"), "https://dawn.com/news/3"),
    ]
    fresh = store.unseen("dawn", entries)
    assert [c.url for c in fresh] == ["https://dawn.com/news/3"]


def test_saving_an_article_twice_stores_it_once(store: Store) -> None:
    first = save(store, article("https://dawn.com/news/1"))
    assert first is not None
    assert save(store, article("https://dawn.com/news/1")) is None
    assert store.count_articles() == 1


def test_an_article_under_another_url_is_the_same_and_its_url_is_remembered(store: Store) -> None:
    save(store, article("https://dawn.com/news/1", aliases=("https://dawn.com/amp/news/1",)))
    again = article("https://dawn.com/?p=1", aliases=("https://dawn.com/news/1",))
    assert save(store, again) is None
    with store.engine.connect() as connection:
        urls = set(connection.scalars(sa.select(ArticleUrlRow.url)))
    assert urls == {
        "https://dawn.com/news/1",
        "https://dawn.com/amp/news/1",
        "https://dawn.com/?p=1",
    }
    fresh = store.unseen(
        "dawn", [Candidate(Entry("https://dawn.com/?p=1"), "https://dawn.com/?p=1")]
    )
    assert fresh == []


def test_a_guid_seen_in_the_same_source_is_the_same_article(store: Store) -> None:
    save(store, article("https://dawn.com/news/1", guid="dawn-1"))
    assert save(store, article("https://dawn.com/news/1-updated", guid="dawn-1")) is None


def test_a_near_duplicate_on_another_outlet_joins_the_story_as_a_follow_up(store: Store) -> None:
    first = save(store, article("https://dawn.com/news/1"))
    copy_text = "Republished with permission. " + TEXT[: len(TEXT) * 3 // 4] + " Follow us."
    copy = save(store, article("https://tribune.com.pk/x", outlet="tribune.com.pk", text=copy_text))
    other = save(store, article("https://geo.tv/y", outlet="geo.tv", text=OTHER_TEXT))
    assert first is not None and copy is not None and other is not None
    assert first.new_story and not copy.new_story and other.new_story
    assert copy.story_id == first.story_id
    assert other.story_id != first.story_id
    with store.engine.connect() as connection:
        kinds = dict(connection.execute(sa.select(AlertRow.outlet, AlertRow.kind)).all())
    assert kinds == {"dawn.com": "story", "tribune.com.pk": "followup", "geo.tv": "story"}


def test_a_story_alerts_once_per_outlet(store: Store) -> None:
    save(store, article("https://dawn.com/news/1"))
    second = save(store, article("https://dawn.com/news/1-copy", title="Same story, new URL"))
    assert second is not None and second.alert_id is None


def test_alerts_get_one_outbox_row_per_destination(store: Store) -> None:
    saved = save(store, article("https://dawn.com/news/1"))
    assert saved is not None
    unmatched = save(store, article("https://geo.tv/z", outlet="geo.tv", text=OTHER_TEXT), ())
    assert unmatched is not None and unmatched.alert_id is None
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(OutboxRow.alert_id, OutboxRow.destination)).all()
    assert sorted(rows) == [
        (saved.alert_id, "console"),
        (saved.alert_id, "slack:#news"),
    ]


def test_outbox_rows_move_through_their_states(store: Store) -> None:
    save(store, article("https://dawn.com/news/1"))
    due = store.due_deliveries(NOW)
    assert [d.destination for d in due] == ["console", "slack:#news"]
    console, slack = due
    assert console.alert is not None and console.alert.title == "Pakistan ships minerals to US firm"
    assert console.alert.matches == (MATCH,)
    assert store.claim_delivery(console, NOW)
    assert not store.claim_delivery(console, NOW)  # another process cannot take it too
    store.delivered(console.id, None, NOW)
    assert store.claim_delivery(slack, NOW)
    store.retry_delivery(slack.id, "HTTP 503", NOW + timedelta(minutes=1))
    assert store.due_deliveries(NOW) == []
    (again,) = store.due_deliveries(NOW + timedelta(minutes=1))
    assert again.attempts == 1
    store.claim_delivery(again, NOW)
    store.fail_delivery(again.id, "channel_not_found")
    (status,) = store.alerts_since(NOW - timedelta(days=1))
    assert status.deliveries == (
        ("console", "sent", None),
        ("slack:#news", "failed", "channel_not_found"),
    )
    assert store.resend_failed(NOW) == 1
    assert [d.id for d in store.due_deliveries(NOW)] == [again.id]


def test_a_row_abandoned_while_sending_comes_back_marked_in_flight(store: Store) -> None:
    save(store, article("https://dawn.com/news/1"))
    (console, _) = store.due_deliveries(NOW)
    store.claim_delivery(console, NOW)
    assert [d.id for d in store.due_deliveries(NOW)] != [console.id]
    later = NOW + timedelta(minutes=10)
    abandoned = [d for d in store.due_deliveries(later) if d.id == console.id]
    assert len(abandoned) == 1 and abandoned[0].in_flight
    assert store.claim_delivery(abandoned[0], later)


def test_two_writers_racing_for_one_article_store_it_once(store: Store) -> None:
    barrier = threading.Barrier(4)
    results: list[StoredArticle | None] = []

    def racer(index: int) -> None:
        barrier.wait()
        results.append(save(store, article("https://dawn.com/news/race", guid=f"g{index}")))

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for r in results if r is not None) == 1
    assert store.count_articles() == 1


def test_articles_since_carries_stored_topics(store: Store) -> None:
    save(store, article("https://dawn.com/news/1"))
    (view,) = store.articles_since(NOW - timedelta(hours=1))
    assert view.stored_topics == ("ussm",)
    assert store.articles_since(NOW + timedelta(hours=1)) == []


def test_a_notice_is_queued_once_per_key(store: Store) -> None:
    notice = {"kind": "source_down", "text": "dawn is failing: HTTP 503"}
    assert store.enqueue_notice("down:dawn:1", notice, ["slack:#news", "console"], NOW)
    assert not store.enqueue_notice("down:dawn:1", notice, ["slack:#news", "console"], NOW)
    due = store.due_deliveries(NOW)
    assert [(d.destination, d.notice, d.alert) for d in due] == [
        ("slack:#news", notice, None),
        ("console", notice, None),
    ]


def test_prune_drops_old_text_and_keeps_what_dedupe_and_the_digest_need(store: Store) -> None:
    saved = save(store, article("https://dawn.com/news/1", guid="g-1"))
    assert saved is not None
    (delivery, _) = store.due_deliveries(NOW)
    store.claim_delivery(delivery, NOW)
    store.delivered(delivery.id, None, NOW)

    assert store.prune(NOW - timedelta(days=1)).articles == 0  # nothing that old yet
    report = store.prune(NOW + timedelta(seconds=1))
    assert (report.articles, report.deliveries) == (1, 1)
    assert report.bands > 0
    assert store.prune(NOW + timedelta(seconds=1)).articles == 0  # idempotent

    (view,) = store.articles_since(NOW - timedelta(days=1))
    assert view.text == "" and view.stored_topics == ("ussm",)
    # Still seen: neither its URL nor its GUID is new again.
    again = [Candidate(Entry("https://dawn.com/news/1", guid="g-1"), "https://dawn.com/news/1")]
    assert store.unseen("dawn", again) == []
    # Still alerted, with its matched sentence.
    (status,) = store.alerts_since(NOW - timedelta(days=1))
    assert status.alert.matches == (MATCH,)
    # The pending Slack row was not finished, so it stays.
    assert [d.destination for d in store.due_deliveries(NOW)] == ["slack:#news"]
