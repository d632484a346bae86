"""A Slack stand-in on 127.0.0.1 for tests: the Web API methods the monitor uses, and a webhook.

    with SlackStandIn() as slack:
        WebClient(token=slack.token, base_url=slack.base_url).chat_postMessage(...)
        slack.messages("#news-alerts")          # what was posted there, oldest first
        slack.calls("chat.postMessage")         # every call: params, JSON body, headers, time
        slack.fail_next("ratelimited", retry_after=3)   # the next call answers 429

Methods: auth.test, chat.postMessage, conversations.history, conversations.replies,
conversations.list; the webhook is `webhook_url`. Requests are parsed as slack-sdk sends them:
JSON bodies (chat.postMessage) and form-encoded bodies (everything else), plus the query string.
Every call needs `Authorization: Bearer <token>` (`not_authed` / `invalid_auth` otherwise).

Like Slack: history is newest first and holds top-level messages only; replies start with the
thread's parent; `metadata` comes back only with `include_all_metadata`; lists are paginated
with `limit` and `response_metadata.next_cursor`. Stricter than Slack: a reply to a `thread_ts`
that is not a top-level message of the channel is refused with `thread_not_found`.

Failures (`fail_next`) apply to the next N calls of a method (`"webhook"` for the webhook):
`ratelimited` (429 + Retry-After), `server_error` (500), `api_error` (`{"ok": false, "error":
…}`; for the webhook the status Slack uses with that error and the error as plain text), and
`drop` (accept-then-drop: the call is carried out, a message is stored, then the connection is
closed without an answer, as when a network fails after Slack took the message).
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

BOT_USER = "UBOTSTANDIN"
BOT_ID = "BBOTSTANDIN"
FAILURE_MODES = ("ratelimited", "server_error", "api_error", "drop")
# The HTTP status Slack's webhooks answer with for each error text.
WEBHOOK_STATUS = {
    "invalid_payload": 400,
    "user_not_found": 400,
    "action_prohibited": 403,
    "invalid_token": 403,
    "posting_to_general_channel_denied": 403,
    "no_service": 404,
    "channel_not_found": 404,
    "no_team": 404,
    "channel_is_archived": 410,
    "team_disabled": 410,
}


@dataclass(frozen=True)
class Call:
    """One request as the stand-in saw it."""

    method: str  # "chat.postMessage", ..., or "webhook"
    params: dict[str, str]  # query string and form fields
    json: dict[str, Any] | None  # a JSON body
    headers: dict[str, str]
    at: float  # time.time() when it arrived

    @property
    def args(self) -> dict[str, Any]:
        """Query, form and JSON arguments together."""
        return {**self.params, **(self.json or {})}


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_member: bool = True
    is_archived: bool = False


@dataclass(frozen=True)
class Posted:
    """A message the stand-in holds (posted with chat.postMessage or the webhook)."""

    channel: str  # channel ID, or "webhook"
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None
    body: dict[str, Any]  # everything the request carried
    at: float  # time.time() when it was stored

    @property
    def top_level(self) -> bool:
        return self.thread_ts is None or self.thread_ts == self.ts

    def as_slack(self, with_metadata: bool, reply_count: int = 0) -> dict[str, Any]:
        """The message as Slack's history/replies methods return it."""
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": self.text,
            "ts": self.ts,
            "blocks": self.blocks,
        }
        if self.thread_ts is not None:
            message["thread_ts"] = self.thread_ts
        elif reply_count:
            message["thread_ts"] = self.ts
        if reply_count:
            message["reply_count"] = reply_count
        if with_metadata and self.metadata is not None:
            message["metadata"] = self.metadata
        return message


@dataclass
class _Failure:
    mode: str
    method: str | None
    retry_after: int
    error: str
    left: int


@dataclass
class _Answer:
    status: int = 200
    body: dict[str, Any] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False


class SlackStandIn:
    """An HTTP server on 127.0.0.1 that answers like Slack for the methods the monitor uses."""

    def __init__(
        self,
        token: str | None = None,
        channels: tuple[str, ...] = ("news-alerts", "ussm-watch"),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token or f"xoxb-standin-{secrets.token_hex(12)}"
        self.webhook_path = f"/services/T0STANDIN/B0STANDIN/{secrets.token_hex(12)}"
        self.webhook_channel = "webhook"
        self._clock = clock
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._messages: list[Posted] = []
        self._channels: dict[str, Channel] = {}
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        for name in channels:
            self.add_channel(name)
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                standin._handle(self)

            def do_GET(self) -> None:
                standin._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                return  # quiet: tests read `calls()` instead

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- what tests use ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The Web API base for `WebClient(base_url=…)` and `slack.base_url`."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.webhook_path}"

    def add_channel(
        self,
        name: str,
        *,
        private: bool = False,
        member: bool = True,
        archived: bool = False,
        channel_id: str | None = None,
    ) -> str:
        """A channel the workspace has; returns its ID."""
        with self._lock:
            cid = channel_id or f"{'G' if private else 'C'}{next(self._ids):09d}"
            self._channels[cid] = Channel(cid, name.lstrip("#"), private, member, archived)
            return cid

    def channel_id(self, channel: str) -> str:
        """The ID of a channel given by name (`#news-alerts`) or ID."""
        with self._lock:
            found = self._find_channel(channel)
        if found is None:
            raise KeyError(channel)
        return found.id

    def messages(self, channel: str | None = None) -> list[Posted]:
        """Messages posted (replies included), oldest first; to one channel (name, ID or
        "webhook") or everywhere."""
        with self._lock:
            if channel is None:
                return list(self._messages)
            if channel == self.webhook_channel:
                key = channel
            else:
                found = self._find_channel(channel)
                key = found.id if found else channel
            return [m for m in self._messages if m.channel == key]

    def replies(self, channel: str, ts: str) -> list[Posted]:
        """The replies in the thread of message `ts`, oldest first."""
        return [m for m in self.messages(channel) if m.thread_ts == ts and m.ts != ts]

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def fail_next(
        self,
        mode: str,
        count: int = 1,
        *,
        method: str | None = "chat.postMessage",
        retry_after: int = 1,
        error: str = "channel_not_found",
    ) -> None:
        """Answer the next `count` calls of `method` (None: any method) with a failure."""
        if mode not in FAILURE_MODES:
            raise ValueError(f"mode must be one of {FAILURE_MODES}")
        with self._lock:
            self._failures.append(_Failure(mode, method, retry_after, error, count))

    # --- serving -----------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body_json: dict[str, Any] | None = None
        content_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json" and raw:
            loaded = json.loads(raw.decode("utf-8"))
            body_json = loaded if isinstance(loaded, dict) else {"_": loaded}
        elif raw:
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        if url.path == self.webhook_path:
            method = "webhook"
        elif url.path.startswith("/api/"):
            method = url.path.removeprefix("/api/")
        else:
            self._respond(handler, _Answer(404, "not found"))
            return
        call = Call(method, params, body_json, dict(handler.headers.items()), self._clock())
        with self._lock:
            self._calls.append(call)
            failure = self._take_failure(method)
        if failure is not None and failure.mode != "drop":
            self._respond(handler, _failure_answer(failure, webhook=method == "webhook"))
            return
        with self._lock:
            answer = self._webhook(call) if method == "webhook" else self._api(call)
        if failure is not None:
            answer = _Answer(drop=True)
        self._respond(handler, answer)

    def _take_failure(self, method: str) -> _Failure | None:
        for failure in self._failures:
            if failure.left > 0 and failure.method in (None, method):
                failure.left -= 1
                return failure
        return None

    def _respond(self, handler: BaseHTTPRequestHandler, answer: _Answer) -> None:
        if answer.drop:
            # Accept-then-drop: close the connection without a status line.
            handler.close_connection = True
            return
        if isinstance(answer.body, str):
            data = answer.body.encode()
            content_type = "text/plain; charset=utf-8"
        else:
            data = json.dumps(answer.body).encode()
            content_type = "application/json; charset=utf-8"
        handler.send_response(answer.status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _webhook(self, call: Call) -> _Answer:
        body = call.json or {}
        if not body.get("text") and not body.get("blocks"):
            return _Answer(400, "invalid_payload")
        self._store(self.webhook_channel, body, thread_ts=None)
        return _Answer(200, "ok")

    def _api(self, call: Call) -> _Answer:
        authorization = call.headers.get("Authorization") or call.headers.get("authorization")
        if not authorization:
            return _error("not_authed")
        if authorization != f"Bearer {self.token}":
            return _error("invalid_auth")
        handlers: dict[str, Callable[[dict[str, Any]], _Answer]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "conversations.list": self._list,
        }
        method = handlers.get(call.method)
        if method is None:
            return _error("unknown_method")
        return method(call.args)

    # --- serving continued, with the lock held ---------------------------------------------------

    def _auth_test(self, args: dict[str, Any]) -> _Answer:
        return _ok(
            url="https://standin.slack.test/",
            team="Stand-in",
            user="monitor",
            team_id="T0STANDIN",
            user_id=BOT_USER,
            bot_id=BOT_ID,
        )

    def _post_message(self, args: dict[str, Any]) -> _Answer:
        channel = self._find_channel(str(args.get("channel") or ""))
        if channel is None:
            return _error("channel_not_found")
        if channel.is_archived:
            return _error("is_archived")
        if not channel.is_member:
            return _error("not_in_channel")
        if not args.get("text") and not args.get("blocks"):
            return _error("no_text")
        blocks = args.get("blocks")
        if isinstance(blocks, str):  # form-encoded callers send blocks as a JSON string
            try:
                args = {**args, "blocks": json.loads(blocks)}
            except ValueError:
                return _error("invalid_blocks")
        thread_ts = args.get("thread_ts")
        if thread_ts is not None:
            thread_ts = str(thread_ts)
            if not any(
                m.channel == channel.id and m.ts == thread_ts and m.top_level
                for m in self._messages
            ):
                return _error("thread_not_found")
        posted = self._store(channel.id, args, thread_ts)
        return _ok(channel=channel.id, ts=posted.ts, message=posted.as_slack(True))

    def _history(self, args: dict[str, Any]) -> _Answer:
        channel = self._channels.get(str(args.get("channel") or ""))
        if channel is None:
            return _error("channel_not_found")
        if not channel.is_member:
            return _error("not_in_channel")
        top = [m for m in self._messages if m.channel == channel.id and m.top_level]
        chosen = [m for m in reversed(top) if _in_range(m.ts, args)]
        return self._page(chosen, args, "messages", lambda m: self._as_slack(m, args))

    def _replies(self, args: dict[str, Any]) -> _Answer:
        channel = self._channels.get(str(args.get("channel") or ""))
        if channel is None:
            return _error("channel_not_found")
        ts = str(args.get("ts") or "")
        here = [m for m in self._messages if m.channel == channel.id]
        parent = next((m for m in here if m.ts == ts and m.top_level), None)
        if parent is None:
            return _error("thread_not_found")
        thread = [parent] + [
            m for m in here if m.thread_ts == ts and m.ts != ts and _in_range(m.ts, args)
        ]
        return self._page(thread, args, "messages", lambda m: self._as_slack(m, args))

    def _list(self, args: dict[str, Any]) -> _Answer:
        types = set(str(args.get("types") or "public_channel").split(","))
        chosen = [
            c
            for c in self._channels.values()
            if ("private_channel" if c.is_private else "public_channel") in types
            and not (_flag(args.get("exclude_archived")) and c.is_archived)
        ]
        return self._page(
            chosen,
            args,
            "channels",
            lambda c: {
                "id": c.id,
                "name": c.name,
                "is_channel": not c.is_private,
                "is_group": c.is_private,
                "is_private": c.is_private,
                "is_archived": c.is_archived,
                "is_member": c.is_member,
            },
        )

    def _page(
        self,
        items: list[Any],
        args: dict[str, Any],
        key: str,
        render: Callable[[Any], dict[str, Any]],
    ) -> _Answer:
        limit = max(1, min(int(args.get("limit") or 100), 1000))
        cursor = str(args.get("cursor") or "")
        start = int(base64.b64decode(cursor).decode().removeprefix("offset:")) if cursor else 0
        page = items[start : start + limit]
        more = start + limit < len(items)
        next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
        return _ok(
            **{key: [render(item) for item in page]},
            has_more=more,
            response_metadata={"next_cursor": next_cursor},
        )

    def _as_slack(self, message: Posted, args: dict[str, Any]) -> dict[str, Any]:
        replies = sum(
            1
            for m in self._messages
            if m.channel == message.channel and m.thread_ts == message.ts and m.ts != message.ts
        )
        return message.as_slack(_flag(args.get("include_all_metadata")), replies)

    def _find_channel(self, channel: str) -> Channel | None:
        if channel in self._channels:
            return self._channels[channel]
        name = channel.removeprefix("#")
        return next((c for c in self._channels.values() if c.name == name), None)

    def _store(self, channel: str, body: dict[str, Any], thread_ts: str | None) -> Posted:
        now = self._clock()
        stamp = max(now, self._last_ts + 0.000001)  # ts are unique and increasing, as in Slack
        self._last_ts = stamp
        metadata = body.get("metadata")
        if isinstance(metadata, str):  # form-encoded callers send it as a JSON string
            metadata = json.loads(metadata)
        posted = Posted(
            channel=channel,
            ts=f"{stamp:.6f}",
            text=str(body.get("text") or ""),
            blocks=list(body.get("blocks") or []),
            metadata=metadata if isinstance(metadata, dict) else None,
            thread_ts=thread_ts,
            body=dict(body),
            at=now,
        )
        self._messages.append(posted)
        return posted

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()


def _ok(**fields: Any) -> _Answer:
    return _Answer(200, {"ok": True, **fields})


def _error(error: str) -> _Answer:
    return _Answer(200, {"ok": False, "error": error})


def _failure_answer(failure: _Failure, webhook: bool) -> _Answer:
    if failure.mode == "ratelimited":
        limited: dict[str, Any] | str = {"ok": False, "error": "ratelimited"}
        headers = {"Retry-After": str(failure.retry_after)}
        return _Answer(429, "rate_limited" if webhook else limited, headers)
    if failure.mode == "server_error":
        broken: dict[str, Any] | str = {"ok": False, "error": "internal_error"}
        return _Answer(500, "internal_error" if webhook else broken)
    if webhook:
        return _Answer(WEBHOOK_STATUS.get(failure.error, 400), failure.error)
    return _error(failure.error)


def _flag(value: Any) -> bool:
    """A boolean argument as slack-sdk sends it: JSON true, or "1"/"true" in a form."""
    return value is True or str(value).lower() in ("1", "true")


def _in_range(ts: str, args: dict[str, Any]) -> bool:
    """Whether `ts` lies between `oldest` and `latest` (exclusive unless `inclusive`)."""
    value = float(ts)
    inclusive = _flag(args.get("inclusive"))
    if args.get("oldest"):
        oldest = float(args["oldest"])
        if value < oldest or (value == oldest and not inclusive):
            return False
    if args.get("latest"):
        latest = float(args["latest"])
        if value > latest or (value == latest and not inclusive):
            return False
    return True
