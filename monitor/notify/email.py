"""Email over SMTP: one sender for every message, and the `email` destination (one per alert).

    SmtpSender.send(message)    connect (security none | starttls | ssl, certificates verified
                                by the stdlib's default context), log in when both credential
                                variables are set, send, quit; one connection per message
    EmailAlertNotifier          the outbox's `email` destination: one email per alert to
                                `email.alerts_to`, text and HTML, a Message-ID per outbox row

smtplib, ssl and socket errors are converted here (errors.py draws the tree):

    TemporaryDeliveryError   no connection, a timeout, a dropped connection, any 4xx answer
    PermanentDeliveryError   any 5xx answer, a refused login, a certificate that does not verify,
                             a TLS mismatch, a server without STARTTLS or AUTH when they are needed

Text from articles only ever reaches a header through `one_line`, which turns line breaks and
other control characters into spaces, so a title cannot add a header (or a recipient). The
password is read from the environment at the moment of login and kept nowhere else.
"""

from __future__ import annotations

import email.policy
import hashlib
import logging
import re
import smtplib
import socket
import ssl
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import escape

from monitor.config import EmailSettings, Settings, read_secret
from monitor.errors import DeliveryError, PermanentDeliveryError, TemporaryDeliveryError
from monitor.logs import event
from monitor.models import AlertMessage, Delivery

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 30.0  # seconds, for the connection and for each reply of the server
SUBJECT_LIMIT = 200  # characters; mail clients cut long subjects anyway
FALLBACK_DOMAIN = "news-monitor.invalid"  # for Message-IDs when `from` has no ASCII domain


class MailSender(Protocol):
    """Sends one finished message to the recipients in its To header.

    Raises TemporaryDeliveryError when trying again later may work, PermanentDeliveryError
    when it will not. Returning means the server accepted the message for at least one
    recipient.
    """

    def send(self, message: EmailMessage) -> None: ...


# --- text that goes into headers and templates ----------------------------------------------

_LINE_BREAKING = {"Cc", "Zl", "Zp"}  # controls (CR, LF, NEL, ESC...) and Unicode line breaks


def one_line(text: str, limit: int | None = None) -> str:
    """`text` as one clean line: control characters and line breaks become spaces, runs of
    white space one space; cut to `limit` characters with an ellipsis."""
    cleaned = "".join(" " if unicodedata.category(c) in _LINE_BREAKING else c for c in text)
    cleaned = " ".join(cleaned.split())
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def safe_link(url: str) -> str | None:
    """The URL when it is http(s), else None: a feed's `javascript:` link never becomes a link."""
    url = one_line(url)
    return url if re.match(r"https?://", url, re.IGNORECASE) else None


def highlight(sentence: str, words: Iterable[str]) -> tuple[tuple[str, bool], ...]:
    """The sentence cut into (text, is_a_matched_word) parts, for bold words in HTML."""
    wanted = sorted({w for w in words if w}, key=len, reverse=True)
    if not wanted:
        return ((sentence, False),) if sentence else ()
    pattern = re.compile("|".join(re.escape(w) for w in wanted), re.IGNORECASE)
    parts: list[tuple[str, bool]] = []
    position = 0
    for found in pattern.finditer(sentence):
        if found.start() > position:
            parts.append((sentence[position : found.start()], False))
        parts.append((found.group(), True))
        position = found.end()
    if position < len(sentence):
        parts.append((sentence[position:], False))
    return tuple(parts)


# Templates ending in .html.j2 are autoescaped: article text shows as text, never as markup.
# The plain-text ones are not (there is nothing to escape in text/plain).
templates = Environment(
    loader=PackageLoader("monitor", "notify/templates"),
    autoescape=select_autoescape(
        enabled_extensions=("html.j2",), disabled_extensions=("txt.j2",), default=True
    ),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_day(moment: date) -> str:
    """`23 Nov 2026`, whatever the machine's locale."""
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}"


def format_moment(moment: datetime) -> str:
    """`23 Nov 08:15`, whatever the machine's locale."""
    return f"{moment.day} {MONTHS[moment.month - 1]} {moment:%H:%M}"


templates.filters["day"] = format_day
templates.filters["moment"] = format_moment


def render(name: str, **context: Any) -> str:
    """Render template `name` from notify/templates."""
    return templates.get_template(name).render(**context)


# --- messages -------------------------------------------------------------------------------


def message_domain(settings: EmailSettings) -> str:
    """The domain of the `from` address, for Message-IDs (ours to name, stable, never random)."""
    domain = email.policy.default.header_factory("from", settings.from_).addresses[0].domain
    return domain.lower() if domain.isascii() and domain else FALLBACK_DOMAIN


def stable_message_id(kind: str, key: str, settings: EmailSettings) -> str:
    """`<kind.key.HASH@domain>`: the same inputs give the same Message-ID, so a message sent
    again after an unknown outcome is recognisably the same message (mail clients and many
    servers drop the second copy). The hash keeps two monitors sending as one address apart."""
    digest = hashlib.sha256(f"{kind}|{key}|{settings.from_}".encode()).hexdigest()[:16]
    safe_key = re.sub(r"[^A-Za-z0-9.-]", "-", key)
    return f"<{kind}.{safe_key}.{digest}@{message_domain(settings)}>"


def compose(
    settings: EmailSettings,
    *,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """A multipart/alternative email (text/plain, then text/html) ready for `MailSender.send`."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["Subject"] = one_line(subject, SUBJECT_LIMIT)
    message["From"] = settings.from_
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(date.astimezone(UTC))
    message["Message-ID"] = message_id
    # RFC 3834: vacation responders and the like must not answer a machine.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


# --- sending over SMTP ------------------------------------------------------------------------


class SmtpSender:
    """Sends messages through the SMTP server of `email:` in settings.yaml.

    `ssl_context` replaces the stdlib's default context (which verifies the certificate and
    the host name against the system's CAs, or `$SSL_CERT_FILE`); tests pass one that trusts
    their own CA. Credentials are read from `username_env` / `password_env` at each send, and
    used only when both are set.
    """

    def __init__(
        self,
        settings: EmailSettings,
        *,
        environ: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = SMTP_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.timeout = timeout
        self._environ = environ
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpSender({s.smtp_host}:{s.smtp_port}, security={s.security})"

    def send(self, message: EmailMessage) -> None:
        """Send `message` to its To recipients; see `MailSender`."""
        try:
            smtp = self._connect()
            try:
                self._login(smtp)
                refused = smtp.send_message(message)
            finally:
                _quit(smtp)
        except (smtplib.SMTPException, OSError) as exc:
            raise self._delivery_error(exc) from exc
        if refused:
            # Some recipients have it: sending again would give them a second copy.
            event(
                log,
                "email_recipients_refused",
                logging.WARNING,
                message_id=message["Message-ID"],
                refused=_describe_recipients(refused),
            )

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "ssl":
            return smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=self.timeout, context=self._context()
            )
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=self.timeout)
        if s.security == "starttls":
            try:
                smtp.starttls(context=self._context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _login(self, smtp: smtplib.SMTP) -> None:
        username = read_secret(self.settings.username_env, self._environ)
        password = read_secret(self.settings.password_env, self._environ)
        if username is not None and password is not None:
            smtp.login(username.get_secret_value(), password.get_secret_value())

    def _delivery_error(self, exc: BaseException) -> DeliveryError:
        """The smtplib / ssl / socket error as a Temporary- or PermanentDeliveryError."""
        s = self.settings
        server = f"SMTP server {s.smtp_host}:{s.smtp_port}"
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            # Temporary as soon as one refusal is: that recipient may be accepted later.
            permanent = all(500 <= code < 600 for code, _ in exc.recipients.values())
            kind = PermanentDeliveryError if permanent else TemporaryDeliveryError
            return kind(f"{server} refused every recipient: {_describe_recipients(exc.recipients)}")
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            reply = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                return TemporaryDeliveryError(f"{server} cannot log in now: {reply}")
            return PermanentDeliveryError(
                f"{server} refused the login ({reply}): check {s.username_env} and {s.password_env}"
            )
        if isinstance(exc, smtplib.SMTPResponseException):
            reply = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
            return _kind(exc.smtp_code)(f"{server} answered {reply}")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            # No STARTTLS, no AUTH, or no SMTPUTF8 for a non-ASCII address: smtplib says which.
            hint = ""
            if "STARTTLS" in str(exc):
                hint = " (email.security is starttls: nothing is ever sent unencrypted)"
            elif "AUTH" in str(exc) and s.security == "none":
                hint = (
                    " (many servers offer AUTH only after STARTTLS: try email.security: starttls)"
                )
            return PermanentDeliveryError(f"{server}: {exc}{hint}")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            if isinstance(exc.__context__, TimeoutError):  # smtplib wraps a read timeout so
                return TemporaryDeliveryError(f"{server} did not answer within {self.timeout:g}s")
            return TemporaryDeliveryError(f"{server} closed the connection: {exc}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentDeliveryError(
                f"{server}: its certificate does not verify ({exc.verify_message})"
            )
        if isinstance(exc, ssl.SSLError):
            return PermanentDeliveryError(
                f"{server}: TLS failed ({exc.reason or exc}); check email.security and smtp_port "
                "(ssl is usually port 465, starttls 587)"
            )
        if isinstance(exc, TimeoutError | socket.timeout):
            return TemporaryDeliveryError(f"{server} did not answer within {self.timeout:g}s")
        if isinstance(exc, OSError):
            return TemporaryDeliveryError(f"cannot reach {server}: {exc.strerror or exc}")
        return PermanentDeliveryError(f"{server}: {exc}")


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye and close. A failing QUIT changes nothing: the message was accepted before
    it, or the error that matters is already on its way, and must not be replaced."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _kind(code: int) -> type[DeliveryError]:
    """SMTP's own rule: 4xx is "try again later", 5xx is "this will not work"."""
    return PermanentDeliveryError if 500 <= code < 600 else TemporaryDeliveryError


def _reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return one_line(text, 300)


def _describe_recipients(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address}: {code} {_reply_text(reply)}" for address, (code, reply) in refused.items()
    )


# --- the `email` destination: one email per alert ---------------------------------------------


def alert_subject(alert: AlertMessage) -> str:
    """`[ussm, rare-earth] Title`, follow-ups marked as such; one line whatever the title."""
    tags = ", ".join(alert.topics)
    title = one_line(alert.title) or "(untitled)"
    prefix = "Follow-up: " if alert.kind == "followup" else ""
    return one_line(f"[{tags}] {prefix}{title}", SUBJECT_LIMIT)


def alert_email(
    alert: AlertMessage, delivery_id: int, settings: EmailSettings, zone: tzinfo, now: datetime
) -> EmailMessage:
    """The email telling `email.alerts_to` about one alert (one outbox row); times in `zone`."""
    when = (alert.published or alert.first_seen).astimezone(zone)
    when_text = f"{format_day(when)} {when:%H:%M %Z}"
    matches = [
        {
            "topic": match.topic,
            "words": ", ".join(one_line(w) for w in match.words),
            "sentence": one_line(match.sentence),
            "parts": highlight(one_line(match.sentence), match.words),
        }
        for match in alert.matches
    ]
    context = {
        "alert": alert,
        "title": one_line(alert.title) or "(untitled)",
        "outlet": one_line(alert.outlet),
        "link": safe_link(alert.link),
        "when": when_text,
        "published": alert.published is not None,
        "topics": ", ".join(alert.topics),
        "matches": matches,
    }
    message_id = stable_message_id("alert", f"{alert.alert_id}.{delivery_id}", settings)
    return compose(
        settings,
        to=settings.alerts_to,
        subject=alert_subject(alert),
        text=render("alert.txt.j2", **context),
        html=render("alert.html.j2", **context),
        message_id=message_id,
        date=now,
    )


def notice_email(
    notice: Mapping[str, str], delivery_id: int, settings: EmailSettings, now: datetime
) -> EmailMessage:
    """An operational notice (a source down or back, a bad config edit) as an email."""
    text = one_line(notice.get("text", "")) or one_line(notice.get("kind", "notice"))
    return compose(
        settings,
        to=settings.alerts_to,
        subject=f"[news monitor] {text}",
        text=text + "\n",
        html=f"<!DOCTYPE html>\n<html><body><p>{escape(text)}</p></body></html>\n",
        message_id=stable_message_id("notice", str(delivery_id), settings),
        date=now,
    )


class EmailAlertNotifier:
    """The `email` destination of the outbox: one email per alert to `email.alerts_to`.

    SMTP cannot tell whether an earlier attempt arrived, so a row found in flight after a crash
    is sent again, with the same Message-ID: at worst a second copy that mail clients can
    recognise. Returns the Message-ID, which the outbox records.
    """

    def __init__(
        self,
        settings: Settings,
        sender: MailSender,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if settings.email is None:
            raise ValueError("EmailAlertNotifier needs an `email:` section in settings.yaml")
        self.email = settings.email
        self.zone = settings.zone
        self.sender = sender
        self.clock = clock

    def deliver(self, delivery: Delivery) -> str | None:
        now = self.clock()
        if not self.email.alerts_to:
            raise PermanentDeliveryError("email.alerts_to is empty: nobody to send alerts to")
        if delivery.alert is not None:
            message = alert_email(delivery.alert, delivery.id, self.email, self.zone, now)
        elif delivery.notice is not None:
            message = notice_email(delivery.notice, delivery.id, self.email, now)
        else:
            raise PermanentDeliveryError(f"outbox row {delivery.id} holds neither alert nor notice")
        if delivery.in_flight:
            event(
                log,
                "email_resent_after_interruption",
                logging.WARNING,
                outbox=delivery.id,
                message_id=message["Message-ID"],
            )
        self.sender.send(message)
        return str(message["Message-ID"])
