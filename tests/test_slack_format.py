"""The Slack message of an alert or notice (pure): shape, escaping of hostile text, limits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.models import AlertMessage, TopicMatch
from monitor.notify.slack_format import (
    MAX_BLOCKS,
    SECTION_LIMIT,
    ZWSP,
    SlackMessage,
    alert_message,
    bold_words,
    link_url,
    local_time,
    mrkdwn_text,
    notice_message,
)

KARACHI = ZoneInfo("Asia/Karachi")
PUBLISHED = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)  # 13:05 in Karachi
URL = "https://www.dawn.com/news/1945000/pakistan-ships-minerals"


def alert(**changes: Any) -> AlertMessage:
    fields: dict[str, Any] = {
        "alert_id": 41,
        "story_id": 7,
        "kind": "story",
        "title": "Pakistan ships first consignment under USSM memorandum",
        "link": URL,
        "outlet": "Dawn",
        "source": "dawn",
        "published": PUBLISHED,
        "first_seen": datetime(2026, 11, 23, 8, 30, tzinfo=UTC),
        "topics": ("rare-earth", "ussm"),
        "matches": (
            TopicMatch(
                "rare-earth",
                ("rare earth",),
                "The first rare earth shipment left Karachi for USSM on Sunday.",
            ),
            TopicMatch(
                "ussm",
                ("USSM",),
                "The first rare earth shipment left Karachi for USSM on Sunday.",
            ),
        ),
    }
    fields.update(changes)
    return AlertMessage(**fields)


def texts(message: SlackMessage) -> list[str]:
    """Every piece of mrkdwn Slack renders: the fallback and each text in the blocks."""
    found = [message.text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value)

    walk(list(message.blocks))
    return found


def visible(text: str) -> str:
    """Roughly what Slack shows for escaped text: entities decoded, zero-width spaces gone."""
    return text.replace(ZWSP, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def tokens(text: str) -> list[str]:
    """Slack's `<…>` tokens: links, mentions, channel references, special commands."""
    return re.findall(r"<[^<>]*>", text)


# --- shape -------------------------------------------------------------------------------------


def test_story_message_shows_title_link_outlet_time_tags_and_bold_sentence() -> None:
    message = alert_message(alert(), KARACHI)

    headline, details, quote = message.blocks
    assert headline == {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": f"*<{URL}|Pakistan ships first consignment under USSM memorandum>*",
            "verbatim": True,
        },
    }
    assert details["type"] == "context"
    assert details["elements"][0]["text"] == "Dawn · 23 Nov 2026, 13:05 PKT · #rare-earth #ussm"
    # One distinct sentence, with the words of both topics in bold.
    assert quote["text"]["text"] == (
        ">The first *rare earth* shipment left Karachi for *USSM* on Sunday."
    )
    assert message.text == f"Pakistan ships first consignment under USSM memorandum {URL}"
    assert message.metadata == {
        "event_type": "news_alert",
        "event_payload": {
            "alert_id": 41,
            "story_id": 7,
            "url": URL,
            "source": "dawn",
            "topics": ["rare-earth", "ussm"],
        },
    }
    json.dumps(message.blocks)  # plain JSON, ready for the API


def test_topics_in_the_metadata_are_sorted_whatever_the_order_given() -> None:
    message = alert_message(alert(topics=("ussm", "balochistan", "rare-earth")), KARACHI)
    assert message.metadata["event_payload"]["topics"] == ["balochistan", "rare-earth", "ussm"]
    assert message.blocks[1]["elements"][0]["text"].endswith("#balochistan #rare-earth #ussm")


def test_followup_says_also_reported_by_the_outlet() -> None:
    message = alert_message(alert(kind="followup", outlet="The Express Tribune"), KARACHI)
    assert message.blocks[0]["text"]["text"] == (
        f"Also reported by *The Express Tribune*: "
        f"<{URL}|Pakistan ships first consignment under USSM memorandum>"
    )
    assert message.text.startswith("Also reported by The Express Tribune: Pakistan ships")
    assert message.blocks[2]["text"]["text"].startswith(">The first *rare earth*")


def test_an_undated_article_shows_when_it_was_seen() -> None:
    message = alert_message(alert(published=None), KARACHI)
    assert "seen 23 Nov 2026, 13:30 PKT" in message.blocks[1]["elements"][0]["text"]


def test_times_are_shown_in_the_configured_zone() -> None:
    assert local_time(PUBLISHED, KARACHI) == "23 Nov 2026, 13:05 PKT"
    assert local_time(PUBLISHED, ZoneInfo("Europe/London")) == "23 Nov 2026, 08:05 GMT"


def test_distinct_sentences_each_get_a_quote() -> None:
    message = alert_message(
        alert(
            matches=(
                TopicMatch("balochistan", ("Balochistan",), "Protests in Balochistan grew."),
                TopicMatch("ussm", ("USSM",), "USSM signed in Islamabad."),
            )
        ),
        KARACHI,
    )
    quotes = [b["text"]["text"] for b in message.blocks[2:]]
    assert quotes == [">Protests in *Balochistan* grew.", ">*USSM* signed in Islamabad."]


def test_a_notice_is_one_section_with_its_own_metadata() -> None:
    message = notice_message({"kind": "source_down", "text": "dawn failed 5 times: HTTP 503"}, 12)
    assert message.blocks == (
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Source down*: dawn failed 5 times: HTTP 503",
                "verbatim": True,
            },
        },
    )
    assert message.text == "Source down: dawn failed 5 times: HTTP 503"
    assert message.metadata == {
        "event_type": "news_notice",
        "event_payload": {"outbox_id": 12, "kind": "source_down"},
    }


# --- hostile text ------------------------------------------------------------------------------

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C1>",
    "<!subteam^S123>",
    "<https://evil.example|click>",
    "Tom & Jerry &amp; &lt;b&gt;",
    "*bold*",
    "_it_",
    "~strike~",
    "`code`",
    "```block```",
    "> quoted\n> lines",
    "line\nbreak",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_article_text_is_shown_literally_and_links_or_mentions_no_one(
    hostile: str,
) -> None:
    message = alert_message(
        alert(
            title=f"Title {hostile} end",
            outlet=f"Outlet {hostile}",
            matches=(TopicMatch("ussm", ("USSM", hostile), f"Before {hostile} USSM after."),),
        ),
        KARACHI,
    )
    for text in texts(message):
        # The only token is the article's own link.
        assert [t for t in tokens(text) if not t.startswith(f"<{URL}|")] == []
        assert "<!" not in text and "<@" not in text and "<#" not in text
        assert "\n" not in text
        for delimiter in "*_~`":
            for index in [i for i, ch in enumerate(text) if ch == delimiter]:
                ours = text[index - 1 : index + 2] != f"{ZWSP}{delimiter}{ZWSP}"
                if ours:  # not neutralised: it must be one of the bold marks we placed
                    assert delimiter == "*"
    shown = " ".join(visible(t) for t in texts(message))
    assert " ".join(hostile.split()) in shown


def test_our_bold_survives_delimiters_in_the_sentence() -> None:
    sentence = "Analysts *doubt* that USSM_corp or `USSM` will ship*"
    text = bold_words(sentence, ("USSM",))
    neutralised = f"{ZWSP}*{ZWSP}"
    ours = [i for i, ch in enumerate(text) if ch == "*" and text[i - 1 : i + 2] != neutralised]
    assert len(ours) == 4  # two bold pairs; every other asterisk is neutralised
    assert f"*USSM*{ZWSP}_" in text
    assert visible(text).replace("*USSM*", "USSM") == sentence


def test_bold_inside_a_word_gets_zero_width_boundaries() -> None:
    assert bold_words("中国稀土出口", ("稀土",)) == f"中国{ZWSP}*稀土*{ZWSP}出口"


def test_mrkdwn_text_escapes_and_collapses() -> None:
    assert mrkdwn_text("  a <b>\t&\n c ") == "a &lt;b&gt; &amp; c"
    assert mrkdwn_text("a\u200b*b") == f"a{ZWSP}*{ZWSP}b"  # the article's own ZWSP is dropped


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (URL, URL),
        ("https://x.example/a?b=1&c=2", "https://x.example/a?b=1&amp;c=2"),
        ("https://x.example/a|b>c<d e", "https://x.example/a%7Cb%3Ec%3Cd%20e"),
        (
            "https://ur.example/بلوچستان",
            "https://ur.example/%D8%A8%D9%84%D9%88%DA%86%D8%B3%D8%AA%D8%A7%D9%86",
        ),
        ("https://bücher.example/", "https://xn--bcher-kva.example/"),
        ("HTTPS://X.example/", "https://X.example/"),
        ("javascript:alert(1)", None),
        ("ftp://x.example/a", None),
        ("/relative/path", None),
        ("https:///nohost", None),
    ],
)
def test_link_urls_are_http_and_cannot_end_the_link_early(url: str, expected: str | None) -> None:
    assert link_url(url) == expected


def test_an_unusable_link_leaves_the_title_unlinked() -> None:
    message = alert_message(alert(link="javascript:alert(document.cookie)"), KARACHI)
    assert all(tokens(text) == [] for text in texts(message))
    assert message.blocks[0]["text"]["text"] == (
        "*Pakistan ships first consignment under USSM memorandum*"
    )


# --- limits ------------------------------------------------------------------------------------


def test_huge_text_stays_within_slack_limits() -> None:
    message = alert_message(
        alert(
            title="&<*" * 5000,
            outlet="&" * 5000,
            topics=tuple(f"topic-{i}" for i in range(200)),
            link=URL + "?q=" + "&" * 1500,
            matches=tuple(
                TopicMatch(f"topic-{i}", ("&",) * 50, f"{i} " + "& * <" * 3000) for i in range(100)
            ),
        ),
        KARACHI,
    )
    assert len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        text = block["text"]["text"] if "text" in block else block["elements"][0]["text"]
        assert len(text) <= SECTION_LIMIT
    assert len(message.blocks[0]["text"]["text"]) > 100  # the title shrank, it did not vanish
    assert message.blocks[0]["text"]["text"].startswith("*<https://")


@settings(max_examples=200, deadline=None)
@given(
    title=st.text(max_size=400),
    sentence=st.text(max_size=800),
    words=st.lists(st.text(min_size=1, max_size=20), max_size=5),
)
def test_any_text_gives_no_tokens_but_the_link(title: str, sentence: str, words: list[str]) -> None:
    message = alert_message(
        alert(title=title, outlet=title, matches=(TopicMatch("ussm", tuple(words), sentence),)),
        KARACHI,
    )
    for text in texts(message):
        assert [t for t in tokens(text) if not t.startswith(f"<{URL}|")] == []
        assert "<!" not in text and "<@" not in text
        assert len(text) <= SECTION_LIMIT
