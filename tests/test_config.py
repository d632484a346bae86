"""monitor/config.py: the three YAML files -> one frozen Config, every problem as FILE:LINE.

Config files are written into `tmp_path`; only example.org-style URLs appear in them (nothing is
fetched here). `monitor check` is run for real, as a subprocess, with the SLACK_*/SMTP_*/MONITOR_*
variables of the calling environment removed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import FrozenInstanceError
from datetime import time, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr, ValidationError

from monitor import rules
from monitor.config import (
    Config,
    GoogleNewsSettings,
    config_dir,
    google_news_url,
    load_config,
    parse_duration,
    parse_size,
    parse_time_of_day,
    read_secret,
)
from monitor.errors import ConfigError, QueryError
from monitor.runtime import secret_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHIPPED = PROJECT_ROOT / "config"
PROBLEM_LINE = re.compile(r"^(.+):(\d+): (.+)$")

SETTINGS, SOURCES, KEYWORDS = "settings.yaml", "sources.yaml", "keywords.yaml"

GOOD_SOURCES = """\
sources:
  - name: example-feed
    url: https://example.org/feed.xml
  - name: example-site
    type: site
    url: https://news.example.org/
    every: 10m
  - name: gnews-test
    type: google_news
    query: '"rare earth" OR USSM'
"""

GOOD_KEYWORDS = """\
topics:
  balochistan:
    keywords: [Balochistan, "Baloch*"]
  rare-earth:
    keywords: ["rare earth"]
    exclude: ["rare earth magnet ETF"]
  ussm:
    query: '"US Strategic Metals" AND (Pakistan OR refinery)'
"""

_KEEP = object()  # write_config: keep the good default for this file


def write_config(
    directory: Path,
    settings: str | None = None,
    sources: object = _KEEP,
    keywords: object = _KEEP,
) -> Path:
    """Write the three files (dedented); None leaves a file out, _KEEP keeps the good one."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        SETTINGS: settings,
        SOURCES: GOOD_SOURCES if sources is _KEEP else sources,
        KEYWORDS: GOOD_KEYWORDS if keywords is _KEEP else keywords,
    }
    for name, text in texts.items():
        path = directory / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            assert isinstance(text, str)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
    return directory


def located(directory: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """load_config's problems as `FILE:LINE: message` with FILE relative to `directory`."""
    with pytest.raises(ConfigError) as info:
        load_config(directory, {} if environ is None else environ)
    lines = []
    for problem in info.value.problems:
        assert Path(problem.file).parent == directory
        lines.append(f"{Path(problem.file).name}:{problem.line}: {problem.message}")
    return lines


def query_error(check: Callable[[str], object], text: str) -> str:
    """The message rules.py gives for `text` (so these tests do not pin rules.py's wording)."""
    with pytest.raises(QueryError) as info:
        check(text)
    return str(info.value)


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without anything that could change what `monitor check` sees."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "SMTP_", "MONITOR_", "TEST_MON_"))
    }
    env.update(extra)
    return env


def run_monitor(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=cwd or PROJECT_ROOT,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the shipped config ------------------------------------------------------------------------


def test_shipped_config_loads() -> None:
    config = load_config(SHIPPED, {})
    assert 10 <= len(config.sources) <= 20
    names = [s.name for s in config.sources]
    assert len(set(names)) == len(names)
    assert [t.name for t in config.topics] == ["balochistan", "rare-earth", "ussm"]
    assert config.settings.database_url == "sqlite:///data/monitor.db"
    assert config.settings.timezone == "Asia/Karachi"
    assert config.settings.poll.every == timedelta(minutes=15)
    assert config.settings.fetch.max_bytes == 10 * 1024 * 1024
    assert config.settings.slack.routes == {"ussm": "#ussm-watch"}
    assert config.source("dawn").every == timedelta(minutes=10)
    for source in config.sources:
        assert source.url is not None
        assert urlsplit(source.url).scheme == "https", source.name


def test_shipped_google_news_sources_get_search_urls() -> None:
    config = load_config(SHIPPED, {})
    google = config.settings.google_news
    searches = [s for s in config.sources if s.type == "google_news"]
    assert len(searches) >= 1
    for source in searches:
        assert source.url is not None and source.query
        parts = urlsplit(source.url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == google.base_url
        assert parse_qs(parts.query) == {
            "q": [source.query],
            "hl": [google.hl],
            "gl": [google.gl],
            "ceid": [google.ceid],
        }
    ussm = config.source("gnews-ussm")
    assert ussm.url is not None
    assert ussm.url.startswith(
        "https://news.google.com/rss/search?q=%22US+Strategic+Metals%22+OR+"
        "%22U.S.+Strategic+Metals%22+OR+USSM&"
    )
    assert ussm.url.endswith("&hl=en-US&gl=US&ceid=US%3Aen")


def test_shipped_config_passes_monitor_check() -> None:
    result = run_monitor("check", "--config", "config")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "config: OK — " in result.stdout
    assert " sources (" in result.stdout and "3 topics" in result.stdout


def test_google_news_url_is_built_from_settings(tmp_path: Path) -> None:
    settings = """\
    google_news:
      base_url: https://news.example.org/rss/search
      hl: fr
      gl: FR
      ceid: "FR:fr"
    """
    config = load_config(write_config(tmp_path, settings), {})
    expected = (
        "https://news.example.org/rss/search?q=%22rare+earth%22+OR+USSM&hl=fr&gl=FR&ceid=FR%3Afr"
    )
    assert config.source("gnews-test").url == expected
    assert google_news_url('"rare earth" OR USSM', config.settings.google_news) == expected
    # other sources keep the URL they were given
    assert config.source("example-feed").url == "https://example.org/feed.xml"
    assert config.source("example-site").type == "site"


def test_good_config_values(tmp_path: Path) -> None:
    settings = """\
    timezone: Europe/Paris
    poll: {every: 1h30m, jitter: 0s}
    fetch: {timeout: 90s, max_bytes: 500KB}
    email:
      from: "Monitor <monitor@example.org>"
      digest:
        to: [team@example.org]
        at: "07:45"
    """
    config = load_config(write_config(tmp_path, settings), {})
    assert config.directory == tmp_path
    assert config.settings.zone.key == "Europe/Paris"
    assert config.settings.poll.every == timedelta(hours=1, minutes=30)
    assert config.settings.poll.jitter == timedelta(0)
    assert config.settings.fetch.timeout == timedelta(seconds=90)
    assert config.settings.fetch.max_bytes == 500 * 1024
    assert config.settings.email is not None
    assert config.settings.email.from_ == "Monitor <monitor@example.org>"
    assert config.settings.email.digest.to == ("team@example.org",)
    assert config.settings.email.digest.at == time(7, 45)
    assert [s.name for s in config.sources] == ["example-feed", "example-site", "gnews-test"]
    assert config.source("example-site").every == timedelta(minutes=10)
    assert config.source("example-feed").every is None
    assert config.source("example-feed").enabled is True
    with pytest.raises(KeyError):
        config.source("nope")
    ussm = next(t for t in config.topics if t.name == "ussm")
    assert ussm.query == '"US Strategic Metals" AND (Pakistan OR refinery)'
    assert ussm.keywords == ()
    rare = next(t for t in config.topics if t.name == "rare-earth")
    assert rare.exclude == ("rare earth magnet ETF",)


# --- one problem at a time: FILE:LINE: message -------------------------------------------------

DURATION_HINT = "write a number with a unit, like 90s, 15m, 2h or 1d"
SIZE_HINT = "write a number with a unit, like 500KB or 10MB"

SETTINGS_PROBLEMS = [
    pytest.param(
        "databse_url: sqlite:///x.db\n",
        "settings.yaml:1: unknown key 'databse_url' (did you mean 'database_url'?)",
        id="unknown-top-level-key",
    ),
    pytest.param(
        "poll:\n  every: 15m\n  jiter: 30s\n",
        "settings.yaml:3: unknown key 'jiter' in poll (did you mean 'jitter'?)",
        id="unknown-key-depth-2",
    ),
    pytest.param(
        "email:\n  digest:\n    too: [team@example.org]\n",
        "settings.yaml:3: unknown key 'too' in email.digest (did you mean 'to'?)",
        id="unknown-key-depth-3",
    ),
    pytest.param(
        "email:\n  form: monitor@example.org\n",
        "settings.yaml:2: unknown key 'form' in email (did you mean 'from'?)",
        id="unknown-key-suggests-alias",
    ),
    pytest.param(
        "fetch:\n  colour: blue\n",
        "settings.yaml:2: unknown key 'colour' in fetch",
        id="unknown-key-nothing-close",
    ),
    pytest.param(
        "fetch:\n  concurrency: many\n",
        "settings.yaml:2: fetch.concurrency: Input should be a valid integer, "
        "unable to parse string as an integer",
        id="string-for-int",
    ),
    pytest.param(
        "slack:\n  routes: [ussm]\n",
        "settings.yaml:2: slack.routes: Input should be a valid dictionary",
        id="list-for-mapping",
    ),
    pytest.param(
        "email:\n  digest:\n    to: {team: team@example.org}\n",
        "settings.yaml:3: email.digest.to: Input should be a valid tuple",
        id="mapping-for-list",
    ),
    pytest.param(
        "poll:\n  every: 15\n",
        f"settings.yaml:2: poll.every: bad duration 15: {DURATION_HINT}",
        id="duration-no-unit",
    ),
    pytest.param(
        "poll:\n  every: 10 minutes\n",
        f"settings.yaml:2: poll.every: bad duration '10 minutes': {DURATION_HINT}",
        id="duration-words",
    ),
    pytest.param(
        "poll:\n  every: -5m\n",
        f"settings.yaml:2: poll.every: bad duration '-5m': {DURATION_HINT}",
        id="duration-negative",
    ),
    pytest.param(
        "poll:\n  every: 0m\n",
        "settings.yaml:2: poll.every: must be longer than zero",
        id="duration-zero-interval",
    ),
    pytest.param(
        "fetch:\n  timeout: 0s\n",
        "settings.yaml:2: fetch.timeout: must be longer than zero",
        id="duration-zero-timeout",
    ),
    pytest.param(
        "fetch:\n  max_bytes: lots\n",
        f"settings.yaml:2: fetch.max_bytes: bad size 'lots': {SIZE_HINT}",
        id="size-words",
    ),
    pytest.param(
        "fetch:\n  max_bytes: 10\n",
        f"settings.yaml:2: fetch.max_bytes: bad size 10: {SIZE_HINT}",
        id="size-no-unit",
    ),
    pytest.param(
        "fetch:\n  max_bytes: 0KB\n",
        f"settings.yaml:2: fetch.max_bytes: bad size '0KB': {SIZE_HINT}",
        id="size-zero",
    ),
    pytest.param(
        "email:\n  digest:\n    at: '25:00'\n",
        "settings.yaml:3: email.digest.at: bad time '25:00': "
        "write HH:MM in 24-hour time, like 08:00",
        id="digest-at-hour-25",
    ),
    pytest.param(
        "email:\n  digest:\n    at: 8am\n",
        "settings.yaml:3: email.digest.at: bad time '8am': write HH:MM in 24-hour time, like 08:00",
        id="digest-at-8am",
    ),
    pytest.param(
        "timezone: Mars/Olympus_Mons\n",
        "settings.yaml:1: timezone: unknown time zone 'Mars/Olympus_Mons' "
        "(use a name like Asia/Karachi)",
        id="unknown-time-zone",
    ),
    pytest.param(
        "email:\n  smtp_port: 99999\n",
        "settings.yaml:2: email.smtp_port: Input should be less than or equal to 65535",
        id="smtp-port-out-of-range",
    ),
    pytest.param(
        "email:\n  security: tls\n",
        "settings.yaml:2: email.security: Input should be 'none', 'starttls' or 'ssl'",
        id="email-security-choice",
    ),
    pytest.param(
        "email:\n  digest:\n    to: [team@example.org, team]\n",
        "settings.yaml:3: email.digest.to.1: 'team' is not one email address like team@example.org",
        id="digest-to-not-an-address",
    ),
    pytest.param(
        "email:\n  alerts_to: ['a@example.org, b@example.org']\n",
        "settings.yaml:2: email.alerts_to.0: 'a@example.org, b@example.org' is not one email "
        "address like team@example.org",
        id="two-addresses-in-one-entry",
    ),
    pytest.param(
        'email:\n  from: "Monitor <monitor@example.org>\\r\\nBcc: x@example.org"\n',
        "settings.yaml:2: email.from: 'Monitor <monitor@example.org>\\r\\nBcc: x@example.org' "
        "is not one email address like team@example.org",
        id="from-with-a-line-break",
    ),
    pytest.param(
        "slack:\n  base_url: ftp://slack.example.org/api/\n",
        "settings.yaml:2: slack.base_url: invalid URL 'ftp://slack.example.org/api/': "
        "must start with http:// or https://",
        id="slack-base-url-scheme",
    ),
    pytest.param(
        "http:\n  listen: localhost\n",
        "settings.yaml:2: http.listen: 'localhost' is not 'host:port' (or empty to turn it off)",
        id="http-listen-no-port",
    ),
    pytest.param(
        "fetch:\n  private_network_allowlist:\n    - 127.0.0.1:8080\n    - http://intranet\n",
        "settings.yaml:2: fetch.private_network_allowlist: 'http://intranet' is not 'host' "
        "or 'host:port'",
        id="allowlist-entry",
    ),
    pytest.param(
        "slack:\n  routes:\n    ussm: '#ussm'\n    cobalt: '#cobalt'\n",
        "settings.yaml:4: slack.routes: no topic named 'cobalt' in keywords.yaml",
        id="route-to-unknown-topic",
    ),
    pytest.param(
        "poll:\n  every: 15m\n  every: 10m\n",
        'settings.yaml:3: YAML error: found duplicate key "every" with value "10m" '
        '(original value: "15m")',
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "poll:\n  every: 15m\n jitter: [\n",
        "settings.yaml:3: YAML error: expected <block end>, but found '<block mapping start>'",
        id="yaml-syntax-error",
    ),
    pytest.param(
        "poll:\n\tevery: 15m\n",
        "settings.yaml:2: YAML error: found character '\\t' that cannot start any token",
        id="yaml-tab",
    ),
    pytest.param(
        "- poll\n- fetch\n",
        "settings.yaml:1: expected a mapping of keys at the top level",
        id="top-level-list",
    ),
    pytest.param(
        "just some words\n",
        "settings.yaml:1: expected a mapping of keys at the top level",
        id="top-level-scalar",
    ),
    pytest.param(
        "timezone: UTC\npoll:\n  min_every: 2h\n  max_every: 1h\n",
        "settings.yaml:2: poll: min_every (2h) is longer than max_every (1h)",
        id="adaptive-bounds-reversed",
    ),
]


@pytest.mark.parametrize(("settings", "expected"), SETTINGS_PROBLEMS)
def test_settings_problem(tmp_path: Path, settings: str, expected: str) -> None:
    assert located(write_config(tmp_path, settings)) == [expected]


SOURCES_PROBLEMS = [
    pytest.param(
        "  - name: ftp\n    url: ftp://example.org/feed\n",
        "sources.yaml:5: sources.ftp.url: invalid URL 'ftp://example.org/feed': "
        "must start with http:// or https://",
        id="url-ftp",
    ),
    pytest.param(
        "  - name: nohost\n    url: https:///feed\n",
        "sources.yaml:5: sources.nohost.url: invalid URL 'https:///feed': no host",
        id="url-no-host",
    ),
    pytest.param(
        "  - name: badport\n    url: https://example.org:99999/feed\n",
        "sources.yaml:5: sources.badport.url: invalid URL 'https://example.org:99999/feed': "
        "bad port",
        id="url-bad-port",
    ),
    pytest.param(
        "  - name: wordport\n    url: https://example.org:http/feed\n",
        "sources.yaml:5: sources.wordport.url: invalid URL 'https://example.org:http/feed': "
        "bad port",
        id="url-port-not-a-number",
    ),
    pytest.param(
        "  - name: relative\n    url: /feed.xml\n",
        "sources.yaml:5: sources.relative.url: invalid URL '/feed.xml': "
        "must start with http:// or https://",
        id="url-relative",
    ),
    pytest.param(
        "  - name: gnews\n    type: google_news\n",
        "sources.yaml:4: sources.gnews: a google_news source needs `query`",
        id="google-news-without-query",
    ),
    pytest.param(
        "  - name: feedq\n    url: https://example.org/rss\n    query: USSM\n",
        "sources.yaml:4: sources.feedq: a feed source takes `url`, not `query`",
        id="feed-with-query",
    ),
    pytest.param(
        "  - name: nourl\n    every: 5m\n",
        "sources.yaml:4: sources.nourl: a feed source needs `url`",
        id="feed-without-url",
    ),
    pytest.param(
        "  - name: siteless\n    type: site\n",
        "sources.yaml:4: sources.siteless: a site source needs `url`",
        id="site-without-url",
    ),
    pytest.param(
        "  - name: gq\n    type: google_news\n    query: '\"rare earth OR USSM'\n",
        "sources.yaml:6: sources.gq.query: unparsable query '\"rare earth OR USSM': "
        "unbalanced quote",
        id="google-query-unbalanced-quote",
    ),
    pytest.param(
        "  - name: gp\n    type: google_news\n    query: '(rare earth OR USSM'\n",
        "sources.yaml:6: sources.gp.query: unparsable query '(rare earth OR USSM': "
        "unbalanced parenthesis",
        id="google-query-unbalanced-paren",
    ),
    pytest.param(
        "  - name: gc\n    type: google_news\n    query: 'a) OR (b'\n",
        "sources.yaml:6: sources.gc.query: unparsable query 'a) OR (b': unbalanced parenthesis",
        id="google-query-close-before-open",
    ),
    pytest.param(
        "  - name: typo\n    urll: https://example.org/feed\n",
        "sources.yaml:5: unknown key 'urll' in sources.typo (did you mean 'url'?)",
        id="unknown-key-in-source",
    ),
    pytest.param(
        "  - name: rss\n    type: rss\n    url: https://example.org/rss\n",
        "sources.yaml:5: sources.rss.type: Input should be 'feed', 'site' or 'google_news'",
        id="unknown-type",
    ),
    pytest.param(
        "  - name: slow\n    url: https://example.org/rss\n    every: -5m\n",
        f"sources.yaml:6: sources.slow.every: bad duration '-5m': {DURATION_HINT}",
        id="source-every-negative",
    ),
    pytest.param(
        "  - name: never\n    url: https://example.org/rss\n    every: 0m\n",
        "sources.yaml:6: sources.never.every: must be longer than zero",
        id="source-every-zero",
    ),
    pytest.param(
        "  - name: maybe\n    url: https://example.org/rss\n    enabled: maybe\n",
        "sources.yaml:6: sources.maybe.enabled: Input should be a valid boolean, "
        "unable to interpret input",
        id="enabled-not-bool",
    ),
    pytest.param(
        "  - name: has space\n    url: https://example.org/rss\n",
        "sources.yaml:4: sources.has space.name: String should match pattern "
        "'^[A-Za-z0-9][A-Za-z0-9._-]*$'",
        id="name-with-space",
    ),
    pytest.param(
        "  - url: https://example.org/rss\n",
        "sources.yaml:4: sources.1.name: required key missing",
        id="name-missing",
    ),
    pytest.param(
        "  - name: dup\n    url: https://example.org/a\n"
        "  - name: other\n    url: https://example.org/b\n"
        "  - name: dup\n    url: https://example.org/c\n",
        "sources.yaml:8: duplicate source name 'dup' (first used on line 4)",
        id="duplicate-name",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), SOURCES_PROBLEMS)
def test_sources_problem(tmp_path: Path, extra: str, expected: str) -> None:
    sources = "sources:\n  - name: fine\n    url: https://example.org/fine\n" + extra
    assert located(write_config(tmp_path, sources=sources)) == [expected]


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        pytest.param(
            "sources:\n  dawn: https://example.org/feed\n",
            "sources.yaml:1: sources: Input should be a valid tuple",
            id="mapping-for-list",
        ),
        pytest.param("", "sources.yaml:1: sources: required key missing", id="empty-file"),
        pytest.param(
            "- name: dawn\n",
            "sources.yaml:1: expected a mapping of keys at the top level",
            id="top-level-list",
        ),
        pytest.param(
            "sources:\n  - name: a\n    url: 'https://example.org/\n",
            "sources.yaml:4: YAML error: found unexpected end of stream",
            id="unterminated-quote",
        ),
        pytest.param(None, "sources.yaml:1: file not found", id="missing-file"),
    ],
)
def test_sources_file_problem(tmp_path: Path, sources: str | None, expected: str) -> None:
    assert located(write_config(tmp_path, sources=sources)) == [expected]


KEYWORD_PROBLEMS = [
    pytest.param("keywords", "*", id="lone-star"),
    pytest.param("keywords", "", id="empty"),
    pytest.param("keywords", '"quoted"', id="quoted"),
    pytest.param("keywords", "Bal*och", id="star-inside"),
    pytest.param("exclude", "*", id="exclude-lone-star"),
    pytest.param("require", "", id="require-empty"),
]


@pytest.mark.parametrize(("field", "keyword"), KEYWORD_PROBLEMS)
def test_bad_keyword(tmp_path: Path, field: str, keyword: str) -> None:
    quoted = "'" + keyword.replace("'", "''") + "'"
    keywords = f"""\
    topics:
      cobalt:
        keywords:
          - cobalt
        {field}:
          - Congo
          - {quoted}
    """
    if field == "keywords":
        keywords = keywords.replace("        keywords:\n          - cobalt\n", "", 1)
    # the bad keyword is the second item of its list, on line 7 or 5
    line = 5 if field == "keywords" else 7
    message = query_error(rules.check_keyword, keyword)
    expected = f"keywords.yaml:{line}: topics.cobalt.{field}: {keyword!r}: {message}"
    assert located(write_config(tmp_path, keywords=keywords)) == [expected]


def test_bad_topic_query(tmp_path: Path) -> None:
    keywords = """\
    topics:
      rare-earth:
        # a comment line before the query
        query: '(rare AND'
    """
    message = query_error(rules.parse_query, "(rare AND")
    assert located(write_config(tmp_path, keywords=keywords)) == [
        f"keywords.yaml:4: topics.rare-earth.query: {message}"
    ]


@pytest.mark.parametrize(
    ("keywords", "expected"),
    [
        pytest.param(
            "topics:\n  ussm:\n    keywords: [USSM]\n    query: USSM AND Pakistan\n",
            "keywords.yaml:2: topics.ussm: a topic needs either `keywords` or `query` "
            "(exactly one)",
            id="keywords-and-query",
        ),
        pytest.param(
            "topics:\n  ok:\n    keywords: [x]\n  ussm:\n    exclude: [ETF]\n",
            "keywords.yaml:4: topics.ussm: a topic needs either `keywords` or `query` "
            "(exactly one)",
            id="neither-keywords-nor-query",
        ),
        pytest.param(
            "topics:\n  ussm:\n    keywords: [USSM]\n    exlude: [ETF]\n",
            "keywords.yaml:4: unknown key 'exlude' in topics.ussm (did you mean 'exclude'?)",
            id="unknown-key-in-topic",
        ),
        pytest.param(
            "topics:\n  ussm:\n    keywords: USSM\n",
            "keywords.yaml:3: topics.ussm.keywords: Input should be a valid tuple",
            id="string-for-list",
        ),
        pytest.param(
            "topics:\n  - ussm\n",
            "keywords.yaml:1: topics: Input should be a valid dictionary",
            id="list-for-mapping",
        ),
        pytest.param(
            "topics:\n  rare earth:\n    keywords: [REE]\n",
            "keywords.yaml:2: topics.rare earth: String should match pattern "
            "'^[A-Za-z0-9][A-Za-z0-9._-]*$'",
            id="topic-name-with-space",
        ),
        pytest.param(
            "{}\n",
            "keywords.yaml:1: topics: required key missing",
            id="missing-topics-key",
        ),
        pytest.param(
            "topic:\n  ussm:\n    keywords: [USSM]\ntopics: {}\n",
            "keywords.yaml:1: unknown key 'topic' (did you mean 'topics'?)",
            id="unknown-top-level-key",
        ),
        pytest.param(None, "keywords.yaml:1: file not found", id="missing-file"),
    ],
)
def test_keywords_file_problem(tmp_path: Path, keywords: str | None, expected: str) -> None:
    assert located(write_config(tmp_path, keywords=keywords)) == [expected]


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    write_config(tmp_path)
    (tmp_path / KEYWORDS).write_bytes(
        b"topics:\n  balochistan:\n    keywords: [Quetta, Gw\xe2dar]\n"  # Latin-1, not UTF-8
    )
    assert located(tmp_path) == ["keywords.yaml:3: not UTF-8 text (invalid continuation byte)"]


# --- settings.yaml is optional -----------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(None, id="absent"),
        pytest.param("", id="empty"),
        pytest.param("# only a comment\n\n", id="comments-only"),
    ],
)
def test_settings_optional_gives_defaults(tmp_path: Path, settings: str | None) -> None:
    config = load_config(write_config(tmp_path, settings), {})
    defaults = config.settings
    assert defaults.database_url == "sqlite:///data/monitor.db"
    assert defaults.timezone == "Asia/Karachi"
    assert defaults.poll.every == timedelta(minutes=15)
    assert defaults.poll.jitter == timedelta(seconds=30)
    assert defaults.fetch.timeout == timedelta(seconds=30)
    assert defaults.fetch.max_bytes == 10 * 1024 * 1024
    assert defaults.fetch.max_redirects == 5
    assert defaults.fetch.concurrency == 32
    assert defaults.fetch.per_host == 2
    assert defaults.fetch.allow_private_networks is False
    assert defaults.slack.token_env == "SLACK_BOT_TOKEN"
    assert defaults.slack.channel == "#news-alerts"
    assert defaults.email is None
    assert defaults.google_news == GoogleNewsSettings()
    assert defaults.http.listen == "127.0.0.1:9464"
    assert [t.name for t in config.topics] == ["balochistan", "rare-earth", "ussm"]


def test_zero_jitter_is_fine(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "poll:\n  jitter: 0s\n"), {})
    assert config.settings.poll.jitter == timedelta(0)


def test_empty_listen_turns_the_server_off(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "http:\n  listen: ''\n"), {})
    assert config.settings.http.listen == ""


def test_unquoted_digest_time_is_read_as_a_time(tmp_path: Path) -> None:
    # YAML 1.1 would read 08:00 as the number 480; we read YAML 1.2, where it stays "08:00".
    settings = "email:\n  digest:\n    to: [team@example.org]\n    at: 08:00\n"
    config = load_config(write_config(tmp_path, settings), {})
    assert config.settings.email is not None
    assert config.settings.email.digest.at == time(8, 0)


# --- every problem at once ---------------------------------------------------------------------


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    settings = """\
    timezone: Mars/Base
    poll:
      every: 15
      jiter: 30s
    fetch:
      max_bytes: lots
    slack:
      token_env: TEST_MON_TOKEN
      routes:
        cobalt: "#cobalt"
    """
    sources = """\
    sources:
      - name: dawn
        url: ftp://example.org/feed
      - name: gnews
        type: google_news
      - name: dawn
        url: https://example.org/feed
    """
    keywords = """\
    topics:
      broken:
        keywords: [cobalt]
        exlude: [x]
      starry:
        keywords:
          - ok
          - "*"
      ussm:
        query: '(rare AND'
    """
    star = query_error(rules.check_keyword, "*")
    query = query_error(rules.parse_query, "(rare AND")
    assert located(write_config(tmp_path, settings, sources, keywords)) == [
        "keywords.yaml:4: unknown key 'exlude' in topics.broken (did you mean 'exclude'?)",
        f"keywords.yaml:8: topics.starry.keywords: '*': {star}",
        f"keywords.yaml:10: topics.ussm.query: {query}",
        "settings.yaml:1: timezone: unknown time zone 'Mars/Base' (use a name like Asia/Karachi)",
        f"settings.yaml:3: poll.every: bad duration 15: {DURATION_HINT}",
        "settings.yaml:4: unknown key 'jiter' in poll (did you mean 'jitter'?)",
        f"settings.yaml:6: fetch.max_bytes: bad size 'lots': {SIZE_HINT}",
        "settings.yaml:8: slack.token_env names TEST_MON_TOKEN, which is not set in the "
        "environment (nor TEST_MON_TOKEN_FILE); set it, or remove this line",
        "settings.yaml:10: slack.routes: no topic named 'cobalt' in keywords.yaml",
        "sources.yaml:3: sources.dawn.url: invalid URL 'ftp://example.org/feed': "
        "must start with http:// or https://",
        "sources.yaml:4: sources.gnews: a google_news source needs `query`",
        "sources.yaml:6: duplicate source name 'dawn' (first used on line 2)",
    ]


def test_problems_name_the_full_path(tmp_path: Path) -> None:
    write_config(tmp_path, "poll:\n  every: 0m\n", keywords=None)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path, {})
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / KEYWORDS}:1: file not found",
        f"{tmp_path / SETTINGS}:2: poll.every: must be longer than zero",
    ]
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)


# --- secrets the settings name -----------------------------------------------------------------

SECRET_SETTINGS = [
    pytest.param("slack:\n  token_env: TEST_MON_VAR\n", "slack.token_env", id="slack-token"),
    pytest.param(
        "slack:\n  webhook_url_env: TEST_MON_VAR\n", "slack.webhook_url_env", id="slack-webhook"
    ),
    pytest.param(
        "email:\n  username_env: TEST_MON_VAR\n", "email.username_env", id="smtp-username"
    ),
    pytest.param(
        "email:\n  password_env: TEST_MON_VAR\n", "email.password_env", id="smtp-password"
    ),
]


@pytest.mark.parametrize(("settings", "key"), SECRET_SETTINGS)
def test_named_secret_unset_is_a_problem(tmp_path: Path, settings: str, key: str) -> None:
    assert located(write_config(tmp_path, settings), {"OTHER": "x"}) == [
        f"settings.yaml:2: {key} names TEST_MON_VAR, which is not set in the environment "
        "(nor TEST_MON_VAR_FILE); set it, or remove this line"
    ]


@pytest.mark.parametrize(("settings", "key"), SECRET_SETTINGS)
def test_named_secret_set_is_fine(tmp_path: Path, settings: str, key: str) -> None:
    config = load_config(write_config(tmp_path, settings), {"TEST_MON_VAR": "s3cret"})
    section, field = key.split(".")
    assert getattr(getattr(config.settings, section), field) == "TEST_MON_VAR"


@pytest.mark.parametrize(("settings", "key"), SECRET_SETTINGS)
def test_named_secret_from_file_is_fine(tmp_path: Path, settings: str, key: str) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("s3cret\n", encoding="utf-8")
    config = load_config(
        write_config(tmp_path / "cfg", settings), {"TEST_MON_VAR_FILE": str(secret_file)}
    )
    section, field = key.split(".")
    assert getattr(getattr(config.settings, section), field) == "TEST_MON_VAR"


def test_named_secret_file_missing_is_a_problem(tmp_path: Path) -> None:
    write_config(tmp_path, "slack:\n  token_env: TEST_MON_VAR\n")
    env = {"TEST_MON_VAR_FILE": str(tmp_path / "no-such-file")}
    assert located(tmp_path, env) == [
        "settings.yaml:2: slack.token_env names TEST_MON_VAR, which is not set in the environment "
        "(nor TEST_MON_VAR_FILE); set it, or remove this line"
    ]


def test_default_secret_name_unset_is_not_a_problem(tmp_path: Path) -> None:
    # Nothing names a secret: Slack and SMTP are simply not configured.
    settings = "slack:\n  channel: '#x'\nemail:\n  smtp_host: smtp.example.org\n"
    config = load_config(write_config(tmp_path, settings), {})
    assert config.settings.slack.token_env == "SLACK_BOT_TOKEN"
    assert config.settings.email is not None
    assert config.settings.email.password_env == "SMTP_PASSWORD"


def test_default_secret_name_written_out_but_unset_is_a_problem(tmp_path: Path) -> None:
    # Written in the file, even with its default value, it says "I mean to use Slack".
    write_config(tmp_path, "slack:\n  token_env: SLACK_BOT_TOKEN\n")
    assert located(tmp_path) == [
        "settings.yaml:2: slack.token_env names SLACK_BOT_TOKEN, which is not set in the "
        "environment (nor SLACK_BOT_TOKEN_FILE); set it, or remove this line"
    ]


# --- read_secret -------------------------------------------------------------------------------


def test_read_secret_from_variable() -> None:
    secret = read_secret("TOKEN", {"TOKEN": "xoxb-1"})
    assert isinstance(secret, SecretStr)
    assert secret.get_secret_value() == "xoxb-1"


def test_read_secret_from_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("xoxb-from-file\n", encoding="utf-8")
    secret = read_secret("TOKEN", {"TOKEN_FILE": str(path)})
    assert secret is not None
    assert secret.get_secret_value() == "xoxb-from-file"


def test_read_secret_variable_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file", encoding="utf-8")
    secret = read_secret("TOKEN", {"TOKEN": "from-var", "TOKEN_FILE": str(path)})
    assert secret is not None
    assert secret.get_secret_value() == "from-var"


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({}, id="neither"),
        pytest.param({"OTHER": "x", "TOKENX": "y"}, id="only-other-names"),
        pytest.param({"TOKEN": ""}, id="empty-variable"),
        pytest.param({"TOKEN_FILE": "/nonexistent/monitor-test/token"}, id="file-missing"),
    ],
)
def test_read_secret_none(environ: dict[str, str]) -> None:
    assert read_secret("TOKEN", environ) is None


def test_read_secret_empty_file_is_none(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n", encoding="utf-8")
    assert read_secret("TOKEN", {"TOKEN_FILE": str(path)}) is None


def test_read_secret_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MON_SECRET", "from-os-environ")
    secret = read_secret("TEST_MON_SECRET")
    assert secret is not None
    assert secret.get_secret_value() == "from-os-environ"
    monkeypatch.delenv("TEST_MON_SECRET")
    assert read_secret("TEST_MON_SECRET") is None


def test_secret_does_not_show_in_repr_or_str(tmp_path: Path) -> None:
    value = "xoxb-test-SECRET-1234"
    path = tmp_path / "token"
    path.write_text(value, encoding="utf-8")
    for secret in (read_secret("T", {"T": value}), read_secret("T", {"T_FILE": str(path)})):
        assert secret is not None
        assert value not in repr(secret)
        assert value not in str(secret)
        assert value not in f"{secret}"
        assert value not in repr([secret])


def test_config_records_hold_no_secret(tmp_path: Path) -> None:
    value = "xoxb-test-SECRET-1234"
    write_config(tmp_path, "slack:\n  token_env: TEST_MON_TOKEN\n")
    config = load_config(tmp_path, {"TEST_MON_TOKEN": value})
    assert value not in repr(config)
    assert config.settings.slack.token_env == "TEST_MON_TOKEN"


# --- the environment: $MONITOR_DATABASE_URL, config_dir -----------------------------------------


@pytest.mark.parametrize(
    ("settings", "environ", "expected"),
    [
        pytest.param(None, {}, "sqlite:///data/monitor.db", id="default"),
        pytest.param(
            "database_url: sqlite:///from-file.db\n", {}, "sqlite:///from-file.db", id="file"
        ),
        pytest.param(
            "database_url: sqlite:///from-file.db\n",
            {"MONITOR_DATABASE_URL": "postgresql+psycopg://db.example.org/monitor"},
            "postgresql+psycopg://db.example.org/monitor",
            id="env-overrides-file",
        ),
        pytest.param(
            None,
            {"MONITOR_DATABASE_URL": "sqlite:///from-env.db"},
            "sqlite:///from-env.db",
            id="env-overrides-default",
        ),
        pytest.param(
            "database_url: sqlite:///from-file.db\n",
            {"MONITOR_DATABASE_URL": ""},
            "sqlite:///from-file.db",
            id="empty-env-is-unset",
        ),
    ],
)
def test_database_url(
    tmp_path: Path, settings: str | None, environ: dict[str, str], expected: str
) -> None:
    config = load_config(write_config(tmp_path, settings), environ)
    assert config.settings.database_url == expected


def test_database_url_from_a_file_and_a_file_that_is_not_there(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("postgresql+psycopg://monitor:pw@db.example.org/monitor\n")
    config_dir_ = write_config(tmp_path / "config", "database_url: sqlite:///from-file.db\n")
    environ = {"MONITOR_DATABASE_URL_FILE": str(secret)}
    assert load_config(config_dir_, environ).settings.database_url == (
        "postgresql+psycopg://monitor:pw@db.example.org/monitor"
    )
    for missing in (tmp_path / "nowhere", tmp_path / "empty"):
        (tmp_path / "empty").write_text("\n")
        with pytest.raises(ConfigError) as error:
            load_config(config_dir_, {"MONITOR_DATABASE_URL_FILE": str(missing)})
        assert [str(p) for p in error.value.problems] == [
            f"$MONITOR_DATABASE_URL_FILE:0: names {missing}, which is missing, unreadable or "
            "empty; the database URL would otherwise fall back to database_url in settings.yaml"
        ]


def test_database_url_env_read_from_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_DATABASE_URL", "sqlite:///process.db")
    for name in [k for k in os.environ if k.startswith(("SLACK_", "SMTP_"))]:
        monkeypatch.delenv(name)
    assert load_config(write_config(tmp_path)).settings.database_url == "sqlite:///process.db"


@pytest.mark.parametrize(
    ("option", "env", "expected"),
    [
        pytest.param("/opt/a", "/opt/b", Path("/opt/a"), id="option-wins"),
        pytest.param(Path("rel/dir"), None, Path("rel/dir"), id="option-path"),
        pytest.param(None, "/opt/b", Path("/opt/b"), id="env"),
        pytest.param(None, None, Path("config"), id="default"),
        pytest.param(None, "", Path("config"), id="empty-env-is-unset"),
    ],
)
def test_config_dir_precedence(
    monkeypatch: pytest.MonkeyPatch, option: str | Path | None, env: str | None, expected: Path
) -> None:
    if env is None:
        monkeypatch.delenv("MONITOR_CONFIG_DIR", raising=False)
    else:
        monkeypatch.setenv("MONITOR_CONFIG_DIR", env)
    assert config_dir(option) == expected


# --- version and immutability ------------------------------------------------------------------


def test_version_stable_when_nothing_changes(tmp_path: Path) -> None:
    write_config(tmp_path, "poll:\n  every: 15m\n")
    first = load_config(tmp_path, {})
    second = load_config(tmp_path, {})
    assert first.version == second.version
    assert re.fullmatch(r"[0-9a-f]{16}", first.version)
    # a copy with the same contents elsewhere has the same version
    assert load_config(write_config(tmp_path / "copy", "poll:\n  every: 15m\n"), {}).version == (
        first.version
    )


@pytest.mark.parametrize("name", [SETTINGS, SOURCES, KEYWORDS])
def test_version_changes_when_a_file_changes(tmp_path: Path, name: str) -> None:
    write_config(tmp_path, "poll:\n  every: 15m\n")
    before = load_config(tmp_path, {}).version
    with (tmp_path / name).open("a", encoding="utf-8") as file:
        file.write("# edited\n")
    after = load_config(tmp_path, {}).version
    assert after != before


def test_version_changes_when_settings_appears(tmp_path: Path) -> None:
    before = load_config(write_config(tmp_path, None), {}).version
    after = load_config(write_config(tmp_path, ""), {}).version
    assert after != before


def test_version_does_not_depend_on_environment(tmp_path: Path) -> None:
    write_config(tmp_path)
    plain = load_config(tmp_path, {}).version
    assert load_config(tmp_path, {"MONITOR_DATABASE_URL": "sqlite:///x.db"}).version == plain


@pytest.mark.parametrize(
    ("target", "attribute", "error"),
    [
        pytest.param(lambda c: c, "version", FrozenInstanceError, id="config"),
        pytest.param(lambda c: c, "sources", FrozenInstanceError, id="config-sources"),
        pytest.param(lambda c: c.settings, "timezone", ValidationError, id="settings"),
        pytest.param(lambda c: c.settings.poll, "every", ValidationError, id="poll"),
        pytest.param(lambda c: c.settings.fetch, "max_bytes", ValidationError, id="fetch"),
        pytest.param(lambda c: c.settings.slack, "channel", ValidationError, id="slack"),
        pytest.param(lambda c: c.settings.google_news, "hl", ValidationError, id="google-news"),
        pytest.param(lambda c: c.sources[0], "url", ValidationError, id="source"),
        pytest.param(lambda c: c.topics[0], "keywords", FrozenInstanceError, id="topic"),
    ],
)
def test_records_are_frozen(
    tmp_path: Path,
    target: Callable[[Config], object],
    attribute: str,
    error: type[Exception],
) -> None:
    config = load_config(write_config(tmp_path), {})
    record = target(config)
    before = getattr(record, attribute)
    with pytest.raises(error):
        setattr(record, attribute, "changed")
    assert getattr(record, attribute) == before
    assert isinstance(config.sources, tuple) and isinstance(config.topics, tuple)


# --- parse_duration / parse_size / parse_time_of_day -------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        ("0s", timedelta(0)),
        ("1.5h", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        (" 15M ", timedelta(minutes=15)),
        ("2d12h", timedelta(days=2, hours=12)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_passes_timedelta_through() -> None:
    assert parse_duration(timedelta(minutes=3)) == timedelta(minutes=3)


@pytest.mark.parametrize(
    "value",
    ["15", 15, "10 minutes", "-5m", "", "m", "15x", "1w", "15m and more", None, 1.5, "h1"],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"^bad duration .*like 90s, 15m, 2h or 1d$"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500KB", 500 * 1024),
        ("10MB", 10 * 1024 * 1024),
        ("1GB", 1024**3),
        ("1B", 1),
        ("10mb", 10 * 1024 * 1024),
        ("10 MB", 10 * 1024 * 1024),
        ("1.5KB", 1536),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "value", ["10", 10, "lots", "0KB", "-1MB", "10MiB", "10 megabytes", "", "KB", None]
)
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"^bad size .*like 500KB or 10MB$"):
        parse_size(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("08:00", time(8, 0)),
        ("8:30", time(8, 30)),
        ("00:00", time(0, 0)),
        ("23:59", time(23, 59)),
    ],
)
def test_parse_time_of_day(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize(
    "value", ["24:00", "25:00", "08:60", "0800", "8am", "8", "08:00:00", "", 480, None]
)
def test_parse_time_of_day_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"^bad time .*like 08:00$"):
        parse_time_of_day(value)


# --- `monitor check` ---------------------------------------------------------------------------

INVALID_SETTINGS = "poll:\n  every: 0m\n  jiter: 30s\n"


def test_check_invalid_exits_2_with_one_problem_per_line(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        INVALID_SETTINGS,
        sources="sources:\n  - name: a\n    url: /relative\n",
    )
    result = run_monitor("check", "--config", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        found = PROBLEM_LINE.match(line)
        assert found, f"not FILE:LINE: message: {line!r}"
        parsed.append((found.group(1), int(found.group(2)), found.group(3)))
    assert parsed == [
        (str(tmp_path / SETTINGS), 2, "poll.every: must be longer than zero"),
        (str(tmp_path / SETTINGS), 3, "unknown key 'jiter' in poll (did you mean 'jitter'?)"),
        (
            str(tmp_path / SOURCES),
            3,
            "sources.a.url: invalid URL '/relative': must start with http:// or https://",
        ),
    ]


def test_check_valid_tmp_config_exits_0(tmp_path: Path) -> None:
    result = run_monitor("check", "--config", str(write_config(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tmp_path}: OK — 3 sources (3 enabled), 3 topics" in result.stdout


@pytest.mark.parametrize(
    "where",
    [
        pytest.param("after", id="monitor-check---config"),
        pytest.param("before", id="monitor---config-check"),
        pytest.param("env", id="MONITOR_CONFIG_DIR"),
        pytest.param("cwd", id="dot-config"),
    ],
)
def test_check_finds_the_config(tmp_path: Path, where: str) -> None:
    good = write_config(tmp_path / "good")
    bad = write_config(tmp_path / "bad", INVALID_SETTINGS)
    work = tmp_path / "work"
    write_config(work / "config", INVALID_SETTINGS)  # ./config, which must lose to the others
    env = clean_env(MONITOR_CONFIG_DIR=str(bad))  # $MONITOR_CONFIG_DIR loses to --config
    if where == "after":
        args = ["check", "--config", str(good)]
    elif where == "before":
        args = ["--config", str(good), "check"]
    elif where == "env":
        args, env = ["check"], clean_env(MONITOR_CONFIG_DIR=str(good))
    else:
        write_config(work / "config")  # now ./config is the good one
        args, env = ["check"], clean_env()
    result = run_monitor(*args, cwd=work, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = "config" if where == "cwd" else str(good)
    assert f"{shown}: OK — 3 sources (3 enabled), 3 topics" in result.stdout


def test_check_env_dir_beats_dot_config(tmp_path: Path) -> None:
    work = tmp_path / "work"
    write_config(work / "config")
    bad = write_config(tmp_path / "bad", INVALID_SETTINGS)
    result = run_monitor("check", cwd=work, env=clean_env(MONITOR_CONFIG_DIR=str(bad)))
    assert result.returncode == 2
    assert f"{bad / SETTINGS}:2: poll.every: must be longer than zero" in result.stdout


SECRET = "xoxb-test-SECRET-1234"


def test_check_never_prints_a_secret_it_names(tmp_path: Path) -> None:
    settings = "slack:\n  token_env: SLACK_BOT_TOKEN\n"
    result = run_monitor(
        "check",
        "--config",
        str(write_config(tmp_path, settings)),
        env=clean_env(SLACK_BOT_TOKEN=SECRET),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert SECRET not in result.stdout + result.stderr
    assert "SECRET" not in result.stdout + result.stderr


def test_check_never_prints_a_secret_on_invalid_config(tmp_path: Path) -> None:
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text(SECRET + "-smtp\n", encoding="utf-8")
    settings = """\
    slack:
      token_env: SLACK_BOT_TOKEN
      webhook_url_env: SLACK_WEBHOOK_URL
    email:
      password_env: SMTP_PASSWORD
      username_env: SMTP_USERNAME
      digest:
        at: "26:00"
    """
    env = clean_env(SLACK_BOT_TOKEN=SECRET, SMTP_PASSWORD_FILE=str(secret_file))
    result = run_monitor("check", "--config", str(write_config(tmp_path / "c", settings)), env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert SECRET not in output
    problems = [PROBLEM_LINE.match(line) for line in result.stdout.splitlines()]
    assert all(problems), result.stdout
    assert [(int(m.group(2)), m.group(3).split(" ")[0]) for m in problems if m] == [
        (3, "slack.webhook_url_env"),
        (6, "email.username_env"),
        (8, "email.digest.at:"),
    ]


def test_http_listen_can_be_set_from_the_environment(tmp_path: Path) -> None:
    directory = write_config(tmp_path, settings="http:\n  listen: 127.0.0.1:9464\n")
    config = load_config(directory, {"MONITOR_HTTP_LISTEN": "0.0.0.0:9464"})
    assert config.settings.http.listen == "0.0.0.0:9464"
    assert load_config(directory, {"MONITOR_HTTP_LISTEN": ""}).settings.http.listen == ""
    with pytest.raises(ConfigError) as info:
        load_config(directory, {"MONITOR_HTTP_LISTEN": "everywhere"})
    assert [str(p) for p in info.value.problems] == [
        "$MONITOR_HTTP_LISTEN:0: 'everywhere' is not 'host:port' (or empty to turn it off)"
    ]


def test_a_database_password_is_treated_as_a_secret(tmp_path: Path) -> None:
    directory = write_config(tmp_path)
    url = "postgresql+psycopg://monitor:pg-SECRET-pass@db.example.org/monitor"
    config = load_config(directory, {"MONITOR_DATABASE_URL": url})
    assert "pg-SECRET-pass" in secret_values(config, {})
    assert secret_values(load_config(directory, {}), {}) == []
