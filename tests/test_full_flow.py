"""The whole flow as a user sees it, through `monitor run`, against a Slack of another make.

One test walks what a team using the monitor sees in a morning: `monitor run` polls two
outlets, posts alerts to Slack with the contract's shape (routed by topic), puts another
outlet's copy of a story in the story's thread (even when that reply's first answer is lost),
picks up a config edit while running (a new source and a new keyword: the new source's matching
article alerts within the reload window), sends the daily digest email once (multipart, grouped
by topic, each story once with every outlet that carried it), and `monitor alerts` shows every
delivery sent.

The Slack here is not tests/slack_standin.py but `MiniSlack`, written below from Slack's
documentation with only what the monitor cannot do without: `auth.test`, `chat.postMessage`,
`conversations.history` (channel IDs only, with metadata on request, thread replies included)
and an incoming webhook URL. It has no `conversations.list` and no `conversations.replies`
(answering `unknown_method`, as Slack does for a method it does not know), its channel IDs,
timestamps and paging look different, and it reads JSON and form bodies alike. The monitor must
post to channel names it cannot look up, learn their IDs from Slack's answers, and check for an
earlier copy of a thread reply without `conversations.replies`.

The articles are written for this test (realistic texts on the users' topics, not the shared
seeds that tests/test_end_to_end.py uses); the outlets are LocalWeb servers on 127.0.0.1.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from monitor import dedupe
from monitor.config import Settings, SlackSettings
from monitor.models import Article, TopicMatch
from monitor.notify.email import format_day
from monitor.notify.outbox import FIRST_RETRY, DeliveryReport, deliver_due
from monitor.notify.routing import Outputs, alert_destinations
from monitor.notify.slack import ChannelPacer, SlackNotifier
from monitor.store import Store
from monitor.store.schema import AlertRow, ArticleRow, DigestRow, OutboxRow
from tests.crash_harness import digest_zone
from tests.service_harness import Launcher, launcher_for, service_env, wait_for
from tests.smtp import TLS_FILES, SmtpServer
from tests.web import LocalWeb
from tests.world import Story, paragraphs_of, publish

# --- another Slack ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiniMessage:
    channel: str  # channel ID, or "webhook"
    ts: str
    thread_ts: str | None
    args: dict[str, Any]  # everything the call carried (blocks and metadata decoded)

    @property
    def metadata(self) -> dict[str, Any] | None:
        value = self.args.get("metadata")
        return value if isinstance(value, dict) else None

    @property
    def alert_id(self) -> int | None:
        payload = (self.metadata or {}).get("event_payload") or {}
        return int(payload["alert_id"]) if "alert_id" in payload else None


class MiniSlack:
    """A Slack Web API of another make on 127.0.0.1: auth.test, chat.postMessage,
    conversations.history and an incoming webhook. Nothing else.

    `drop_next(test)`: the next chat.postMessage whose arguments pass `test` is carried out and
    then the connection is closed without an answer (Slack took the message, the answer was
    lost)."""

    def __init__(self, channels: tuple[str, ...] = ("news-alerts", "ussm-watch")) -> None:
        self.token = f"xoxb-mini-{secrets.token_hex(8)}"
        self.webhook_path = f"/hooks/{secrets.token_hex(8)}"
        # IDs of another shape than the usual stand-in's (still what Slack IDs look like).
        self.channels = {name: f"C0MINI{index:05X}" for index, name in enumerate(channels, 1)}
        self.messages: list[MiniMessage] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._drops: list[Callable[[dict[str, Any]], bool]] = []
        self.dropped: list[MiniMessage] = []  # taken, and the answer never sent
        self._lock = threading.Lock()
        self._clock = itertools.count()
        mini = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                mini._serve(self)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.webhook_path}"

    def drop_next(self, test: Callable[[dict[str, Any]], bool]) -> None:
        with self._lock:
            self._drops.append(test)

    def in_channel(self, name: str) -> list[MiniMessage]:
        channel = self.channels[name.lstrip("#")]
        with self._lock:
            return [m for m in self.messages if m.channel == channel]

    def methods(self) -> set[str]:
        with self._lock:
            return {method for method, _ in self.calls}

    # --- serving ----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        args: dict[str, Any] = dict(parse_qsl(url.query))
        if raw and handler.headers.get("Content-Type", "").startswith("application/json"):
            args.update(json.loads(raw))
        elif raw:
            args.update(parse_qsl(raw.decode()))
        for key in ("blocks", "metadata"):  # form-encoded callers send these as JSON text
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        if url.path == self.webhook_path:
            with self._lock:
                self.calls.append(("webhook", args))
                self.messages.append(MiniMessage("webhook", self._ts(), None, args))
            self._answer(handler, 200, "ok")
            return
        method = url.path.removeprefix("/api/")
        with self._lock:
            self.calls.append((method, args))
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            self._answer(handler, 200, {"ok": False, "error": "invalid_auth"})
            return
        if method == "auth.test":
            body: dict[str, Any] = {"ok": True, "user_id": "U0MINIBOT", "team_id": "T0MINI"}
        elif method == "chat.postMessage":
            body = self._post(args)
            with self._lock:
                drop = next((t for t in self._drops if body.get("ok") and t(args)), None)
                if drop is not None:
                    self._drops.remove(drop)
                    self.dropped += [m for m in self.messages if m.ts == body["ts"]]
                    handler.close_connection = True  # taken, and no answer
                    return
        elif method == "conversations.history":
            body = self._history(args)
        else:
            body = {"ok": False, "error": "unknown_method", "req_method": method}
        self._answer(handler, 200, body)

    def _ts(self) -> str:
        # Unique, increasing, and close to the wall clock as Slack's are.
        return f"{time.time():.0f}.{next(self._clock):06d}"

    def _channel(self, value: str, *, by_name: bool) -> str | None:
        if value in self.channels.values():
            return value
        if by_name and value.lstrip("#") in self.channels:
            return self.channels[value.lstrip("#")]
        return None

    def _post(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(str(args.get("channel", "")), by_name=True)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        thread_ts = args.get("thread_ts")
        with self._lock:
            if thread_ts and not any(
                m.channel == channel and m.ts == thread_ts and m.thread_ts is None
                for m in self.messages
            ):
                return {"ok": False, "error": "thread_not_found"}
            message = MiniMessage(channel, self._ts(), thread_ts or None, args)
            self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": message.ts}

    def _history(self, args: dict[str, Any]) -> dict[str, Any]:
        # Like Slack: a channel ID, not a name.
        channel = self._channel(str(args.get("channel", "")), by_name=False)
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(args.get("oldest") or 0)
        with_metadata = str(args.get("include_all_metadata")).lower() in ("1", "true")
        with self._lock:
            found = [
                m for m in reversed(self.messages) if m.channel == channel and float(m.ts) > oldest
            ]
        start = int(base64.b64decode(args["cursor"]).decode()) if args.get("cursor") else 0
        limit = int(args.get("limit") or 100)
        page = found[start : start + limit]
        more = start + limit < len(found)
        messages = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.args.get("text")}
            if m.thread_ts:
                item["thread_ts"] = m.thread_ts
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            messages.append(item)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return {
            "ok": True,
            "messages": messages,
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mini() -> Iterator[MiniSlack]:
    with MiniSlack() as slack:
        yield slack


def is_reply(args: dict[str, Any]) -> bool:
    return bool(args.get("thread_ts"))


# --- the notifier against MiniSlack, without a process: the parts the flow relies on ----------


class Clock:
    """Wall time moved by hand (the pacer's sleeps move it too)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()


TOKEN_MODE = Outputs(slack_token=True, slack_webhook=False, email_alerts=False, email_digest=False)
REFINERY_MATCH = TopicMatch("ussm", ("USSM",), "Islamabad signed the refinery deal with USSM.")


def mini_settings(mini: MiniSlack) -> Settings:
    return Settings(
        timezone="Asia/Karachi",
        slack=SlackSettings(
            base_url=mini.base_url, channel="#news-alerts", routes={"ussm": "#ussm-watch"}
        ),
    )


def notifier_for(mini: MiniSlack, store: Store, clock: Clock) -> SlackNotifier:
    """A SlackNotifier as a (re)started process makes it: nothing learned yet."""
    return SlackNotifier(
        SecretStr(mini.token),
        mini_settings(mini),
        store,
        clock=clock,
        pacer=ChannelPacer(monotonic=clock.monotonic, sleep=lambda s: clock.advance(s)),
    )


def save_copy(store: Store, clock: Clock, settings: Settings, outlet: str) -> int:
    """One outlet's copy of the refinery story; returns its alert id."""
    words = " ".join(f"w{i * 7919 % 10007}" for i in range(300))
    url = f"https://{outlet}/refinery-deal"
    item = Article(
        url=url,
        link=url,
        source=outlet.split(".")[0],
        outlet=outlet,
        title=f"Refinery deal signed ({outlet})",
        summary="",
        text=f"Islamabad signed the refinery deal with USSM. {words}",
        text_from="page",
        published=clock() - timedelta(hours=1),
    )
    stored = store.save_article(
        item,
        (REFINERY_MATCH,),
        dedupe.text_fingerprint(item.text),
        None,
        lambda topics: alert_destinations(topics, settings, TOKEN_MODE),
        clock(),
    )
    assert stored is not None and stored.alert_id is not None
    return stored.alert_id


def test_without_conversations_replies_a_lost_reply_is_found_in_history_not_posted_twice(
    store: Store, mini: MiniSlack
) -> None:
    """A thread reply whose answer was lost is looked for before it is sent again. Without
    `conversations.replies` (unknown_method) the notifier looks in `conversations.history`
    instead of failing the delivery for good."""
    clock = Clock()
    settings = mini_settings(mini)
    notifier = notifier_for(mini, store, clock)
    save_copy(store, clock, settings, "dawn.com")
    assert deliver_due(store, {"slack": notifier}, clock) == DeliveryReport(sent=1)
    clock.advance(5)
    reply_alert = save_copy(store, clock, settings, "geo.tv")
    mini.drop_next(is_reply)
    assert deliver_due(store, {"slack": notifier}, clock) == DeliveryReport(retried=1)
    clock.advance(FIRST_RETRY.total_seconds())
    assert deliver_due(store, {"slack": notifier}, clock) == DeliveryReport(sent=1)

    root, reply = mini.in_channel("#ussm-watch")
    assert reply.thread_ts == root.ts and reply.alert_id == reply_alert
    assert "conversations.replies" in mini.methods()  # asked, and told it does not exist
    assert sum(1 for m, _ in mini.calls if m == "chat.postMessage") == 2


def test_after_a_restart_a_lost_message_waits_for_its_channel_id_and_is_not_posted_twice(
    store: Store, mini: MiniSlack
) -> None:
    """Without `conversations.list` the notifier posts to `#name` and learns the ID from the
    answer, in memory. A restarted process has not learned it yet, and history wants an ID:
    a row that needs the check for an earlier copy waits (a temporary failure that says why)
    until a message to that channel has taught the ID, then is found, not posted twice. It is
    not failed for good with "no channel #ussm-watch", which is not true."""
    clock = Clock()
    settings = mini_settings(mini)
    first = notifier_for(mini, store, clock)
    save_copy(store, clock, settings, "dawn.com")
    assert deliver_due(store, {"slack": first}, clock) == DeliveryReport(sent=1)
    clock.advance(5)
    save_copy(store, clock, settings, "geo.tv")
    mini.drop_next(is_reply)
    assert deliver_due(store, {"slack": first}, clock) == DeliveryReport(retried=1)

    restarted = notifier_for(mini, store, clock)  # a new process: nothing learned
    clock.advance(FIRST_RETRY.total_seconds())
    assert deliver_due(store, {"slack": restarted}, clock) == DeliveryReport(retried=1)
    with store.engine.connect() as db:
        error = db.scalar(sa.select(OutboxRow.last_error).where(OutboxRow.state == "pending"))
    assert error is not None and "channel ID" in error and "channels:read" in error

    # Another alert to the same channel is posted (no check needed) and teaches the ID ...
    clock.advance(5)
    third = Article(
        url="https://tribune.com.pk/other",
        link="https://tribune.com.pk/other",
        source="tribune",
        outlet="tribune.com.pk",
        title="Another refinery story",
        summary="",
        text="Islamabad and USSM met again. " + " ".join(f"x{i}" for i in range(200)),
        text_from="page",
        published=clock(),
    )
    stored = store.save_article(
        third,
        (REFINERY_MATCH,),
        dedupe.text_fingerprint(third.text),
        None,
        lambda topics: alert_destinations(topics, settings, TOKEN_MODE),
        clock(),
    )
    assert stored is not None
    assert deliver_due(store, {"slack": restarted}, clock) == DeliveryReport(sent=1)
    # ... and the waiting reply is then found in the history, not posted again.
    clock.advance(60)
    assert deliver_due(store, {"slack": restarted}, clock) == DeliveryReport(sent=1)
    replies = [m for m in mini.in_channel("#ussm-watch") if m.thread_ts]
    assert len(replies) == 1
    with store.engine.connect() as db:
        assert set(db.scalars(sa.select(OutboxRow.state))) == {"sent"}


# --- the whole flow -----------------------------------------------------------------------------

BOLAN, INDUS, CAPITAL = "Bolan Chronicle", "Indus Ledger", "Capital Observer"

REKO_DIQ = """
The federal cabinet on Tuesday approved the final financing package for the Reko Diq copper
and gold project, clearing the way for construction crews to return to the Chagai district
after more than a decade of litigation and stalled talks.
Officials in Quetta said the provincial government of Balochistan would hold a quarter of the
project through a special purpose company, with its share of the capital costs carried by the
federal government until the mine starts paying dividends.
The package brings together export credit agencies, two multilateral lenders and a group of
commercial banks. Finance ministry officials said the first disbursement was expected before
the end of the fiscal year, subject to environmental approvals and a land survey.
Tribal elders from Nokkundi welcomed the decision but asked for written guarantees on jobs
and water. "We have heard promises before," one elder told reporters outside the deputy
commissioner's office, adding that the community wanted a seat on the project's board.
The operator said it would hire and train local workers first, build a desalination plant
for the mine's water, and fund a technical college in the district. A road and a rail spur
to the coast are part of the second phase.
Analysts in Karachi said the approval would help the country's balance of payments once ore
exports begin, but warned that security along the transport corridor and the pace of
provincial approvals would decide whether the schedule holds.
Opposition lawmakers in the provincial assembly demanded that the full agreement be tabled
for debate, saying earlier deals had been signed without the assembly's consent.
"""
MAGNETS = """
Prices of neodymium oxide rose for a third straight week as magnet makers in East Asia
rebuilt stocks ahead of the new year, traders in Singapore and Shanghai said on Monday.
The climb has revived interest among Pakistani officials who have spent the past year
courting foreign buyers for the country's untapped deposits. A senior official at the
petroleum and mineral resources ministry said two magnet manufacturers had visited Islamabad
this month to discuss long-term supply of concentrate.
Neodymium is the main ingredient of the permanent magnets used in electric vehicle motors and
wind turbines. Demand for these rare earth materials is forecast to double by the end of the
decade, according to industry estimates cited by the ministry.
Geologists caution that surveys are at an early stage. Only a handful of prospects have been
drilled, and none has a resource estimate that would satisfy international investors. "There
is a long road from a promising sample to a shipment," said a professor of economic geology
at a university in Lahore.
The ministry plans to publish a map of exploration blocks early next year and invite bids.
Officials said the terms would require some processing inside the country rather than the
export of raw ore, a condition that several companies have resisted elsewhere.
Traders said prices could ease in the spring once new capacity in Malaysia comes online, but
that buyers were keen to diversify their suppliers after export controls elsewhere last year.
"""
REFINERY = """
A technical team from US Strategic Metals arrived in Karachi on Wednesday to inspect the site
proposed for a refinery under the memorandum signed with Pakistan in September, officials at
the board of investment said.
The team, made up of metallurgists and environmental engineers, will spend a week at the
industrial zone east of the port and meet officials of Frontier Works, the state-owned
engineering firm expected to build the plant's roads and foundations.
Under the memorandum the company is to invest up to five hundred million dollars in stages,
starting with a facility that separates rare earth concentrates and refines antimony and
copper for export. A second stage would add a plant for magnet alloys.
Officials said the inspection would settle questions about water supply and power. The zone
draws electricity from the national grid and has suffered long outages this summer; the
company has asked for a dedicated supply line and permission to build solar capacity.
Environmental groups in Sindh asked the provincial government to publish the plant's impact
assessment before any construction begins, pointing to the waste produced by separation.
A spokesman for the company said it would follow international standards and publish its
plans. Islamabad expects the first phase to start production within three years, although
no final investment decision has been announced.
"""
PORT = """
Karachi's container terminals handled a record volume of cargo in October, the port trust
said on Thursday, as imports of machinery and textiles recovered after a slow summer.
The terminals moved more than two hundred thousand containers during the month, a rise of
eleven percent over the same month last year. Officials credited new cranes at the south
terminal and shorter customs clearance times for the gain.
Shipping lines said congestion had eased since the introduction of an appointment system for
trucks, which had previously queued for hours on the roads leading to the gates. Transporters
welcomed the change but complained about higher fees.
The port trust plans to dredge the main channel next year to allow larger vessels to call,
and is in talks with a Gulf operator over a new berth for bulk cargo.
Exporters of rice and seafood said freight rates remained high, and asked the government to
extend a rebate on port charges that expired in June. The commerce ministry said the request
was under review.
Economists said the rise in imports reflected a recovery in industrial activity, but warned
that the trade deficit could widen again if oil prices climb over the winter.
"""
ANTIMONY = """
A consignment of antimony concentrate left Port Qasim on Friday for a smelter in Europe, the
first export of the metal from a new mine in the Chitral valley, its operator said.
The shipment of four hundred tonnes follows two years of exploration and a pilot plant that
began production in the spring. The company said it expected to ship a similar amount every
quarter once a second processing line is commissioned.
Antimony is used in flame retardants, batteries and ammunition, and prices have more than
doubled this year after export restrictions by the largest producer. Buyers in Europe and
North America have been looking for new sources.
Officials of the provincial mineral development department said royalties from the mine would
be spent on roads and schools in the valley, where winter snow cuts off villages for months.
Residents said the mine had brought jobs but also heavy trucks on narrow mountain roads, and
asked for a bypass around the main bazaar.
The operator said it was studying the construction of a small smelter near the mine, which
would allow it to sell metal rather than concentrate, but that the plan depended on a reliable
power supply.
"""


def article(slug: str, title: str, text: str, hours_ago: float) -> Story:
    return Story(slug, title, paragraphs_of(text), datetime.now(UTC) - timedelta(hours=hours_ago))


def republished(story: Story) -> Story:
    """Another outlet's copy: its own headline, intro and footer, a paragraph dropped."""
    kept = list(story.paragraphs)
    del kept[3]
    return Story(
        "cabinet-nod-for-reko-diq-money",
        "Cabinet nod for Reko Diq money",
        (
            "By our correspondent.",
            *kept,
            "This report was first published elsewhere and is reproduced with permission.",
        ),
        story.published + timedelta(hours=1),
    )


STORIES = {
    "reko-diq": article("reko-diq-financing", "Reko Diq financing cleared", REKO_DIQ, 5),
    "magnets": article("neodymium-prices", "Neodymium prices climb again", MAGNETS, 4),
    "refinery": article("refinery-inspection", "US firm inspects refinery site", REFINERY, 3),
    "port": article("port-record", "Karachi port handles record cargo", PORT, 2),
    "antimony": article("antimony-export", "First antimony export leaves port", ANTIMONY, 1),
}


class Newsdesk:
    """Three outlets on 127.0.0.1, MiniSlack, an SMTP server, a config directory, a database."""

    def __init__(self, workdir: Path, mini: MiniSlack, smtp: SmtpServer) -> None:
        self.workdir = workdir
        self.mini = mini
        self.smtp = smtp
        self.outlets = {"bolan": LocalWeb(), "indus": LocalWeb(), "capital": LocalWeb()}
        self.names = {"bolan": BOLAN, "indus": INDUS, "capital": CAPITAL}
        self.published: dict[str, list[Story]] = {name: [] for name in self.outlets}
        self.config = workdir / "config"
        self.database = workdir / "monitor.db"
        self.zone_name = digest_zone()
        self.zone = ZoneInfo(self.zone_name)
        self.engine = sa.create_engine(f"sqlite:///{self.database}")

    def start(self) -> None:
        for web in self.outlets.values():
            web.__enter__()

    def close(self) -> None:
        self.engine.dispose()
        for web in self.outlets.values():
            web.__exit__(None, None, None)

    def publish(self, outlet: str, story: Story) -> None:
        self.published[outlet].insert(0, story)  # newest first, as feeds list them
        publish(self.outlets[outlet], self.names[outlet], self.published[outlet])

    def url(self, outlet: str, story: Story) -> str:
        return self.outlets[outlet].url(f"/news/{story.slug}")

    def feed(self, outlet: str) -> str:
        return self.outlets[outlet].url("/feed.xml")

    @property
    def env(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": self.mini.token,
            "SLACK_WEBHOOK_URL": self.mini.webhook_url,  # set as well: the bot token wins
            "SSL_CERT_FILE": str(TLS_FILES.ca),
            **self.smtp.environ,
        }

    def write_settings(self, digest_at: str) -> None:
        self.config.mkdir(exist_ok=True)
        allow = ", ".join(f'"{w.host}"' for w in self.outlets.values())
        (self.config / "settings.yaml").write_text(
            f"""database_url: sqlite:///{self.database}
timezone: {self.zone_name}
poll:
  jitter: 0s
fetch:
  private_network_allowlist: [{allow}]
http:
  listen: "127.0.0.1:0"
slack:
  base_url: {self.mini.base_url}
  channel: "#news-alerts"
  routes: {{ussm: "#ussm-watch"}}
email:
  smtp_host: {self.smtp.host}
  smtp_port: {self.smtp.port}
  security: starttls
  from: "News Monitor <monitor@example.org>"
  digest:
    to: ["Minerals desk <desk@example.org>"]
    at: "{digest_at}"
"""
        )

    def write_sources(self, *names: str) -> None:
        lines = ["sources:"]
        for name in names:
            lines += [f"  - name: {name}", f"    url: {self.feed(name)}", "    every: 2s"]
        (self.config / "sources.yaml").write_text("\n".join(lines) + "\n")

    def write_keywords(self, extra_rare_earth: tuple[str, ...] = ()) -> None:
        text, anchor = SHIPPED_KEYWORDS, '      - "critical mineral"\n'
        assert anchor in text, "config/keywords.yaml changed: update the flow's edit"
        for word in extra_rare_earth:
            text = text.replace(anchor, f"{anchor}      - {word}\n")
        (self.config / "keywords.yaml").write_text(text)

    # --- what the team sees -------------------------------------------------------------------

    def alerts(self) -> list[Any]:
        with self.engine.connect() as db:
            return list(
                db.execute(
                    sa.select(AlertRow, ArticleRow.link)
                    .join(ArticleRow, ArticleRow.id == AlertRow.article_id)
                    .order_by(AlertRow.id)
                )
            )

    def alert_of(self, outlet: str, story: Story) -> Any | None:
        link = self.url(outlet, story)
        return next((a for a in self.alerts() if a.link == link), None)

    def slack_messages_of(self, alert_id: int) -> list[MiniMessage]:
        return [m for m in self.mini.messages if m.alert_id == alert_id]

    def digests(self) -> list[EmailMessage]:
        return [
            r.message
            for r in self.smtp.received
            if str(r.message["Subject"]).startswith("News digest for ")
        ]


SHIPPED_KEYWORDS = (Path(__file__).resolve().parent.parent / "config" / "keywords.yaml").read_text()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    yield from launcher_for(tmp_path)


@pytest.fixture
def desk(tmp_path: Path, mini: MiniSlack) -> Iterator[Newsdesk]:
    smtp = SmtpServer("starttls", TLS_FILES, ("flow-user", secrets.token_urlsafe(12)))
    with smtp:
        newsdesk = Newsdesk(tmp_path, mini, smtp)
        newsdesk.start()
        try:
            yield newsdesk
        finally:
            newsdesk.close()


def monitor(desk: Newsdesk, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", "--config", str(desk.config), *args],
        cwd=desk.workdir,
        env=service_env(None, desk.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def digest_minute(started: datetime, after: datetime, zone: ZoneInfo) -> str:
    """`digest.at` (HH:MM) that makes the digest go out at the first run of the service's
    minutely digest job at or after `after`, and not at the run before.

    The job runs at S, S + 60 s, ... where S, the scheduler's start, is within 1.5 s after
    `started` (the service_start log line, whole seconds). `digest.at` must be a minute boundary
    M with  job(k-1) < M <= job(k)  whatever S is within its bounds.

    No such M exists when those bounds straddle a minute (a service started at hh:mm:59: every
    job k may fall just before or just after a boundary). M is then the next boundary: the
    digest goes out at job k or job k + 1, still never at a run before `after`."""
    k = 1
    while (earliest := started + timedelta(seconds=60 * k)) < after:  # job k, S at its earliest
        k += 1
    low = started + timedelta(seconds=60 * (k - 1) + 1.5)  # job k-1, S at its latest
    boundary = earliest.replace(second=0, microsecond=0)
    if boundary <= low:  # the bounds straddle a minute
        boundary += timedelta(minutes=1)
    return boundary.astimezone(zone).strftime("%H:%M")


@pytest.mark.slow
def test_the_whole_flow_through_monitor_run(desk: Newsdesk, launcher: Launcher) -> None:
    mini = desk.mini
    reko_diq, refinery, antimony = STORIES["reko-diq"], STORIES["refinery"], STORIES["antimony"]

    # --- two outlets publish; the monitor runs with Slack and a digest later today -----------
    desk.publish("bolan", STORIES["magnets"])
    desk.publish("bolan", reko_diq)
    desk.publish("indus", STORIES["port"])
    desk.publish("indus", refinery)
    desk.publish("capital", antimony)  # not a source yet
    desk.write_settings(digest_at="23:59")  # not due until the test moves it (see digest_zone)
    desk.write_sources("bolan", "indus")
    desk.write_keywords()
    service = launcher.start(desk.config, env=desk.env)

    # --- Slack: an alert per story, routed by topic, in the contract's shape -----------------
    wait_for(
        lambda: len([m for m in mini.messages if m.alert_id]) >= 4,
        timeout=60,
        message="the alerts of the first polls in Slack",
    )
    alerts = {a.link: a for a in desk.alerts()}
    expected_topics = {
        desk.url("bolan", reko_diq): ["balochistan"],
        desk.url("bolan", STORIES["magnets"]): ["rare-earth"],
        desk.url("indus", refinery): ["rare-earth", "ussm"],
    }
    assert {link: a.topics for link, a in alerts.items()} == expected_topics
    assert {a.kind for a in alerts.values()} == {"story"}
    channels = {
        alert.id: {mini_channel_name(mini, m.channel) for m in desk.slack_messages_of(alert.id)}
        for alert in alerts.values()
    }
    assert channels == {
        alerts[desk.url("bolan", reko_diq)].id: {"news-alerts"},
        alerts[desk.url("bolan", STORIES["magnets"])].id: {"news-alerts"},
        alerts[desk.url("indus", refinery)].id: {"news-alerts", "ussm-watch"},
    }
    refinery_alert = alerts[desk.url("indus", refinery)]
    (watch,) = [
        m
        for m in desk.slack_messages_of(refinery_alert.id)
        if m.channel == mini.channels["ussm-watch"]
    ]
    assert_contract_shape(desk, watch, refinery_alert, refinery, "indus")

    # --- another outlet re-publishes a story: a reply in its thread, even with the answer lost
    mini.drop_next(is_reply)  # Slack takes the reply; its answer never comes back
    copy = republished(reko_diq)
    desk.publish("indus", copy)

    # --- a config edit while running: a new source and a new keyword --------------------------
    edited = time.monotonic()
    desk.write_sources("bolan", "indus", "capital")
    desk.write_keywords(extra_rare_earth=("antimony",))
    wait_for(
        lambda: (a := desk.alert_of("capital", antimony)) and desk.slack_messages_of(a.id),
        timeout=60,
        message="the new source's article, matched by the new keyword, alerted in Slack",
    )
    assert time.monotonic() - edited < 60  # within the reload window
    antimony_alert = desk.alert_of("capital", antimony)
    assert antimony_alert is not None and antimony_alert.topics == ["rare-earth"]
    assert "config_reloaded" in service.stderr() and "added=capital" in service.stderr()

    # The dropped reply: retried after its back-off, found in the history (MiniSlack has no
    # conversations.replies), not posted again.
    followup = wait_for(
        lambda: (a := desk.alert_of("indus", copy)) and desk.slack_messages_of(a.id) and a,
        timeout=90,
        message="the follow-up in the story's thread",
    )
    assert (
        followup.kind == "followup"
        and followup.story_id == alerts[desk.url("bolan", reko_diq)].story_id
    )
    wait_for(
        lambda: outbox_states(desk) == {"sent"},
        timeout=90,
        message="the dropped reply recorded as sent",
    )
    (root,) = desk.slack_messages_of(alerts[desk.url("bolan", reko_diq)].id)
    (reply,) = desk.slack_messages_of(followup.id)
    assert root.thread_ts is None and reply.thread_ts == root.ts
    assert reply.args["text"].startswith(f"Also reported by {desk.outlets['indus'].host}")
    assert [m.ts for m in mini.dropped] == [reply.ts]  # its first answer was lost ...
    replies_posted = [a for m, a in mini.calls if m == "chat.postMessage" and a.get("thread_ts")]
    assert len(replies_posted) == 1  # ... and it was not posted again
    assert {"conversations.replies", "conversations.history"} <= mini.methods()
    assert "slack_replies_unavailable" in service.stderr()

    # --- the digest: moved to go out once every alert is a minute old -------------------------
    last_alert = max(a.created_at for a in desk.alerts())
    started = service_started_at(service.stderr())
    at = digest_minute(
        started, max(last_alert, datetime.now(UTC)) + timedelta(seconds=65), desk.zone
    )
    desk.write_settings(digest_at=at)
    # Up to ~187 s away: `after` is 65 s on, its job up to 60 s later, and one minute more when
    # the service started at hh:mm:59 (see digest_minute). The wait ends when the digest comes.
    (digest,) = wait_for(desk.digests, timeout=300, message=f"the digest due at {at}")
    assert_digest(desk, digest, copy)
    wait_for(lambda: digest_state(desk) == "sent", timeout=10, message="the digest recorded")

    # Once: asked by hand to send today's digest, the monitor says it went out already.
    again = monitor(desk, "digest", "--send")
    assert again.returncode == 0, again.stderr
    assert "was already sent" in again.stdout and "never sent twice" in again.stdout
    assert len(desk.digests()) == 1

    # --- `monitor alerts`: every alert, every delivery sent -----------------------------------
    listing = monitor(desk, "alerts", "--since", "1d")
    assert listing.returncode == 0, listing.stderr
    assert "5 alerts in the last 1d" in listing.stdout
    assert "pending" not in listing.stdout and "failed" not in listing.stdout
    assert listing.stdout.count(":sent") == 6  # 5 alerts, the refinery's in two channels

    # --- nothing twice, nothing elsewhere ------------------------------------------------------
    per_channel = Counter((m.channel, m.alert_id) for m in mini.messages if m.alert_id)
    assert set(per_channel.values()) == {1}
    assert not [m for m in mini.messages if m.channel == "webhook"]
    status, _ = service.stop()
    assert status == 0, service.stderr()
    for bad in ("Traceback", "job_crashed", "database is locked"):
        assert bad not in service.stderr()


# --- what the flow checks ---------------------------------------------------------------------


def mini_channel_name(mini: MiniSlack, channel_id: str) -> str:
    return next(name for name, cid in mini.channels.items() if cid == channel_id)


def outbox_states(desk: Newsdesk) -> set[str]:
    with desk.engine.connect() as db:
        return {str(s) for s in db.scalars(sa.select(OutboxRow.state))}


def digest_state(desk: Newsdesk) -> str | None:
    with desk.engine.connect() as db:
        states = list(db.scalars(sa.select(DigestRow.state)))
    assert len(states) <= 1, states
    return states[0] if states else None


def service_started_at(log: str) -> datetime:
    found = re.search(r"^(\S+)Z INFO service_start ", log, re.MULTILINE)
    assert found, log
    return datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)


def assert_contract_shape(
    desk: Newsdesk, message: MiniMessage, alert: Any, story: Story, source: str
) -> None:
    """CONTRACT.md, "Slack message shape", as MiniSlack received it."""
    link = desk.url(source, story)
    outlet = desk.outlets[source].host
    args = message.args
    assert args["channel"] in ("#ussm-watch", desk.mini.channels["ussm-watch"])
    assert story.title in args["text"] and link in args["text"]
    assert args["unfurl_links"] is False and args["unfurl_media"] is False
    assert "thread_ts" not in args or args["thread_ts"] is None
    assert args["metadata"] == {
        "event_type": "news_alert",
        "event_payload": {
            "alert_id": alert.id,
            "story_id": alert.story_id,
            "url": link,
            "source": source,
            "topics": ["rare-earth", "ussm"],
        },
    }
    shown = json.dumps(args["blocks"], ensure_ascii=False)
    assert f"<{link}|{story.title}>" in shown  # the title as a link
    assert outlet in shown  # the outlet
    local = story.published.astimezone(desk.zone)
    assert f"{local:%H:%M}" in shown  # the published time, local
    assert "#rare-earth" in shown and "#ussm" in shown  # the topics as tags
    assert "*US Strategic Metals*" in shown  # the matched sentence, the words in bold
    assert "*rare earth*" in shown


def assert_digest(desk: Newsdesk, digest: EmailMessage, copy: Story) -> None:
    """CONTRACT.md, "Email digest shape"."""
    today = datetime.now(UTC).astimezone(desk.zone)
    assert digest["Subject"] == f"News digest for {format_day(today.date())}: 4 stories"
    assert digest["To"] == "Minerals desk <desk@example.org>"
    assert digest["Message-ID"]
    assert digest.get_content_type() == "multipart/alternative"
    text_part = digest.get_body(("plain",))
    html_part = digest.get_body(("html",))
    assert text_part is not None and html_part is not None
    text = text_part.get_content()
    html = html_part.get_content()

    # Grouped by topic, in keywords.yaml's order; each story once per topic it has.
    headings = re.findall(r"^== (\S+) \((\d+)\) ==$", text, re.MULTILINE)
    assert headings == [("balochistan", "1"), ("rare-earth", "3"), ("ussm", "1")]
    sections = dict(
        zip([h[0] for h in headings], re.split(r"^== .+ ==$", text, flags=re.M)[1:], strict=True)
    )
    titles = {
        topic: re.findall(r"^\* (.+)$", body, re.MULTILINE) for topic, body in sections.items()
    }
    assert titles["balochistan"] == ["Reko Diq financing cleared"]
    assert titles["ussm"] == ["US firm inspects refinery site"]
    # Newest story first: the antimony export (stored after the edit); the other two were
    # stored by the same first polls, in either order.
    assert titles["rare-earth"][0] == "First antimony export leaves port"
    assert sorted(titles["rare-earth"][1:]) == [
        "Neodymium prices climb again",
        "US firm inspects refinery site",
    ]
    # The re-published story once, with both outlets that carried it.
    reko = sections["balochistan"]
    assert desk.outlets["bolan"].host in reko and desk.url("bolan", STORIES["reko-diq"]) in reko
    assert f"also {desk.outlets['indus'].host}: {desk.url('indus', copy)}" in reko
    assert "Cabinet nod for Reko Diq money" not in text  # the copy's own headline: not a story
    assert "Karachi port" not in text  # unrelated news: not in the digest
    for topic in ("#balochistan", "#rare-earth", "#ussm"):
        assert topic in html
    assert html.count("Reko Diq financing cleared") == 1
