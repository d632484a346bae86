"""monitor.fetch: every limit of `fetch:` enforced, every failure a value, no forbidden connection.

Everything here talks to 127.0.0.1 only. Forbidden addresses (private, loopback by another name,
link-local, ...) only ever appear as answers of a stub resolver, and the autouse `network`
fixture wraps httpcore's real connect so that any attempt to dial anything but 127.0.0.1 fails
the test instead of leaving the machine (a safety net in case the guard itself regresses), and
forces name lookups to be numeric so that no DNS query can leave either.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any

import brotli
import httpcore
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import FetchSettings
from monitor.errors import FetchError, FetchRefused, FetchTooLarge
from monitor.fetch import (
    AddressPolicy,
    AsyncioBackend,
    BoundedDecoder,
    GuardedBackend,
    HttpFetcher,
    body_hash,
    is_public_address,
    parse_retry_after,
)
from monitor.models import FetchFailed, FetchOk, FetchOutcome, NotModified
from tests.smtp import TLS_FILES
from tests.web import LocalWeb

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
MB = 1024**2


# --- helpers -----------------------------------------------------------------------------------


def make_settings(*allowlist: str, **fields: Any) -> FetchSettings:
    fields.setdefault("timeout", "5s")
    return FetchSettings(private_network_allowlist=list(allowlist), **fields)


def fetch(
    settings: FetchSettings,
    url: str,
    *,
    resolver: Callable[[str, int], Any] | None = None,
    **kwargs: Any,
) -> FetchOutcome:
    """One fetch with a fresh HttpFetcher (fixed clock), run to completion."""

    async def run() -> FetchOutcome:
        extra: dict[str, Any] = {"clock": lambda: NOW}
        if resolver is not None:
            extra["resolver"] = resolver
        async with HttpFetcher(settings, **extra) as fetcher:
            return await fetcher.fetch(url, **kwargs)

    return asyncio.run(run())


def fetch_many(settings: FetchSettings, urls: list[str]) -> list[FetchOutcome]:
    async def run() -> list[FetchOutcome]:
        async with HttpFetcher(settings) as fetcher:
            return list(await asyncio.gather(*(fetcher.fetch(u) for u in urls)))

    return asyncio.run(run())


def failed(outcome: FetchOutcome, kind: str) -> FetchFailed:
    assert isinstance(outcome, FetchFailed), outcome
    assert outcome.kind == kind, outcome
    return outcome


class StubResolver:
    """Answers from a script, one answer per call (the last one repeats); records every call."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.answers[min(len(self.calls), len(self.answers)) - 1])


@dataclass
class Network:
    """What httpcore was asked to dial; `aliases` lets a test pretend an address is local."""

    dialed: list[tuple[str, int]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    """Every real TCP connect goes through here: only 127.0.0.1 (or a test's alias of it).

    Name lookups are forced numeric (AI_NUMERICHOST), so no test can send a DNS query either.
    """
    net = Network()
    real_connect = AsyncioBackend.connect_tcp
    real_getaddrinfo = socket.getaddrinfo

    def numeric_getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    async def connect_tcp(
        self: AsyncioBackend, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        net.dialed.append((host, port))
        target = net.aliases.get(host, host)
        if target != "127.0.0.1":
            raise AssertionError(f"test tried to connect to {host}:{port}")
        return await real_connect(self, target, port, *args, **kwargs)

    monkeypatch.setattr(AsyncioBackend, "connect_tcp", connect_tcp)
    monkeypatch.setattr(socket, "getaddrinfo", numeric_getaddrinfo)
    return net


def quick_web() -> LocalWeb:
    """A LocalWeb that stops in ~50 ms instead of serve_forever's default 0.5 s poll."""
    local = LocalWeb()
    local.thread = threading.Thread(
        target=local.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    return local


@pytest.fixture
def web() -> Iterator[LocalWeb]:
    """Overrides conftest's `web` only to make teardown quick (this file starts ~150 of them)."""
    with quick_web() as local:
        yield local


def port_of(web: LocalWeb) -> int:
    return int(web.server.server_address[1])


def write_raw(handler: BaseHTTPRequestHandler, data: bytes) -> bool:
    """Write and flush; False once the client has gone."""
    try:
        handler.wfile.write(data)
        handler.wfile.flush()
    except OSError:
        handler.close_connection = True
        return False
    return True


def send_head(handler: BaseHTTPRequestHandler, *headers: str, status: str = "200 OK") -> None:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{h}\r\n" for h in headers) + "\r\n"
    write_raw(handler, head.encode("latin-1"))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def serve_encoded(web: LocalWeb, path: str, body: bytes, encoding: str) -> str:
    """`body` (already encoded) with Content-Encoding and its Content-Length."""

    def handler(h: BaseHTTPRequestHandler) -> None:
        send_head(h, f"Content-Encoding: {encoding}", f"Content-Length: {len(body)}")
        write_raw(h, body)
        h.close_connection = True  # do not wait for a next request the client will not send

    return web.handle(path, handler)


def zero_bomb(megabytes: int, container: str) -> bytes:
    """`megabytes` MB of zeros, compressed: a ~1000:1 gzip/zlib/raw-deflate bomb, or brotli."""
    zeros = bytes(MB)
    if container == "br":
        compressor = brotli.Compressor(quality=5)
        return b"".join(compressor.process(zeros) for _ in range(megabytes)) + compressor.finish()
    # One MB compressed once with a full flush is a self-contained piece that can be repeated.
    piece_compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    piece = piece_compressor.compress(zeros) + piece_compressor.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH)
    deflated = piece * megabytes + final
    if container == "deflate-raw":
        return deflated
    crc, adler = 0, 1
    for _ in range(megabytes):
        crc, adler = zlib.crc32(zeros, crc), zlib.adler32(zeros, adler)
    size = megabytes * MB
    if container == "gzip":
        header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
        return header + deflated + crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little")
    assert container == "deflate"
    return b"\x78\xda" + deflated + adler.to_bytes(4, "big")


def feed_in_pieces(decoder: BoundedDecoder, data: bytes, size: int) -> bytes:
    return b"".join(decoder.feed(data[i : i + size]) for i in range(0, len(data), size))


# --- plain fetches -----------------------------------------------------------------------------


def test_plain_200_gives_body_final_url_lowercased_headers_and_validators(web: LocalWeb) -> None:
    url = web.add(
        "/feed.xml",
        b"<rss>hello</rss>",
        content_type="application/rss+xml",
        headers={"X-Custom-Header": "Yes"},
        etag='"v1"',
        last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
    )

    outcome = fetch(make_settings(web.host), url)

    assert isinstance(outcome, FetchOk)
    assert outcome.body == b"<rss>hello</rss>"
    assert outcome.url == url
    assert outcome.final_url == url
    assert outcome.status == 200
    assert outcome.headers["x-custom-header"] == "Yes"
    assert outcome.headers["content-type"] == "application/rss+xml"
    assert all(name == name.lower() for name in outcome.headers)
    assert outcome.etag == '"v1"'
    assert outcome.last_modified == "Mon, 01 Jan 2024 00:00:00 GMT"


def test_requests_carry_the_user_agent_and_accept_encoding(web: LocalWeb) -> None:
    url = web.add("/", b"ok")
    fetch(make_settings(web.host, user_agent="test-agent/1.0"), url)

    (seen,) = web.requests
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert headers["user-agent"] == "test-agent/1.0"
    assert set(headers["accept-encoding"].replace(" ", "").split(",")) == {"gzip", "deflate", "br"}
    assert "if-none-match" not in headers
    assert "if-modified-since" not in headers


# --- conditional GET and unchanged bodies ------------------------------------------------------


def test_matching_etag_is_sent_and_304_becomes_not_modified(web: LocalWeb) -> None:
    url = web.add("/feed", b"body", etag='"abc"')

    outcome = fetch(make_settings(web.host), url, etag='"abc"')

    assert outcome == NotModified(url, '"abc"', None)
    assert web.requests[0].headers["If-None-Match"] == '"abc"'


def test_stale_etag_gets_the_new_body(web: LocalWeb) -> None:
    url = web.add("/feed", b"new body", etag='"new"')

    outcome = fetch(make_settings(web.host), url, etag='"old"')

    assert isinstance(outcome, FetchOk)
    assert outcome.body == b"new body"
    assert outcome.etag == '"new"'
    assert web.requests[0].headers["If-None-Match"] == '"old"'


def test_matching_last_modified_is_sent_and_304_becomes_not_modified(web: LocalWeb) -> None:
    stamp = "Tue, 02 Jan 2024 03:04:05 GMT"
    url = web.add("/feed", b"body", last_modified=stamp)

    outcome = fetch(make_settings(web.host), url, last_modified=stamp)

    assert outcome == NotModified(url, None, stamp)
    assert web.requests[0].headers["If-Modified-Since"] == stamp


def test_body_identical_to_previous_hash_is_not_modified(web: LocalWeb) -> None:
    url = web.add("/feed", b"same bytes as last time", etag='"e"')

    outcome = fetch(
        make_settings(web.host), url, previous_hash=body_hash(b"same bytes as last time")
    )

    assert outcome == NotModified(url, '"e"', None)


def test_body_different_from_previous_hash_is_fetched(web: LocalWeb) -> None:
    url = web.add("/feed", b"changed bytes")

    outcome = fetch(make_settings(web.host), url, previous_hash=body_hash(b"old bytes"))

    assert isinstance(outcome, FetchOk)
    assert outcome.body == b"changed bytes"


# --- size limits and decompression -------------------------------------------------------------


def test_body_of_exactly_max_bytes_is_accepted(web: LocalWeb) -> None:
    url = web.add("/exact", b"x" * 1000)
    outcome = fetch(make_settings(web.host, max_bytes="1000B"), url)
    assert isinstance(outcome, FetchOk)
    assert len(outcome.body) == 1000


def test_content_length_over_max_bytes_is_refused_before_reading_the_body(web: LocalWeb) -> None:
    # Announces 50 MB, sends 1 KB and hangs up: reading the body at all would end in a transport
    # error (or a timeout), so `too_large` shows the answer came from the header alone.
    def handler(h: BaseHTTPRequestHandler) -> None:
        send_head(h, f"Content-Length: {50 * MB}")
        write_raw(h, b"x" * 1024)
        h.close_connection = True

    url = web.handle("/huge", handler)

    outcome = fetch(make_settings(web.host, max_bytes="1MB"), url)

    assert "Content-Length" in failed(outcome, "too_large").error


def test_chunked_body_over_max_bytes_is_cut_off_while_streaming(web: LocalWeb) -> None:
    # An endless chunked stream: the fetch must stop reading, so the server sees the client leave
    # long before it reaches its own cap.
    cap = 256 * MB
    sent = [0]
    done = threading.Event()

    def handler(h: BaseHTTPRequestHandler) -> None:
        try:
            send_head(h, "Transfer-Encoding: chunked")
            piece = chunk(bytes(64 * 1024))
            while sent[0] < cap and write_raw(h, piece):
                sent[0] += 64 * 1024
            h.close_connection = True
        finally:
            done.set()

    url = web.handle("/stream", handler)

    outcome = fetch(make_settings(web.host, max_bytes="1MB"), url)

    failed(outcome, "too_large")
    assert done.wait(10), "the server never noticed the client hanging up"
    assert sent[0] < cap // 4


@pytest.mark.parametrize("container", ["gzip", "deflate", "deflate-raw", "br"])
def test_zero_bomb_helper_makes_valid_streams_of_the_stated_size(container: str) -> None:
    # The bombs below are built by hand (repeated deflate pieces): check they are what they say.
    decoder = BoundedDecoder(container.removesuffix("-raw"), limit=3 * MB)
    assert feed_in_pieces(decoder, zero_bomb(3, container), 64 * 1024) == bytes(3 * MB)


def fetch_measuring_memory(settings: FetchSettings, url: str) -> tuple[FetchOutcome, int]:
    """The outcome and the peak of Python memory allocated while fetching (tracemalloc)."""

    async def run() -> tuple[FetchOutcome, int]:
        async with HttpFetcher(settings) as fetcher:
            tracemalloc.start()
            try:
                outcome = await fetcher.fetch(url)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        return outcome, peak

    return asyncio.run(run())


@pytest.mark.parametrize("container", ["gzip", "deflate", "deflate-raw", "br"])
def test_compression_bomb_is_stopped_with_bounded_memory(web: LocalWeb, container: str) -> None:
    bomb = zero_bomb(200, container)
    assert len(bomb) < 400 * 1024  # 200 MB of zeros in a few hundred KB at most
    url = serve_encoded(web, "/bomb", bomb, container.removesuffix("-raw"))

    outcome, peak = fetch_measuring_memory(make_settings(web.host, max_bytes="2MB"), url)

    failed(outcome, "too_large")
    assert peak < 2 * (2 * MB), f"peak traced memory {peak} bytes during the bomb"


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_body_of_max_bytes_is_held_once_not_twice(web: LocalWeb, encoding: str) -> None:
    # Highly compressible: one gzip chunk off the wire inflates to the whole body at once.
    body = b"<p>" + b"x" * (4 * MB - 7) + b"</p>"
    url = serve_encoded(web, "/full", gzip.compress(body) if encoding == "gzip" else body, encoding)

    outcome, peak = fetch_measuring_memory(make_settings(web.host, max_bytes="4MB"), url)

    assert isinstance(outcome, FetchOk) and outcome.body == body
    assert peak < 1.5 * (4 * MB), f"peak traced memory {peak} bytes for a 4 MB body"


def test_thousands_of_stacked_content_encodings_are_refused_cheaply(web: LocalWeb) -> None:
    # A 75 KB Content-Encoding header naming gzip 15000 times: one decompressor each would cost
    # over 100 MB before the first body byte.
    url = serve_encoded(web, "/stacked", b"x", ",".join(["gzip"] * 15000))

    outcome, peak = fetch_measuring_memory(make_settings(web.host), url)

    assert "Content-Encodings" in failed(outcome, "error").error
    assert peak < 10 * MB, f"peak traced memory {peak} bytes"


def test_bounded_decoder_accepts_up_to_five_codings() -> None:
    data = b"five layers deep"
    for _ in range(5):
        data = gzip.compress(data)
    assert BoundedDecoder(", ".join(["gzip"] * 5), limit=100).feed(data) == b"five layers deep"
    with pytest.raises(FetchError):
        BoundedDecoder(", ".join(["gzip"] * 6), limit=100)


def test_nested_gzip_bomb_is_stopped(web: LocalWeb) -> None:
    # "gzip, gzip": the outer layer is small, the middle one 200 KB, the inside 200 MB.
    body = gzip.compress(zero_bomb(200, "gzip"))
    url = serve_encoded(web, "/nested", body, "gzip, gzip")

    failed(fetch(make_settings(web.host, max_bytes="1MB"), url), "too_large")


@pytest.mark.parametrize("container", ["gzip", "deflate", "br"])
def test_compressed_body_just_over_max_bytes_is_too_large(web: LocalWeb, container: str) -> None:
    plain = b"a" * 1001
    encoded = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
    }[container](plain)
    url = serve_encoded(web, "/over", encoded, container)

    failed(fetch(make_settings(web.host, max_bytes="1000B"), url), "too_large")


PLAIN = b"<rss><item>Balochistan rare earths</item></rss>\n" * 2000


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, no zlib wrapper
        ("br", brotli.compress),
        ("identity", lambda data: data),
        ("br, gzip", lambda data: gzip.compress(brotli.compress(data))),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate", "br", "identity", "br-then-gzip"],
)
def test_compressed_body_is_decoded(
    web: LocalWeb, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    url = serve_encoded(web, "/enc", encode(PLAIN), encoding)

    outcome = fetch(make_settings(web.host), url)

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.body == PLAIN


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),
        ("br", brotli.compress),
    ],
    ids=["gzip", "raw-deflate", "br"],
)
def test_compressed_body_arriving_one_byte_first_is_decoded(
    web: LocalWeb, encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    # A streaming server: a 1-byte first chunk, then the rest, each flushed on its own.
    encoded = encode(PLAIN)

    def handler(h: BaseHTTPRequestHandler) -> None:
        send_head(h, f"Content-Encoding: {encoding}", "Transfer-Encoding: chunked")
        for part in (encoded[:1], encoded[1:2], encoded[2:]):
            write_raw(h, chunk(part))
            time.sleep(0.05)
        write_raw(h, b"0\r\n\r\n")

    url = web.handle("/drip-enc", handler)

    outcome = fetch(make_settings(web.host), url)

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.body == PLAIN


def test_corrupt_gzip_body_is_a_failure_value(web: LocalWeb) -> None:
    url = serve_encoded(web, "/corrupt", b"\x1f\x8b\x08\x00 this is not gzip at all", "gzip")
    outcome = fetch(make_settings(web.host), url)
    assert isinstance(outcome, FetchFailed)
    assert "corrupt" in outcome.error


def test_unknown_content_encoding_is_a_failure_value(web: LocalWeb) -> None:
    url = serve_encoded(web, "/zstd", b"whatever", "zstd")
    outcome = fetch(make_settings(web.host), url)
    assert isinstance(outcome, FetchFailed)
    assert "zstd" in outcome.error


# --- BoundedDecoder on its own -------------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 7, 4096, 10**9])
@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),
        ("br", brotli.compress),
    ],
    ids=["gzip", "deflate", "raw-deflate", "br"],
)
def test_bounded_decoder_output_does_not_depend_on_how_input_is_split(
    encoding: str, encode: Callable[[bytes], bytes], piece: int
) -> None:
    data = bytes(range(256)) * 40 + b"tail"
    decoder = BoundedDecoder(encoding, limit=len(data))
    assert feed_in_pieces(decoder, encode(data), piece) == data


@pytest.mark.parametrize("size", [990, 999, 1000])
def test_bounded_decoder_stacked_encodings_near_the_limit_lose_nothing(size: int) -> None:
    # Incompressible data gzipped twice: the middle layer is bigger than the result, so a decoder
    # that bounds each layer's output by what is left of the limit must not drop the rest.
    data = bytes((i * 7919) % 251 for i in range(size))
    encoded = gzip.compress(gzip.compress(data, compresslevel=0), compresslevel=0)
    decoder = BoundedDecoder("gzip, gzip", limit=1000)
    assert feed_in_pieces(decoder, encoded, 10**9) == data


def test_bounded_decoder_raises_too_large_one_byte_past_the_limit() -> None:
    decoder = BoundedDecoder("gzip", limit=100)
    with pytest.raises(FetchTooLarge):
        decoder.feed(gzip.compress(b"z" * 101))
    assert BoundedDecoder("gzip", limit=100).feed(gzip.compress(b"z" * 100)) == b"z" * 100


# --- the whole-request deadline ------------------------------------------------------------------


def test_server_dripping_a_byte_every_half_second_hits_the_whole_request_timeout(
    web: LocalWeb,
) -> None:
    stop = threading.Event()

    def handler(h: BaseHTTPRequestHandler) -> None:
        send_head(h, "Content-Length: 100000")
        for _ in range(120):
            if stop.wait(0.5) or not write_raw(h, b"."):
                break
        h.close_connection = True

    url = web.handle("/drip", handler)
    started = time.monotonic()
    try:
        outcome = fetch(make_settings(web.host, timeout="2s"), url)
    finally:
        stop.set()
    elapsed = time.monotonic() - started

    failed(outcome, "timeout")
    assert elapsed < 10


def test_whole_request_timeout_covers_all_redirect_hops(web: LocalWeb) -> None:
    # Five hops of 0.4 s each: every hop is quick enough alone, the chain is not.
    def slow_redirect(to: str) -> Callable[[BaseHTTPRequestHandler], None]:
        def handler(h: BaseHTTPRequestHandler) -> None:
            time.sleep(0.4)
            send_head(h, f"Location: {to}", "Content-Length: 0", status="302 Found")

        return handler

    for i in range(5):
        web.handle(f"/hop{i}", slow_redirect(f"/hop{i + 1}"))
    web.add("/hop5", b"never reached in time")
    started = time.monotonic()

    outcome = fetch(make_settings(web.host, timeout="1s", max_redirects=10), web.url("/hop0"))

    failed(outcome, "timeout")
    assert time.monotonic() - started < 10
    assert web.hits("/hop5") == 0


def test_server_that_accepts_but_never_answers_times_out(web: LocalWeb) -> None:
    stop = threading.Event()
    web.handle("/silent", lambda h: stop.wait(20))
    try:
        outcome = fetch(make_settings(web.host, timeout="1s"), web.url("/silent"))
    finally:
        stop.set()
    failed(outcome, "timeout")


# --- redirects -----------------------------------------------------------------------------------


def redirect_chain(web: LocalWeb, length: int) -> str:
    for i in range(length):
        web.redirect(f"/r{i}", f"/r{i + 1}" if i + 1 < length else "/final")
    web.add("/final", b"arrived")
    return web.url("/r0")


def test_redirect_chain_up_to_max_redirects_is_followed(web: LocalWeb) -> None:
    start = redirect_chain(web, 3)

    outcome = fetch(make_settings(web.host, max_redirects=3), start)

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.body == b"arrived"
    assert outcome.url == start
    assert outcome.final_url == web.url("/final")
    assert [r.path for r in web.requests] == ["/r0", "/r1", "/r2", "/final"]


def test_redirect_chain_longer_than_max_redirects_fails(web: LocalWeb) -> None:
    start = redirect_chain(web, 4)

    outcome = fetch(make_settings(web.host, max_redirects=3), start)

    failed(outcome, "redirects")
    assert web.hits("/final") == 0
    assert len(web.requests) == 4


def test_max_redirects_zero_refuses_any_redirect(web: LocalWeb) -> None:
    start = redirect_chain(web, 1)
    failed(fetch(make_settings(web.host, max_redirects=0), start), "redirects")
    assert web.hits("/final") == 0


def test_redirect_loop_is_detected(web: LocalWeb) -> None:
    web.redirect("/a", "/b")
    web.redirect("/b", "/a")

    outcome = fetch(make_settings(web.host, max_redirects=10), web.url("/a"))

    assert "loop" in failed(outcome, "redirects").error
    assert [r.path for r in web.requests] == ["/a", "/b"]


def test_a_cookie_check_redirect_back_to_the_page_is_followed(web: LocalWeb) -> None:
    # The page sets a cookie and sends the reader back to itself until the cookie comes back.
    def article(h: BaseHTTPRequestHandler) -> None:
        if "check=1" in (h.headers.get("Cookie") or ""):
            send_head(h, "Content-Length: 7")
            write_raw(h, b"article")
        else:
            send_head(
                h,
                "Location: /article",
                "Set-Cookie: check=1; Path=/",
                "Content-Length: 0",
                status="302 Found",
            )

    web.handle("/article", article)

    outcome = fetch(make_settings(web.host), web.url("/article"))

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.body == b"article"
    assert [r.headers.get("Cookie") for r in web.requests] == [None, "check=1"]


def test_a_redirect_loop_that_sets_new_cookies_each_time_still_ends(web: LocalWeb) -> None:
    hits = iter(range(1000))

    def restless(h: BaseHTTPRequestHandler) -> None:
        send_head(
            h,
            "Location: /restless",
            f"Set-Cookie: visit={next(hits)}; Path=/",
            "Content-Length: 0",
            status="302 Found",
        )

    web.handle("/restless", restless)

    failed(fetch(make_settings(web.host, max_redirects=4), web.url("/restless")), "redirects")
    assert web.hits("/restless") == 5


def test_cookies_go_no_further_than_the_fetch_that_got_them(web: LocalWeb) -> None:
    web.add("/sets", b"hello", headers={"Set-Cookie": "session=abc; Path=/"})
    web.handle(
        "/hop",
        lambda h: send_head(
            h,
            "Location: /page",
            "Set-Cookie: hop=1; Path=/",
            "Content-Length: 0",
            status="302 Found",
        ),
    )
    web.add("/page", b"page")

    outcomes = fetch_all_over_one_fetcher(
        make_settings(web.host), [web.url("/sets"), web.url("/hop"), web.url("/page")]
    )

    assert all(isinstance(o, FetchOk) for o in outcomes), outcomes
    # The redirect's cookie reaches the next hop of its fetch; no cookie reaches a later fetch.
    sent = [(r.path, r.headers.get("Cookie")) for r in web.requests]
    assert sent == [("/sets", None), ("/hop", None), ("/page", "hop=1"), ("/page", None)]


def test_credentials_in_the_url_are_sent_as_basic_auth(web: LocalWeb) -> None:
    # A relative redirect keeps the URL's credentials, as urljoin does; an absolute one without
    # them sends none.
    web.redirect("/private/old", "/private/new")
    web.redirect("/private/new", web.url("/private/feed.xml"))
    web.add("/private/feed.xml", b"<rss/>")
    url = web.url("/private/old").replace("://", "://reader:s%40cret@", 1)

    outcome = fetch(make_settings(web.host), url)

    assert isinstance(outcome, FetchOk), outcome
    sent = [r.headers.get("Authorization") for r in web.requests]
    assert sent == [
        "Basic cmVhZGVyOnNAY3JldA==",
        "Basic cmVhZGVyOnNAY3JldA==",
        None,
    ]  # reader:s@cret


@pytest.mark.parametrize("location", ["http://xn--/page", "http://a..b/page"])
def test_a_redirect_to_a_host_name_idna_cannot_encode_is_a_failure_value(
    web: LocalWeb, location: str
) -> None:
    web.redirect("/odd", location)

    outcome = fetch(make_settings(web.host), web.url("/odd"))

    failed(outcome, "transport")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(web: LocalWeb, status: int) -> None:
    web.redirect("/old", "/new", status=status)
    web.add("/new", b"moved here")

    outcome = fetch(make_settings(web.host), web.url("/old"))

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.final_url == web.url("/new")


@pytest.mark.parametrize(
    ("location", "final_path"),
    [
        ("/dir/final", "/dir/final"),
        ("final", "/dir/final"),
        ("../top", "/top"),
        ("?page=2", "/dir/start?page=2"),
        ("//{host}/dir/final", "/dir/final"),
    ],
)
def test_relative_location_resolves_against_the_current_url(
    web: LocalWeb, location: str, final_path: str
) -> None:
    web.redirect("/dir/start", location.format(host=web.host))
    for path in ("/dir/final", "/top", "/dir/start?page=2"):
        web.add(path, f"at {path}")

    outcome = fetch(make_settings(web.host), web.url("/dir/start"))

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.final_url == web.url(final_path)
    assert outcome.body == f"at {final_path}".encode()


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "ftp://127.0.0.1:{port}/pub",
        "javascript:alert(1)",
        "data:text/plain,hello",
        "gopher://127.0.0.1:{port}/",
    ],
)
def test_redirect_to_a_non_http_scheme_is_refused(
    web: LocalWeb, network: Network, location: str
) -> None:
    web.redirect("/go", location.format(port=port_of(web)))

    outcome = fetch(make_settings(web.host), web.url("/go"))

    failed(outcome, "refused")
    assert [r.path for r in web.requests] == ["/go"]
    assert len(network.dialed) == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "javascript:alert(1)"])
def test_non_http_url_is_refused_without_any_connection(network: Network, url: str) -> None:
    failed(fetch(make_settings("127.0.0.1"), url), "refused")
    assert network.dialed == []


@pytest.mark.parametrize(
    "location",
    ["http://[not-an-ipv6/x", "http://127.0.0.1:99999/", "http://a b.test/"],
)
def test_malformed_redirect_location_is_a_transport_failure(web: LocalWeb, location: str) -> None:
    # Host-only allowlist: the guard lets any port of 127.0.0.1 through, so port 99999 reaches
    # the connect step (where it once escaped as an ExceptionGroup from anyio).
    web.redirect("/bad", location)
    outcome = fetch(make_settings("127.0.0.1"), web.url("/bad"))
    failed(outcome, "transport")
    assert [r.path for r in web.requests] == ["/bad"]


def test_url_with_port_out_of_range_is_a_transport_failure(network: Network) -> None:
    outcome = fetch(make_settings(allow_private_networks=True), "http://127.0.0.1:70000/")
    assert "invalid port" in failed(outcome, "transport").error
    assert network.dialed == []


def test_validators_are_sent_only_to_the_first_hop(web: LocalWeb) -> None:
    web.redirect("/start", "/moved")
    web.add("/moved", b"body", etag='"e1"', last_modified="Mon, 01 Jan 2024 00:00:00 GMT")

    outcome = fetch(
        make_settings(web.host),
        web.url("/start"),
        etag='"e1"',
        last_modified="Mon, 01 Jan 2024 00:00:00 GMT",
    )

    # The second hop matches both validators, yet must answer 200: they were not sent to it.
    assert isinstance(outcome, FetchOk), outcome
    first, second = web.requests
    assert first.headers["If-None-Match"] == '"e1"'
    assert first.headers["If-Modified-Since"] == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert "If-None-Match" not in second.headers
    assert "If-Modified-Since" not in second.headers


# --- the address guard: is_public_address and AddressPolicy ---------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "::1",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "224.0.0.1",
        "239.255.255.250",
        "0.0.0.0",
        "0.1.2.3",
        "255.255.255.255",
        "240.0.0.1",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "198.18.0.1",
        "::",
        "fd00::1",
        "fc00::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a00:1",
        "2002:7f00:1::",
        "2002:a00:1::1",
        "::127.0.0.1",
    ],
)
def test_local_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::",
    ],
)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_address_policy_allowlist_by_host_and_by_host_port() -> None:
    loopback = ipaddress.ip_address("127.0.0.1")
    by_port = AddressPolicy(False, ["127.0.0.1:8080", "Internal.Test:9000", "[::1]:8443"])
    assert by_port.allowed("127.0.0.1", 8080, loopback)
    assert not by_port.allowed("127.0.0.1", 8081, loopback)
    assert by_port.allowed("internal.test", 9000, loopback)
    assert by_port.allowed("INTERNAL.test", 9000, loopback)
    assert not by_port.allowed("internal.test", 9001, loopback)
    assert by_port.allowed("::1", 8443, ipaddress.ip_address("::1"))
    assert not by_port.allowed("::1", 8444, ipaddress.ip_address("::1"))
    by_host = AddressPolicy(False, ["127.0.0.1"])
    assert by_host.allowed("127.0.0.1", 1, loopback)
    assert by_host.allowed("127.0.0.1", 65535, loopback)
    assert not by_host.allowed("localhost", 80, loopback)
    assert AddressPolicy(True, []).allowed("anything", 80, ipaddress.ip_address("10.0.0.1"))
    public = ipaddress.ip_address("8.8.8.8")
    assert AddressPolicy(False, []).allowed("dns.test", 53, public)


# --- the address guard in the fetcher ----------------------------------------------------------


def test_loopback_url_without_allowlist_is_refused_and_never_reached(
    web: LocalWeb, network: Network
) -> None:
    url = web.add("/", b"secret")

    outcome = fetch(make_settings(), url)

    assert "private_network_allowlist" in failed(outcome, "refused").error
    assert web.requests == []
    assert network.dialed == []


@pytest.mark.parametrize("host", ["0.0.0.0", "[::1]", "127.1", "2130706433", "[::ffff:127.0.0.1]"])
def test_other_spellings_of_this_machine_are_refused(
    web: LocalWeb, network: Network, host: str
) -> None:
    web.add("/", b"secret")

    outcome = fetch(make_settings(web.host), f"http://{host}:{port_of(web)}/")

    failed(outcome, "refused")
    assert web.requests == []
    assert network.dialed == []


def test_redirect_from_allowlisted_port_to_another_port_is_refused(
    web: LocalWeb, network: Network
) -> None:
    with quick_web() as other:
        other.add("/", b"internal admin page")
        web.redirect("/hop", other.url("/"))

        outcome = fetch(make_settings(web.host), web.url("/hop"))

        failed(outcome, "refused")
        assert other.requests == []
        assert network.dialed == [("127.0.0.1", port_of(web))]


def test_allowlisted_host_without_port_allows_every_port(web: LocalWeb) -> None:
    with quick_web() as other:
        web.redirect("/hop", other.url("/page"))
        other.add("/page", b"on the other port")

        outcome = fetch(make_settings("127.0.0.1"), web.url("/hop"))

        assert isinstance(outcome, FetchOk), outcome
        assert outcome.body == b"on the other port"
        assert outcome.final_url == other.url("/page")


FORBIDDEN_ANSWERS = [
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "127.0.0.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "0.0.0.0",
    "255.255.255.255",
    "192.0.2.1",
    "::1",
    "::",
    "fd00::1",
    "fe80::1",
    "fec0::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::",
]


def test_hostnames_resolving_to_forbidden_addresses_are_refused_before_connecting(
    web: LocalWeb, network: Network
) -> None:
    # One fetcher, one made-up name per forbidden answer; the local web's port is allowlisted
    # (as 127.0.0.1:PORT), so only the guard stands between each name and the server.
    calls: list[tuple[str, int]] = []
    answers = {f"h{i}.test": answer for i, answer in enumerate(FORBIDDEN_ANSWERS)}

    async def resolver(host: str, port: int) -> list[str]:
        calls.append((host, port))
        return [answers[host]]

    async def run() -> list[FetchOutcome]:
        async with HttpFetcher(make_settings(web.host), resolver=resolver) as fetcher:
            return [await fetcher.fetch(f"http://{h}:{port_of(web)}/") for h in answers]

    outcomes = asyncio.run(run())

    for (host, answer), outcome in zip(answers.items(), outcomes, strict=True):
        refusal = failed(outcome, "refused")
        assert f"resolves to {ipaddress.ip_address(answer)}:" in refusal.error, (host, answer)
    assert calls == [(host, port_of(web)) for host in answers]
    assert network.dialed == []
    assert web.requests == []


def test_allowlisting_an_address_does_not_allow_names_that_resolve_to_it(
    web: LocalWeb, network: Network
) -> None:
    # The allowlist is about the URL's host: "127.0.0.1:PORT" does not bless evil.test -> 127.0.0.1.
    resolver = StubResolver(["127.0.0.1"])
    outcome = fetch(make_settings(web.host), f"http://evil.test:{port_of(web)}/", resolver=resolver)
    failed(outcome, "refused")
    assert network.dialed == []


def test_hostname_allowlisted_by_name_and_port_reaches_the_local_server(web: LocalWeb) -> None:
    web.add("/feed", b"internal feed")
    resolver = StubResolver(["127.0.0.1"])
    entry = f"internal.test:{port_of(web)}"

    outcome = fetch(make_settings(entry), f"http://{entry}/feed", resolver=resolver)

    assert isinstance(outcome, FetchOk), outcome
    assert outcome.body == b"internal feed"
    assert web.requests[0].headers["Host"] == entry
    assert resolver.calls == [("internal.test", port_of(web))]


def test_allow_private_networks_allows_loopback(web: LocalWeb) -> None:
    url = web.add("/", b"fine")
    outcome = fetch(make_settings(allow_private_networks=True), url)
    assert isinstance(outcome, FetchOk), outcome


def test_only_the_allowed_addresses_of_an_answer_are_ever_dialed(
    web: LocalWeb, network: Network
) -> None:
    # 8.8.8.8 stands for "a public server"; the test network routes it to the local web, so the
    # fetch works while showing that 10.0.0.1 and 169.254.169.254 were never tried.
    web.add("/", b"public page")
    network.aliases["8.8.8.8"] = "127.0.0.1"
    resolver = StubResolver(["10.0.0.1", "169.254.169.254", "8.8.8.8"])

    outcome = fetch(make_settings(), f"http://mixed.test:{port_of(web)}/", resolver=resolver)

    assert isinstance(outcome, FetchOk), outcome
    assert network.dialed == [("8.8.8.8", port_of(web))]


def test_dns_rebinding_second_answer_is_checked_at_connect_time(
    web: LocalWeb, network: Network
) -> None:
    # First answer public (routed to the local web by the test network), second answer loopback.
    # The server closes each connection, so the second fetch must resolve and connect again.
    web.add("/", b"public page", headers={"Connection": "close"})
    network.aliases["8.8.8.8"] = "127.0.0.1"
    resolver = StubResolver(["8.8.8.8"], ["127.0.0.1"])
    url = f"http://rebind.test:{port_of(web)}/"

    async def run() -> tuple[FetchOutcome, FetchOutcome]:
        async with HttpFetcher(make_settings(), resolver=resolver) as fetcher:
            return await fetcher.fetch(url), await fetcher.fetch(url)

    first, second = asyncio.run(run())

    assert isinstance(first, FetchOk), first
    failed(second, "refused")
    assert len(resolver.calls) == 2
    assert network.dialed == [("8.8.8.8", port_of(web))]
    assert len(web.requests) == 1


def test_dns_rebinding_after_a_precheck_is_caught(web: LocalWeb, network: Network) -> None:
    # A caller that validated the name beforehand saw a public address; the fetch itself resolves
    # again, gets loopback, and refuses: the check is on the address connected to.
    resolver = StubResolver(["8.8.8.8"], ["127.0.0.1"])
    precheck = asyncio.run(resolver("rebind.test", port_of(web)))
    assert all(is_public_address(ipaddress.ip_address(a)) for a in precheck)

    outcome = fetch(make_settings(), f"http://rebind.test:{port_of(web)}/", resolver=resolver)

    failed(outcome, "refused")
    assert len(resolver.calls) == 2
    assert network.dialed == []
    assert web.requests == []


class FakeInnerBackend:
    """Stands in for the real network under GuardedBackend: records, never connects."""

    def __init__(self) -> None:
        self.connected: list[str] = []

    async def connect_tcp(self, host: str, port: int, *args: Any) -> Any:
        self.connected.append(host)
        return object()


def test_guarded_backend_connects_to_the_checked_address_not_the_name() -> None:
    resolver = StubResolver(["8.8.8.8"], ["127.0.0.1"], ["10.0.0.1", "1.1.1.1"])
    backend = GuardedBackend(AddressPolicy(False, []), resolver)
    inner = FakeInnerBackend()
    backend.inner = inner  # type: ignore[assignment]

    async def run() -> None:
        await backend.connect_tcp("rebind.test", 80)
        with pytest.raises(FetchRefused):
            await backend.connect_tcp("rebind.test", 80)
        await backend.connect_tcp("rebind.test", 80)
        with pytest.raises(FetchRefused):
            await backend.connect_unix_socket("/var/run/docker.sock")

    asyncio.run(run())

    assert inner.connected == ["8.8.8.8", "1.1.1.1"]
    assert len(resolver.calls) == 3


# --- Retry-After ---------------------------------------------------------------------------------


def test_429_with_retry_after_seconds(web: LocalWeb) -> None:
    url = web.add("/", b"slow down", status=429, headers={"Retry-After": "120"})

    outcome = failed(fetch(make_settings(web.host), url), "http")

    assert outcome.status == 429
    assert outcome.retry_after == NOW + timedelta(seconds=120)


def test_503_with_retry_after_http_date(web: LocalWeb) -> None:
    url = web.add(
        "/", b"maintenance", status=503, headers={"Retry-After": "Mon, 01 Jan 2024 12:30:00 GMT"}
    )

    outcome = failed(fetch(make_settings(web.host), url), "http")

    assert outcome.status == 503
    assert outcome.retry_after == NOW + timedelta(minutes=30)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (str(10 * 86400), NOW + timedelta(hours=24)),
        ("99999999999999999999", NOW + timedelta(hours=24)),
        ("9" * 5000, NOW + timedelta(hours=24)),
        ("soon, please", None),
        ("²", None),
    ],
    ids=["ten-days", "twenty-digits", "five-thousand-digits", "garbage", "superscript-two"],
)
def test_retry_after_from_the_server_is_capped_or_dropped_never_raised(
    web: LocalWeb, value: str, expected: datetime | None
) -> None:
    url = web.add("/", b"", status=429, headers={"Retry-After": value})

    outcome = failed(fetch(make_settings(web.host), url), "http")

    assert outcome.retry_after == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("0", NOW),
        ("120", NOW + timedelta(seconds=120)),
        (" 60 ", NOW + timedelta(seconds=60)),
        ("86400", NOW + timedelta(hours=24)),
        ("86401", NOW + timedelta(hours=24)),
        ("864000", NOW + timedelta(hours=24)),
        ("Mon, 01 Jan 2024 12:30:00 GMT", NOW + timedelta(minutes=30)),
        ("Mon, 01 Jan 2024 13:30:00 +0100", NOW + timedelta(minutes=30)),
        ("Sun, 31 Dec 2023 00:00:00 GMT", NOW),  # in the past: come back now
        ("Fri, 31 Dec 9999 23:59:59 GMT", NOW + timedelta(hours=24)),
        ("-5", None),
        ("1.5", None),
        ("tomorrow", None),
        ("Wed, 21 Oct", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: datetime | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@given(st.one_of(st.text(), st.from_regex(r"\A\s*[0-9]{1,6000}\s*\Z")))
def test_parse_retry_after_never_raises_and_stays_within_a_day(value: str) -> None:
    when = parse_retry_after(value, NOW)
    assert when is None or NOW <= when <= NOW + timedelta(hours=24)


# --- errors are values ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 410, 500, 502])
def test_error_status_is_an_http_failure_with_the_status(web: LocalWeb, status: int) -> None:
    url = web.add("/x", b"nope", status=status)
    outcome = failed(fetch(make_settings(web.host), url), "http")
    assert outcome.status == status
    assert outcome.retry_after is None


def test_missing_page_is_an_http_404(web: LocalWeb) -> None:
    outcome = failed(fetch(make_settings(web.host), web.url("/nowhere")), "http")
    assert outcome.status == 404


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that is bound but not listening: connecting to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_connection_refused_is_a_transport_failure(closed_port: int) -> None:
    outcome = fetch(make_settings("127.0.0.1"), f"http://127.0.0.1:{closed_port}/")
    failed(outcome, "transport")


def test_unresolvable_name_is_a_transport_failure() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        raise httpcore.ConnectError(f"cannot resolve {host}")

    outcome = fetch(make_settings(), "http://nowhere.test/", resolver=nothing)
    assert "nowhere.test" in failed(outcome, "transport").error


def test_server_closing_mid_body_is_a_failure_value(web: LocalWeb) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        send_head(h, "Content-Length: 1000")
        write_raw(h, b"x" * 100)
        h.close_connection = True

    outcome = fetch(make_settings(web.host), web.handle("/cut", handler))

    failed(outcome, "transport")


def test_server_closing_without_an_answer_is_a_failure_value(web: LocalWeb) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True

    failed(fetch(make_settings(web.host), web.handle("/hangup", handler)), "transport")


def test_garbage_instead_of_http_is_a_failure_value(web: LocalWeb) -> None:
    def handler(h: BaseHTTPRequestHandler) -> None:
        write_raw(h, b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http at all\r\n\r\n")
        h.close_connection = True

    failed(fetch(make_settings(web.host), web.handle("/ssh", handler)), "transport")


# --- connections: TLS and reuse (monitor.fetch.AsyncioBackend) -----------------------------------


@pytest.fixture
def tls_web() -> Iterator[LocalWeb]:
    """LocalWeb over HTTPS, with the test CA's certificate for 127.0.0.1."""
    with LocalWeb(tls=TLS_FILES.server_context()) as local:
        yield local


def fetch_all_over_one_fetcher(
    settings: FetchSettings, urls: list[str], *, pause: float = 0.0, **extra: Any
) -> list[FetchOutcome]:
    """The URLs one after another through one HttpFetcher (so connections can be reused)."""

    async def run() -> list[FetchOutcome]:
        outcomes = []
        async with HttpFetcher(settings, **extra) as fetcher:
            for url in urls:
                outcomes.append(await fetcher.fetch(url))
                await asyncio.sleep(pause)
        return outcomes

    return asyncio.run(run())


def test_https_page_is_fetched_over_a_verified_connection_and_reused(tls_web: LocalWeb) -> None:
    first = tls_web.add("/a", b"first page")
    second = tls_web.add("/b", b"second page")

    outcomes = fetch_all_over_one_fetcher(
        make_settings(tls_web.host), [first, second], ssl_context=TLS_FILES.client_context()
    )

    assert [o.body for o in outcomes if isinstance(o, FetchOk)] == [b"first page", b"second page"]
    assert first.startswith("https://")
    # Both requests came over one kept-alive TLS connection: one client port.
    assert len({r.client_port for r in tls_web.requests}) == 1


def test_https_with_a_certificate_nobody_vouches_for_is_a_transport_failure(
    tls_web: LocalWeb,
) -> None:
    url = tls_web.add("/", b"secret")

    outcome = failed(fetch(make_settings(tls_web.host), url), "transport")

    assert "CERTIFICATE_VERIFY_FAILED" in outcome.error
    assert tls_web.requests == []


def test_tls_handshake_with_a_server_that_never_answers_times_out(network: Network) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host = f"127.0.0.1:{silent.getsockname()[1]}"

        outcome = fetch(make_settings(host, timeout="1s"), f"https://{host}/")

    failed(outcome, "timeout")


def test_idle_connection_the_server_closed_is_not_reused(web: LocalWeb) -> None:
    def answer_then_hang_up(h: BaseHTTPRequestHandler) -> None:
        # A keep-alive answer (no "Connection: close"), then the server drops the connection,
        # as servers do with idle ones: the next request must go over a new connection.
        send_head(h, "Content-Length: 2")
        write_raw(h, b"ok")
        h.close_connection = True

    url = web.handle("/once", answer_then_hang_up)

    outcomes = fetch_all_over_one_fetcher(make_settings(web.host), [url, url, url], pause=0.1)

    assert [type(o).__name__ for o in outcomes] == ["FetchOk"] * 3, outcomes
    assert len({r.client_port for r in web.requests}) == 3


# --- concurrency limits --------------------------------------------------------------------------


class Gauge:
    """Counts requests in flight across handler threads; remembers the highest count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def slow_handler(self, h: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            time.sleep(0.3)
        finally:
            with self.lock:
                self.now -= 1
        send_head(h, "Content-Length: 2")
        write_raw(h, b"ok")


def test_per_host_limit_caps_requests_to_one_host(web: LocalWeb) -> None:
    gauge = Gauge()
    web.handle("/slow", gauge.slow_handler)
    urls = [web.url(f"/slow?n={i}") for i in range(8)]

    outcomes = fetch_many(make_settings(web.host, per_host=2, concurrency=32), urls)

    assert all(isinstance(o, FetchOk) for o in outcomes), outcomes
    assert gauge.peak == 2


def test_global_concurrency_caps_requests_in_flight(web: LocalWeb) -> None:
    gauge = Gauge()
    with quick_web() as second, quick_web() as third:
        servers = [web, second, third]
        for server in servers:
            server.handle("/slow", gauge.slow_handler)
        urls = [s.url(f"/slow?n={i}") for i in range(3) for s in servers]

        outcomes = fetch_many(make_settings("127.0.0.1", per_host=100, concurrency=3), urls)

    assert all(isinstance(o, FetchOk) for o in outcomes), outcomes
    assert gauge.peak == 3


def test_per_host_limit_counts_all_ports_of_a_hostname_together(web: LocalWeb) -> None:
    # Observed design: the per-host key is the hostname, so two servers on 127.0.0.1 that differ
    # only by port share one per-host limit.
    gauge = Gauge()
    with quick_web() as second:
        for server in (web, second):
            server.handle("/slow", gauge.slow_handler)
        urls = [s.url(f"/slow?n={i}") for i in range(2) for s in (web, second)]

        outcomes = fetch_many(make_settings("127.0.0.1", per_host=1, concurrency=32), urls)

    assert all(isinstance(o, FetchOk) for o in outcomes), outcomes
    assert gauge.peak == 1
