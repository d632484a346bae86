r"""A feed body we fetched -> `ParsedFeed`: RSS, RDF and Atom through feedparser, JSON Feed by hand.

`parse_feed` is pure: it reads only the bytes it is given (never a URL, a file or the network) and
never raises on what a server sent. What was wrong with a body travels in `ParsedFeed.problem`,
next to every complete item that could still be read; a body that holds no feed at all (an HTML
page, garbage, a refused DTD) is `ParsedFeed.failed`, and its source's poll counts as failed.

What feedparser is given, and why:
- The body reaches feedparser as `io.BytesIO`. Given `bytes` or `str`, `feedparser.parse` first
  tries it as a URL and then as a file name (`open(body)`), so a body of `/etc/passwd` would be
  read from disk.
- Bytes are decoded here, not by feedparser: a byte order mark wins, then the HTTP charset, then
  the XML declaration, then UTF-8 (RFC 7303; a text/xml without charset defers to the body, not
  to RFC 3023's us-ascii). feedparser gets UTF-8 under a declaration of our own on a line of its
  own. Its sniffing regex (`^<\?.*encoding=...`) runs in cubic time on a long first line, so a
  26 KB body starting `<?` held it for 50 seconds.
- Bodies that declare XML entities are refused before parsing, on the decoded text, so UTF-16 or
  UTF-7 cannot hide the declaration. feedparser strips `<!ENTITY` declarations with a
  line-anchored regex that a one-line DOCTYPE slips past; expat then expands a billion-laughs
  body until its amplification limit trips, over a second later. External entities are never
  fetched (feedparser turns `feature_external_ges` off), but the refusal does not depend on
  which SAX driver happens to be installed.
- Runs of white space before the root element are shortened to one character: feedparser's
  DOCTYPE and ENTITY regexes (`^\s*<!DOCTYPE`, multi-line) take quadratic time on many blank
  lines there (100,000 newlines: 80 seconds). For the same reason a second DOCTYPE is refused.
- `sanitize_html` and `resolve_relative_uris` are off: we turn all markup into plain text, so
  cleaning HTML and rewriting the links inside it would be work thrown away.
- The feed URL reaches feedparser as Content-Location, the base it resolves links against (with
  any `xml:base` on top). A server's own Content-Location is not a base URL (RFC 7231 dropped
  that) and is ignored. feedparser needs a base: with none it lets one item's `xml:base` leak
  into the items after it. It also resolves a relative `<guid>` that is not marked
  `isPermaLink="false"`, as RSS says such a guid is a URL; that is the one way `Entry.guid` can
  differ from the text of the feed.
"""

from __future__ import annotations

import codecs
import html
import io
import json
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit
from xml.sax import SAXParseException

import feedparser

from monitor.models import Entry, ParsedFeed

MAX_SUMMARY_CHARS = 20_000
"""Longer summaries are cut: a feed that carries whole books must not bloat every stage after it."""

_OLDEST_PLAUSIBLE = datetime(1990, 1, 1, tzinfo=UTC)
_FUTURE_SLACK = timedelta(days=2)  # clocks and time zones go wrong; further ahead is nonsense

_HTTP_SCHEMES = frozenset({"http", "https"})
_JSON_TYPES = frozenset({"application/feed+json", "application/json"})
_JSON_FEED_VERSION = re.compile(r"https?://jsonfeed\.org/version/")

# --- decoding: what feedparser reads is always UTF-8 under this declaration, alone on line 1.
_UTF8_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>\n"
_XML_DECLARATION = re.compile(r"<\?xml\s[^>]*\?>(\r?\n)?")
_DECLARED_ENCODING = re.compile(r"\s*<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([^\"'>]{1,40})[\"']")
_DECLARATION_SNIFF_BYTES = 1024  # an XML declaration is far shorter; nothing past this is read
# Longest first: a UTF-32-LE mark begins with the UTF-16-LE one.
_BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# "<" in UTF-32 and UTF-16, for a body without a byte order mark (XML 1.0, Appendix F); UTF-32
# first, as its "<" begins like UTF-16's.
_WIDE_STARTS = (
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"),
    (b"<\x00", "utf-16-le"),
)
# Python codecs that are not character sets; punycode also decodes in quadratic time.
_NOT_CHARSETS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape"})
_SUPERSETS = {"gb2312": "gb18030"}  # servers label GBK text gb2312; gb18030 reads both
_FALLBACK_ENCODINGS = ("utf-8", "windows-1252")  # tried in turn when the declared one fails

# --- the prolog (before the root element), which feedparser's replace_doctype() rewrites.
_FIRST_ELEMENT = re.compile(rb"<\w")  # where replace_doctype() takes the prolog to end
_PROLOG_WHITESPACE = re.compile(rb"\s+")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DOCTYPE_START = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_REMOVED_DOCTYPE = re.compile(rb"^\s*<!DOCTYPE[^>]*?>", re.MULTILINE)  # replace_doctype()'s own
# The first tag after any declarations, comments and white space. Atomic and possessive: once a
# comment has matched, the engine must not try it again as the start of a longer one, which on a
# body of many comments takes exponential time.
_HTML_PAGE = re.compile(
    rb"(?>\s+|<\?.*?\?>|<!--.*?-->)*+<(?:!DOCTYPE\s+html|(?:html|head|body)[\s>/])",
    re.IGNORECASE | re.DOTALL,
)
_ID_WINDOW = 4096  # bytes before a closing </guid> or </id> that can hold its text
_ITEM_END = re.compile(rb"</(?:[\w.-]+:)?(?:item|entry)\s*>", re.IGNORECASE)

_NOT_A_FEED = "not a feed (no RSS, Atom or JSON Feed found)"


def parse_feed(
    body: bytes,
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
) -> ParsedFeed:
    """Parse a fetched RSS, RDF, Atom or JSON Feed body into entries with absolute http(s) links.

    `url` is the feed's URL after redirects, the base for relative links; `headers` are the
    response headers (any case); their Content-Type decides the charset and whether the body is
    JSON. `now` (default: the current time) bounds plausible dates: a date more than two days
    ahead of it, or before 1990, becomes None. Items without a usable link are dropped, and an
    item whose link was already listed is returned once.
    """
    header_map = {name.lower(): value for name, value in (headers or {}).items()}
    mime, charset = _split_content_type(header_map.get("content-type", ""))
    when = now or datetime.now(UTC)
    if not body or body.isspace():
        return _no_feed("empty body")
    if _looks_like_json(body, mime):
        return _parse_json_feed(body, url, when)
    return _parse_xml_feed(body, url, mime, charset, when)


def _no_feed(problem: str) -> ParsedFeed:
    """The answer for a body that holds no feed at all: the source's poll failed."""
    return ParsedFeed(title=None, entries=(), problem=problem, failed=True)


# --- XML: RSS, RDF, Atom -----------------------------------------------------------------------


def _parse_xml_feed(body: bytes, url: str, mime: str, charset: str, now: datetime) -> ParsedFeed:
    """Decode, check and hand the body to feedparser; turn what it found into entries."""
    problems: list[str] = []
    if mime and not _is_xml_type(mime):
        problems.append(f"served as {mime}, not an XML media type")
    text, encoding_problem = _decode(body, charset)
    if encoding_problem:
        problems.append(encoding_problem)

    declaration = _XML_DECLARATION.match(text)
    # Lines ours has that the body had not: ours sits alone on line 1 where the body's sat.
    lines_added = 0 if declaration and declaration.group(1) else 1
    data = (_UTF8_DECLARATION + text[declaration.end() if declaration else 0 :]).encode(
        "utf-8", "replace"
    )
    if _HTML_PAGE.match(data):
        return _no_feed("not a feed (HTML page)")
    root = _FIRST_ELEMENT.search(data)
    if root is None:
        return _no_feed(_NOT_A_FEED)
    prolog = data[: root.start()]
    if _declares_entities(data, prolog):
        return _no_feed("feed declares XML entities; refused")
    if len(_DOCTYPE_START.findall(prolog)) > 1:
        return _no_feed("not well-formed XML: two DOCTYPEs")

    short_prolog = _PROLOG_WHITESPACE.sub(_one_space, prolog)
    lines_lost = prolog.count(b"\n") - short_prolog.count(b"\n") + _doctype_newlines(short_prolog)
    try:
        parsed = feedparser.parse(
            io.BytesIO(short_prolog + data[root.start() :]),
            response_headers={
                "content-type": "application/xml; charset=utf-8",
                "content-location": url,
            },
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    # feedparser's loose parser is a large body of legacy code; whatever it trips over in a
    # body is that source's problem, and must not stop the poll of every other source.
    except Exception as exc:
        return _no_feed(f"feedparser failed: {exc!r}")

    items: list[Any] = list(parsed.get("entries", []))
    if parsed.get("bozo"):
        problems.append(_xml_problem(parsed.get("bozo_exception"), lines_lost - lines_added))
        # The strict parser gave up and the loose one went on to the end of the body: an item
        # cut off by truncation comes back half-read. Only items that were closed are kept.
        items = items[: len(_ITEM_END.findall(data))]
    if not parsed.get("version") and not items:
        return _no_feed(_NOT_A_FEED)

    feed_info = parsed.get("feed", {})
    title = _one_line(_marked_up_text(feed_info.get("title"), feed_info.get("title_detail")))
    written_ids = _ids_as_written(data)
    entries = _unique(_xml_entry(item, url, written_ids, now) for item in items)
    return ParsedFeed(title=title or None, entries=entries, problem="; ".join(problems) or None)


def _xml_entry(
    item: dict[str, Any], base: str, written_ids: frozenset[str], now: datetime
) -> Entry | None:
    """One feedparser entry -> Entry, or None when it has no usable http(s) link.

    An item without a link element may use its guid (or Atom id) when that is a permalink
    written as an absolute http(s) URL: feedparser resolves a relative permalink guid such as
    "ep-42" against the feed URL, which would make up a link, so the guid must also be in
    `written_ids`, the ids as the document spells them.
    """
    guid = _str_or_none(item.get("id"))
    link = _str_or_none(item.get("link"))
    # feedparser copies a permalink guid into `link` when an item has no <link>; a link that
    # came from a link element is also listed in `links`.
    if link is not None and any(link == listed.get("href") for listed in item.get("links", [])):
        absolute = _absolute_http(link, base)
    elif (
        guid is not None
        and item.get("guidislink")
        and guid in written_ids
        and _is_absolute_http(guid)
    ):
        absolute = guid
    else:
        absolute = None
    if absolute is None:
        return None

    summaries = [_marked_up_text(item.get("summary"), item.get("summary_detail"))]
    summaries += [_marked_up_text(part.get("value"), part) for part in item.get("content", [])]
    source = item.get("source")
    publisher, publisher_url = "", None
    if isinstance(source, Mapping):
        publisher = _one_line(_plain_text(_str_or_none(source.get("title")) or ""))
        # Only an absolute http(s) address names a site; anything else is dropped.
        href = _str_or_none(source.get("href"))
        publisher_url = href.strip() if href and _is_absolute_http(href.strip()) else None
    return Entry(
        link=absolute,
        title=_one_line(_marked_up_text(item.get("title"), item.get("title_detail"))),
        summary=_cap(max(summaries, key=len)),
        guid=guid,
        published=_first_plausible(
            # dict.get: FeedParserDict.get("updated_parsed") falls back to published_parsed,
            # with a DeprecationWarning.
            (
                _from_struct_time(dict.get(item, key))
                for key in ("published_parsed", "updated_parsed")
            ),
            now,
        ),
        publisher=publisher or None,
        publisher_url=publisher_url,
    )


def _marked_up_text(value: object, detail: object) -> str:
    """Text of a feedparser field, read as HTML or plain text as its `*_detail` type says."""
    if not isinstance(value, str):
        return ""
    # A value without a detail is feedparser's copy of an Atom <content> into `summary`, whose
    # type it does not copy. That content is HTML or plain text, and plain text reads the same
    # as HTML unless it holds a "<" or an "&".
    content_type = detail.get("type", "") if isinstance(detail, Mapping) else "text/html"
    if "html" in content_type:  # text/html, application/xhtml+xml
        return _html_to_text(value)
    if content_type.startswith("text/") or not content_type:
        return _plain_text(value)
    return ""  # Atom content of another media type (an image, a PDF) holds no text for us


def _decode(body: bytes, http_charset: str) -> tuple[str, str | None]:
    """The body as text, and a problem line when the encoding it names does not fit its bytes.

    A byte order mark decides; else the HTTP charset, else the XML declaration, else UTF-8
    (UTF-16/32 when the body starts with "<" in them). When that fails, the declaration, UTF-8,
    Windows-1252 and ISO-8859-1 are tried in turn; the last reads any byte.
    """
    bom = next(((mark, name) for mark, name in _BYTE_ORDER_MARKS if body.startswith(mark)), None)
    if bom is not None:
        body = body[len(bom[0]) :]
    wide = next((name for start, name in _WIDE_STARTS if body.startswith(start)), "")
    sniffed = body[:_DECLARATION_SNIFF_BYTES].decode(wide or "iso-8859-1", "ignore")
    found = _DECLARED_ENCODING.match(sniffed)
    in_document = _byte_order(found.group(1), wide) if found else ""
    declared = bom[1] if bom is not None else http_charset or in_document
    first_choice = declared or wide or "utf-8"
    for encoding in dict.fromkeys((first_choice, in_document, wide, *_FALLBACK_ENCODINGS)):
        text = _try_decode(body, encoding) if encoding else None
        if text is not None:
            break
    else:
        # ISO-8859-1 gives every byte a character: the last resort cannot fail.
        encoding, text = "iso-8859-1", body.decode("iso-8859-1")
    if encoding == first_choice:
        return text, None
    if declared:
        return text, f"declared charset {declared} but bytes are {encoding}"
    return text, f"no charset declared and bytes are not {first_choice}; read as {encoding}"


def _byte_order(declared: str, wide: str) -> str:
    """A declared "utf-16" or "utf-32" made specific by the byte order the body starts in."""
    try:
        generic = codecs.lookup(declared).name in ("utf-16", "utf-32")
    except (LookupError, ValueError):  # an unknown name; a NUL in it
        return declared
    return wide if generic and wide else declared


def _try_decode(body: bytes, encoding: str) -> str | None:
    """`body` decoded as `encoding`, or None when that is no character set or does not fit."""
    try:
        name = codecs.lookup(encoding).name
        if name in _NOT_CHARSETS:
            return None
        return body.decode(_SUPERSETS.get(name, name))
    except (LookupError, ValueError):  # unknown name, not a text codec, bytes that do not fit
        return None


def _declares_entities(data: bytes, prolog: bytes) -> bool:
    """Whether an `<!ENTITY` declaration is in the prolog or anywhere after a DOCTYPE.

    Only a DOCTYPE's internal subset declares entities, and no parser expands one without it;
    but where the subset ends is only known by parsing it, which is what must not happen yet,
    and feedparser's prolog ends at the first "<" and a letter, which a comment can hold.
    """
    if _ENTITY_DECLARATION.search(prolog):
        return True
    doctype = _DOCTYPE_START.search(data)
    return doctype is not None and _ENTITY_DECLARATION.search(data, doctype.end()) is not None


def _ids_as_written(data: bytes) -> frozenset[str]:
    """The text of every guid and id element as the document spells it, entities decoded.

    Read back from each closing tag to the ">" or CDATA start before it, never past the previous
    closing tag of the kind: linear time whatever the body holds, which regexes do not promise.
    """
    found: set[str] = set()
    for closing in (b"</guid>", b"</id>", b":id>"):  # the last: a prefixed </atom:id>
        previous_end = 0
        end = data.find(closing)
        while end != -1:
            text_end = (
                end if closing.startswith(b"</") else data.rfind(b"</", max(end - 40, 0), end)
            )
            if text_end >= previous_end:
                text = _text_before(data, max(text_end - _ID_WINDOW, previous_end - 1, 0), text_end)
                if text is not None:
                    found.add(text)
            previous_end = end + len(closing)
            end = data.find(closing, previous_end)
    return frozenset(found)


def _text_before(data: bytes, lower: int, text_end: int) -> str | None:
    """The text of the element whose closing tag starts at `text_end`, or None past `lower`."""
    if data.endswith(b"]]>", lower, text_end):
        opening = data.rfind(b"<![CDATA[", lower, text_end)
        start, stop = opening + len(b"<![CDATA["), text_end - len(b"]]>")
    else:
        opening = data.rfind(b">", lower, text_end)
        start, stop = opening + 1, text_end
    if opening == -1:
        return None
    return html.unescape(data[start:stop].decode("utf-8", "replace")).strip()


def _one_space(run: re.Match[bytes]) -> bytes:
    """A run of white space as one character: a newline when it held one."""
    return b"\n" if b"\n" in run.group() else b" "


def _doctype_newlines(prolog: bytes) -> int:
    """Newlines replace_doctype() deletes along with the DOCTYPE (and the blank lines before it)."""
    return sum(match.group().count(b"\n") for match in _REMOVED_DOCTYPE.finditer(prolog))


def _xml_problem(error: object, lines_lost: int) -> str:
    """A human line for the error that stopped feedparser's strict XML parser.

    `lines_lost`: lines of the body before the root element that feedparser did not see (less
    the one our declaration may have added), so a SAX line number points into the body as sent.
    """
    if isinstance(error, SAXParseException):
        line = max((error.getLineNumber() or 1) + lines_lost, 1)
        return f"not well-formed XML: {error.getMessage()} (line {line})"
    return f"not well-formed XML: {error}"


# --- JSON Feed ---------------------------------------------------------------------------------


def _looks_like_json(body: bytes, mime: str) -> bool:
    """JSON when the body opens with `{`, or when served as JSON and not opening with markup."""
    start = body.removeprefix(codecs.BOM_UTF8).lstrip()
    return start.startswith(b"{") or (mime in _JSON_TYPES and not start.startswith(b"<"))


def _parse_json_feed(body: bytes, url: str, now: datetime) -> ParsedFeed:
    """JSON Feed 1.0 / 1.1 (https://jsonfeed.org/version/1.1), which feedparser does not read."""
    try:
        document = json.loads(body)
    # RecursionError: a few thousand nested brackets are enough to exhaust the stack.
    except (ValueError, RecursionError) as exc:
        return _no_feed(f"not valid JSON: {exc}")
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not _JSON_FEED_VERSION.match(version):
        return _no_feed("not a feed (JSON, but not a JSON Feed)")

    items = document.get("items")
    problem = None if isinstance(items, list) else "JSON Feed without an items list"
    entries = _unique(
        _json_entry(item, url, now)
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict)
    )
    title = _one_line(_plain_text(_str_or_none(document.get("title")) or ""))
    return ParsedFeed(title=title or None, entries=entries, problem=problem)


def _json_entry(item: Mapping[str, Any], base: str, now: datetime) -> Entry | None:
    """One JSON Feed item -> Entry, or None when it has no usable http(s) link."""
    raw_id = item.get("id")
    # The spec asks readers to coerce an id given as a number to a string.
    guid = str(raw_id) if isinstance(raw_id, str | int | float) and raw_id != "" else None
    link = _str_or_none(item.get("url")) or _str_or_none(item.get("external_url"))
    if link is not None:
        absolute = _absolute_http(link, base)
    elif guid is not None and _is_absolute_http(guid):
        absolute = guid
    else:
        absolute = None
    if absolute is None:
        return None

    summaries = [
        _plain_text(_str_or_none(item.get("summary")) or ""),
        _plain_text(_str_or_none(item.get("content_text")) or ""),
        _html_to_text(_str_or_none(item.get("content_html")) or ""),
    ]
    return Entry(
        link=absolute,
        title=_one_line(_plain_text(_str_or_none(item.get("title")) or "")),
        summary=_cap(max(summaries, key=len)),
        guid=guid,
        published=_first_plausible(
            (_from_iso(item.get(key)) for key in ("date_published", "date_modified")), now
        ),
    )


# --- shared helpers ----------------------------------------------------------------------------


def _unique(entries: Iterable[Entry | None]) -> tuple[Entry, ...]:
    """The entries that exist, each link once (the first item that lists it wins)."""
    seen: set[str] = set()
    kept: list[Entry] = []
    for entry in entries:
        if entry is not None and entry.link not in seen:
            seen.add(entry.link)
            kept.append(entry)
    return tuple(kept)


def _split_content_type(value: str) -> tuple[str, str]:
    """`Text/XML; Charset="utf-8"` -> ("text/xml", "utf-8"); missing parts are ""."""
    mime, *params = value.split(";")
    charset = ""
    for param in params:
        key, _, param_value = param.partition("=")
        if key.strip().lower() == "charset":
            charset = param_value.strip().strip("\"'")
    return mime.strip().lower(), charset


def _is_xml_type(mime: str) -> bool:
    """application/xml, text/xml, */*+xml and the XML entity types (RFC 7303)."""
    return mime.endswith(("/xml", "+xml")) or mime.startswith(("application/xml-", "text/xml-"))


def _str_or_none(value: object) -> str | None:
    """A stripped non-empty string, else None (feeds put numbers, lists and blanks anywhere)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _is_absolute_http(value: str) -> bool:
    """Whether `value` is itself an absolute http(s) URL with a host (a guid used as a link)."""
    return _absolute_http(value, "") == value


def _absolute_http(link: str, base: str) -> str | None:
    """`link` resolved against `base`, when the result is an http(s) URL with a host, and not
    the feed itself.

    An item pointing at the feed it is in is no article, and it is what a link of `http://`
    or `http:` or nothing at all becomes: urljoin (and feedparser, before we see the link)
    reads them as relative to a base of the same scheme, where browsers refuse `http://`.
    """
    try:
        absolute = urljoin(base, link)
        parts = urlsplit(absolute)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    if parts.scheme.lower() not in _HTTP_SCHEMES or not parts.hostname:
        return None
    if base and urldefrag(absolute).url == urldefrag(base).url:
        return None
    return absolute


def _from_struct_time(value: object) -> datetime | None:
    """feedparser's `*_parsed` (a UTC struct_time) -> aware UTC datetime."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        # A leap second (:60) would be refused by datetime; it is a second early here instead.
        return datetime(*value[:5], min(value.tm_sec, 59), tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


def _from_iso(value: object) -> datetime | None:
    """An RFC 3339 date (JSON Feed) -> aware UTC datetime; one without an offset is taken as UTC."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _first_plausible(candidates: Iterable[datetime | None], now: datetime) -> datetime | None:
    """The first date that is neither before 1990 nor more than two days after `now`."""
    latest = now + _FUTURE_SLACK
    for candidate in candidates:
        if candidate is not None and _OLDEST_PLAUSIBLE <= candidate <= latest:
            return candidate
    return None


def _cap(text: str) -> str:
    """`text` cut to MAX_SUMMARY_CHARS, at a word boundary when there is one near the end."""
    if len(text) <= MAX_SUMMARY_CHARS:
        return text
    cut = text[:MAX_SUMMARY_CHARS]
    space = cut.rfind(" ", MAX_SUMMARY_CHARS - 200)
    return (cut[:space] if space > 0 else cut).rstrip() + "…"


# --- markup -> text ----------------------------------------------------------------------------

# Tags that end a paragraph (a blank line), tags that end a line, and table cells (a space).
_PARAGRAPH_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "details", "div", "dl", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "main", "nav", "ol", "p", "pre", "section", "table", "ul",
    }
)  # fmt: skip
_LINE_TAGS = frozenset({"br", "dd", "dt", "li", "tr"})
_CELL_TAGS = frozenset({"td", "th"})
# Tags whose content is never text a reader sees.
_HIDDEN_TAGS = frozenset({"head", "noscript", "script", "style", "template", "title"})
_WHITESPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextCollector(HTMLParser):
    """Collects the visible text of an HTML fragment, with line breaks where blocks end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth += 1
        else:
            self._break(tag, opening=True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._break(tag, opening=True)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden_depth = max(self._hidden_depth - 1, 0)
        else:
            self._break(tag, opening=False)

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            # Line breaks in HTML source are just spaces; real breaks come from the tags.
            self.parts.append(_WHITESPACE.sub(" ", data))

    def _break(self, tag: str, *, opening: bool) -> None:
        if tag in _PARAGRAPH_TAGS:
            self.parts.append("\n\n")  # on both sides; runs of blank lines are merged later
        elif opening and tag in _LINE_TAGS:
            self.parts.append("\n")  # before each line only: <li>a</li><li>b</li> is "a\nb"
        elif opening and tag in _CELL_TAGS:
            self.parts.append(" ")


def _html_to_text(markup: str) -> str:
    """Visible text of HTML: tags dropped, entities decoded, paragraphs kept as blank lines."""
    if "<" not in markup and "&" not in markup:
        return _plain_text(markup)
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    return _plain_text("".join(collector.parts))


def _plain_text(text: str) -> str:
    """Whitespace collapsed within each line, at most one blank line in a row, ends trimmed."""
    lines = (" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _one_line(text: str) -> str:
    """All whitespace, line breaks included, collapsed to single spaces."""
    return " ".join(text.split())
