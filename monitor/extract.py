"""Article text from a fetched page, off the event loop, and the `Article` built from it.

    extract_page(html, url)  -> ExtractedPage | None     pure: trafilatura on the raw bytes
    Extractor().extract(...) -> the same, awaited from a worker process, with a deadline
    article_from(entry, page, ...) -> Article             page text, or the feed's own text

`extract_page` returns None when the page holds no article: nothing extracted, too few words, or
a cookie/consent wall, paywall teaser, login or error page recognised by its typical phrases
while little other text remains. The pipeline then falls back to the feed's text.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urljoin, urlsplit

import trafilatura

from monitor import dedupe
from monitor.errors import WorkerDied, WorkerTimeout
from monitor.models import Article, Entry, ExtractedPage
from monitor.workers import WorkerPool, pool_size

if TYPE_CHECKING:
    from lxml.html import HtmlElement

_log = logging.getLogger(__name__)

MIN_WORDS = 50
"""Fewer words than this is not an article (the benchmark's shortest real article has 66)."""

WALL_MAX_WORDS = 150
"""A page showing wall phrases is no article unless this many words remain besides them."""

# htmldate's default output drops the time of day; ask for it and its UTC offset when the page
# has them (a missing offset formats as nothing and is read as UTC).
_DATE_PARAMS: dict[str, Any] = {
    "original_date": True,
    "extensive_search": True,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    # a full timestamp in the page's metadata beats the bare day found in the URL
    "deferred_url_extractor": True,
}

_WORD = re.compile(r"\w+")
# Han ideographs and kana: these scripts write no spaces, so `\w+` would take a whole sentence
# for one word. Two characters count as one word, about the length of a Chinese word.
_NO_SPACE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Phrases that mark a paragraph as the page's wall rather than its article. They are specific
# on purpose, some anchored to the paragraph's start (`^`): a short real article that says
# "something went wrong" or "already a member" in a news sense must not be taken for a wall.
_WALL_PHRASES = re.compile(
    r"""
    # cookie and consent walls
      we\ (?:and\ our\ (?:\d+\ )?partners\ )?use\ cookies | (?:site|website)\ uses\ cookies
    | accept\ (?:all\ )?cookies | cookie\ (?:settings|preferences|policy)
    | consent\ to\ (?:the|our)\ use\ of\ cookies | your\ privacy\ choices
    | manage\ (?:your\ )?(?:cookie|privacy|consent)\ (?:settings|preferences|choices|options)
    | by\ continuing\ to\ (?:use|browse)\ (?:this|our)\ (?:site|website)
    # paywall teasers
    | subscribe\ (?:now\ |today\ )?to\ (?:continue|keep)\ reading
    | continue\ reading\ (?:with|for)\ | to\ read\ (?:the\ full|this)\ (?:article|story)
    | already\ a\ subscriber | already\ (?:a\ member|have\ an\ account)\ ?\?
    | (?:for\ )?subscribers\ only | exclusive(?:ly)?\ for\ subscribers
    | (?:available|reserved)\ (?:only\ )?(?:to|for)\ (?:our\ )?subscribers
    | reached\ your\ (?:free\ )?(?:article|monthly|story)\ limit
    | free\ articles?\ (?:left|remaining)
    | start\ your\ free\ trial | become\ a\ (?:member|subscriber)\ to
    # login pages
    | forgot\ (?:your\ )?password | (?:sign|log)\ ?in\ to\ (?:your\ account|continue)
    | don['’]t\ have\ an\ account | ^\W*remember\ me\W*$
    # error and bot-check pages
    | page\ not\ found | error\ 404 | \b404\ (?:error|not\ found)
    | (?:page|article|content)\ (?:is\ )?no\ longer\ available
    | page\ you\ (?:are|were|['’]re)\ looking\ for
    | (?:couldn['’]t|could\ not|can['’]t|cannot)\ find\ (?:that|the|this)\ page
    | ^\W*access\ denied | ^\W*(?:oops\W+|sorry\W+)?something\ went\ wrong
    | enable\ javascript | are\ you\ a\ robot | verify\ (?:that\ )?you\ are\ (?:a\ )?human
    | checking\ (?:your\ browser|if\ the\ site\ connection\ is\ secure)
    """,
    re.IGNORECASE | re.VERBOSE,
)

# Titles that name an error, bot-check or login page whatever its text says.
_WALL_TITLE = re.compile(
    r"""page\ not\ found | ^\W*404\b | \b404\ (?:error|not\ found) | error\ 404
    | ^\W*(?:access\ denied|attention\ required|just\ a\ moment\W*$)
    | ^\W*(?:sign\ ?in|log\ ?in|subscribe)\b""",
    re.IGNORECASE | re.VERBOSE,
)

_SPACES = re.compile(r"\s+")

MAX_TAG_ATTRIBUTES = 1000
"""More attributes than this in one tag is an attack, not a page: libxml2 checks each new
attribute against all earlier ones, so 50,000 of them (440 KB) stall a worker for minutes."""

# Only a long tag can hold that many attributes, so the count runs on few tags.
_LONG_TAG = re.compile(rb"<[a-zA-Z][^<>]{2000,}>")
_QUOTED = re.compile(rb"\"[^\"]*\"|'[^']*'")


def extract_page(html: bytes, url: str) -> ExtractedPage | None:
    """The article in `html` fetched from `url`, or None when the page holds no article.

    Pure and picklable, for worker processes. trafilatura detects the encoding itself, so a
    missing or wrong charset declaration does not matter. Never raises: unreadable input of
    any kind gives None.
    """
    try:
        return _extract(html, url)
    except Exception as exc:  # lxml, htmldate, charset detection: any bytes must give None
        _log.warning("extraction failed url=%s error=%r", url, exc)
        return None


def extract_for_storing(html: bytes, url: str) -> ExtractedPage | None:
    """`extract_page`, with the text's fingerprint and band keys: what `Extractor` runs in its
    workers, so the main process, which stores every article one at a time, need not (some
    1.2 ms of its CPU an article, of which the band keys that near-duplicate lookup probes are
    ~0.02 ms). Pure and picklable."""
    page = extract_page(html, url)
    if page is None:
        return None
    fingerprint = dedupe.text_fingerprint(page.text)
    if fingerprint is None:
        return page
    fingerprint.bands()  # computed now, pickled with the fingerprint
    return dataclasses.replace(page, fingerprint=fingerprint)


def _extract(html: bytes, url: str) -> ExtractedPage | None:
    if _attribute_bomb(html):
        return None
    tree = trafilatura.load_html(html)
    if tree is None:
        return None
    text = _article_text(tree, url)
    if text is None:
        return None
    # htmldate prunes the tree it is given, so metadata comes after everything else reads it.
    canonical_url = _canonical_url(tree, url)
    language = _language(tree)
    metadata = trafilatura.extract_metadata(tree, url, _DATE_PARAMS)
    title = _one_line(metadata.title or "") or None
    if _is_wall(text, title):
        return None
    return ExtractedPage(
        text=text,
        title=title,
        published=_parse_date(metadata.date),
        language=language,
        canonical_url=canonical_url,
    )


def _attribute_bomb(html: bytes) -> bool:
    """Whether a tag holds more than `MAX_TAG_ATTRIBUTES` attributes (names outside quotes)."""
    return any(
        len(_QUOTED.sub(b"", tag.group()).split()) > MAX_TAG_ATTRIBUTES
        for tag in _LONG_TAG.finditer(html)
    )


def _article_text(tree: HtmlElement, url: str) -> str | None:
    """The main text, paragraphs separated by blank lines; None when too short for an article.

    Precision mode leaves out more related-links and sidebar text (better token F1 on the
    benchmark), but now and then cuts an article to a stub: then balanced mode decides.
    """
    for precise in (True, False):
        raw = trafilatura.extract(tree, url=url, include_comments=False, favor_precision=precise)
        paragraphs = [line.strip() for line in (raw or "").splitlines() if line.strip()]
        text = "\n\n".join(paragraphs)
        if _word_count(text) >= MIN_WORDS:
            return text
    return None


def _word_count(text: str) -> int:
    """Words in `text`, counting two Han/kana characters as one word."""
    no_space_chars = len(_NO_SPACE_SCRIPT.findall(text))
    return len(_WORD.findall(_NO_SPACE_SCRIPT.sub(" ", text))) + no_space_chars // 2


def _is_wall(text: str, title: str | None) -> bool:
    """Whether the page is a consent wall, paywall teaser, login or error page.

    Such a page shows its typical phrases, or a typical title, and little text besides.
    """
    other_words = 0
    walled = title is not None and _WALL_TITLE.search(title) is not None
    for paragraph in text.split("\n\n"):
        if _WALL_PHRASES.search(paragraph):
            walled = True
        else:
            other_words += _word_count(paragraph)
    return walled and other_words < WALL_MAX_WORDS


def _canonical_url(tree: HtmlElement, url: str) -> str | None:
    """<link rel="canonical"> or else og:url, made absolute against `url`; None if absent."""
    candidates: list[str | None] = [
        link.get("href")
        for link in tree.iter("link")
        if "canonical" in (link.get("rel") or "").lower().split()
    ]
    candidates += [
        meta.get("content")
        for meta in tree.iter("meta")
        if (meta.get("property") or meta.get("name") or "").lower() == "og:url"
    ]
    for candidate in candidates:
        if not candidate or not candidate.strip():
            continue
        try:
            absolute = urljoin(url, candidate.strip())
            parts = urlsplit(absolute)
        except ValueError:  # e.g. a malformed IPv6 host
            continue
        if parts.scheme in ("http", "https") and parts.netloc:
            return absolute
    return None


def _language(tree: HtmlElement) -> str | None:
    """The page's declared language as a lower-case primary subtag ("en-GB" -> "en")."""
    declared: list[str | None] = [tree.get("lang"), tree.get("xml:lang")]
    for meta in tree.iter("meta"):
        if (meta.get("http-equiv") or "").lower() == "content-language" or (
            meta.get("property") or ""
        ).lower() == "og:locale":
            declared.append(meta.get("content"))
    for value in declared:
        primary = re.split(r"[-_,;\s]", (value or "").strip(), maxsplit=1)[0].lower()
        if re.fullmatch(r"[a-z]{2,3}", primary):
            return primary
    return None


def _parse_date(value: str | None) -> datetime | None:
    """htmldate's timestamp as an aware UTC datetime; no offset is read as UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _one_line(value: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped."""
    return _SPACES.sub(" ", value).strip()


EXTRACT_DEADLINE = 20.0
"""Seconds one page may take in a worker. The slowest of the benchmark's 181 real pages takes
well under a second; a page that takes longer is an attack or a bug, and its entry falls back to
the feed's text."""


class Extractor:
    """Runs `extract_for_storing` in worker processes (one per core), so parsing stays off the
    loop.

    Each page has `deadline` seconds: a worker still busy after that is killed and replaced
    (see `workers.WorkerPool`), and the page gives None, so its entry falls back to the feed's
    text. A worker that dies (killed for memory, crashed inside libxml2) costs only its page.
    Workers start with the first page and import trafilatura once.
    """

    def __init__(self, workers: int | None = None, *, deadline: float = EXTRACT_DEADLINE) -> None:
        self._pool = WorkerPool(
            pool_size() if workers is None else workers, name="extract", preload=(__name__,)
        )
        self._deadline = deadline
        self._closed = False

    async def extract(self, html: bytes, url: str) -> ExtractedPage | None:
        """`extract_for_storing(html, url)` run in a worker process; None past the deadline."""
        if self._closed:
            raise RuntimeError("Extractor is closed")
        try:
            return await self._pool.run(extract_for_storing, html, url, deadline=self._deadline)
        except WorkerTimeout:
            _log.warning(
                "extraction stopped after %gs url=%s; using the feed text", self._deadline, url
            )
        except WorkerDied as exc:
            _log.warning("extraction worker died url=%s (%s); using the feed text", url, exc)
        return None

    def close(self) -> None:
        """Stop the workers: queued pages are cancelled, running ones finish first."""
        self._closed = True
        self._pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def article_from(
    entry: Entry,
    page: ExtractedPage | None,
    *,
    source: str,
    outlet: str,
    url: str,
    link: str,
    aliases: tuple[str, ...] = (),
) -> Article:
    """The Article for `entry`: the page's text when there is a page, else the feed's summary.

    The feed's title and date win over the page's (the feed states them on purpose; the page's
    are guessed by trafilatura), and the page fills in what the feed left out.
    """
    title = _one_line(entry.title)
    summary = _one_line(entry.summary)
    if page is None:
        return Article(
            url=url,
            link=link,
            source=source,
            outlet=outlet,
            title=title,
            summary=summary,
            text=entry.summary.strip(),
            text_from="feed",
            published=entry.published,
            guid=entry.guid,
            aliases=aliases,
        )
    return Article(
        url=url,
        link=link,
        source=source,
        outlet=outlet,
        title=title or _one_line(page.title or ""),
        summary=summary,
        text=page.text,
        text_from="page",
        published=entry.published or page.published,
        language=page.language,
        guid=entry.guid,
        aliases=aliases,
    )
