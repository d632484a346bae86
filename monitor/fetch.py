"""HTTP fetching: httpx transports, with every limit of `settings.yaml` enforced on every hop.

What a fetch guarantees, whatever the server does:
- `timeout` bounds the whole request, first byte to last, redirects included (httpx's read
  timeout alone would let a server that drips a byte every few seconds hold us forever);
- the body is decompressed by us, chunk by chunk with a bounded output, and stopped as soon as
  it passes `max_bytes` (a 200 KB gzip bomb never becomes 200 MB in memory);
- redirects are followed by us, at most `max_redirects`, each hop checked again;
- no connection is ever made to a loopback, private, link-local, CGNAT, multicast, reserved or
  unspecified address, unless the URL's host (or host:port) is allowlisted. The check happens in
  the network backend on the address actually connected to, so DNS rebinding cannot slip past;
- at most `concurrency` requests in flight, and at most `per_host` to any one host;
- cookies set on the way through a redirect go with that fetch's later hops, no further.

The requests are spread over a few httpx transports by host (`SHARDS`), each host always to the
same one (so its connections are reused): httpcore's pool walks every connection it holds, probing
each socket, whenever a request starts or ends, so one pool costs CPU per request that grows with
`concurrency` (on 1,000 loopback feeds: 1.5 ms a request at 128 in one pool, 1.0 ms over 8).

Failures are returned as values (`FetchFailed`) so one bad source never stops the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import brotli
import httpcore
import httpx
from httpcore._utils import is_socket_readable

from monitor.config import FetchSettings, format_duration
from monitor.errors import (
    FetchError,
    FetchRefused,
    FetchTimeout,
    FetchTooLarge,
    HttpStatusError,
    TooManyRedirects,
    TransportError,
)
from monitor.logs import redactor
from monitor.models import FetchFailed, FetchOk, FetchOutcome, NotModified

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_RETRY_AFTER = timedelta(hours=24)
MAX_CODINGS = 5  # stacked Content-Encodings
PIECE = 64 * 1024  # the most one decompression call produces at a time
SHARDS = 8  # httpx transports a fetcher spreads hosts over (at most one a CONNECTIONS_PER_SHARD)
CONNECTIONS_PER_SHARD = 4  # of `concurrency`: the idle connections one shard keeps
# Addresses IPv6 uses to carry IPv4 ones: judged by the IPv4 address inside.
NAT64 = ipaddress.ip_network("64:ff9b::/96")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""host, port -> the IP addresses to try, in order (stubbed in tests)."""


class Fetcher(Protocol):
    """Fetches one URL. Never raises for anything the network or the server does."""

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        previous_hash: str | None = None,
    ) -> FetchOutcome: ...


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


# --- the address guard -----------------------------------------------------------------------


def is_public_address(ip: IPAddress) -> bool:
    """True for an address on the public internet; False for anything local or special."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return is_public_address(ip.sixtofour)
        if ip in NAT64:
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip.is_site_local:  # fec0::/10: deprecated, still local, and `is_global` to Python
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip.is_loopback
    )


class AddressPolicy:
    """Which (host, port, address) connections are allowed."""

    def __init__(self, allow_private: bool, allowlist: Iterable[str]) -> None:
        self.allow_private = allow_private
        self.allowlist = frozenset(entry.lower() for entry in allowlist)

    def allowed(self, host: str, port: int, address: IPAddress) -> bool:
        if self.allow_private or is_public_address(address):
            return True
        host = host.lower().strip("[]")
        return (
            host in self.allowlist
            or f"{host}:{port}" in self.allowlist
            or (f"[{host}]:{port}" in self.allowlist)
        )


async def system_resolver(host: str, port: int) -> list[str]:
    """The system's DNS answer for host (IP literals are returned as they are)."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AsyncioStream(httpcore.AsyncNetworkStream):
    """A connection as httpcore uses it, on asyncio's own streams.

    httpcore's default (anyio) costs a cancel scope and a task-group on every connect, read
    and write; on a poll of 1,000 feeds that was a fifth of the HTTP client's CPU. asyncio's
    streams and `asyncio.timeout` do the same job for a fraction of it.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # As anyio does: an HTTP connection is closed when its exchange is over or broken, and
        # a graceful close could wait on a peer that never reads.
        self._writer.transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError; named for readers
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        if info == "is_readable":
            # httpcore asks before reusing an idle connection: anything to read (the server's
            # close, most often) means it is not fit for a new request. The transport reads
            # eagerly, so what arrived may already be in the reader rather than the socket.
            return (
                self._writer.transport.is_closing()
                or self._reader.at_eof()
                or is_socket_readable(self._writer.get_extra_info("socket"))
            )
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Opens `AsyncioStream`s: plain TCP connections to an address already checked."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses forbidden addresses, connects to a checked address."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = AsyncioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not 0 < port <= 0xFFFF:  # httpx lets "http://host:99999/" through; connect() would raise
            raise httpcore.ConnectError(f"invalid port {port}")
        addresses = [ipaddress.ip_address(a) for a in await self.resolver(host, port)]
        allowed = [a for a in addresses if self.policy.allowed(host, port, a)]
        if not allowed:
            shown = ", ".join(str(a) for a in addresses) or "nothing"
            raise FetchRefused(
                f"{host}:{port} resolves to {shown}: not a public address "
                "(add it to fetch.private_network_allowlist to allow it)"
            )
        error: Exception | None = None
        for address in allowed:
            try:
                return await self.inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise FetchRefused("unix sockets are never fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (connection pool, exception mapping) over the guarded backend."""

    def __init__(
        self,
        backend: GuardedBackend,
        limits: httpx.Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        # Same pool httpx builds, with our network backend: the one supported way to control
        # where connections go (httpcore's `network_backend`), which httpx does not expose.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


# --- bounded decompression -------------------------------------------------------------------


class BoundedDecoder:
    """Undoes Content-Encoding chunk by chunk, never producing more than `limit` bytes."""

    def __init__(self, content_encoding: str, limit: int) -> None:
        self.limit = limit
        self.size = 0
        codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
        # Each coding costs a decompressor: a header listing thousands must not (curl caps at 5).
        if len(codings) > MAX_CODINGS:
            raise FetchError(f"more than {MAX_CODINGS} Content-Encodings")
        # Encodings are listed in the order applied; undo them last first.
        self.steps = [self._step(c) for c in reversed(codings) if c not in ("identity", "")]

    def _step(self, coding: str) -> Callable[[bytes], Iterator[bytes]]:
        if coding in ("gzip", "x-gzip"):
            return _ZlibStep(zlib.MAX_WBITS | 16)
        if coding == "deflate":
            return _ZlibStep(zlib.MAX_WBITS, raw_fallback=True)
        if coding == "br":
            return _BrotliStep()
        raise FetchError(f"unsupported Content-Encoding {coding!r}")

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self.pieces(chunk))

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """`chunk` undone, in pieces of at most 64 KB: a highly compressed chunk never has to
        be held whole, twice, as `feed` holds it."""
        return self._decode(chunk, 0)

    def _decode(self, data: bytes, index: int) -> Iterator[bytes]:
        """`data` undone by steps[index:], in small pieces, each counted as it comes: a bomb is
        stopped one piece past the limit, and no step's leftover is dropped between pieces."""
        if index == len(self.steps):
            self.size += len(data)
            if self.size > self.limit:
                raise FetchTooLarge(f"body larger than fetch.max_bytes ({self.limit} bytes)")
            yield data
            return
        for piece in self.steps[index](data):
            yield from self._decode(piece, index + 1)


class _ZlibStep:
    def __init__(self, wbits: int, raw_fallback: bool = False) -> None:
        self.decompressor = zlib.decompressobj(wbits)
        self.raw_fallback = raw_fallback  # some servers send raw deflate without the zlib header
        self.head = b""  # with raw_fallback: the first bytes, until there are enough to judge

    def __call__(self, data: bytes) -> Iterator[bytes]:
        try:
            if self.raw_fallback:
                # A zlib header is 2 bytes: judge on them, however thinly the body arrives.
                self.head += data
                if len(self.head) < 2:
                    return
                data, self.head, self.raw_fallback = self.head, b"", False
                try:
                    zlib.decompressobj(zlib.MAX_WBITS).decompress(data[:2])
                except zlib.error:
                    self.decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
            while True:
                out = self.decompressor.decompress(data, PIECE)
                data = self.decompressor.unconsumed_tail
                if out:
                    yield out
                if len(out) < PIECE:  # input used up (a full piece may have more behind it)
                    return
        except zlib.error as exc:
            raise FetchError(f"corrupt compressed body: {exc}") from exc


class _BrotliStep:
    def __init__(self) -> None:
        self.decompressor = brotli.Decompressor()

    def __call__(self, data: bytes) -> Iterator[bytes]:
        try:
            # Output stops only at the limit, so an empty answer means all input is used up
            # (`can_accept_more_data()` says True even while output is still pending).
            out = self.decompressor.process(data, output_buffer_limit=PIECE)
            while out:
                yield out
                out = self.decompressor.process(b"", output_buffer_limit=PIECE)
        except brotli.error as exc:
            raise FetchError(f"corrupt brotli body: {exc}") from exc


# --- Retry-After -----------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime) -> datetime | None:
    """Retry-After as seconds or an HTTP date -> when to come back, capped at 24 hours."""
    if not value:
        return None
    value = value.strip()
    when: datetime | None
    if value.isascii() and value.isdigit():
        # Over 9 digits is past the cap anyway, and int() or timedelta() would raise on it.
        digits = value.lstrip("0") or "0"
        when = now + (MAX_RETRY_AFTER if len(digits) > 9 else timedelta(seconds=int(digits)))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return max(now, min(when, now + MAX_RETRY_AFTER))


# --- the client ------------------------------------------------------------------------------


class HttpFetcher:
    """The monitor's one HTTP client. Use as `async with HttpFetcher(settings) as fetcher:`."""

    def __init__(
        self,
        settings: FetchSettings,
        *,
        resolver: Resolver = system_resolver,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """`ssl_context` replaces the default one (certifi's CAs), e.g. to trust a test CA."""
        self.settings = settings
        self.clock = clock
        self.policy = AddressPolicy(
            settings.allow_private_networks, settings.private_network_allowlist
        )
        backend = GuardedBackend(self.policy, resolver)
        # One for all transports: each costs milliseconds to build.
        ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        shards = max(1, min(SHARDS, settings.concurrency // CONNECTIONS_PER_SHARD))
        # A shard may hold every request in flight (the semaphores below are the limit, never a
        # shard's pool, however unevenly hosts fall); it keeps its share of idle connections.
        limits = httpx.Limits(
            max_connections=settings.concurrency,
            max_keepalive_connections=-(-settings.concurrency // shards),
        )
        self.transports = tuple(
            GuardedTransport(backend, limits, ssl_context) for _ in range(shards)
        )
        # What httpx.AsyncClient would add to every request, built once.
        self._headers = {
            "Accept": "*/*",
            "Accept-Encoding": "gzip, deflate, br",
            "Connection": "keep-alive",
            "User-Agent": settings.user_agent,
        }
        self._extensions = {"timeout": httpx.Timeout(settings.timeout.total_seconds()).as_dict()}
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._per_host: dict[str, asyncio.Semaphore] = {}

    async def __aenter__(self) -> HttpFetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for transport in self.transports:
            await transport.aclose()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        previous_hash: str | None = None,
    ) -> FetchOutcome:
        """GET `url` within every limit; a failure comes back as `FetchFailed`, never raised."""
        try:
            async with asyncio.timeout(self.settings.timeout.total_seconds()):
                return await self._follow(url, etag, last_modified, previous_hash)
        except TimeoutError:
            return self._failed(
                url,
                FetchTimeout(
                    f"no complete answer within fetch.timeout "
                    f"({format_duration(self.settings.timeout)})"
                ),
            )
        except FetchError as exc:
            return self._failed(url, exc)
        except httpx.TimeoutException as exc:
            return self._failed(url, FetchTimeout(f"timed out: {type(exc).__name__}"))
        except (httpx.TransportError, httpx.InvalidURL, httpx.DecodingError) as exc:
            return self._failed(url, TransportError(_describe_transport_error(exc)))
        except UnicodeError as exc:  # a host name IDNA cannot encode ("xn--", "a..b")
            return self._failed(url, TransportError(f"bad host name: {exc}"[:300]))

    async def _follow(
        self, url: str, etag: str | None, last_modified: str | None, previous_hash: str | None
    ) -> FetchOutcome:
        current = url
        # The cookies a redirect sets go with the next hops of this fetch, and nowhere else: a
        # site's cookie check (set one, redirect back to the page) passes, and no fetch carries
        # another's cookies (a jar kept across fetches made every request walk the cookies of
        # every site seen before: 0.7 ms a request with 125 sites' cookies).
        cookies = httpx.Cookies()
        # A redirect back to a URL is a loop unless it now carries other cookies.
        visited = {(url, _cookie_state(cookies))}
        for _hop in range(self.settings.max_redirects + 1):
            parts = urlsplit(current)
            _check_scheme(parts.scheme, current)
            host = (parts.hostname or "").lower()
            headers = dict(self._headers)
            # Validators belong to the URL they came from: sent on the first hop, and on a
            # redirect back to it (a cookie check).
            if current == url and etag:
                headers["If-None-Match"] = etag
            if current == url and last_modified:
                headers["If-Modified-Since"] = last_modified
            request = httpx.Request("GET", current, headers=headers, extensions=self._extensions)
            if request.url.userinfo:  # credentials in the URL, sent as httpx.AsyncClient does
                auth = httpx.BasicAuth(request.url.username, request.url.password)
                request = next(auth.sync_auth_flow(request))
            if cookies:
                cookies.set_cookie_header(request)
            # Per-host first: a request waiting for its host must not sit on a global place.
            async with self._host_slots(host), self._in_flight:
                # The shard's transport itself, not an httpx.AsyncClient around it: redirects,
                # cookies and decoding are ours, and the client's own work on each request
                # (merging URL, headers and cookies; auth and redirect wrappers) was a fifth of
                # a fetch's CPU.
                response = await self._transport(host).handle_async_request(request)
                response.request = request
                try:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_STATUSES and location:
                        cookies.extract_cookies(response)
                        current = _redirect_target(current, location)
                        _check_scheme(urlsplit(current).scheme, current)
                        step = (current, _cookie_state(cookies))
                        if step in visited:
                            raise TooManyRedirects(f"redirect loop back to {current}")
                        visited.add(step)
                        continue
                    return await self._complete(url, current, response, previous_hash)
                finally:
                    await response.aclose()
        raise TooManyRedirects(f"more than {self.settings.max_redirects} redirects")

    async def _complete(
        self, url: str, final_url: str, response: httpx.Response, previous_hash: str | None
    ) -> FetchOutcome:
        headers = {k.lower(): v for k, v in response.headers.items()}
        etag, last_modified = headers.get("etag"), headers.get("last-modified")
        if response.status_code == 304:
            return NotModified(url, etag, last_modified)
        if response.status_code >= 400 or response.status_code < 200:
            retry_after = parse_retry_after(headers.get("retry-after"), self.clock())
            raise HttpStatusError(response.status_code, retry_after=retry_after)
        body = await self._read_body(response, headers)
        digest = body_hash(body) if previous_hash is not None else None
        if digest is not None and digest == previous_hash:
            return NotModified(url, etag, last_modified)
        return FetchOk(
            url, final_url, response.status_code, headers, body, etag, last_modified, digest
        )

    async def _read_body(self, response: httpx.Response, headers: dict[str, str]) -> bytes:
        limit = self.settings.max_bytes
        encoding = headers.get("content-encoding", "")
        declared = headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            raise FetchTooLarge(
                f"Content-Length {declared} is over fetch.max_bytes ({limit} bytes)"
            )
        decoder = BoundedDecoder(encoding, limit)
        # BytesIO hands its own buffer to getvalue(): a body of max_bytes costs about max_bytes,
        # where a list of parts joined at the end held it twice.
        body = io.BytesIO()
        async for chunk in response.aiter_raw():
            for piece in decoder.pieces(chunk):
                body.write(piece)
        return body.getvalue()

    def _transport(self, host: str) -> GuardedTransport:
        """The shard that carries every request to `host`."""
        return self.transports[zlib.crc32(host.encode()) % len(self.transports)]

    def _host_slots(self, host: str) -> asyncio.Semaphore:
        """The places for requests in flight to `host` (`per_host` of them)."""
        slots = self._per_host.get(host)
        if slots is None:
            slots = self._per_host[host] = asyncio.Semaphore(self.settings.per_host)
        return slots

    def _failed(self, url: str, error: FetchError) -> FetchFailed:
        kind = {
            FetchTimeout: "timeout",
            FetchTooLarge: "too_large",
            FetchRefused: "refused",
            TooManyRedirects: "redirects",
            HttpStatusError: "http",
            TransportError: "transport",
        }.get(type(error), "error")
        status = error.status if isinstance(error, HttpStatusError) else None
        # Errors may quote URLs (a redirect loop's, a refused hop's), and a URL may carry a
        # secret; the error is stored and shown in `monitor sources`, the digest and notices.
        return FetchFailed(url, redactor.scrub(str(error)), kind, status, error.retry_after)


def _check_scheme(scheme: str, url: str) -> None:
    """FetchRefused unless `scheme` (of `url`) is http or https."""
    scheme = scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchRefused(f"refusing to fetch a {scheme or 'scheme-less'} URL: {url[:100]}")


def _cookie_state(cookies: httpx.Cookies) -> frozenset[tuple[str, str, str, str | None]]:
    return frozenset((c.domain, c.path, c.name, c.value) for c in cookies.jar)


def _redirect_target(current: str, location: str) -> str:
    try:
        return urljoin(current, location.strip())
    except ValueError as exc:  # e.g. "http://[oops": urllib cannot even split it
        raise TransportError(f"bad redirect Location {location[:100]!r}: {exc}") from exc


def _describe_transport_error(exc: Exception) -> str:
    cause = exc.__cause__ or exc.__context__
    detail = str(exc) or (str(cause) if cause else "") or type(exc).__name__
    return f"{type(exc).__name__}: {detail}"[:300]
