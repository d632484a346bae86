"""dedupe under generated input: canonical_url gives a fixed point or a UrlError, nothing else."""

from __future__ import annotations

import operator
from urllib.parse import quote_from_bytes, unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.provisional import urls

from monitor import dedupe
from monitor.dedupe import (
    BANDS,
    Fingerprint,
    canonical_url,
    is_article_link,
    similarity,
    text_fingerprint,
)
from monitor.errors import UrlError

# Few examples each: the whole file runs in a few seconds.
FUZZ = settings(max_examples=200, deadline=None)

# Links as pages and feeds hold them: AMP and tracking forms, wrappers, ports, dot segments,
# escapes, fragments; mostly valid, so that idempotence is tested on many results.
URLISH = (
    r"\A(https?|HTTPS?|HtTp|ftp|javascript|mailto)://(us:er@)?"
    r"(www-x-com\.cdn\.ampproject\.org/[cv]/(s/)?|google\.com/amp/(s/)?)?"
    r"(www\.|amp\.|WWW\.)?([a-z0-9-]{1,8}|[\u00e0-\u00ff\u0430-\u044f]{1,4})(\.[a-zA-Z]{2,4}){1,2}\.?"
    r"(:[0-9]{1,5})?"
    r"(/(amp|AMP|\.|\.\.|[A-Za-z0-9._~!$&'()*+,;=:@-]{1,6}|%[0-9a-fA-F]{2}|%|\u00e9|;jsessionid=1"
    r"|x\.amp|y\.amp\.html|c|s|v)){0,6}/{0,2}"
    r"(\?((utm_source|amp|outputType|id|B|ref|%75tm_x|a\+b|%3D)(=[a-z0-9%+=]{0,4})?&{0,2}){0,4})?"
    r"(#!?[a-z0-9/%]{0,6})?\Z"
)
# Anything vaguely like a link: mostly rejected, which must be a UrlError and nothing else.
LOOSE = (
    r"\A\s?([a-zA-Z]{1,10}:)?(/{0,3})([^\s/?#]{0,10}@)?[^/?#]{0,20}(:[^/?#]{0,6})?"
    r"(/[^?#]{0,10}){0,3}(\?[^#]{0,12})?(#.{0,6})?\s?\Z"
)


def canonical_or_rejected(url: str, base: str | None = None) -> str | None:
    """canonical_url's answer, or None when it raised UrlError; any other exception fails."""
    try:
        result = canonical_url(url, base)
    except UrlError:
        assert not is_article_link(url) or base is not None
        return None
    assert isinstance(result, str)
    assert canonical_url(result) == result
    assert is_article_link(result)
    return result


# Prefixes that get arbitrary text past the scheme check into the host, path, query, fragment.
PREFIXES = [
    "",
    "http://",
    "https://",
    "https://dawn.com",
    "https://dawn.com/",
    "https://dawn.com/?",
]


@FUZZ
@given(st.builds(operator.add, st.sampled_from(PREFIXES), st.text()))
def test_arbitrary_text(text: str) -> None:
    canonical_or_rejected(text)


@FUZZ
@given(st.from_regex(URLISH) | st.from_regex(LOOSE))
def test_urlish_strings(url: str) -> None:
    canonical_or_rejected(url)


@FUZZ
@given(st.from_regex(URLISH), st.sampled_from(["https://www.dawn.com/news/", "http://[::1]/a/b"]))
def test_urlish_strings_against_a_base(url: str, base: str) -> None:
    canonical_or_rejected(url, base)


# Plain URLs (see dedupe._PLAIN_URL) and their near misses: hosts to strip or unwrap, default
# and out-of-range ports, AMP and dot segments, empty segments, ";".
PLAINISH = (
    r"\Ahttps?://((www\.|amp\.)?[a-z0-9_-]{1,5}(\.(com|pk)){0,2}|google\.com|google\.co\.uk"
    r"|[a-z]{1,3}\.cdn\.ampproject\.org)(:(0|80|443|8080|65535|65536|99999))?"
    r"(/(amp|AMP|\.|\.\.|x\.amp|y\.AMP\.html|\.amp|[A-Za-z0-9_.~!$&'()*+,=:@-]{1,6}|;|[cv]|s"
    r"|x\.com)){0,5}"
    r"/?\Z"
)


@settings(max_examples=2000, deadline=None)
@given(st.from_regex(PLAINISH) | st.from_regex(URLISH))
def test_plain_urls_skip_parsing_only_when_the_parse_would_give_them_back(url: str) -> None:
    try:
        parsed: str | None = str(dedupe._canonical(url, None))
    except UrlError:
        parsed = None
    if dedupe._is_plain(url):
        assert parsed == url
        assert canonical_url(url) == url


def test_common_links_are_plain() -> None:
    for url in [
        "https://dawn.com/",
        "https://www.dawn.com/news/1920349",  # "www." goes: not plain
        "http://127.0.0.2:8081/news/3/12-pakistan-signs-minerals-deal",
        "https://tribune.com.pk/story/2539011/pakistan-us-sign-500m-deal",
        "https://example.org/a/b.html",
    ]:
        assert dedupe._is_plain(url) == ("www." not in url)
        assert canonical_url(url) == str(dedupe._canonical(url, None))
    # At the limits of a host: labels of 63 characters and hosts of 253 are plain; longer
    # ones are left to the full parse, which refuses them.
    label = "a" * 63
    longest = ".".join([label, label, label, "a" * 61])
    assert len(longest) == 253 and dedupe._is_plain(f"https://{longest}/x")
    for host in (f"{label}a.com", f"{longest}a", f"{longest}.b"):
        assert not dedupe._is_plain(f"https://{host}/x")
        with pytest.raises(UrlError):
            canonical_url(f"https://{host}/x")


@FUZZ
@given(urls())
def test_valid_urls_are_accepted(url: str) -> None:
    assert canonical_or_rejected(url) is not None


@FUZZ
@given(st.text() | st.lists(st.text(min_size=1), min_size=30, max_size=80).map(" ".join))
def test_any_text_fingerprints_or_is_too_short(text: str) -> None:
    fingerprint = text_fingerprint(text)
    if fingerprint is not None:
        assert Fingerprint.from_bytes(fingerprint.to_bytes()) == fingerprint
        assert similarity(fingerprint, fingerprint) == 1.0
        assert len(fingerprint.bands()) == BANDS


@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
    | st.lists(st.sampled_from([*"aZ09-._~!$&'()*+,;=:@/?#%[] é", "%2e", "%41"])).map("".join),
    st.sampled_from([dedupe._PATH_SAFE, dedupe._QUERY_SAFE, dedupe._FRAGMENT_SAFE]),
)
def test_percent_normalising_skips_only_texts_it_would_leave_alone(text: str, safe: str) -> None:
    assert dedupe._pct(text, safe) == quote_from_bytes(unquote_to_bytes(text), safe=safe)
