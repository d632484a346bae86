"""Slack delivery: bot-token mode (threads, exactly once) and webhook mode (at least once).

    SlackNotifier    destination `slack:#channel`  chat.postMessage through slack-sdk's WebClient
    WebhookNotifier  destination `webhook`         an incoming webhook through WebhookClient

Bot-token mode, for one outbox row:

    follow-up whose story has no thread here yet, while an earlier alert of the story still
        waits for this channel  -> DeliveryDeferred (a few seconds): replies keep order
    row that may have arrived already (`in_flight`, or an earlier attempt ended unknown)
        -> look for our metadata in the channel (or thread; an API without
           conversations.replies: the channel's history); found: its ts, nothing posted;
           the channel's ID unknown (no channels:read, nothing posted there yet by this
           process): DeliveryDeferred (ID_WAIT, no growing back-off) until a message there
           teaches it
    otherwise -> chat.postMessage (a thread reply when the story has a message in the channel);
        a top-level message becomes the story's thread in that channel

Errors are converted at this edge: connection errors, timeouts, dropped connections, 5xx and
429 (with Slack's Retry-After) are temporary; everything Slack refuses for a reason someone must
fix (unknown channel, bot not invited, bad token, missing scope, ...) is permanent, and says what
to fix. slack-sdk's own retries are off (`retry_handlers=[]`): retrying is the outbox's job, and
an automatic retry after a dropped connection could post a message twice.

Secrets: the token and the webhook URL go to slack-sdk and nowhere else. Messages we raise are
built from Slack's error codes and our own words, never from the request; slack-sdk's logger is
silenced because at DEBUG it writes the webhook URL into its lines.
"""

from __future__ import annotations

import http.client
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from monitor.config import Settings, read_secret
from monitor.errors import (
    DeliveryDeferred,
    DeliveryError,
    PermanentDeliveryError,
    TemporaryDeliveryError,
)
from monitor.logs import event
from monitor.models import AlertMessage, Delivery
from monitor.notify.routing import Outputs
from monitor.notify.slack_format import SlackMessage, alert_message, notice_message
from monitor.store import Store

log = logging.getLogger(__name__)
# slack-sdk logs through this logger only. It is kept silent: every failure is converted and
# logged by the outbox, and the SDK's DEBUG lines would contain the webhook URL.
_sdk_log = logging.getLogger("monitor.notify.slack.sdk")
_sdk_log.setLevel(logging.CRITICAL)
_sdk_log.propagate = False

MIN_INTERVAL = 1.0  # seconds between two messages to one channel: Slack's posting rate
MAX_SLEEP = 2.0  # a longer pause (Retry-After) is left to the outbox instead of blocking
ROOT_WAIT = timedelta(seconds=5)  # a follow-up waiting for its story's first message
# A row that must check the channel's history while the channel's ID is unknown looks again
# this often: it is waiting for another message to teach the ID, not for Slack to recover, so
# its wait does not grow with each look the way a retry's back-off does.
ID_WAIT = timedelta(seconds=30)
DEFAULT_RETRY_AFTER = 30  # seconds, when a 429 has no usable Retry-After
# The exactly-once check reads history from a little before the row was written (clock skew
# between us and Slack) up to now, newest first, page by page.
HISTORY_MARGIN = timedelta(minutes=10)
HISTORY_PAGE = 200
HISTORY_PAGES = 10
CHANNEL_LIST_PAGE = 200
CHANNEL_LIST_PAGES = 100
TIMEOUT = 15  # seconds per socket operation (slack-sdk's `timeout`)

_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{8,}")
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,79}")

# Slack API errors that say "try again later"; all others need a person to fix something.
TEMPORARY_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)
# Errors meaning "this API has no such method": conversations.replies falls back to history.
UNSUPPORTED_METHOD_ERRORS = frozenset({"unknown_method", "method_not_supported_for_channel_type"})
# What to fix, per Slack error code: `{channel}`, `{env}` (the variable's name, never its value)
# and `{needed}` (the missing scope) are filled in.
_TOKEN_HINT = "Slack refused the bot token in ${env}: set a valid bot token (xoxb-…)"  # noqa: S105
API_HINTS = {
    "channel_not_found": "Slack has no channel {channel} the bot can see: check slack.channel "
    "and slack.routes, and invite the bot to private channels",
    "not_in_channel": "the bot is not a member of {channel}: invite it (/invite @bot)",
    "is_archived": "{channel} is archived: unarchive it or route its topics elsewhere",
    "restricted_action": "the workspace does not let the bot post in {channel}",
    "invalid_auth": _TOKEN_HINT,
    "not_authed": _TOKEN_HINT,
    "account_inactive": "the bot token in ${env} belongs to a deactivated bot or workspace",
    "token_revoked": "the bot token in ${env} was revoked: reinstall the app, set the new token",
    "token_expired": "the bot token in ${env} expired: set a fresh one",
    "missing_scope": "the bot token lacks the scope {needed}: add it to the Slack app and "
    "reinstall it (see README, Slack)",
    "invalid_blocks": "Slack refused the message layout (a bug in the monitor's Slack format)",
    "msg_too_long": "Slack refused the message as too long (a bug in the monitor's Slack format)",
    "thread_not_found": "the story's thread in {channel} is gone (message deleted?)",
}
WEBHOOK_HINTS = {
    "invalid_payload": "Slack refused the message (a bug in the monitor's Slack format)",
    "no_service": "the webhook in ${env} no longer exists: create a new one and set it",
    "invalid_token": "the webhook in ${env} is not valid: create a new one and set it",
    "no_team": "the webhook in ${env} belongs to a workspace that is gone",
    "team_disabled": "the webhook in ${env} belongs to a disabled workspace",
    "channel_not_found": "the webhook's channel no longer exists: create a new webhook",
    "channel_is_archived": "the webhook's channel is archived: unarchive it or create a new "
    "webhook",
    "action_prohibited": "a workspace admin restricted posting to the webhook's channel",
    "posting_to_general_channel_denied": "only admins may post in the webhook's channel",
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Identity:
    """How our metadata names one outbox row, to find it again in Slack's history."""

    event_type: str
    fields: tuple[tuple[str, str], ...]  # payload field -> value (compared as text)

    def matches(self, message: Mapping[str, Any]) -> bool:
        metadata = message.get("metadata")
        if not isinstance(metadata, Mapping) or metadata.get("event_type") != self.event_type:
            return False
        payload = metadata.get("event_payload")
        if not isinstance(payload, Mapping):
            return False
        return all(str(payload.get(name)) == value for name, value in self.fields)


class ChannelPacer:
    """At most one message per `interval` seconds per channel; Retry-After pauses a channel.

    Thread-safe. Waits up to MAX_SLEEP are slept here; a longer pause makes `wait` return the
    seconds left, so the row goes back to the outbox instead of blocking delivery.
    """

    def __init__(
        self,
        interval: float = MIN_INTERVAL,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._next: dict[str, float] = {}  # channel -> monotonic time of its next message
        self._lock = threading.Lock()

    def wait(self, channel: str) -> float | None:
        """Sleep until `channel` may take a message and book it; or the seconds left if long."""
        with self._lock:
            now = self._monotonic()
            ready = self._next.get(channel, now)
            if ready - now > MAX_SLEEP:
                return ready - now
            self._next[channel] = max(ready, now) + self.interval
        if ready > now:
            self._sleep(ready - now)
        return None

    def pause(self, channel: str, seconds: float) -> None:
        """No message to `channel` for `seconds` (Slack answered 429 with Retry-After)."""
        with self._lock:
            until = self._monotonic() + seconds
            self._next[channel] = max(self._next.get(channel, until), until)


class SlackNotifier:
    """Bot-token mode: one message per row with chat.postMessage, threads, no doubles."""

    def __init__(
        self,
        token: SecretStr,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime] = _utcnow,
        pacer: ChannelPacer | None = None,
        timeout: int = TIMEOUT,
    ) -> None:
        self._client = WebClient(
            token=token.get_secret_value(),
            base_url=settings.slack.base_url,
            timeout=timeout,
            logger=_sdk_log,
            retry_handlers=[],  # retries are the outbox's: see the module docstring
        )
        self._token_env = settings.slack.token_env
        self._base_url = settings.slack.base_url
        self._zone = settings.zone
        self._store = store
        self._clock = clock
        self._pacer = pacer or ChannelPacer()
        self._channels: dict[str, str] = {}  # channel name (no '#', lower case) -> ID
        self._unlisted: set[str] = set()  # names whose ID could not be looked up (yet)
        self._channels_lock = threading.Lock()
        self._lookup_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SlackNotifier(base_url={self._base_url!r})"

    def adopt(self, previous: SlackNotifier) -> None:
        """Carry on from the notifier a config reload replaces: share its channel IDs and pace.

        A bot without `channels:read` learns a channel's ID only from Slack's answers, and a
        row whose earlier attempt may have arrived waits for that ID; a reload must not forget
        it. Shared rather than copied, since a delivery round still running with `previous`
        may post (and learn, and pace) a little longer. Not across Slack workspaces' APIs.
        """
        if previous._base_url != self._base_url:
            return
        self._channels = previous._channels
        self._unlisted = previous._unlisted
        self._channels_lock = previous._channels_lock
        self._lookup_lock = previous._lookup_lock
        self._pacer = previous._pacer

    def deliver(self, delivery: Delivery) -> str:
        """Post the row's message (or find it already posted); returns its Slack ts."""
        channel = delivery.destination.split(":", 1)[1]
        message = self._message(delivery)
        alert = delivery.alert
        thread_ts: str | None = None
        if alert is not None and alert.kind == "followup":
            thread_ts = self._store.slack_thread(alert.story_id, channel)
            if thread_ts is None and self._store.earlier_alert_pending(
                alert.alert_id, delivery.destination
            ):
                raise DeliveryDeferred(
                    f"waiting for the story's first message in {channel}",
                    retry_after=self._clock() + ROOT_WAIT,
                )
        with self._errors(channel):
            channel_id = self._channel_id(channel)
            if delivery.in_flight or delivery.attempts > 0:
                # An earlier attempt may have reached Slack (the answer was lost, or the
                # process died while sending): look before posting again.
                self._require_id(channel, channel_id)
                found = self._find_posted(delivery, channel_id, thread_ts)
                if found is not None:
                    event(log, "slack_found_posted", outbox=delivery.id, channel=channel, ts=found)
                    self._remember_thread(alert, channel, thread_ts, found)
                    return found
            self._wait_turn(channel)
            response = self._client.chat_postMessage(
                channel=channel_id,
                text=message.text,
                blocks=list(message.blocks),
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                metadata=message.metadata,
            )
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            raise TemporaryDeliveryError("Slack accepted the message but sent no ts")
        self._learn_channel(channel, response)
        self._remember_thread(alert, channel, thread_ts, ts)
        return ts

    # --- steps ---------------------------------------------------------------------------------

    def _message(self, delivery: Delivery) -> SlackMessage:
        if delivery.alert is not None:
            return alert_message(delivery.alert, self._zone)
        if delivery.notice is not None:
            return notice_message(delivery.notice, delivery.id)
        raise PermanentDeliveryError("outbox row holds neither an alert nor a notice")

    def _remember_thread(
        self, alert: AlertMessage | None, channel: str, thread_ts: str | None, ts: str
    ) -> None:
        # A top-level message about a story is the story's thread in this channel (the first
        # one recorded wins if two ever race).
        if alert is not None and thread_ts is None:
            self._store.record_slack_thread(alert.story_id, channel, ts)

    def _wait_turn(self, channel: str) -> None:
        left = self._pacer.wait(channel)
        if left is not None:
            raise TemporaryDeliveryError(
                f"Slack asked us to wait before posting to {channel}",
                retry_after=self._clock() + timedelta(seconds=left),
            )

    def _channel_id(self, channel: str) -> str:
        """The channel's ID: as written when it looks like one, else looked up by name.

        When the name cannot be looked up (no `channels:read` scope, a proxy without
        conversations.list, a channel the bot cannot see yet) the name is used as written:
        chat.postMessage accepts it, and its answer teaches us the ID for the history check.
        """
        if not channel.startswith("#") and _CHANNEL_ID.fullmatch(channel):
            return channel
        name = channel.removeprefix("#").lower()
        with self._channels_lock:
            if name in self._channels:
                return self._channels[name]
        # One listing at a time: delivery lanes of several channels start together, and the
        # first listing usually answers for all of them.
        with self._lookup_lock:
            with self._channels_lock:
                if name in self._channels:
                    return self._channels[name]
            return self._look_up(channel, name)

    def _look_up(self, channel: str, name: str) -> str:
        try:
            channels = self._list_channels()  # a channel may have been created since
        except (SlackApiError, SlackRequestError) as exc:
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
            event(
                log,
                "slack_channel_lookup_failed",
                logging.WARNING,
                channel=channel,
                error=error,
                using="the name as written",
            )
            with self._channels_lock:
                self._unlisted.add(name)
            return channel
        with self._channels_lock:
            self._channels.update(channels)
            self._unlisted.discard(name)
        return channels.get(name, channel)

    def _require_id(self, channel: str, channel_id: str) -> None:
        """The history check needs the channel's ID (Slack's history takes no names). When the
        name could not be looked up and no answer taught the ID yet (a restarted process, no
        `channels:read`), the row waits: posting blindly could post it twice, and failing it
        for good would say the channel does not exist. A message posted there meanwhile (any
        row that needs no check) teaches the ID."""
        name = channel.removeprefix("#").lower()
        with self._channels_lock:
            unknown = channel_id == channel and name in self._unlisted
        if unknown and not _CHANNEL_ID.fullmatch(channel_id):
            raise DeliveryDeferred(
                f"cannot look in {channel} for an earlier copy before sending again: its "
                "channel ID is not known yet, as the bot cannot list channels (give it "
                "channels:read, or route to the channel ID); the next message posted there "
                "teaches it",
                retry_after=self._clock() + ID_WAIT,
            )

    def _learn_channel(self, channel: str, response: SlackResponse) -> None:
        """chat.postMessage answers with the channel's ID: remember it for this name."""
        channel_id = response.get("channel")
        if isinstance(channel_id, str) and _CHANNEL_ID.fullmatch(channel_id):
            name = channel.removeprefix("#").lower()
            with self._channels_lock:
                self._channels[name] = channel_id
                self._unlisted.discard(name)

    def _list_channels(self) -> dict[str, str]:
        channels: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(CHANNEL_LIST_PAGES):
            response = self._client.conversations_list(
                types="public_channel,private_channel", limit=CHANNEL_LIST_PAGE, cursor=cursor
            )
            for item in response.get("channels") or ():
                if isinstance(item, Mapping) and item.get("name") and item.get("id"):
                    channels[str(item["name"]).lower()] = str(item["id"])
            cursor = _next_cursor(response)
            if not cursor:
                break
        return channels

    def _find_posted(
        self, delivery: Delivery, channel_id: str, thread_ts: str | None
    ) -> str | None:
        """The ts of this row's message if Slack already has it (thread first, then channel)."""
        if delivery.alert is not None:
            identity = _Identity(
                "news_alert",
                (("alert_id", str(delivery.alert.alert_id)), ("url", delivery.alert.link)),
            )
        else:
            identity = _Identity("news_notice", (("outbox_id", str(delivery.id)),))
        written = self._store.outbox_created_at(delivery.id) or self._clock()
        oldest = f"{(written - HISTORY_MARGIN).timestamp():.6f}"
        if thread_ts is not None:
            try:
                found = self._search(
                    identity,
                    lambda cursor: self._client.conversations_replies(
                        channel=channel_id,
                        ts=thread_ts,
                        oldest=oldest,
                        limit=HISTORY_PAGE,
                        include_all_metadata=True,
                        cursor=cursor,
                    ),
                )
            except SlackApiError as exc:
                # A Slack-compatible API (a proxy, another implementation) without
                # conversations.replies: look in the channel's history, which such APIs often
                # fill with replies too. Real Slack has the method, so this is never its path.
                if exc.response.get("error") not in UNSUPPORTED_METHOD_ERRORS:
                    raise
                event(
                    log,
                    "slack_replies_unavailable",
                    logging.WARNING,
                    error=str(exc.response.get("error")),
                    using="conversations.history",
                )
                found = None
            if found is not None:
                return found
        return self._search(
            identity,
            lambda cursor: self._client.conversations_history(
                channel=channel_id,
                oldest=oldest,
                limit=HISTORY_PAGE,
                include_all_metadata=True,
                cursor=cursor,
            ),
        )

    def _search(
        self, identity: _Identity, page: Callable[[str | None], SlackResponse]
    ) -> str | None:
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            response = page(cursor)
            for message in response.get("messages") or ():
                if isinstance(message, Mapping) and identity.matches(message):
                    return str(message["ts"])
            cursor = _next_cursor(response)
            if not cursor or not response.get("has_more", True):
                return None
        event(log, "slack_history_too_long", logging.WARNING, pages=HISTORY_PAGES)
        return None

    @contextmanager
    def _errors(self, channel: str) -> Iterator[None]:
        """Slack's and the network's failures as Temporary/PermanentDeliveryError."""
        try:
            yield
        except SlackApiError as exc:
            error = self._api_error(exc.response, channel)
            raise error from exc
        except SlackRequestError as exc:
            raise PermanentDeliveryError(f"slack-sdk refused the request: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TemporaryDeliveryError(f"cannot reach Slack: {_describe(exc)}") from exc

    def _api_error(self, response: SlackResponse, channel: str) -> DeliveryError:
        status = response.status_code
        data = response.data if isinstance(response.data, Mapping) else {}
        raw = str(data.get("error") or "")
        code = raw if _ERROR_CODE.fullmatch(raw) else f"HTTP {status}"
        if status == 429 or raw == "ratelimited":
            seconds = retry_after_seconds(response.headers)
            self._pacer.pause(channel, seconds)
            return TemporaryDeliveryError(
                f"ratelimited: Slack asked to wait {seconds:g} s",
                retry_after=self._clock() + timedelta(seconds=seconds),
            )
        if status >= 500 or status == 408 or raw in TEMPORARY_ERRORS:
            return TemporaryDeliveryError(f"{code}: Slack could not take the message now")
        if 200 <= status < 300 and not _ERROR_CODE.fullmatch(raw):
            # Not Slack's JSON (a proxy's page?): we cannot tell whether it was posted.
            return TemporaryDeliveryError(f"Slack's answer was not understood (HTTP {status})")
        if raw in API_HINTS:
            needed = str(data.get("needed") or "listed in README")
            hint = API_HINTS[raw].format(channel=channel, needed=needed, env=self._token_env)
            return PermanentDeliveryError(f"{raw}: {hint}")
        if code.startswith("HTTP "):
            return PermanentDeliveryError(
                f"{code} from the Slack API at {self._base_url}: check slack.base_url"
            )
        return PermanentDeliveryError(f"{code}: Slack refused the message")


class WebhookNotifier:
    """Webhook mode: the same blocks through an incoming webhook; no threads, no metadata.

    At least once: a webhook cannot be asked what it already has, so a message whose answer
    was lost is posted again.
    """

    def __init__(
        self,
        url: SecretStr,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = _utcnow,
        pacer: ChannelPacer | None = None,
        timeout: int = TIMEOUT,
    ) -> None:
        value = url.get_secret_value()
        parts = urlsplit(value)
        self._valid = parts.scheme in ("http", "https") and bool(parts.netloc)
        self._client = WebhookClient(value, timeout=timeout, logger=_sdk_log, retry_handlers=[])
        self._env = settings.slack.webhook_url_env
        self._zone = settings.zone
        self._clock = clock
        self._pacer = pacer or ChannelPacer()

    def __repr__(self) -> str:
        return "WebhookNotifier(url=[redacted])"

    def deliver(self, delivery: Delivery) -> None:
        """Post the row's message through the webhook (which gives no message id)."""
        if not self._valid:
            raise PermanentDeliveryError(f"${self._env} does not hold an http(s) webhook URL")
        if delivery.alert is not None:
            message = alert_message(delivery.alert, self._zone)
        elif delivery.notice is not None:
            message = notice_message(delivery.notice, delivery.id)
        else:
            raise PermanentDeliveryError("outbox row holds neither an alert nor a notice")
        left = self._pacer.wait("webhook")
        if left is not None:
            raise TemporaryDeliveryError(
                "Slack asked us to wait before using the webhook again",
                retry_after=self._clock() + timedelta(seconds=left),
            )
        try:
            response = self._client.send(
                text=message.text,
                blocks=list(message.blocks),
                unfurl_links=False,
                unfurl_media=False,
            )
        except (OSError, http.client.HTTPException) as exc:
            raise TemporaryDeliveryError(f"cannot reach Slack: {_describe(exc)}") from exc
        except SlackRequestError:
            # Its message would quote the URL: say what it is about instead.
            raise PermanentDeliveryError(f"slack-sdk refused ${self._env}") from None
        status = response.status_code
        if 200 <= status < 300:
            return
        body = (response.body or "").strip()
        code = body if _ERROR_CODE.fullmatch(body) else f"HTTP {status}"
        if status == 429:
            seconds = retry_after_seconds(response.headers)
            self._pacer.pause("webhook", seconds)
            raise TemporaryDeliveryError(
                f"ratelimited: Slack asked to wait {seconds:g} s",
                retry_after=self._clock() + timedelta(seconds=seconds),
            )
        if status >= 500 or status == 408:
            raise TemporaryDeliveryError(f"{code}: Slack could not take the message now")
        hint = WEBHOOK_HINTS.get(body, "Slack refused the message")
        raise PermanentDeliveryError(f"{code}: {hint.format(env=self._env)}")


def slack_notifiers(
    settings: Settings,
    outputs: Outputs,
    store: Store | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, SlackNotifier | WebhookNotifier]:
    """The Slack notifier the outputs call for: `slack` (bot token) or `webhook`, or none."""
    if outputs.slack_token:
        token = read_secret(settings.slack.token_env, environ)
        if token is not None:
            if store is None:
                raise ValueError("Slack bot-token mode needs the store (threads, exactly once)")
            return {"slack": SlackNotifier(token, settings, store)}
    if outputs.slack_webhook:
        url = read_secret(settings.slack.webhook_url_env, environ)
        if url is not None:
            return {"webhook": WebhookNotifier(url, settings)}
    return {}


def retry_after_seconds(headers: Mapping[str, Any]) -> float:
    """Seconds from a Retry-After header (seconds or an HTTP date); a default when unusable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return DEFAULT_RETRY_AFTER
    text = str(value).strip()
    try:
        return max(float(int(text)), 1.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - _utcnow()).total_seconds(), 1.0)


def _next_cursor(response: SlackResponse) -> str | None:
    metadata = response.get("response_metadata")
    cursor = metadata.get("next_cursor") if isinstance(metadata, Mapping) else None
    return str(cursor) if cursor else None


def _describe(exc: BaseException) -> str:
    """A network failure in a few words, without the request (whose URL may be a secret)."""
    if isinstance(exc, URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError | BrokenPipeError):
        return "the connection closed before Slack answered"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
