"""Pure decisions on "same article" and "same story": canonical URLs, fingerprints, title keys.

Nothing here does I/O; storage calls these functions and keeps their results.

Same article: `canonical_url`
    One spelling per article URL, for identity rather than for fetching: lower-case scheme and
    host, IDNA host without "www.", no default port, no userinfo, no fragment (a "#!" hash-bang
    route is kept, as it names the page), no tracking parameters, remaining parameters sorted,
    percent-encoding normalised (unreserved characters decoded, hex upper-case, everything else
    encoded as UTF-8), dot segments resolved, duplicate and trailing slashes removed, ";jsessionid"
    dropped, and the AMP forms mapped to the article itself: a trailing "/amp" or leading "/amp/"
    segment, a ".amp" suffix, "?amp", "?outputType=amp" and the AMP viewer parameters, an "amp."
    host, and the AMP cache and Google AMP viewer wrappers
    (`x-com.cdn.ampproject.org/c/s/x.com/...`, `google.com/amp/s/x.com/...`).
    The result is a fixed point: canonical_url(canonical_url(u)) == canonical_url(u).

Same story: `text_fingerprint`, `similarity`, `is_near_duplicate`, `Fingerprint.bands`
    Text is normalised before shingling -- mojibake of typographic punctuation repaired, NFKD,
    Latin/Greek/Cyrillic diacritics and Arabic/Hebrew vowel points removed, case folded, every
    run of punctuation or white space a single separator -- so curly and straight quotes,
    "Rare-Earth" and "rare earth", "Pakistan’s" and "Pakistan's" give the same words. Chinese
    and Japanese characters count as one word each, since those scripts do not use spaces.

    Parameters, and why (figures from benchmarks/dedupe_bench.py on the shared data):

    * SHINGLE_WORDS = 4. With 3, 4 or 5 the exact resemblance of a seed and its re-published
      copy is 0.77-0.92, and of two different articles at most 0.15; 4 words are long enough that
      the stock phrases of one beat ("the United States and", "rare earth minerals") rarely make
      different articles alike, and short enough that an edit disturbs few shingles.
    * MinHash by one-permutation hashing with optimal densification (Li, Owen & Zhang 2012;
      Shrivastava 2017): each distinct shingle is hashed once with BLAKE2b under a fixed
      personalisation string, so signatures are the same in every process and Python version
      (the built-in `hash()` of a str is salted per process); the hash picks one of NUM_HASHES
      bins and the bin keeps its smallest hash. An empty bin copies the first non-empty bin of
      its own fixed pseudo-random probe order. Each slot of two signatures agrees with
      probability equal to the Jaccard resemblance of the two shingle sets, as with NUM_HASHES
      independent permutations, at O(shingles + NUM_HASHES) cost instead of
      O(shingles x NUM_HASHES): about 2 ms of CPU for a 1,500-word article in pure Python,
      where 126 `(a*h + b) mod p` permutations take about 40 ms. Its mean estimate error on
      copies and same-story pairs is 0.02, that of the classic scheme 0.02 as well.
    * NUM_HASHES = 126: the standard error of `similarity` is at most sqrt(0.25 / 126) = 0.045.
    * THRESHOLD = 0.5. The five seeds (five articles on one story) measure at most 0.01 against
      each other and the 16,290 pairs of the 181 benchmark articles at most 0.16; re-published
      copies (their own ~80 words of boilerplate, a new headline, the middle paragraph dropped)
      measure 0.79-0.89 for the seeds and 0.53-1.0 for every benchmark article of 250 words or
      more. Of shorter articles such a copy can fall below 0.5, because the boilerplate and the
      missing paragraph are then a large share of the text (its exact resemblance is below 0.5
      too); a lower threshold would buy them at the price of merging different articles.
    * BANDS x ROWS = 42 x 3 for locality-sensitive hashing: a pair of similarity s shares at
      least one band with probability 1 - (1 - s^3)^42: 0.996 at s = 0.5, 0.99996 at 0.6 and
      0.94 at 0.4, against 0.04 at 0.1 and 0.005 at 0.05. Storage only compares an article
      with those sharing a band, so a copy must be found there with near certainty, while a
      false candidate costs one `similarity` call. Four rows would make ten times fewer false
      candidates at s = 0.1 but miss one copy in seven at s = 0.5.
    * CONTAINMENT = 0.6 with CONTAINMENT_FLOOR = 0.3: a short article (under ~250 words)
      re-published with ~80 words of another site's boilerplate and a paragraph dropped can
      resemble its original by less than THRESHOLD, because the boilerplate is a large share of
      the copy; but nearly all of the shorter text is still found in the longer. Fingerprints
      keep the number of distinct shingles, so containment follows from the resemblance. The
      floor keeps containment from joining texts that share only a quoted passage: different
      articles measure at most 0.16 on the benchmark, far below it.
    * MIN_WORDS = 40: below that a text (a feed summary, a teaser) has too few shingles to tell a
      copy from a same-topic article; `title_key` is the fallback for such items.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import operator
import re
import struct
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote_from_bytes, unquote_to_bytes, urljoin

import idna

from monitor.errors import UrlError

# The compiled form of `_min_hashes_py` (monitor/_speedups.c), where the build had a compiler.
_compiled_min_hashes: Callable[[str, int, int, bytes, int], tuple[list[int], int, int]] | None
_compiled_min_hashes = None
with contextlib.suppress(ImportError):
    from monitor._speedups import min_hashes as _compiled_min_hashes

__all__ = [
    "BANDS",
    "CONTAINMENT",
    "CONTAINMENT_FLOOR",
    "MIN_WORDS",
    "NUM_HASHES",
    "ROWS",
    "SHINGLE_WORDS",
    "THRESHOLD",
    "Fingerprint",
    "canonical_url",
    "containment",
    "is_article_link",
    "is_near_duplicate",
    "near_duplicate_similarity",
    "outlet_of",
    "similarity",
    "text_fingerprint",
    "title_key",
    "without_publisher_suffix",
]

# --- canonical URLs ----------------------------------------------------------------------------

# Query parameters that say how a reader arrived, never which article: analytics and ad click
# ids, newsletter and social-share markers, AMP viewer state. Compared case-insensitively.
_TRACKING_PARAMS = frozenset(
    {
        # ad and analytics click ids
        "_ga",
        "_gl",
        "dclid",
        "fbclid",
        "gbraid",
        "gclid",
        "gclsrc",
        "igsh",
        "igshid",
        "li_fat_id",
        "msclkid",
        "rb_clickid",
        "s_cid",
        "s_kwcid",
        "ttclid",
        "twclid",
        "wbraid",
        "yclid",
        "__twitter_impression",
        "_branch_match_id",
        "_branch_referrer",
        # e-mail and marketing automation (Mailchimp, HubSpot, Marketo, Eloqua, Vero, Olytics)
        "_hsenc",
        "_hsmi",
        "elqtrack",
        "elqtrackid",
        "mc_cid",
        "mc_eid",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "vero_conv",
        "vero_id",
        # campaign and referrer markers of news sites and aggregators
        "cmp",  # Guardian CMP=share_btn_tw
        "cmpid",
        "ftag",  # CNET, ZDNet
        "icid",
        "intcmp",
        "ncid",  # Yahoo, Engadget
        "ocid",  # MSN
        "ref",
        "ref_src",
        "ref_url",
        "sgrp",  # NYT
        "smid",  # NYT share medium
        "smtyp",
        "wt.mc_ev",
        "wt.mc_id",
        "xtor",  # AT Internet, most French outlets
        "guccounter",  # Yahoo consent redirect
        "guce_referrer",
        "guce_referrer_sig",
        # share buttons
        "mibextid",
        "share",
        "soc_src",
        "soc_trk",
        "sr_share",
        # AMP viewer and cache state
        "amp",
        "_amp",
        "ampshare",
        "aoh",
        "usqp",
        "__amp_source_origin",
    }
)
_TRACKING_PREFIXES = (
    "utm_",  # Google Analytics campaigns
    "at_",  # AT Internet / Piano: at_medium, at_campaign, at_link_id, ...
    "pk_",  # Matomo (Piwik)
    "mtm_",  # Matomo
    "hsa_",  # HubSpot ads
    "fb_",  # fb_action_ids, fb_ref, fb_source
    "ns_",  # Nielsen / comScore: ns_mchannel, ns_campaign, ...
    "amp_",  # AMP viewer: amp_js_v, amp_gsa, amp_ct, amp_tf
)

# Characters left literal after decoding, per component; all others except the unreserved
# A-Z a-z 0-9 - . _ ~ are percent-encoded. "/" stays encoded inside a path segment, and "&", "="
# and "+" inside a query part, because decoding them would change where the parts split.
_PATH_SAFE = "!$&'()*+,;=:@"
_QUERY_SAFE = "!$'()*,;:@/?"
_FRAGMENT_SAFE = "!$&'()*+,;=:@/?"

# RFC 3986 appendix B: any string splits into these five parts.
_URI = re.compile(r"^(?:([^:/?#]+):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?\Z", re.DOTALL)
# Leading and trailing C0 controls and spaces are stripped, and tabs and newlines removed, as
# browsers do with the href of a link (WHATWG URL standard).
_C0_AND_SPACE = "".join(map(chr, range(0x21)))
# The most common form of an http(s) URL, in which canonical_url runs for every entry of a changed
# feed: a lower-case host of plain labels (not "www." or "amp."), maybe a port (no leading 0),
# segments of characters that percent-encoding leaves alone (but ";", which may start a
# ";jsessionid" to drop; no dot segment, no empty one), no query or fragment. Such a URL is its
# own canonical form once `_is_plain` has checked what a pattern cannot, and needs no parsing.
_PLAIN_SEGMENT = r"(?!\.\.?(?:/|\Z))[A-Za-z0-9_.~!$&'()*+,=:@-]+"
_PLAIN_URL = re.compile(
    r"(https?)://((?!www\.|amp\.)[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*)(?::([1-9][0-9]{0,4}))?"
    rf"/(?:{_PLAIN_SEGMENT}(?:/{_PLAIN_SEGMENT})*)?"
)
_TAB_AND_NEWLINE = re.compile(r"[\t\n\r]")
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_PORT = re.compile(r"[0-9]+")
_JSESSIONID = re.compile(r";jsessionid=[^;]*", re.IGNORECASE)
_GOOGLE_HOST = re.compile(r"google\.[a-z]{2,3}(?:\.[a-z]{2})?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_HOST_LENGTH = 253
_SHOWN_LENGTH = 200


@dataclass(frozen=True, slots=True)
class _Url:
    """A URL split into its normalised parts; `path` holds the non-empty segments."""

    scheme: str
    host: str
    port: int | None
    path: tuple[str, ...]
    query: tuple[tuple[str, str | None], ...]  # (key, value); None when the part has no "="
    fragment: str | None  # only a "#!" route

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        query = "&".join(key if value is None else f"{key}={value}" for key, value in self.query)
        return (
            f"{self.scheme}://{self.host}{port}/{'/'.join(self.path)}"
            + (f"?{query}" if query else "")
            + (f"#{self.fragment}" if self.fragment is not None else "")
        )


def canonical_url(url: str, base: str | None = None) -> str:
    """The one canonical spelling of the http(s) URL `url`, resolved against `base` if relative.

    Raises UrlError when the result is not a usable http(s) URL: another scheme (javascript:,
    data:, mailto:, ...), a relative URL without a base, no host, a malformed host or port.
    """
    if base is None and _is_plain(url):
        return url
    return str(_canonical(url, base))


def _is_plain(url: str) -> bool:
    """Whether `url` is a plain URL (`_PLAIN_URL`) that is its own canonical form: what the
    pattern cannot say checked too (the host's length, the port, AMP forms)."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain is None:
        return False
    scheme, host, port = plain.groups()
    if len(host) > _MAX_HOST_LENGTH or "ampproject" in host or "google" in host:
        return False  # the AMP wrappers are unwrapped (`_unwrap_amp_cache`)
    if port is not None and (int(port) > 0xFFFF or int(port) == _DEFAULT_PORTS[scheme]):
        return False
    path = url[plain.end(3 if port is not None else 2) + 1 :].lower()
    first, last = path.partition("/")[0], path.rpartition("/")[2]
    return "amp" not in (first, last) and not last.endswith((".amp", ".amp.html"))


def is_article_link(url: str) -> bool:
    """True when `canonical_url` accepts `url`: an absolute http(s) URL with a usable host."""
    try:
        _canonical(url, None)
    except UrlError:
        return False
    return True


def outlet_of(url: str) -> str:
    """The site an article URL belongs to: its canonical host, e.g. "dawn.com". Raises UrlError.

    A port other than the scheme's default is part of the site ("127.0.0.1:8081"), as it is of
    a web origin: two servers on one address are two sites.
    """
    parts = _canonical(url, None)
    return parts.host if parts.port is None else f"{parts.host}:{parts.port}"


def _canonical(url: str, base: str | None) -> _Url:
    parts = _parse(_resolve(url, base))
    # Every pass unwraps or strips something, so the loop ends; it is a loop rather than
    # recursion so that a hostile nest of wrappers cannot exhaust the stack. Unwrapping is tried
    # before each strip because stripping "/amp" can reveal a wrapper ("/amp/c/s/x.com/...").
    while True:
        inner = _unwrap_amp_cache(parts)
        if inner is not None:
            try:
                parts = _parse(inner)
                continue
            except UrlError:
                pass  # the wrapped URL is unusable: the wrapper stands for itself
        stripped = _strip_amp(parts)
        if stripped == parts:
            return parts
        parts = stripped


def _resolve(url: str, base: str | None) -> str:
    """`url` cleaned as a browser cleans an href, and made absolute against `base`."""
    url = _clean(url)
    if base is None:
        return url
    try:
        return urljoin(_clean(base), url)
    except ValueError as exc:  # urllib rejects some malformed hosts, e.g. an unclosed "[::1"
        raise UrlError(f"cannot resolve {_shown(url)} against {_shown(base)}: {exc}") from exc


def _shown(url: str) -> str:
    """`url` quoted for an error message, cut short: a data: URL can hold a whole image."""
    return repr(url if len(url) <= _SHOWN_LENGTH else f"{url[:_SHOWN_LENGTH]}...")


def _clean(url: str) -> str:
    try:
        url.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise UrlError(f"not a URL: {_shown(url)}") from exc
    return _TAB_AND_NEWLINE.sub("", url.strip(_C0_AND_SPACE))


def _parse(url: str) -> _Url:
    match = _URI.match(url)
    assert match is not None  # every group is optional: the pattern matches any string
    scheme, authority, path, query, fragment = match.groups()
    if scheme is None:
        raise UrlError(f"not an absolute URL: {_shown(url)}")
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UrlError(f"not an http(s) URL: {_shown(url)}")
    if not authority:
        raise UrlError(f"no host in {_shown(url)}")
    host, port = _host_and_port(authority, url)
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return _Url(
        scheme=scheme,
        host=host,
        port=port,
        path=_path(path),
        query=_query(query or ""),
        fragment=(
            _pct(fragment, _FRAGMENT_SAFE) if fragment and fragment.startswith("!") else None
        ),
    )


def _host_and_port(authority: str, url: str) -> tuple[str, int | None]:
    """The normalised host and the port of an authority; userinfo is dropped."""
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        literal, closed, rest = hostport[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise UrlError(f"bad host in {_shown(url)}")
        if "%" in literal:  # a zone id means nothing outside the machine that wrote it
            raise UrlError(f"IPv6 zone id in {_shown(url)}")
        try:
            host = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError as exc:
            raise UrlError(f"bad IPv6 address in {_shown(url)}") from exc
        port_text = rest[1:]
    else:
        name, _, port_text = hostport.partition(":")
        host = _host_name(name, url)
    if not port_text:
        return host, None
    digits = port_text.lstrip("0")
    # The length test comes first: int() refuses strings of more than 4,300 digits.
    if not _PORT.fullmatch(port_text) or len(digits) > 5 or not 0 < int(digits or "0") <= 0xFFFF:
        raise UrlError(f"bad port in {_shown(url)}")
    return host, int(digits)


def _host_name(name: str, url: str) -> str:
    """A DNS name or IPv4 address in ASCII lower case, without a trailing dot or "www."/"amp."."""
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except UnicodeError as exc:  # idna.IDNAError is one
            raise UrlError(f"bad international host in {_shown(url)}: {exc}") from exc
    name = name.lower().removesuffix(".")
    labels = name.split(".")
    if len(name) > _MAX_HOST_LENGTH or not all(_LABEL.fullmatch(label) for label in labels):
        raise UrlError(f"bad host in {_shown(url)}")
    # "www." and an AMP "amp." name the same site as the bare domain; keep at least two labels
    # so that "www.com" stays itself.
    while len(labels) > 2 and labels[0] in ("www", "amp"):
        labels.pop(0)
    return ".".join(labels)


def _path(path: str) -> tuple[str, ...]:
    """Non-empty, normalised segments with dot segments resolved (RFC 3986 5.2.4)."""
    segments: list[str] = []
    for raw in path.split("/"):
        # Decoding comes first, so that "%2E" and "%3Bjsessionid" are seen for what they are.
        segment = _pct(raw, _PATH_SAFE)
        if ";" in segment:
            segment = _JSESSIONID.sub("", segment)
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return tuple(segments)


def _query(query: str) -> tuple[tuple[str, str | None], ...]:
    """The query's parameters, normalised, without tracking parameters, sorted."""
    params: list[tuple[str, str | None]] = []
    for part in query.split("&"):
        if not part:
            continue
        raw_key, has_value, raw_value = part.partition("=")
        key = _pct_plus(raw_key)
        value = _pct_plus(raw_value) if has_value else None
        lowered = key.lower()
        if lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES):
            continue
        if lowered == "outputtype" and (value or "").lower() == "amp":
            continue
        params.append((key, value))
    return tuple(sorted(params, key=lambda p: (p[0], p[1] is not None, p[1] or "")))


def _pct_plus(text: str) -> str:
    # In a query "+" is a space and "%2B" a plus sign: normalise between the "+"s, keep them.
    return "+".join(_pct(piece, _QUERY_SAFE) for piece in text.split("+"))


def _pct(text: str, safe: str) -> str:
    """Percent-encoding normalised byte for byte, so that non-UTF-8 escapes survive unchanged."""
    if _PCT_UNCHANGED[safe].fullmatch(text):
        return text
    return quote_from_bytes(unquote_to_bytes(text), safe=safe)


# The texts `_pct` gives back as they are: no "%" escape to decode, and only characters that
# quote_from_bytes leaves alone (letters, digits, "_.-~" and the safe ones). Most segments of
# most URLs are such: canonical_url runs for every entry of a changed feed, and decoding and
# encoding them was half its time.
_PCT_UNCHANGED = {
    safe: re.compile(f"[A-Za-z0-9_.~{re.escape(safe)}-]*")
    for safe in (_PATH_SAFE, _QUERY_SAFE, _FRAGMENT_SAFE)
}


def _unwrap_amp_cache(url: _Url) -> str | None:
    """The publisher's URL inside an AMP cache or Google AMP viewer URL, else None."""
    kinds: tuple[str, ...]
    if url.host == "cdn.ampproject.org" or url.host.endswith(".cdn.ampproject.org"):
        kinds = ("c", "v")  # content and viewer; /i/ and /r/ serve images and resources
    elif _GOOGLE_HOST.fullmatch(url.host):
        kinds = ("amp",)
    else:
        return None
    path = url.path
    if len(path) < 2 or path[0] not in kinds:
        return None
    scheme, rest = ("https", path[2:]) if path[1] == "s" else ("http", path[1:])
    if not rest or "." not in rest[0]:
        return None
    # The first segment is the publisher's authority; _Url only concatenates its host field.
    return str(_Url(scheme, rest[0], None, rest[1:], url.query, url.fragment))


def _strip_amp(url: _Url) -> _Url:
    """`url` without the AMP path forms: "/amp" at either end, a ".amp" or ".amp.html" suffix."""
    path = list(url.path)
    while path:
        last = path[-1].lower()
        if last == "amp":
            path.pop()
        elif path[0].lower() == "amp":
            path.pop(0)
        elif last.endswith(".amp") and _has_word(last[:-4]):
            path[-1] = path[-1][:-4]
        elif last.endswith(".amp.html") and _has_word(last[:-9]):
            path[-1] = path[-1][:-9] + ".html"
        else:
            break
    return _Url(url.scheme, url.host, url.port, tuple(path), url.query, url.fragment)


def _has_word(stem: str) -> bool:
    # A suffix is only removed from a real name: "..amp" must not become the segment "."
    return any(ch.isalnum() for ch in stem)


# --- text fingerprints -------------------------------------------------------------------------

SHINGLE_WORDS = 4
NUM_HASHES = 126
BANDS = 42
ROWS = 3
THRESHOLD = 0.5
CONTAINMENT = 0.6
CONTAINMENT_FLOOR = 0.3
MIN_WORDS = 40

_FORMAT_VERSION = 2  # 1: the signature alone; 2: and the number of distinct shingles
_SIGNATURE_V1 = struct.Struct(f"<B{NUM_HASHES}Q")
_SIGNATURE = struct.Struct(f"<B{NUM_HASHES}QI")
_BAND = struct.Struct(f"<H{ROWS}Q")  # what a band key hashes (see Fingerprint.bands)
_BAND_PREFIXES = tuple(struct.pack("<H", band) for band in range(BANDS))
_VALUES = struct.Struct(f"<{NUM_HASHES}Q")
_BAND_KEYS = struct.Struct(f"<{BANDS}q")  # the 8-byte digests as signed little-endian integers
_SHINGLE_PERSON = b"monitor.shingle"
_SHINGLE_HASHER = hashlib.blake2b(digest_size=8, person=_SHINGLE_PERSON)
_BAND_HASHER = hashlib.blake2b(digest_size=8, person=b"monitor.band")
_EMPTY = 1 << 64  # above every 64-bit hash: marks a bin no shingle fell in


def _probe_order(i: int) -> tuple[int, ...]:
    """The other bins in a fixed pseudo-random order: where an empty bin `i` borrows its value.

    Derived from BLAKE2b rather than `random`, whose algorithms may change between Python
    versions; the order is part of the signature format.
    """

    def rank(j: int) -> bytes:
        return hashlib.blake2b(f"{i}.{j}".encode(), person=b"monitor.probe").digest()

    return tuple(sorted((j for j in range(NUM_HASHES) if j != i), key=rank))


_PROBES = tuple(_probe_order(i) for i in range(NUM_HASHES))

# Mojibake of U+2018-U+201D quotes, dashes and ellipses: their UTF-8 bytes E2 80 xx read as
# cp1252/latin-1 ("â€™") or as Thai cp874 ("โ", the rest lost). Thai puts "โ" only before a
# consonant, so elsewhere it is a garbled punctuation mark.
_MOJIBAKE_PUNCTUATION = re.compile(
    "â[€\u0080]["
    + re.escape(bytes(range(0x80, 0xC0)).decode("cp1252", errors="ignore"))
    + "\u0080-\u00bf]?|โ€?(?![\u0e01-\u0e2e])"
)
# Accents of Latin, Greek and Cyrillic, Hebrew points and Arabic harakat once NFKD has split
# them off their letters; writers and sites use them inconsistently.
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\u0591-\u05c7\u064b-\u065f\u0670]"
)
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_CJK}]|[^\\W_{_CJK}]+")
# "Title - Publisher", as Google News writes its titles; the last dash or bar splits.
_TITLE_SUFFIX = re.compile(r"(.*\S)\s+[-–—|]\s+(.+?)\s*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A MinHash signature of a text's word shingles: NUM_HASHES values below 2**64, and how
    many distinct shingles the text has (0 when unknown), which turns resemblance into
    containment (see `is_near_duplicate`)."""

    signature: tuple[int, ...]
    size: int = 0
    # The band keys, once `bands` has computed them. Pickled with the fingerprint: the
    # extraction worker that fingerprints a page computes them, and storing reuses them.
    _bands: tuple[int, ...] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        signature = self.signature
        if len(signature) != NUM_HASHES or min(signature) < 0 or max(signature) >= _EMPTY:
            raise ValueError(f"a signature is {NUM_HASHES} integers in [0, 2**64)")

    def bands(self) -> tuple[int, ...]:
        """BANDS locality-sensitive hash keys, signed 64-bit; near duplicates share one.

        The band's index is hashed in, so equal rows in different bands give different keys and
        one index on the key column serves every band. Computed once per fingerprint.
        """
        if self._bands is not None:
            return self._bands
        # Band b hashes _BAND.pack(b, *its ROWS values): its index as 2 bytes, then the values,
        # which are those bytes of the whole signature packed once.
        values = _VALUES.pack(*self.signature)
        width = 8 * ROWS
        digests = []
        for band, prefix in enumerate(_BAND_PREFIXES):
            hasher = _BAND_HASHER.copy()  # cheaper than passing the personalisation each time
            hasher.update(prefix + values[band * width : (band + 1) * width])
            digests.append(hasher.digest())
        keys: tuple[int, ...] = _BAND_KEYS.unpack(b"".join(digests))
        object.__setattr__(self, "_bands", keys)
        return keys

    def to_bytes(self) -> bytes:
        """A version byte, the signature as little-endian 64-bit integers, the size (32-bit)."""
        return _SIGNATURE.pack(_FORMAT_VERSION, *self.signature, min(self.size, 2**32 - 1))

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """The fingerprint `to_bytes` gave (or a version-1 one, without its size); ValueError
        for bytes of another format or length."""
        if len(data) == _SIGNATURE.size and data[0] == _FORMAT_VERSION:
            values = _SIGNATURE.unpack(data)  # the version, the signature, the size
            return cls._unchecked(values[1:-1], values[-1])
        if len(data) == _SIGNATURE_V1.size and data[0] == 1:
            return cls._unchecked(_SIGNATURE_V1.unpack(data)[1:], 0)
        raise ValueError("not a fingerprint of this format")

    @classmethod
    def _unchecked(cls, signature: tuple[int, ...], size: int) -> Fingerprint:
        """A fingerprint without `__post_init__`'s check, for NUM_HASHES values that `struct`
        unpacked as unsigned 64-bit integers: valid by construction. Storage reads one for
        every near-duplicate candidate, and the check was half the cost of reading it."""
        fingerprint = object.__new__(cls)
        object.__setattr__(fingerprint, "signature", signature)
        object.__setattr__(fingerprint, "size", size)
        object.__setattr__(fingerprint, "_bands", None)
        return fingerprint


def text_fingerprint(text: str) -> Fingerprint | None:
    """The fingerprint of `text`, or None when it has fewer than MIN_WORDS words."""
    folded = _folded(text)
    if _compiled_min_hashes is not None:
        bins, shingles, words = _compiled_min_hashes(
            folded, SHINGLE_WORDS, NUM_HASHES, _SHINGLE_PERSON, _EMPTY
        )
    else:
        bins, shingles, words = _min_hashes_py(folded)
    if words < MIN_WORDS:
        return None
    return Fingerprint(tuple(_densified(bins)), shingles)


def _min_hashes_py(folded: str) -> tuple[list[int], int, int]:
    """Of the distinct shingles of the words of `folded` (`_folded`'s), the least hash in each
    of NUM_HASHES bins (`_EMPTY` where none fell); how many shingles and words there were.

    The reference for `_speedups.min_hashes`, which gives the same without making a string of
    each word and shingle: this was ~0.5 ms of the ~0.7 ms an article's fingerprint took."""
    words = _WORD.findall(folded)
    shingles = set(map(" ".join, zip(*(words[i:] for i in range(SHINGLE_WORDS)), strict=False)))
    bins = [_EMPTY] * NUM_HASHES
    for shingle in shingles:
        hasher = _SHINGLE_HASHER.copy()  # cheaper than passing the personalisation each time
        hasher.update(shingle.encode("utf-8"))
        value = int.from_bytes(hasher.digest(), "little")
        # Values within a bin share their remainder, so comparing whole hashes compares the rest.
        index = value % NUM_HASHES
        if value < bins[index]:
            bins[index] = value
    return bins, len(shingles), len(words)


def _densified(bins: list[int]) -> list[int]:
    """Empty bins filled from the first non-empty bin of their probe order."""
    return [
        value if value != _EMPTY else next(bins[j] for j in _PROBES[i] if bins[j] != _EMPTY)
        for i, value in enumerate(bins)
    ]


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Estimated Jaccard resemblance of the two texts' shingle sets, in [0, 1]."""
    # Both signatures have NUM_HASHES values (see Fingerprint): map stops at neither's end early.
    agree: int = sum(map(operator.eq, a.signature, b.signature))
    return agree / NUM_HASHES


def containment(a: Fingerprint, b: Fingerprint) -> float | None:
    """Estimated share of the shorter text's shingles found in the other, or None when a size
    is unknown. From resemblance J and the sizes: |A ∩ B| = J (|A| + |B|) / (1 + J)."""
    return _containment(a, b, similarity(a, b))


def _containment(a: Fingerprint, b: Fingerprint, resemblance: float) -> float | None:
    """`containment(a, b)` from their resemblance, already computed."""
    if not a.size or not b.size:
        return None
    shared = resemblance * (a.size + b.size) / (1 + resemblance)
    return min(1.0, shared / min(a.size, b.size))


def is_near_duplicate(a: Fingerprint, b: Fingerprint) -> bool:
    """True when the texts are copies of one article: similarity at least THRESHOLD, or, for a
    short article whose copy carries a lot of boilerplate, most of the shorter text contained
    in the other (CONTAINMENT) while still clearly alike (CONTAINMENT_FLOOR)."""
    return near_duplicate_similarity(a, b) is not None


def near_duplicate_similarity(a: Fingerprint, b: Fingerprint) -> float | None:
    """`similarity(a, b)` when `is_near_duplicate(a, b)`, else None: storage ranks the near
    duplicates of an article by it, and computes it once."""
    resemblance = similarity(a, b)
    if resemblance >= THRESHOLD:
        return resemblance
    if resemblance < CONTAINMENT_FLOOR:
        return None
    contained = _containment(a, b, resemblance)
    return resemblance if contained is not None and contained >= CONTAINMENT else None


def title_key(title: str, publisher: str | None = None) -> str:
    """A "publisher|title" key in normalised words, for items with too little text to fingerprint.

    Google News appends " - Publisher" to every title; when `publisher` is given and the title
    ends with it after a dash or bar, that suffix is dropped.
    """
    publisher_words = _words(publisher or "")
    title_words = _words(without_publisher_suffix(title, publisher))
    return f"{' '.join(publisher_words)}|{' '.join(title_words)}"


def without_publisher_suffix(title: str, publisher: str | None) -> str:
    """`title` without the " - Publisher" Google News appends, when that suffix names
    `publisher` (in normalised words); otherwise `title` unchanged."""
    publisher_words = _words(publisher or "")
    suffix = _TITLE_SUFFIX.fullmatch(title)
    if publisher_words and suffix and _words(suffix.group(2)) == publisher_words:
        return suffix.group(1)
    return title


def _words(text: str) -> list[str]:
    """The words of `text`, normalised: typography, case and diacritics do not matter."""
    return _WORD.findall(_folded(text))


def _folded(text: str) -> str:
    """`text` as its words are read: without mojibake punctuation and diacritics, case-folded."""
    if not text.isascii():
        text = _MOJIBAKE_PUNCTUATION.sub(" ", text)
        text = _DIACRITICS.sub("", unicodedata.normalize("NFKD", text))
    return text.casefold()
