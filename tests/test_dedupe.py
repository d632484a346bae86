"""dedupe: canonical URLs, outlets, title keys, and near-duplicate text on the shared seeds."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.dedupe import (
    BANDS,
    CONTAINMENT,
    MIN_WORDS,
    NUM_HASHES,
    THRESHOLD,
    Fingerprint,
    canonical_url,
    containment,
    is_article_link,
    is_near_duplicate,
    outlet_of,
    similarity,
    text_fingerprint,
    title_key,
)
from monitor.errors import UrlError

# --- canonical_url -----------------------------------------------------------------------------

TRACKING = [
    (
        "https://dawn.com/news/1?utm_source=twitter&utm_medium=social&utm_campaign=c"
        "&utm_term=t&utm_content=x&utm_id=9",
        "https://dawn.com/news/1",
    ),
    ("https://dawn.com/news/1?id=7&UTM_Source=rss", "https://dawn.com/news/1?id=7"),
    ("https://dawn.com/news/1?utm%5Fsource=rss", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?fbclid=IwAR0abc&id=7", "https://dawn.com/news/1?id=7"),
    ("https://dawn.com/news/1?gclid=Cj0K&gclsrc=aw.ds", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?dclid=x&gbraid=y&wbraid=z", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?msclkid=abc", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?mc_cid=1a&mc_eid=2b", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?igshid=MzRl&igsh=x", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?_ga=2.1.2.3&_gl=1*x", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?yclid=123", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?ref=homepage&ref_src=twsrc%5Etfw", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?cmpid=rss&ocid=msn&smid=tw-nytimes", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?s_cid=x&__twitter_impression=true", "https://dawn.com/news/1"),
    (
        "https://www.bbc.com/news/world-asia-1?at_medium=RSS&at_campaign=rss&at_link_id=1",
        "https://bbc.com/news/world-asia-1",
    ),
    ("https://theguardian.com/world/x?CMP=share_btn_tw", "https://theguardian.com/world/x"),
    ("https://lemonde.fr/a.html?xtor=RSS-3208", "https://lemonde.fr/a.html"),
    ("https://dawn.com/news/1?share=twitter&sr_share=facebook", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?mibextid=Zxz2cZ&soc_src=social-sh", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?pk_campaign=a&mtm_source=b", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?fb_action_ids=1&fb_source=feed", "https://dawn.com/news/1"),
    ("https://dawn.com/news/1?ns_mchannel=rss&ns_source=x", "https://dawn.com/news/1"),
    ("https://news.yahoo.com/a-1.html?guccounter=1", "https://news.yahoo.com/a-1.html"),
    ("https://dawn.com/news/1?_hsenc=p2A&_hsmi=1&mkt_tok=eyJ", "https://dawn.com/news/1"),
    (
        "https://nytimes.com/2025/x.html?smid=nytcore-ios-share&sgrp=c-cb",
        "https://nytimes.com/2025/x.html",
    ),
    # parameters that name the article stay
    ("https://dawn.com/news?id=1945&page=2", "https://dawn.com/news?id=1945&page=2"),
    ("https://example.com/?p=1234", "https://example.com/?p=1234"),
]

AMP = [
    ("https://dawn.com/news/1945/amp", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945/amp/", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945/AMP", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945/amp/amp", "https://dawn.com/news/1945"),
    ("https://dawn.com/amp/news/1945", "https://dawn.com/news/1945"),
    ("https://dawn.com/amp/", "https://dawn.com/"),
    ("https://bbc.co.uk/news/world-asia-1.amp", "https://bbc.co.uk/news/world-asia-1"),
    (
        "https://cnn.com/2025/10/01/world/story.amp.html",
        "https://cnn.com/2025/10/01/world/story.html",
    ),
    ("https://dawn.com/news/1945?amp", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945?amp=1", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945?amp=true&id=3", "https://dawn.com/news/1945?id=3"),
    ("https://dawn.com/news/1945?outputType=amp", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945?outputType=print", "https://dawn.com/news/1945?outputType=print"),
    ("https://dawn.com/news/1945?_amp=true&usqp=mq331AQ", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945?amp_js_v=0.1&amp_gsa=1", "https://dawn.com/news/1945"),
    (
        "https://amp.theguardian.com/world/2025/oct/01/x",
        "https://theguardian.com/world/2025/oct/01/x",
    ),
    ("https://www.amp.example.com/a", "https://example.com/a"),
    (
        "https://www-dawn-com.cdn.ampproject.org/c/s/www.dawn.com/news/1945/amp",
        "https://dawn.com/news/1945",
    ),
    (
        "https://www-dawn-com.cdn.ampproject.org/v/s/www.dawn.com/news/1945?amp_js_v=0.1",
        "https://dawn.com/news/1945",
    ),
    ("https://example-com.cdn.ampproject.org/c/example.com/a/b", "http://example.com/a/b"),
    ("https://x.cdn.ampproject.org/amp/c/s/example.com/a", "https://example.com/a"),
    ("https://www.google.com/amp/s/www.dawn.com/news/1945/amp", "https://dawn.com/news/1945"),
    ("https://www.google.co.uk/amp/s/amp.dawn.com/news/1945", "https://dawn.com/news/1945"),
    (
        "https://www.google.com/amp/s/www-dawn-com.cdn.ampproject.org/c/s/dawn.com/news/1945",
        "https://dawn.com/news/1945",
    ),
    # not wrappers: no publisher host inside
    ("https://x.cdn.ampproject.org/c/s/", "https://x.cdn.ampproject.org/c/s"),
    ("https://google.com/amp/s/nohost", "https://google.com/s/nohost"),
    # a ".amp" suffix comes off names only
    ("https://dawn.com/..amp", "https://dawn.com/..amp"),
    ("https://dawn.com/.amp", "https://dawn.com/.amp"),
]

SHAPE = [
    # fragments, and a hash-bang route that names the page
    ("https://dawn.com/news/1945#comments", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/1945#", "https://dawn.com/news/1945"),
    ("https://example.com/#!/article/12", "https://example.com/#!/article/12"),
    # default ports
    ("http://dawn.com:80/news/1", "http://dawn.com/news/1"),
    ("https://dawn.com:443/news/1", "https://dawn.com/news/1"),
    ("http://dawn.com:080/news/1", "http://dawn.com/news/1"),
    ("http://dawn.com:443/news/1", "http://dawn.com:443/news/1"),
    ("https://dawn.com:8443/news/1", "https://dawn.com:8443/news/1"),
    ("https://dawn.com:/news/1", "https://dawn.com/news/1"),
    # case: scheme and host fold, the path does not
    ("HTTPS://WWW.Dawn.COM/News/Pakistan", "https://dawn.com/News/Pakistan"),
    ("HtTp://Dawn.com/a", "http://dawn.com/a"),
    # www.
    ("https://www.dawn.com/", "https://dawn.com/"),
    ("https://www.com/", "https://www.com/"),
    ("https://www2.dawn.com/", "https://www2.dawn.com/"),
    # userinfo
    ("https://user:secret@www.dawn.com/news/1", "https://dawn.com/news/1"),
    ("https://@dawn.com/news/1", "https://dawn.com/news/1"),
    # IDNA
    ("https://Bücher.de/", "https://xn--bcher-kva.de/"),
    ("https://xn--bcher-kva.de/", "https://xn--bcher-kva.de/"),
    (
        "https://пример.рф/новости",
        "https://xn--e1afmkfd.xn--p1ai/%D0%BD%D0%BE%D0%B2%D0%BE%D1%81%D1%82%D0%B8",
    ),
    ("https://www.dawn。com/", "https://dawn.com/"),
    ("https://dawn.com./news/1", "https://dawn.com/news/1"),
    # IP addresses
    ("http://[2001:DB8:0:0::1]:8080/a", "http://[2001:db8::1]:8080/a"),
    ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a"),
    # percent-encoding
    ("https://dawn.com/%7euser/%41b", "https://dawn.com/~user/Ab"),
    ("https://dawn.com/a%2fb", "https://dawn.com/a%2Fb"),
    ("https://dawn.com/caf%c3%a9", "https://dawn.com/caf%C3%A9"),
    ("https://dawn.com/café", "https://dawn.com/caf%C3%A9"),
    ("https://dawn.com/caf%E9", "https://dawn.com/caf%E9"),
    ("https://dawn.com/a b/100%", "https://dawn.com/a%20b/100%25"),
    ("https://dawn.com/a%2Cb,c", "https://dawn.com/a,b,c"),
    ("https://dawn.com/s?q=caf%c3%a9&x=%7E", "https://dawn.com/s?q=caf%C3%A9&x=~"),
    ("https://dawn.com/s?q=rare+earth", "https://dawn.com/s?q=rare+earth"),
    ("https://dawn.com/s?q=1%2B1&r=a%26b&t=x%3Dy", "https://dawn.com/s?q=1%2B1&r=a%26b&t=x%3Dy"),
    ("https://dawn.com/s?q=a=b", "https://dawn.com/s?q=a%3Db"),
    # slashes and dot segments
    ("https://dawn.com//news///1945//", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/./a/../1945", "https://dawn.com/news/1945"),
    ("https://dawn.com/../../news/1945", "https://dawn.com/news/1945"),
    ("https://dawn.com/news/%2e%2e/x", "https://dawn.com/x"),
    ("https://dawn.com", "https://dawn.com/"),
    ("https://dawn.com?b=1", "https://dawn.com/?b=1"),
    # query order and emptiness
    ("https://dawn.com/s?b=2&a=1&a=0", "https://dawn.com/s?a=0&a=1&b=2"),
    ("https://dawn.com/s?b&a=&a", "https://dawn.com/s?a&a=&b"),
    ("https://dawn.com/s?&&", "https://dawn.com/s"),
    ("https://dawn.com/s?", "https://dawn.com/s"),
    # session ids in the path
    ("https://dawn.com/news/1945;jsessionid=A1B2C3", "https://dawn.com/news/1945"),
    ("https://dawn.com/news;JSESSIONID=x/1945", "https://dawn.com/news/1945"),
    # what a browser strips from an href
    ("  https://dawn.com/news/\n1945\t ", "https://dawn.com/news/1945"),
]

RELATIVE = [
    ("/news/2", "https://www.dawn.com/news/1", "https://dawn.com/news/2"),
    ("2", "https://dawn.com/news/", "https://dawn.com/news/2"),
    ("../world/3", "https://dawn.com/news/pk/1", "https://dawn.com/news/world/3"),
    ("?page=2", "https://dawn.com/news/1?page=1", "https://dawn.com/news/1?page=2"),
    ("//amp.dawn.com/news/1/amp", "https://tribune.com.pk/", "https://dawn.com/news/1"),
    ("#top", "https://dawn.com/news/1", "https://dawn.com/news/1"),
    ("https://tribune.com.pk/story/9", "https://dawn.com/news/1", "https://tribune.com.pk/story/9"),
    ("  /news/2  ", "https://dawn.com/", "https://dawn.com/news/2"),
]

ACCEPTED = TRACKING + AMP + SHAPE

REJECTED = [
    "javascript:alert(1)",
    "JavaScript:void(0)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "mailto:desk@dawn.com",
    "tel:+923001234567",
    "ftp://dawn.com/file.txt",
    "file:///etc/passwd",
    "about:blank",
    "",
    "   ",
    "/news/1945",
    "//dawn.com/news/1945",
    "dawn.com/news/1945",
    "http://",
    "https:///news/1945",
    "http:dawn.com",
    "http://:80/",
    "https://user@/",
    "https://dawn.com:0/",
    "https://dawn.com:65536/",
    "https://dawn.com:http/",
    "https://dawn.com:-1/",
    "https://dawn.com:80:80/",
    "https://dawn.com:" + "9" * 5000 + "/",
    "https://dawn.com:８０/",
    "http://exa mple.com/",
    "http://exa%6dple.com/",
    "http://a..b.com/",
    "http://dawn.com../",
    "http://" + "a" * 64 + ".com/",
    "http://" + "a." * 127 + "com/",
    "http://[::1/",
    "http://[::1]x/",
    "http://[fe80::1%25eth0]/",
    "http://[not-an-address]/",
    "http://ex\u00adample_\u2603.com/",
    "http://\ud800.com/",
]


@pytest.mark.parametrize(("url", "expected"), ACCEPTED)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(("url", "base", "expected"), RELATIVE)
def test_canonical_url_resolves_against_base(url: str, base: str, expected: str) -> None:
    assert canonical_url(url, base) == expected


@pytest.mark.parametrize(
    "url", [u for u, _ in ACCEPTED] + [e for _, _, e in RELATIVE] + [e for _, e in ACCEPTED]
)
def test_canonical_url_is_idempotent(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once


@pytest.mark.parametrize("url", REJECTED)
def test_canonical_url_rejects(url: str) -> None:
    with pytest.raises(UrlError):
        canonical_url(url)
    assert not is_article_link(url)


@pytest.mark.parametrize(
    ("url", "base"),
    [
        ("javascript:void(0)", "https://dawn.com/"),
        ("mailto:desk@dawn.com", "https://dawn.com/"),
        ("news/1", "ftp://dawn.com/"),
        ("news/1", "http://[::1/"),
    ],
)
def test_canonical_url_rejects_with_base(url: str, base: str) -> None:
    with pytest.raises(UrlError):
        canonical_url(url, base)


@pytest.mark.parametrize("url", [u for u, _ in ACCEPTED])
def test_is_article_link(url: str) -> None:
    assert is_article_link(url)


@pytest.mark.parametrize(
    ("url", "outlet"),
    [
        ("https://www.dawn.com/news/1945", "dawn.com"),
        ("https://amp.theguardian.com/world/x", "theguardian.com"),
        ("https://tribune.com.pk:443/story/1", "tribune.com.pk"),
        # another port, another site: two servers on one address are two outlets
        ("https://tribune.com.pk:8443/story/1", "tribune.com.pk:8443"),
        ("http://127.0.0.1:8081/news/1", "127.0.0.1:8081"),
        ("http://[::1]:8082/news/1", "[::1]:8082"),
        ("https://www-dawn-com.cdn.ampproject.org/c/s/www.dawn.com/news/1/amp", "dawn.com"),
        (
            "https://www.google.com/amp/s/thebalochistanpost.net/2025/10/x/",
            "thebalochistanpost.net",
        ),
        ("https://news.google.com/rss/articles/CBMi?oc=5", "news.google.com"),
        ("https://Bücher.de/x", "xn--bcher-kva.de"),
    ],
)
def test_outlet_of(url: str, outlet: str) -> None:
    assert outlet_of(url) == outlet


def test_outlet_of_rejects_what_canonical_url_rejects() -> None:
    with pytest.raises(UrlError):
        outlet_of("mailto:desk@dawn.com")


# --- title_key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "publisher", "expected"),
    [
        (
            "Pakistan ships first rare-earth consignment to U.S. - Dawn",
            "Dawn",
            "dawn|pakistan ships first rare earth consignment to u s",
        ),
        (
            "Pakistan ships first rare-earth consignment to U.S.",
            "Dawn",
            "dawn|pakistan ships first rare earth consignment to u s",
        ),
        (
            "Pakistan’s “rare earth” pitch to Trump – The Express Tribune",
            "The Express Tribune",
            "the express tribune|pakistan s rare earth pitch to trump",
        ),
        (
            'Pakistan\'s "Rare-Earth"  pitch to TRUMP | The Express Tribune',
            "the express tribune",
            "the express tribune|pakistan s rare earth pitch to trump",
        ),
        ("Café talks in Quetta — Le Monde", "Le Monde", "le monde|cafe talks in quetta"),
        # the suffix is another outlet's name, or a part of the title: it stays
        ("US-Pakistan minerals deal - analysis", "Dawn", "dawn|us pakistan minerals deal analysis"),
        ("USSM - Frontier Works deal - Dawn", "Dawn", "dawn|ussm frontier works deal"),
        # no publisher: nothing to recognise, nothing dropped
        ("Balochistan minerals - Dawn", None, "|balochistan minerals dawn"),
        ("   Rare   earths\n", None, "|rare earths"),
        ("", "Dawn", "dawn|"),
    ],
)
def test_title_key(title: str, publisher: str | None, expected: str) -> None:
    assert title_key(title, publisher) == expected


def test_title_key_ignores_typography() -> None:
    assert title_key("Pakistan’s “rare earth” pitch", "Dawn") == title_key(
        'PAKISTAN\'S "RARE EARTH" PITCH - Dawn', "DAWN"
    )


# --- near duplicates on real text --------------------------------------------------------------

NAV = "Home | World | Business | Sport | Opinion | Technology | Subscribe | Sign in"
BYLINE = "By Staff Reporter | Published 3 October 2025, 10:42am | 4 min read"
READ_MORE = "Read more: Markets rally as the central bank holds rates steady for a third month"
FOOTER = (
    "© 2025 The Example Herald. All rights reserved. Follow us on Facebook, X and Instagram, "
    "and subscribe to our daily newsletter for the top stories delivered to your inbox."
)
NEW_HEADLINE = "Exclusive: what the minerals deal really means for the region"


def republished(text: str) -> str:
    """`text` as another site re-publishes it: a paragraph gone, new headline, own boilerplate.

    The middle paragraph is dropped when there are at least three; a short first line is taken
    for the headline and replaced, else a headline is added; boilerplate goes around the body.
    benchmarks/dedupe_bench.py makes its copies the same way.
    """
    paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
    if len(paragraphs) >= 3:
        del paragraphs[len(paragraphs) // 2]
    if len(paragraphs[0].split()) < 20:
        paragraphs[0] = NEW_HEADLINE
    else:
        paragraphs.insert(0, NEW_HEADLINE)
    body = [paragraphs[0], BYLINE, *paragraphs[1:4], READ_MORE, *paragraphs[4:]]
    return "\n\n".join([NAV, *body, FOOTER])


# The five seeds: different articles on the same events (see shared/data/README.md).
SEEDS = [
    "000_0d2d946e6738b23e.txt",
    "001_1bb8e6013f7eefc8.txt",
    "002_c04030614284859c.txt",
    "003_429bc4daad005470.txt",
    "004_b7487d74a9c1d429.txt",
]


def seed(shared_data: Path, name: str) -> str:
    return (shared_data / "seeds" / name).read_text(encoding="utf-8")


def fingerprint(text: str) -> Fingerprint:
    result = text_fingerprint(text)
    assert result is not None
    return result


def test_the_seeds_are_all_there(shared_data: Path) -> None:
    assert sorted(p.name for p in (shared_data / "seeds").glob("*.txt")) == SEEDS


@pytest.mark.parametrize("name", SEEDS)
def test_republished_copy_is_a_near_duplicate(shared_data: Path, name: str) -> None:
    original = seed(shared_data, name)
    copy = republished(original)
    paragraphs = [p.strip() for p in original.splitlines() if p.strip()]
    assert paragraphs[len(paragraphs) // 2] not in copy  # a paragraph is gone
    assert all(part in copy for part in (NEW_HEADLINE, NAV, BYLINE, READ_MORE, FOOTER))
    a, b = fingerprint(original), fingerprint(copy)
    assert similarity(a, b) >= 0.7  # well clear of the threshold, not just over it
    assert is_near_duplicate(a, b)
    assert is_near_duplicate(b, a)
    assert set(a.bands()) & set(b.bands())


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(SEEDS, 2)))
def test_different_articles_on_one_story_are_not_near_duplicates(
    shared_data: Path, first: str, second: str
) -> None:
    a, b = fingerprint(seed(shared_data, first)), fingerprint(seed(shared_data, second))
    assert similarity(a, b) < 0.1
    assert not is_near_duplicate(a, b)


@pytest.mark.parametrize("name", SEEDS)
def test_fingerprint_round_trips_through_bytes(shared_data: Path, name: str) -> None:
    original = fingerprint(seed(shared_data, name))
    data = original.to_bytes()
    assert isinstance(data, bytes)
    assert Fingerprint.from_bytes(data) == original
    assert Fingerprint.from_bytes(data).bands() == original.bands()


def test_typography_case_and_spacing_do_not_change_the_fingerprint(shared_data: Path) -> None:
    text = seed(shared_data, SEEDS[0])
    plain = text.replace("’", "'").replace("“", '"').replace("”", '"').replace("—", " - ").upper()
    spaced = "  ".join(plain.split())
    assert text_fingerprint(spaced) == text_fingerprint(text)


def test_garbled_quotes_do_not_change_the_fingerprint(shared_data: Path) -> None:
    # The seed's quotes and dashes were UTF-8 read as Thai cp874: "Pakistanโs".
    garbled = seed(shared_data, SEEDS[2])
    assert "Pakistanโs" in garbled
    repaired = garbled.replace("โ", "’")
    assert text_fingerprint(repaired) == text_fingerprint(garbled)
    cp1252 = repaired.replace("’", "â€™")
    assert text_fingerprint(cp1252) == text_fingerprint(garbled)


def test_diacritics_do_not_change_the_fingerprint() -> None:
    words = " ".join(f"café naïve résumé Zürich São Paulo {n}" for n in range(10))
    assert text_fingerprint(words) == text_fingerprint(
        words.replace("é", "e").replace("ï", "i").replace("ü", "u").replace("ã", "a")
    )


def test_short_text_has_no_fingerprint() -> None:
    assert text_fingerprint("") is None
    assert text_fingerprint("Pakistan ships rare earths to the US.") is None
    words = [f"word{n}" for n in range(MIN_WORDS)]
    assert text_fingerprint(" ".join(words[:-1])) is None
    assert text_fingerprint(" ".join(words)) is not None


def test_similarity_bounds() -> None:
    a = fingerprint(" ".join(f"alpha{n}" for n in range(200)))
    b = fingerprint(" ".join(f"beta{n}" for n in range(200)))
    assert similarity(a, a) == 1.0
    assert similarity(a, b) == similarity(b, a)
    assert 0.0 <= similarity(a, b) < 0.1


def test_bands_are_signed_64_bit_and_mix_in_the_band_index() -> None:
    flat = Fingerprint((7,) * NUM_HASHES)  # every band holds the same rows
    bands = flat.bands()
    assert len(bands) == BANDS
    assert len(set(bands)) == BANDS
    assert all(-(2**63) <= key < 2**63 for key in bands)


@pytest.mark.parametrize(
    "data",
    [b"", b"\x01" * 10, b"\x02" + bytes(8 * NUM_HASHES), b"\x01" + bytes(8 * NUM_HASHES - 1)],
)
def test_from_bytes_rejects_other_formats(data: bytes) -> None:
    with pytest.raises(ValueError, match="fingerprint"):
        Fingerprint.from_bytes(data)


@pytest.mark.parametrize(
    "signature", [(), (1,) * (NUM_HASHES - 1), (-1,) * NUM_HASHES, (2**64,) * NUM_HASHES]
)
def test_fingerprint_rejects_bad_signatures(signature: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="signature"):
        Fingerprint(signature)


GOLDEN_TEXT = " ".join(f"The quick brown fox {n} jumps over the lazy dog." for n in range(12))


def test_fingerprint_format_is_stable() -> None:
    # Fingerprints and bands are stored: a change here makes every stored one unmatchable.
    # If it is meant, bump dedupe._FORMAT_VERSION and plan a re-fingerprint of stored articles.
    fp = fingerprint(GOLDEN_TEXT)
    assert hashlib.sha256(fp.to_bytes()).hexdigest()[:16] == GOLDEN_SIGNATURE_SHA
    assert fp.bands()[:2] == GOLDEN_BANDS


GOLDEN_SIGNATURE_SHA = "062f421db5315a3a"  # format 2: signature and size
GOLDEN_BANDS = (6494630395858964597, 4387731586620579836)


def test_version_1_fingerprints_still_read_without_their_size() -> None:
    fp = fingerprint(GOLDEN_TEXT)
    version_1 = struct.pack(f"<B{NUM_HASHES}Q", 1, *fp.signature)
    old = Fingerprint.from_bytes(version_1)
    assert old.signature == fp.signature and old.size == 0
    assert containment(old, fp) is None
    assert is_near_duplicate(old, fp)  # resemblance alone still works


def short_article(seed: int, paragraphs: int = 4, words: int = 40) -> list[str]:
    """A short article of its own per seed: `paragraphs` paragraphs of `words` words."""
    rng = random.Random(seed)
    return [
        " ".join(f"{rng.choice('bcdfghklmnprstvz')}{rng.randrange(100_000)}" for _ in range(words))
        for _ in range(paragraphs)
    ]


def test_a_short_articles_copy_with_heavy_boilerplate_is_caught_by_containment() -> None:
    original = short_article(1)  # 160 words
    boilerplate = " ".join(short_article(99, paragraphs=2))  # 80 words of another site's
    copy = [boilerplate[:200], *original[:2], *original[3:], boilerplate[200:]]
    a, b = fingerprint("\n\n".join(original)), fingerprint("\n\n".join(copy))
    assert similarity(a, b) < THRESHOLD  # resemblance alone would miss it
    contained = containment(a, b)
    assert contained is not None and contained >= CONTAINMENT
    assert is_near_duplicate(a, b) and is_near_duplicate(b, a)
    # Another short article with the same boilerplate is not a copy.
    other = fingerprint("\n\n".join([boilerplate[:200], *short_article(2), boilerplate[200:]]))
    assert not is_near_duplicate(a, other)


def test_fingerprint_is_the_same_in_other_processes(shared_data: Path) -> None:
    path = shared_data / "seeds" / SEEDS[0]
    here = fingerprint(path.read_text(encoding="utf-8"))
    program = (
        "import sys; from pathlib import Path; from monitor.dedupe import text_fingerprint; "
        "fp = text_fingerprint(Path(sys.argv[1]).read_text(encoding='utf-8')); "
        "print(fp.to_bytes().hex())"
    )
    for seed_value in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed_value}
        out = subprocess.run(
            [sys.executable, "-c", program, str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert Fingerprint.from_bytes(bytes.fromhex(out.strip())) == here


def test_url_errors_quote_the_url_briefly() -> None:
    huge = "data:image/png;base64," + "A" * 100_000
    with pytest.raises(UrlError) as caught:
        canonical_url(huge)
    assert "data:image/png" in str(caught.value)
    assert len(str(caught.value)) < 300
