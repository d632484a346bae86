"""A real SMTP server on 127.0.0.1 for tests: aiosmtpd with STARTTLS or implicit TLS, AUTH,
every accepted message recorded, and replies a test can turn into 4xx / 5xx.

    with SmtpServer("starttls", tls, credentials=("monitor", "pw")) as server:
        SmtpSender(server.settings(), environ=server.environ, ssl_context=tls.client_context())
        server.fail_next("451 4.3.0 try again later")   # the next DATA gets this answer
        server.received[0].message["Subject"]

The server's certificate is signed by a test CA (tests/data/tls); clients trust it through
`TlsFiles.client_context()` (or `$SSL_CERT_FILE=tls.ca` for a subprocess). Verification is never
turned off.
"""

from __future__ import annotations

import email
import email.policy
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from monitor.config import EmailSettings

HOST = "127.0.0.1"
Security = Literal["none", "starttls", "ssl"]


# --- certificates: a test CA and a server certificate for 127.0.0.1 / localhost ---------------


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate clients must trust
    cert: Path  # the server's certificate (for 127.0.0.1 and localhost)
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """The stdlib's default client context (verification on), trusting only our CA."""
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


TLS_DIR = Path(__file__).parent / "data" / "tls"
# Made by tests/data/tls/make_certs.py: a CA and a server certificate for 127.0.0.1/localhost.
TLS_FILES = TlsFiles(TLS_DIR / "ca.pem", TLS_DIR / "server.pem", TLS_DIR / "server.key")


# --- the server ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    authenticated_as: str | None
    tls: bool

    @property
    def message(self) -> EmailMessage:
        # SMTP's CRLF line ends, as Python's own line ends in the parts' text.
        unix = self.raw.replace(b"\r\n", b"\n")
        parsed = email.message_from_bytes(unix, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    data_replies: deque[str] = field(default_factory=deque)
    refused_recipients: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Checked here rather than with aiosmtpd's `auth_required`, which warns on every connection
    # when AUTH may go without TLS (as it must over implicit TLS, see SmtpServer).
    auth_required: bool = False
    quit_reply: str = "221 2.0.0 Bye"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return self.quit_reply

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.auth_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refused_recipients:
            return self.refused_recipients[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.data_replies:
                return self.data_replies.popleft()
            auth = session.auth_data
            login = auth.login.decode() if isinstance(auth, LoginPassword) else None
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=tuple(envelope.rcpt_tos),
                    raw=envelope.original_content,
                    authenticated_as=login,
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                )
            )
        return "250 2.0.0 OK: queued"


class _Controller(Controller):  # type: ignore[misc]
    """aiosmtpd's Controller on a free port chosen by the OS (port 0)."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpServer:
    """An SMTP server on 127.0.0.1 in one of the three security modes.

    starttls: plain connection, STARTTLS required before anything else;
    ssl:      TLS from the first byte (implicit TLS, like port 465);
    none:     no TLS at all.
    With `credentials`, AUTH (PLAIN and LOGIN) is required before MAIL FROM.
    """

    def __init__(
        self,
        security: Security,
        tls: TlsFiles,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.security = security
        self.tls = tls
        self.credentials = credentials
        self._handler = _Handler()
        self._handler.auth_required = credentials is not None
        options: dict[str, Any] = {
            "authenticator": self._authenticate,
            # Over implicit TLS aiosmtpd does not know the connection is encrypted (its issue
            # #281), and over `none` there is no TLS: let AUTH through in both.
            "auth_require_tls": security == "starttls",
        }
        if security == "starttls":
            options.update(tls_context=tls.server_context(), require_starttls=True)
        self._controller = _Controller(
            self._handler,
            hostname=HOST,
            port=0,
            ssl_context=tls.server_context() if security == "ssl" else None,
            server_hostname="smtp.test",
            **options,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.credentials is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        if not ok:
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=auth_data)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return HOST

    @property
    def port(self) -> int:
        port: int = self._controller.port
        return port

    @property
    def received(self) -> list[Received]:
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def environ(self) -> dict[str, str]:
        """The environment a client needs to log in (empty without credentials)."""
        if self.credentials is None:
            return {}
        return {"SMTP_USERNAME": self.credentials[0], "SMTP_PASSWORD": self.credentials[1]}

    def fail_next(self, reply: str, times: int = 1) -> None:
        """Answer the next `times` DATA commands with `reply` (e.g. "451 4.3.0 later")."""
        with self._handler.lock:
            self._handler.data_replies.extend([reply] * times)

    def answer_quit(self, reply: str) -> None:
        """Answer QUIT with `reply` instead of 221."""
        self._handler.quit_reply = reply

    def refuse_recipient(self, address: str, reply: str) -> None:
        """Answer RCPT TO for `address` with `reply` (e.g. "550 5.1.1 no such user")."""
        self._handler.refused_recipients[address] = reply

    def settings(self, **changes: Any) -> EmailSettings:
        """`email:` settings pointing at this server."""
        values: dict[str, Any] = {
            "smtp_host": HOST,
            "smtp_port": self.port,
            "security": self.security,
            "from": "News Monitor <monitor@example.org>",
            "alerts_to": ["alerts@example.org"],
            "digest": {"to": ["team@example.org"], "at": "08:00"},
        }
        values.update(changes)
        return EmailSettings.model_validate(values)
