"""Slack messages for alerts and notices: Block Kit blocks, a text fallback, message metadata.

Pure functions: the same alert always gives the same message (see CONTRACT.md, "Slack message
shape"). Everything that came from an article (title, outlet, sentence, matched words) is
untrusted, so it passes through `mrkdwn_text` before it is placed in mrkdwn:

- `&`, `<`, `>` become `&amp;`, `&lt;`, `&gt;`: `<!channel>`, `<@U123>`, `<#C1>` and
  `<https://evil|click>` are shown as typed and mention or link no one;
- every mrkdwn delimiter (`*`, `_`, `~`, backtick) gets a zero-width space on both sides. Slack
  opens or closes bold, italics, strike-through and code only at a delimiter with a word boundary
  on one side and text on the other; a delimiter with an invisible character on *both* sides can
  neither open nor close, whether Slack counts that character as a space or as a letter. The
  characters stay as they were (copying the text gives them back), they just format nothing, and
  they cannot end the bold we put around matched words;
- runs of white space, line breaks included, become one space, so no text starts a line of its
  own (no `>` quote, no code block);
- every mrkdwn text object is `verbatim`, so Slack does not auto-link URLs, channel names or
  mentions written as plain words.

The one link in a message is the article's own URL, checked to be http(s) and percent-encoded so
that `|`, `<`, `>` and spaces cannot end the link early.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from monitor.models import AlertMessage

# Slack's limits (Block Kit reference): section text 3000 characters, 50 blocks a message.
SECTION_LIMIT = 3000
MAX_BLOCKS = 50
# Lengths of the untrusted parts before escaping; longer ones are cut with an ellipsis.
TITLE_LENGTH = 300
OUTLET_LENGTH = 100
SENTENCE_LENGTH = 600
MAX_SENTENCES = 3
# A longer URL is shown without a link (no real article URL comes close).
URL_LENGTH = 2000
FALLBACK_LENGTH = 1000

ZWSP = "\u200b"
MRKDWN_DELIMITERS = frozenset("*_~`")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Characters allowed unencoded in a link: RFC 3986 reserved and unreserved characters and `%`.
# Everything else (`|`, `<`, `>`, `"`, spaces, backslash, non-ASCII, ...) is percent-encoded.
_URL_SAFE = "/:?#[]@!$&'()*+,;=%-._~"
_SPACE = re.compile(r"\s+")

NOTICE_LABELS = {
    "source_down": "Source down",
    "source_up": "Source back",
    "config_invalid": "Config edit rejected",
}


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """What chat.postMessage (or a webhook) gets: fallback text, blocks and metadata."""

    text: str
    blocks: tuple[dict[str, Any], ...]
    metadata: dict[str, Any]  # {"event_type": ..., "event_payload": {...}}; webhooks send none


# --- escaping ----------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters as entities (the only escaping Slack decodes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str) -> str:
    """One line of printable text: white space collapsed, control and format characters dropped.

    Dropping format characters (zero-width spaces and joiners among them) means nothing the
    article brings can sit next to a delimiter and change how Slack reads it.
    """
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    return _SPACE.sub(" ", kept).strip()


def mrkdwn_text(text: str) -> str:
    """Untrusted text, safe inside mrkdwn: one line, escaped, delimiters neutralised."""
    return _neutralise(plain(text))


def _neutralise(text: str) -> str:
    escaped = escape(text)
    return "".join(f"{ZWSP}{ch}{ZWSP}" if ch in MRKDWN_DELIMITERS else ch for ch in escaped)


def cut(text: str, length: int) -> str:
    """`text` of at most `length` characters, ending in an ellipsis when it was cut."""
    return text if len(text) <= length else text[: max(length - 1, 0)].rstrip() + "…"


def link_url(url: str) -> str | None:
    """The URL ready to sit in `<URL|label>`, or None when it is not an http(s) URL."""
    parts = urlsplit(plain(url))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.netloc
    if not netloc.isascii():
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        netloc = host if parts.port is None else f"{host}:{parts.port}"
    rebuilt = urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))
    encoded = quote(rebuilt, safe=_URL_SAFE)
    if len(encoded) > URL_LENGTH:
        return None
    return encoded.replace("&", "&amp;")


def bold_words(sentence: str, words: Sequence[str]) -> str:
    """The sentence, safe for mrkdwn, with every occurrence of `words` in bold.

    Matching ignores case. The bold marks get a zero-width space on the outside when a letter
    or digit touches them, because Slack only formats at word boundaries.
    """
    text = plain(sentence)
    wanted = sorted({w for w in (plain(w) for w in words) if w}, key=len, reverse=True)
    if not wanted:
        return _neutralise(text)
    pattern = re.compile("|".join(re.escape(w) for w in wanted), re.IGNORECASE)
    out: list[str] = []
    position = 0
    for found in pattern.finditer(text):
        start, end = found.span()
        out.append(_neutralise(text[position:start]))
        before = ZWSP if start > 0 and text[start - 1].isalnum() else ""
        after = ZWSP if end < len(text) and text[end].isalnum() else ""
        out.append(f"{before}*{_neutralise(found.group())}*{after}")
        position = end
    out.append(_neutralise(text[position:]))
    return "".join(out)


def local_time(when: datetime, zone: ZoneInfo) -> str:
    """`23 Nov 2026, 13:05 PKT` in `zone` (month names fixed, whatever the locale)."""
    local = when.astimezone(zone)
    return f"{local.day} {MONTHS[local.month - 1]} {local.year}, {local:%H:%M} {local:%Z}".strip()


# --- messages ----------------------------------------------------------------------------------


def alert_message(alert: AlertMessage, zone: ZoneInfo) -> SlackMessage:
    """The message for an alert: a story's top-level message, or a follow-up for its thread."""
    url = link_url(alert.link)
    followup = alert.kind == "followup"

    def headline(length: int) -> str:
        title = mrkdwn_text(cut(plain(alert.title) or alert.link, length))
        linked = f"<{url}|{title}>" if url else title
        if followup:
            outlet = mrkdwn_text(cut(alert.outlet, OUTLET_LENGTH))
            return f"Also reported by *{outlet}*: {linked}"
        return f"*{linked}*"

    blocks: list[dict[str, Any]] = [_section(_fit(headline, TITLE_LENGTH))]
    if alert.published is not None:
        when = local_time(alert.published, zone)
    else:
        when = f"seen {local_time(alert.first_seen, zone)}"
    details = [mrkdwn_text(cut(alert.outlet, OUTLET_LENGTH)), escape(when)]
    if alert.topics:
        details.append(" ".join(f"#{mrkdwn_text(topic)}" for topic in sorted(alert.topics)))
    blocks.append(
        {"type": "context", "elements": [_mrkdwn(cut(" · ".join(details), SECTION_LIMIT))]}
    )
    for sentence, words in _sentences(alert)[:MAX_SENTENCES]:
        blocks.append(_section(_fit(partial(_quote, sentence, words), SENTENCE_LENGTH)))

    title = cut(plain(alert.title) or alert.link, TITLE_LENGTH)
    fallback = mrkdwn_text(title)
    if followup:
        fallback = f"Also reported by {mrkdwn_text(cut(alert.outlet, OUTLET_LENGTH))}: {fallback}"
    if url:
        fallback = f"{fallback} {url}"
    metadata = {
        "event_type": "news_alert",
        "event_payload": {
            "alert_id": alert.alert_id,
            "story_id": alert.story_id,
            "url": alert.link,
            "source": alert.source,
            "topics": sorted(alert.topics),
        },
    }
    return SlackMessage(fallback, tuple(blocks[:MAX_BLOCKS]), metadata)


def notice_message(notice: dict[str, str], outbox_id: int) -> SlackMessage:
    """An operational notice (a source down or back, a config edit rejected) as one section."""
    kind = notice.get("kind", "notice")
    label = NOTICE_LABELS.get(kind) or kind.replace("_", " ").capitalize()
    body = notice.get("text", "")

    def text(length: int) -> str:
        return f"*{mrkdwn_text(label)}*: {mrkdwn_text(cut(plain(body), length))}"

    metadata = {
        "event_type": "news_notice",
        "event_payload": {"outbox_id": outbox_id, "kind": kind},
    }
    fallback = f"{mrkdwn_text(label)}: {mrkdwn_text(cut(plain(body), FALLBACK_LENGTH))}"
    return SlackMessage(fallback, (_section(_fit(text, SECTION_LIMIT)),), metadata)


# --- helpers -----------------------------------------------------------------------------------


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack must not turn plain URLs, #names or @names in article text into links.
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _quote(sentence: str, words: tuple[str, ...], length: int) -> str:
    # `>` starts a quote only at the start of a line; escaped article text never holds one.
    return ">" + bold_words(cut(plain(sentence), length), words)


def _fit(build: Callable[[int], str], length: int) -> str:
    """`build(length)`, with `length` shrunk until the text fits a section (escaping grows it)."""
    while True:
        text = build(length)
        if len(text) <= SECTION_LIMIT or length <= 1:
            return text[:SECTION_LIMIT]
        length = length * 2 // 3


def _sentences(alert: AlertMessage) -> list[tuple[str, tuple[str, ...]]]:
    """Each distinct matched sentence once, with every matched word of the alert."""
    words = tuple(dict.fromkeys(w for match in alert.matches for w in match.words))
    seen: dict[str, None] = {}
    for match in alert.matches:
        if plain(match.sentence):
            seen.setdefault(plain(match.sentence), None)
    return [(sentence, words) for sentence in seen]
