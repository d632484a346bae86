"""`type: google_news`: a Google News search, read as the RSS feed Google serves for it.

The search feed's URL is built by config (`google_news_url`: `google_news.base_url`, `hl`, `gl`,
`ceid` and the source's `query`) and parsed like any feed. Its items differ from a publisher's:

- every title ends in " - Publisher": `tidy` removes it; the publisher's name and site come
  from the item's `<source url="…">Publisher</source>` (`Entry.publisher`, `publisher_url`);
- every link points at news.google.com. The pipeline fetches it like any article link; when the
  redirects end on the publisher's page (`resolved`), that page is the article: its URL is stored
  as another URL of the same article, so the publisher's own feed finds it seen, and it is the
  link people get;
- when they do not (the fetch fails, or ends on a Google page such as a consent wall), the item
  keeps Google's link, its text is the feed's, and its outlet is the publisher's site
  (`publisher_outlet`): "Dawn" via Google and dawn.com's own feed then share the title key
  (publisher|title) that files them under one story, alerted once for that outlet.
"""

from __future__ import annotations

import re
from dataclasses import replace

from monitor import dedupe
from monitor.errors import UrlError
from monitor.models import Entry, ParsedFeed

# google.com, news.google.com, consent.google.com, www.google.com.pk, …
_GOOGLE_HOST = re.compile(r"(?:^|\.)google\.[a-z]{2,3}(?:\.[a-z]{2})?$")


def tidy(parsed: ParsedFeed) -> ParsedFeed:
    """The search feed's entries with the " - Publisher" suffix taken off their titles."""
    return replace(
        parsed,
        entries=tuple(
            replace(entry, title=dedupe.without_publisher_suffix(entry.title, entry.publisher))
            for entry in parsed.entries
        ),
    )


def resolved(link: str, final_url: str) -> bool:
    """Whether fetching Google's `link` was redirected to the publisher's page: somewhere else
    than the link itself, and not a Google page (Google answers an unresolvable link with a page
    of its own, or sends it to consent.google.com)."""
    try:
        moved = dedupe.canonical_url(final_url) != dedupe.canonical_url(link)
        end = dedupe.outlet_of(final_url)
    except UrlError:
        return False
    return moved and not is_google_host(end)


def is_google_host(outlet: str) -> bool:
    """news.google.com, consent.google.com, google.com.pk, … (an outlet: host[:port])."""
    return bool(_GOOGLE_HOST.search(outlet.rsplit(":", 1)[0] if ":" in outlet else outlet))


def publisher_outlet(entry: Entry) -> str | None:
    """The outlet an item names: its publisher's site as `dedupe.outlet_of` spells it (the same
    as that site's own articles get), else the publisher's name, else None."""
    if entry.publisher_url:
        try:
            return dedupe.outlet_of(entry.publisher_url)
        except UrlError:
            pass
    return entry.publisher
