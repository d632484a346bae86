"""The three YAML files and the environment they name -> one frozen `Config`.

People edit these files by hand, so every problem is reported as `FILE:LINE: message`, all of
them at once, never just the first. Loading goes:

    YAML (ruamel, keeps line numbers) --pydantic--> frozen models --cross checks--> Config

Secrets never live in the files or in these records: the files name environment variables
(`slack.token_env: SLACK_BOT_TOKEN`), and `read_secret` reads them (or a `NAME_FILE` file) at the
moment of use, wrapped in `SecretStr` so a repr or a log line cannot show them.
"""

from __future__ import annotations

import difflib
import email.errors
import email.policy
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin
from urllib.parse import quote_plus, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor import rules
from monitor.errors import ConfigError, ConfigProblem, QueryError
from monitor.models import Topic

SETTINGS_FILE = "settings.yaml"
SOURCES_FILE = "sources.yaml"
KEYWORDS_FILE = "keywords.yaml"

# --- value types people write: durations, sizes, times of day -----------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_duration(value: object) -> timedelta:
    """`90s`, `15m`, `2h`, `1d` (and sums such as `1h30m`) -> timedelta."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower() if isinstance(value, str) else None
    if text and re.fullmatch(rf"(?:{_DURATION_PART.pattern}\s*)+", text):
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))
        return timedelta(seconds=seconds)
    raise ValueError(f"bad duration {value!r}: write a number with a unit, like 90s, 15m, 2h or 1d")


def format_duration(duration: timedelta) -> str:
    """timedelta -> the way people write it here: `1d`, `2h30m`, `90s`."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _positive(duration: timedelta) -> timedelta:
    if duration <= timedelta(0):
        raise ValueError("must be longer than zero")
    return duration


def parse_size(value: object) -> int:
    """`500KB`, `10MB` -> bytes (1 KB = 1024 bytes)."""
    if isinstance(value, str) and (found := _SIZE.fullmatch(value.strip())):
        size = int(float(found.group(1)) * _SIZE_UNITS[found.group(2).lower()])
        if size > 0:
            return size
    raise ValueError(f"bad size {value!r}: write a number with a unit, like 500KB or 10MB")


def parse_time_of_day(value: object) -> time:
    """`08:00` -> time(8, 0)."""
    if isinstance(value, str) and (found := re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", value)):
        return time(int(found.group(1)), int(found.group(2)))
    raise ValueError(f"bad time {value!r}: write HH:MM in 24-hour time, like 08:00")


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
NonNegativeDuration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
TimeOfDay = Annotated[time, BeforeValidator(parse_time_of_day)]


def check_http_url(url: str) -> str:
    """An absolute http(s) URL with a host, else ValueError saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"invalid URL {url!r}: must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"invalid URL {url!r}: no host")
    try:
        parts.port  # noqa: B018 - property access validates the port
    except ValueError as exc:
        raise ValueError(f"invalid URL {url!r}: bad port") from exc
    return url.strip()


HttpUrl = Annotated[str, BeforeValidator(lambda v: check_http_url(v) if isinstance(v, str) else v)]


def check_email_address(value: str) -> str:
    """One address, `user@example.org` or `Name <user@example.org>`, else ValueError.

    Checked here so a typo shows in `monitor check` as FILE:LINE, not as a failed send at 08:00,
    and so nothing that could add a header (a line break) ever reaches an email.
    """
    try:
        header = email.policy.default.header_factory("to", value)
        addresses = header.addresses
    # The stdlib parser reports some malformed input by failing (`user@` -> IndexError).
    except (email.errors.HeaderParseError, IndexError, ValueError) as exc:
        raise ValueError(f"{value!r} is not an email address") from exc
    if header.defects or len(addresses) != 1 or not (addresses[0].username and addresses[0].domain):
        raise ValueError(f"{value!r} is not one email address like team@example.org")
    return value.strip()


EmailAddress = Annotated[str, AfterValidator(check_email_address)]


_M = TypeVar("_M", bound=BaseModel)


class _Record(BaseModel):
    """Frozen, and unknown keys are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections_are_defaults(cls, data: Any) -> Any:
        # `poll:` with every line below it commented out is YAML null: it means "defaults".
        if isinstance(data, Mapping):
            fields = cls.model_fields
            return {
                key: value
                for key, value in data.items()
                if value is not None or key not in fields or fields[key].is_required()
            }
        return data


# --- settings.yaml -------------------------------------------------------------------------------


class PollSettings(_Record):
    every: Duration = timedelta(minutes=15)
    jitter: NonNegativeDuration = timedelta(seconds=30)
    # After this many failures in a row a source is parked and retried once a day.
    park_after: int = Field(default=10, ge=1)
    # Bounds of the adaptive interval of sources without their own `every`.
    min_every: Duration = timedelta(minutes=5)
    max_every: Duration = timedelta(hours=6)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> PollSettings:
        if self.min_every > self.max_every:
            raise ValueError(
                f"min_every ({format_duration(self.min_every)}) is longer than "
                f"max_every ({format_duration(self.max_every)})"
            )
        return self


class FetchSettings(_Record):
    timeout: Duration = timedelta(seconds=30)
    max_bytes: Size = 10 * 1024**2
    max_redirects: int = Field(default=5, ge=0, le=30)
    user_agent: str = "news-monitor/0.1 (+https://github.com/news-monitor)"
    concurrency: int = Field(default=32, ge=1)
    per_host: int = Field(default=2, ge=1)
    allow_private_networks: bool = False
    private_network_allowlist: tuple[str, ...] = ()

    @field_validator("private_network_allowlist")
    @classmethod
    def _host_or_host_port(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        for entry in entries:
            if not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:\d{1,5})?", entry):
                raise ValueError(f"{entry!r} is not 'host' or 'host:port'")
        return tuple(e.lower() for e in entries)


_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_variable_name(name: str) -> str:
    """An environment variable's name, else ValueError that does not quote the value: a token
    pasted here instead of its variable's name must not be echoed by `monitor check`."""
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValueError(
            "must be the name of an environment variable (letters, digits and _), such as "
            "SLACK_BOT_TOKEN; the secret itself goes in that variable, never in this file"
        )
    return name


VariableName = Annotated[str, AfterValidator(check_variable_name)]


class SlackSettings(_Record):
    token_env: VariableName = "SLACK_BOT_TOKEN"  # noqa: S105 - a variable name, not a secret
    webhook_url_env: VariableName = "SLACK_WEBHOOK_URL"
    base_url: HttpUrl = "https://slack.com/api/"
    channel: str = "#news-alerts"
    routes: dict[str, str] = Field(default_factory=dict)  # topic -> channel


class DigestSettings(_Record):
    to: tuple[EmailAddress, ...] = ()
    at: TimeOfDay = time(8, 0)


class EmailSettings(_Record):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "starttls"
    username_env: VariableName = "SMTP_USERNAME"
    password_env: VariableName = "SMTP_PASSWORD"  # noqa: S105 - a variable name
    from_: EmailAddress = Field(default="News Monitor <monitor@localhost>", alias="from")
    alerts_to: tuple[EmailAddress, ...] = ()
    digest: DigestSettings = DigestSettings()


class GoogleNewsSettings(_Record):
    base_url: HttpUrl = "https://news.google.com/rss/search"
    hl: str = "en-US"
    gl: str = "US"
    ceid: str = "US:en"


class HttpSettings(_Record):
    listen: str = "127.0.0.1:9464"  # empty turns the health/metrics server off

    @field_validator("listen")
    @classmethod
    def _host_port(cls, listen: str) -> str:
        if listen and not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):\d{1,5}", listen):
            raise ValueError(f"{listen!r} is not 'host:port' (or empty to turn it off)")
        return listen


class Settings(_Record):
    database_url: str = "sqlite:///data/monitor.db"
    timezone: str = "Asia/Karachi"
    poll: PollSettings = PollSettings()
    fetch: FetchSettings = FetchSettings()
    slack: SlackSettings = SlackSettings()
    email: EmailSettings | None = None  # no `email:` section: no email at all
    google_news: GoogleNewsSettings = GoogleNewsSettings()
    http: HttpSettings = HttpSettings()
    # Article text older than this is dropped (URLs, titles, stories and alerts stay).
    retention_days: int = Field(default=90, ge=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {name!r} (use a name like Asia/Karachi)") from exc
        return name

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr() and str() show the database URL with its password hidden.
        for name, value in super().__repr_args__():
            yield name, (hide_password(value) if name == "database_url" else value)


def hide_password(url: str) -> str:
    """A database URL with its password as ***; an unparsable one not shown at all."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "[unparsable URL hidden]"


# --- sources.yaml --------------------------------------------------------------------------------


class Source(_Record):
    """One source. For `google_news`, `url` is the search feed built from `query`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=80)
    type: Literal["feed", "site", "google_news"] = "feed"
    url: HttpUrl | None = None
    query: str | None = None
    every: Duration | None = None
    enabled: bool = True

    @field_validator("query")
    @classmethod
    def _parsable(cls, query: str | None) -> str | None:
        if query is not None:
            check_search_query(query)
        return query

    @model_validator(mode="after")
    def _url_or_query(self) -> Source:
        if self.type == "google_news":
            if not self.query:
                raise ValueError("a google_news source needs `query`")
        elif not self.url:
            raise ValueError(f"a {self.type} source needs `url`")
        elif self.query:
            raise ValueError(f"a {self.type} source takes `url`, not `query`")
        return self


class _SourcesFile(_Record):
    sources: tuple[Source, ...]

    @field_validator("sources", mode="before")
    @classmethod
    def _none_is_empty(cls, sources: Any) -> Any:
        # `sources:` with every entry commented out: no sources yet, not a broken file.
        return () if sources is None else sources


def check_search_query(query: str) -> None:
    """Google's search syntax is looser than ours; we only refuse what it cannot mean."""
    if query.count('"') % 2:
        raise ValueError(f"unparsable query {query!r}: unbalanced quote")
    depth = 0
    for char in query:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth:
        raise ValueError(f"unparsable query {query!r}: unbalanced parenthesis")


def google_news_url(query: str, settings: GoogleNewsSettings) -> str:
    """The Google News search feed for `query`."""
    params = f"q={quote_plus(query)}&hl={quote_plus(settings.hl)}&gl={quote_plus(settings.gl)}"
    joiner = "&" if "?" in settings.base_url else "?"
    return f"{settings.base_url}{joiner}{params}&ceid={quote_plus(settings.ceid)}"


# --- keywords.yaml -------------------------------------------------------------------------------


class _TopicEntry(_Record):
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    query: str | None = None

    @model_validator(mode="after")
    def _keywords_or_query(self) -> _TopicEntry:
        if bool(self.keywords) == bool(self.query):
            raise ValueError("a topic needs either `keywords` or `query` (exactly one)")
        return self


class _KeywordsFile(_Record):
    topics: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")], _TopicEntry]


# --- the whole config ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the three files say, validated. `version` changes when any file changes."""

    directory: Path
    settings: Settings
    sources: tuple[Source, ...]
    topics: tuple[Topic, ...]
    version: str

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)


def config_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """`--config DIR`, else `$MONITOR_CONFIG_DIR`, else `./config`."""
    return Path(option or os.environ.get("MONITOR_CONFIG_DIR") or "config")


def load_config(directory: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the three files; raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    digest = hashlib.sha256()

    def read(name: str, required: bool) -> _Document | None:
        path = directory / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            if required:
                problems.append(ConfigProblem(str(path), 1, "file not found"))
            return None
        except OSError as exc:
            problems.append(ConfigProblem(str(path), 1, f"cannot read: {exc.strerror}"))
            return None
        digest.update(name.encode() + b"\0" + raw + b"\0")
        return _Document.parse(str(path), raw, problems)

    settings_doc = read(SETTINGS_FILE, required=False)
    sources_doc = read(SOURCES_FILE, required=True)
    keywords_doc = read(KEYWORDS_FILE, required=True)

    settings = _validate(settings_doc, Settings, problems) if settings_doc else Settings()
    if settings is not None:
        settings = _environment_overrides(settings, env, problems)
    sources_file = _validate(sources_doc, _SourcesFile, problems) if sources_doc else None

    topics: tuple[Topic, ...] = ()
    if keywords_doc:
        _validate(keywords_doc, _KeywordsFile, problems)
        # Topic by topic: one topic that does not validate must not hide another's bad keyword.
        topics = _compile_topics(keywords_doc, problems)
    sources: tuple[Source, ...] = ()
    if sources_file and settings is not None:
        sources = tuple(
            s.model_copy(update={"url": google_news_url(s.query, settings.google_news)})
            if s.type == "google_news" and s.query
            else s
            for s in sources_file.sources
        )
    # Checks across keys and files read the raw YAML, so they report even when other
    # parts of the same file did not validate.
    if sources_doc:
        _check_source_names(sources_doc, problems)
    if settings_doc:
        _check_routes(settings_doc, keywords_doc, problems)
        _check_named_secrets(settings_doc, env, problems)

    if problems or settings is None:
        raise ConfigError(sorted(problems, key=lambda p: (p.file, p.line)))
    return Config(directory, settings, sources, topics, digest.hexdigest()[:16])


def _environment_overrides(
    settings: Settings, env: Mapping[str, str], problems: list[ConfigProblem]
) -> Settings:
    """$MONITOR_DATABASE_URL (or a file named by $MONITOR_DATABASE_URL_FILE: it may hold a
    password) and $MONITOR_HTTP_LISTEN win over the file (containers set them)."""
    if url := read_secret("MONITOR_DATABASE_URL", env):
        settings = settings.model_copy(update={"database_url": url.get_secret_value()})
    elif path := env.get("MONITOR_DATABASE_URL_FILE"):
        # Unlike an output's secret (absent: "not configured"), a database URL that was meant
        # to come from a file must not quietly fall back to a SQLite file nobody backs up.
        problems.append(
            ConfigProblem(
                "$MONITOR_DATABASE_URL_FILE",
                0,
                f"names {path}, which is missing, unreadable or empty; the database URL "
                "would otherwise fall back to database_url in settings.yaml",
            )
        )
    if "MONITOR_HTTP_LISTEN" in env:
        try:
            http = HttpSettings.model_validate({"listen": env["MONITOR_HTTP_LISTEN"]})
        except ValidationError as exc:
            message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            problems.append(ConfigProblem("$MONITOR_HTTP_LISTEN", 0, message))
        else:
            settings = settings.model_copy(update={"http": http})
    return settings


def read_secret(variable: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The secret in `$variable`, or in the file `$variable_FILE` names; None if neither."""
    env = os.environ if environ is None else environ
    if value := env.get(variable):
        return SecretStr(value)
    if path := env.get(f"{variable}_FILE"):
        try:
            return SecretStr(Path(path).read_text(encoding="utf-8").strip()) or None
        except OSError:
            return None
    return None


# --- internals: YAML with line numbers, pydantic errors -> FILE:LINE --------------------------


@dataclass(frozen=True, slots=True)
class _Document:
    """A parsed YAML file that still knows on which line each key and item stands."""

    file: str
    data: Any

    @classmethod
    def parse(cls, file: str, raw: bytes, problems: list[ConfigProblem]) -> _Document | None:
        try:
            data = YAML(typ="rt").load(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            problems.append(ConfigProblem(file, line, f"not UTF-8 text ({exc.reason})"))
            return None
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            problems.append(ConfigProblem(file, line, f"YAML error: {exc.problem or exc}"))
            return None
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            problems.append(ConfigProblem(file, 1, "expected a mapping of keys at the top level"))
            return None
        return cls(file, data)

    def line_of(self, path: tuple[str | int, ...], *, key: bool = True) -> int:
        """1-based line of the node at `path`; the nearest existing ancestor when it is missing."""
        node, line = self.data, 1
        for step in path:
            child = _child(node, step)
            if child is _MISSING:
                break
            if isinstance(node, CommentedMap):
                line = (node.lc.key(step) if key else node.lc.value(step))[0] + 1
            else:
                line = node.lc.item(step)[0] + 1
            node = child
        return line

    def label(self, path: tuple[str | int, ...]) -> str:
        """`sources.dawn.url` for ("sources", 3, "url"): items named by their `name` key."""
        node, parts = self.data, []
        for step in path:
            child = _child(node, step)
            name = child.get("name") if isinstance(child, CommentedMap) else None
            is_item = isinstance(step, int)
            parts.append(str(name) if is_item and isinstance(name, str) else str(step))
            node = child
        return ".".join(parts)

    def problem(self, path: tuple[str | int, ...], message: str) -> ConfigProblem:
        return ConfigProblem(self.file, self.line_of(path), message)


_MISSING = object()


def _child(node: Any, step: str | int) -> Any:
    """node[step] in a YAML mapping or list, or _MISSING."""
    if isinstance(node, CommentedMap) and step in node:
        return node[step]
    if isinstance(node, CommentedSeq) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return _MISSING


def _validate(document: _Document, model: type[_M], problems: list[ConfigProblem]) -> _M | None:
    try:
        return model.model_validate(document.data)
    except ValidationError as exc:
        for error in exc.errors():
            path = _yaml_path(error["loc"])
            message = _describe(error, document.label(path))
            if error["type"] == "extra_forbidden":
                close = difflib.get_close_matches(str(path[-1]), _known_keys(model, path[:-1]), 1)
                message += f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(document.problem(path, message))
        return None


def _known_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    """The keys the model accepts at `path`, to suggest one for a typo."""
    current: Any = model
    in_mapping = False  # the next step is a key of a `dict[str, Model]`, not a field
    for step in path:
        if isinstance(step, int) or in_mapping:
            in_mapping = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(step)
        if field is None:
            return []
        current = _model_in(field.annotation)
        in_mapping = get_origin(field.annotation) is dict
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside `X | None`, `tuple[X, ...]` or `dict[str, X]`, else the type."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in reversed(get_args(annotation)):
        if (found := _model_in(arg)) is not None:
            return found
    return None


def _yaml_path(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """pydantic's error location -> the path in the YAML (drops union/validator tags)."""
    return tuple(
        step
        for step in loc
        if not (isinstance(step, str) and ("[" in step or step.startswith("function-")))
    )


def _describe(error: Mapping[str, Any], where: str) -> str:
    """pydantic's error as a sentence about the key `where` (a dotted path)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        parent, _, key = where.rpartition(".")
        return f"unknown key {key!r}" + (f" in {parent}" if parent else "")
    if kind == "missing":
        return f"{where}: required key missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _check_source_names(document: _Document, problems: list[ConfigProblem]) -> None:
    first_line: dict[str, int] = {}
    items = document.data.get("sources")
    if not isinstance(items, CommentedSeq):
        return
    for index, item in enumerate(items):
        name = item.get("name") if isinstance(item, CommentedMap) else None
        if not isinstance(name, str):
            continue
        line = document.line_of(("sources", index, "name"))
        if name in first_line:
            message = f"duplicate source name {name!r} (first used on line {first_line[name]})"
            problems.append(ConfigProblem(document.file, line, message))
        else:
            first_line[name] = line


def _compile_topics(document: _Document, problems: list[ConfigProblem]) -> tuple[Topic, ...]:
    topics: list[Topic] = []
    raw_topics = document.data.get("topics")
    if not isinstance(raw_topics, CommentedMap):
        return ()
    for name, raw in raw_topics.items():
        try:
            entry = _TopicEntry.model_validate(raw)
        except ValidationError:
            continue  # _validate has reported it
        clean = True
        for field in ("keywords", "exclude", "require"):
            for index, keyword in enumerate(getattr(entry, field)):
                try:
                    rules.check_keyword(keyword)
                except QueryError as exc:
                    clean = False
                    where = ("topics", name, field, index)
                    message = f"topics.{name}.{field}: {keyword!r}: {exc}"
                    problems.append(document.problem(where, message))
        if entry.query is not None:
            try:
                rules.parse_query(entry.query)
            except QueryError as exc:
                clean = False
                path = ("topics", name, "query")
                problems.append(document.problem(path, f"topics.{name}.query: {exc}"))
        if clean:
            topics.append(Topic(name, entry.keywords, entry.exclude, entry.require, entry.query))
    return tuple(topics)


def _check_routes(
    settings: _Document, keywords: _Document | None, problems: list[ConfigProblem]
) -> None:
    routes = _raw(settings.data, "slack", "routes")
    topics = _raw(keywords.data, "topics") if keywords else None
    if not isinstance(routes, CommentedMap) or not isinstance(topics, CommentedMap):
        return
    for topic in routes:
        if topic not in topics:
            path = ("slack", "routes", topic)
            message = f"slack.routes: no topic named {topic!r} in keywords.yaml"
            problems.append(settings.problem(path, message))


def _check_named_secrets(
    settings: _Document, env: Mapping[str, str], problems: list[ConfigProblem]
) -> None:
    """A secret variable named in the file but absent from the environment is a mistake;
    left at its default it only means "this output is not configured"."""
    for path in (
        ("slack", "token_env"),
        ("slack", "webhook_url_env"),
        ("email", "username_env"),
        ("email", "password_env"),
    ):
        variable = _raw(settings.data, *path)
        if not isinstance(variable, str) or not _VARIABLE_NAME.fullmatch(variable):
            continue  # not a name (reported without quoting it: it may be the secret itself)
        if read_secret(variable, env) is None:
            message = (
                f"{'.'.join(path)} names {variable}, which is not set in the environment "
                f"(nor {variable}_FILE); set it, or remove this line"
            )
            problems.append(settings.problem(path, message))


def _raw(data: Any, *path: str) -> Any:
    """The raw YAML value at `path`, or None."""
    for step in path:
        if not isinstance(data, CommentedMap):
            return None
        data = data.get(step)
    return data
