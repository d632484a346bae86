"""Which outputs are configured, and where each alert goes: pure decisions from settings + env.

Destinations are short strings stored on outbox rows:

    slack:#channel   bot-token mode, one row per channel the alert's topics route to
    webhook          webhook mode (the webhook's own channel; no threads)
    email            one email per alert to `email.alerts_to`
    console          nothing else configured: printed by `monitor poll` / `monitor run`
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.config import Settings, read_secret


@dataclass(frozen=True, slots=True)
class Outputs:
    """Which outputs the environment and settings make available."""

    slack_token: bool
    slack_webhook: bool
    email_alerts: bool
    email_digest: bool

    @property
    def slack(self) -> bool:
        return self.slack_token or self.slack_webhook

    def missing(self) -> list[str]:
        """Human lines saying what is not configured (printed once at start)."""
        lines = []
        if not self.slack:
            lines.append(
                "Slack is not configured (set SLACK_BOT_TOKEN or SLACK_WEBHOOK_URL): "
                "alerts go to the console and the database"
            )
        if not self.email_digest:
            lines.append(
                "email is not configured (add an `email:` section with digest.to to "
                "settings.yaml): no daily digest"
            )
        return lines


def configured_outputs(settings: Settings, environ: Mapping[str, str] | None = None) -> Outputs:
    token = read_secret(settings.slack.token_env, environ) is not None
    webhook = read_secret(settings.slack.webhook_url_env, environ) is not None
    email = settings.email
    return Outputs(
        slack_token=token,
        slack_webhook=webhook and not token,  # the bot token wins: it can thread and check
        email_alerts=bool(email and email.alerts_to),
        email_digest=bool(email and email.digest.to),
    )


def alert_destinations(
    topics: tuple[str, ...], settings: Settings, outputs: Outputs
) -> tuple[str, ...]:
    """Every destination an alert with `topics` goes to.

    A topic with a route goes to its channel; the others go to the default channel.
    """
    destinations: list[str] = []
    if outputs.slack_token:
        channels = {settings.slack.routes.get(topic, settings.slack.channel) for topic in topics}
        destinations += [f"slack:{channel}" for channel in sorted(channels)]
    elif outputs.slack_webhook:
        destinations.append("webhook")
    if outputs.email_alerts:
        destinations.append("email")
    return tuple(destinations) or ("console",)


def notice_destinations(settings: Settings, outputs: Outputs) -> tuple[str, ...]:
    """Where operational notices (source down/up, a bad config edit) go: the default channel."""
    if outputs.slack_token:
        return (f"slack:{settings.slack.channel}",)
    if outputs.slack_webhook:
        return ("webhook",)
    return ("console",)
