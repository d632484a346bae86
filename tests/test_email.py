"""Email over a real SMTP server on 127.0.0.1: security modes, login, failures, alert emails."""

from __future__ import annotations

import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.config import Config, Settings
from monitor.errors import PermanentDeliveryError, TemporaryDeliveryError
from monitor.models import AlertMessage, Delivery
from monitor.notify.email import (
    EmailAlertNotifier,
    SmtpSender,
    compose,
    highlight,
    one_line,
    safe_link,
)
from monitor.notify.outbox import deliver_due
from monitor.notify.routing import Outputs
from monitor.runtime import notifiers
from monitor.store import Store
from monitor.store.schema import OutboxRow
from tests.smtp import Security, SmtpServer, TlsFiles
from tests.stories import match, save_alert

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 08:00 in Karachi
PASSWORD = "pw-9f3c1e77d2"


def sender_for(server: SmtpServer, tls: TlsFiles, **changes: object) -> SmtpSender:
    return SmtpSender(
        server.settings(**changes), environ=server.environ, ssl_context=tls.client_context()
    )


def a_message(server: SmtpServer, subject: str = "Hello") -> EmailMessage:
    return compose(
        server.settings(),
        to=["alerts@example.org"],
        subject=subject,
        text="plain words\n",
        html="<p>html words</p>\n",
        message_id="<test.1@example.org>",
        date=NOW,
    )


def settings_for(server: SmtpServer) -> Settings:
    return Settings(timezone="Asia/Karachi", email=server.settings())


def an_alert(**changes: object) -> AlertMessage:
    values: dict[str, object] = {
        "alert_id": 41,
        "story_id": 7,
        "kind": "story",
        "title": "Pakistan ships first rare earth consignment to USSM",
        "link": "https://dawn.com/news/1",
        "outlet": "dawn.com",
        "source": "dawn",
        "published": datetime(2026, 11, 22, 13, 15, tzinfo=UTC),
        "first_seen": datetime(2026, 11, 22, 13, 20, tzinfo=UTC),
        "topics": ("rare-earth", "ussm"),
        "matches": (
            match("rare-earth", "The rare earth shipment left Karachi.", "rare earth"),
            match("ussm", "Pakistan signed with USSM in September.", "USSM"),
        ),
    }
    values.update(changes)
    return AlertMessage(**values)  # type: ignore[arg-type]


def delivery_of(alert: AlertMessage, delivery_id: int = 3, in_flight: bool = False) -> Delivery:
    return Delivery(delivery_id, "email", 0, in_flight, alert=alert)


class Tags(HTMLParser):
    """Every element in an HTML document, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def subject(message: EmailMessage) -> str:
    """The Subject as a mail client shows it. Python folds a long subject right after
    `Subject:` and its parser keeps the space of the fold; clients drop it."""
    return str(message["Subject"]).strip()


def parts(message: EmailMessage) -> dict[str, str]:
    """content type -> decoded text of each leaf part."""
    return {
        part.get_content_type(): part.get_content()
        for part in message.walk()
        if not part.is_multipart()
    }


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


# --- SmtpSender: security modes and login -------------------------------------------------------


@pytest.mark.parametrize("security", ["none", "starttls", "ssl"])
@pytest.mark.parametrize("login", [False, True], ids=["anonymous", "login"])
def test_sends_in_every_security_mode(
    start_smtp_server: Callable[..., SmtpServer],
    tls_files: TlsFiles,
    security: Security,
    login: bool,
) -> None:
    server = start_smtp_server(security, credentials=("monitor", PASSWORD) if login else None)
    sender_for(server, tls_files).send(a_message(server))
    (got,) = server.received
    assert got.tls == (security != "none")
    assert got.authenticated_as == ("monitor" if login else None)
    assert got.mail_from == "monitor@example.org"
    assert got.rcpt_tos == ("alerts@example.org",)
    message = got.message
    assert message.get_content_type() == "multipart/alternative"
    assert parts(message) == {"text/plain": "plain words\n", "text/html": "<p>html words</p>\n"}
    assert message["Message-ID"] == "<test.1@example.org>"
    assert message["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_a_certificate_nobody_vouches_for_is_refused(
    start_smtp_server: Callable[..., SmtpServer], security: Security
) -> None:
    server = start_smtp_server(security, credentials=("monitor", PASSWORD))
    # The stdlib's default context: the test CA is not among the system's.
    sender = SmtpSender(server.settings(), environ=server.environ)
    with pytest.raises(PermanentDeliveryError, match="certificate does not verify"):
        sender.send(a_message(server))
    assert server.received == []


def test_ssl_cert_file_lets_the_default_context_trust_a_private_ca(
    smtp_server: SmtpServer, tls_files: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files.ca))
    SmtpSender(smtp_server.settings(), environ=smtp_server.environ).send(a_message(smtp_server))
    assert len(smtp_server.received) == 1


def test_starttls_never_falls_back_to_plain_text(
    start_smtp_server: Callable[..., SmtpServer], tls_files: TlsFiles
) -> None:
    server = start_smtp_server("none")
    sender = sender_for(server, tls_files, security="starttls")
    with pytest.raises(PermanentDeliveryError, match="STARTTLS extension not supported"):
        sender.send(a_message(server))
    assert server.received == []


def test_implicit_tls_against_a_plain_port_is_a_permanent_error(
    start_smtp_server: Callable[..., SmtpServer], tls_files: TlsFiles
) -> None:
    server = start_smtp_server("none")
    with pytest.raises(PermanentDeliveryError, match=r"TLS failed.*email\.security"):
        sender_for(server, tls_files, security="ssl").send(a_message(server))


def test_logs_in_only_when_both_variables_are_set(
    start_smtp_server: Callable[..., SmtpServer], tls_files: TlsFiles
) -> None:
    server = start_smtp_server("none")  # offers AUTH, does not require it
    sender = SmtpSender(server.settings(), environ={"SMTP_USERNAME": "monitor"}, ssl_context=None)
    sender.send(a_message(server))
    assert [r.authenticated_as for r in server.received] == [None]


def test_credentials_may_come_from_files(
    smtp_server: SmtpServer, tls_files: TlsFiles, tmp_path: Path
) -> None:
    (tmp_path / "user").write_text("monitor\n")
    (tmp_path / "password").write_text(smtp_server.environ["SMTP_PASSWORD"] + "\n")
    environ = {
        "SMTP_USERNAME_FILE": str(tmp_path / "user"),
        "SMTP_PASSWORD_FILE": str(tmp_path / "password"),
    }
    sender = SmtpSender(
        smtp_server.settings(), environ=environ, ssl_context=tls_files.client_context()
    )
    sender.send(a_message(smtp_server))
    assert [r.authenticated_as for r in smtp_server.received] == ["monitor"]


def test_a_wrong_password_is_permanent_and_never_shown(
    smtp_server: SmtpServer, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-password-4d1f"
    sender = SmtpSender(
        smtp_server.settings(),
        environ={"SMTP_USERNAME": "monitor", "SMTP_PASSWORD": wrong},
        ssl_context=tls_files.client_context(),
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PermanentDeliveryError, match="refused the login") as raised:
        sender.send(a_message(smtp_server))
    shown = [str(raised.value), repr(raised.value), repr(sender), caplog.text]
    assert not any(wrong in text for text in shown)
    assert smtp_server.received == []


def test_no_login_where_one_is_required_is_permanent(
    smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    sender = SmtpSender(smtp_server.settings(), environ={}, ssl_context=tls_files.client_context())
    with pytest.raises(PermanentDeliveryError, match="530"):
        sender.send(a_message(smtp_server))


# --- SmtpSender: what the server answers ----------------------------------------------------------


def test_451_is_temporary_and_the_retry_goes_through(
    smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    sender = sender_for(smtp_server, tls_files)
    smtp_server.fail_next("451 4.3.0 Mail server temporarily rejected message")
    with pytest.raises(TemporaryDeliveryError, match="451"):
        sender.send(a_message(smtp_server))
    assert smtp_server.received == []
    sender.send(a_message(smtp_server))
    assert len(smtp_server.received) == 1


def test_550_is_permanent(smtp_server: SmtpServer, tls_files: TlsFiles) -> None:
    smtp_server.fail_next("550 5.7.1 Message rejected as spam")
    with pytest.raises(
        PermanentDeliveryError, match=re.escape("550 5.7.1 Message rejected as spam")
    ):
        sender_for(smtp_server, tls_files).send(a_message(smtp_server))


def test_a_bad_answer_to_quit_after_the_message_was_accepted_is_not_a_failure(
    smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    # Reporting an error here would have the message sent again: a duplicate.
    smtp_server.answer_quit("451 4.3.0 Error on the way out")
    sender_for(smtp_server, tls_files).send(a_message(smtp_server))
    assert len(smtp_server.received) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such user", PermanentDeliveryError),
        ("450 4.2.1 Mailbox busy", TemporaryDeliveryError),
    ],
)
def test_a_refused_recipient(
    smtp_server: SmtpServer,
    tls_files: TlsFiles,
    reply: str,
    error: type[Exception],
) -> None:
    smtp_server.refuse_recipient("alerts@example.org", reply)
    with pytest.raises(error, match=re.escape("refused every recipient: alerts@example.org")):
        sender_for(smtp_server, tls_files).send(a_message(smtp_server))


def test_one_refused_recipient_of_two_is_logged_and_the_other_gets_it(
    smtp_server: SmtpServer, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    smtp_server.refuse_recipient("gone@example.org", "550 5.1.1 No such user")
    message = compose(
        smtp_server.settings(),
        to=["alerts@example.org", "gone@example.org"],
        subject="Two",
        text="t\n",
        html="<p>h</p>\n",
        message_id="<two@example.org>",
        date=NOW,
    )
    sender_for(smtp_server, tls_files).send(message)
    assert [r.rcpt_tos for r in smtp_server.received] == [("alerts@example.org",)]
    (refused,) = [r for r in caplog.records if r.getMessage() == "email_recipients_refused"]
    assert refused.__dict__["fields"]["refused"] == "gone@example.org: 550 5.1.1 No such user"


def test_a_refused_connection_is_temporary(closed_port: int, tls_files: TlsFiles) -> None:
    settings = Settings.model_validate(
        {"email": {"smtp_host": "127.0.0.1", "smtp_port": closed_port, "security": "starttls"}}
    ).email
    assert settings is not None
    sender = SmtpSender(settings, environ={}, ssl_context=tls_files.client_context())
    with pytest.raises(
        TemporaryDeliveryError, match=f"cannot reach SMTP server 127.0.0.1:{closed_port}"
    ):
        sender.send(EmailMessage())


def test_a_server_that_never_answers_times_out_as_temporary(silent_server: int) -> None:
    settings = Settings.model_validate(
        {"email": {"smtp_host": "127.0.0.1", "smtp_port": silent_server, "security": "none"}}
    ).email
    assert settings is not None
    sender = SmtpSender(settings, environ={}, timeout=0.3)
    started = datetime.now(UTC)
    with pytest.raises(TemporaryDeliveryError, match=re.escape("did not answer within 0.3s")):
        sender.send(EmailMessage())
    assert datetime.now(UTC) - started < timedelta(seconds=5)


# --- text that reaches headers and HTML ---------------------------------------------------------


def test_one_line_removes_every_line_break_and_control_character() -> None:
    assert one_line("a\r\nBcc: b\x00c\x1b[31md\u2028e\u0085f\tg  h") == "a Bcc: b c [31md e f g h"
    assert one_line("x" * 10, 5) == "xxxx…"
    # Joiners matter in Urdu and Persian text: they stay.
    assert one_line("می\u200cخواهم") == "می\u200cخواهم"


def test_only_http_links_become_links() -> None:
    assert safe_link("https://dawn.com/a") == "https://dawn.com/a"
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("data:text/html,<script>") is None


def test_highlight_marks_matched_words_whatever_their_case() -> None:
    assert highlight("Rare Earth and rare-earth: REE", ["rare earth", "REE"]) == (
        ("Rare Earth", True),
        (" and rare-earth: ", False),
        ("REE", True),
    )


# --- EmailAlertNotifier -------------------------------------------------------------------------


def test_an_alert_becomes_one_email_to_alerts_to(
    smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    notifier = EmailAlertNotifier(
        settings_for(smtp_server), sender_for(smtp_server, tls_files), clock=lambda: NOW
    )
    message_id = notifier.deliver(delivery_of(an_alert()))
    (got,) = smtp_server.received
    message = got.message
    assert got.rcpt_tos == ("alerts@example.org",)
    assert (
        subject(message) == "[rare-earth, ussm] Pakistan ships first rare earth consignment to USSM"
    )
    assert message["Message-ID"] == message_id
    assert message["From"] == "News Monitor <monitor@example.org>"
    text, html = parts(message)["text/plain"], parts(message)["text/html"]
    assert "https://dawn.com/news/1" in text
    assert "dawn.com · 22 Nov 2026 18:15 PKT" in text
    assert "> Pakistan signed with USSM in September." in text
    assert '<a href="https://dawn.com/news/1">' in html
    assert "<strong>USSM</strong>" in html and "<strong>rare earth</strong>" in html


def test_a_follow_up_says_so(smtp_server: SmtpServer, tls_files: TlsFiles) -> None:
    notifier = EmailAlertNotifier(settings_for(smtp_server), sender_for(smtp_server, tls_files))
    notifier.deliver(delivery_of(an_alert(kind="followup", outlet="tribune.com.pk")))
    (got,) = smtp_server.received
    assert subject(got.message).startswith("[rare-earth, ussm] Follow-up: Pakistan ships")


def test_the_message_id_is_stable_per_outbox_row(
    smtp_server: SmtpServer, tls_files: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = EmailAlertNotifier(settings_for(smtp_server), sender_for(smtp_server, tls_files))
    first = notifier.deliver(delivery_of(an_alert(), delivery_id=3))
    # After a crash mid-send the row comes back in flight: sent again, as the same message.
    again = notifier.deliver(delivery_of(an_alert(), delivery_id=3, in_flight=True))
    other = notifier.deliver(delivery_of(an_alert(alert_id=42), delivery_id=4))
    assert first == again != other
    assert first is not None and first.endswith("@example.org>")
    assert [r.message["Message-ID"] for r in smtp_server.received] == [first, first, other]
    assert "email_resent_after_interruption" in caplog.text


def test_a_title_cannot_add_headers_or_recipients(
    smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    evil = an_alert(
        title="Ships sail\r\nBcc: victim@example.net\r\nX-Injected: yes\n\nbody",
        outlet="dawn.com\r\nCc: other@example.net",
    )
    notifier = EmailAlertNotifier(settings_for(smtp_server), sender_for(smtp_server, tls_files))
    notifier.deliver(delivery_of(evil))
    (got,) = smtp_server.received
    assert got.rcpt_tos == ("alerts@example.org",)
    head = got.raw.split(b"\r\n\r\n", 1)[0].decode()
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]
    assert names.count("subject") == 1
    assert not {"bcc", "cc", "x-injected"} & set(names)
    assert subject(got.message) == (
        "[rare-earth, ussm] Ships sail Bcc: victim@example.net X-Injected: yes body"
    )


def test_article_markup_in_an_alert_shows_as_text(
    smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    alert = an_alert(
        title="<script>alert(1)</script> Tom & <b>Jerry</b>",
        link="javascript:alert(2)",
        matches=(match("ussm", "<b>USSM</b> & <img src=x onerror=alert(3)>", "USSM"),),
        topics=("ussm",),
    )
    notifier = EmailAlertNotifier(settings_for(smtp_server), sender_for(smtp_server, tls_files))
    notifier.deliver(delivery_of(alert))
    html = parts(smtp_server.received[0].message)["text/html"]
    seen = Tags(html)
    assert not {"script", "b", "img"} & set(seen.tags)
    assert "href" not in html.split("<body", 1)[1].split("</p>", 1)[0]  # javascript: not linked
    text = "".join(seen.text)
    assert "<script>alert(1)</script> Tom & <b>Jerry</b>" in text
    assert "<img src=x onerror=alert(3)>" in text


def test_alert_emails_go_through_the_outbox(
    store: Store, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    saved = save_alert(
        store,
        url="https://dawn.com/news/1",
        title="Pakistan ships minerals to USSM",
        at=NOW,
        matches=[match("ussm", "Pakistan signed with USSM.", "USSM")],
        destinations=("email",),
    )
    notifier = EmailAlertNotifier(settings_for(smtp_server), sender_for(smtp_server, tls_files))
    smtp_server.fail_next("421 4.3.2 Service shutting down")
    report = deliver_due(store, {"email": notifier}, lambda: NOW)
    assert (report.sent, report.retried) == (0, 1)
    later = NOW + timedelta(minutes=5)
    report = deliver_due(store, {"email": notifier}, lambda: later)
    assert (report.sent, report.retried) == (1, 0)
    (got,) = smtp_server.received
    with store.engine.connect() as connection:
        row = connection.execute(
            sa.select(OutboxRow.state, OutboxRow.attempts, OutboxRow.external_id).where(
                OutboxRow.alert_id == saved.alert_id
            )
        ).one()
    assert tuple(row) == ("sent", 2, got.message["Message-ID"])


def test_the_email_notifier_is_wired_when_alerts_to_is_set(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"email": {"alerts_to": ["alerts@example.org"], "digest": {"to": ["team@example.org"]}}}
    )
    config = Config(tmp_path, settings, (), (), "v1")
    with_email = notifiers(config, Outputs(False, False, email_alerts=True, email_digest=True))
    without = notifiers(config, Outputs(False, False, email_alerts=False, email_digest=True))
    assert isinstance(with_email["email"], EmailAlertNotifier)
    assert "email" not in without
