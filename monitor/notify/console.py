"""Alerts printed to the terminal: the output when neither Slack nor email is configured."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from monitor.models import AlertMessage, Delivery


def highlighted(sentence: str, words: tuple[str, ...]) -> Text:
    """The sentence with each matched word in bold (case-insensitive)."""
    text = Text(sentence)
    for word in words:
        text.highlight_words([word], style="bold", case_sensitive=False)
    return text


class ConsoleNotifier:
    """Prints each alert (and notice) once; the outbox records it as delivered."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True, emoji=False)

    def deliver(self, delivery: Delivery) -> str | None:
        if delivery.alert is not None:
            self._print_alert(delivery.alert)
        elif delivery.notice is not None:
            self.console.print(f"[yellow]notice[/yellow] {escape(delivery.notice.get('text', ''))}")
        return None

    def _print_alert(self, alert: AlertMessage) -> None:
        tags = " ".join(f"[cyan]#{escape(t)}[/cyan]" for t in alert.topics)
        label = "follow-up" if alert.kind == "followup" else "ALERT"
        when = alert.published.strftime("%Y-%m-%d %H:%M UTC") if alert.published else "undated"
        self.console.print(
            f"[bold magenta]{label}[/bold magenta] {tags} [bold]{escape(alert.title)}[/bold]"
        )
        self.console.print(f"  {escape(alert.outlet)} · {when} · {escape(alert.link)}")
        if alert.matches:
            first = alert.matches[0]
            line = Text("  > ")
            line.append_text(highlighted(first.sentence, first.words))
            self.console.print(line)
