"""Settings read from the environment. Every option is documented in README.md."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llmops.errors import ConfigError, ConfigFileError
from llmops.files import (
    MAX_YAML_BYTES,
    check_directory,
    line_of,
    parse_yaml,
    read_text,
    validation_message,
)

ContentMode = Literal["full", "redact", "none"]
CONTENT_MODES: tuple[ContentMode, ...] = ("full", "redact", "none")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Where llmops keeps its files and what it records.

    - ``LLMOPS_HOME``: local state (database, spool, caches); default ``./.llmops``.
    - ``LLMOPS_PROMPTS_DIR``: the prompt folder; default ``./prompts``.
    - ``LLMOPS_DATABASE_URL``: SQLAlchemy URL; default ``sqlite:///$LLMOPS_HOME/llmops.db``.
    - ``LLMOPS_CONTENT``: ``full``, ``redact`` or ``none``: how much call text is stored.
    - ``LLMOPS_PRICES``: a prices file; default ``./prices.yaml`` when it exists.
    - ``LLMOPS_REMOTE_PRICE_MAP``: ``1`` lets litellm fetch its price map from the network.
    - ``LLMOPS_DAILY_BUDGET`` / ``LLMOPS_MONTHLY_BUDGET``: USD budgets drawn on spend charts
      (also ``budgets:`` in the config file).
    - ``LLMOPS_DASHBOARD_PASSWORD``: protects the dashboard; unset, it is open.
    - ``LLMOPS_DASHBOARD_DATABASE_URL``: where the dashboard reads (a read replica of the
      database the apps write); default ``LLMOPS_DATABASE_URL``.
    - ``LLMOPS_CONFIG``: a YAML config file; default ``./llmops.yaml`` when it exists; its
      ``budgets.limits`` are the named spend limits (``llmops budgets``).
    """

    home: Path
    prompts_dir: Path
    database_url: str
    content: ContentMode
    prices_file: Path | None
    remote_price_map: bool
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    dashboard_password: str | None = None
    budgets: tuple[Budget, ...] = ()  # the named limits of the config file
    alerts: Alerts = field(default_factory=lambda: Alerts())  # ``alerts:`` of the config file
    retention: Retention = field(default_factory=lambda: Retention())  # ``retention:``
    dashboard_database_url: str | None = None  # a read replica; None: ``database_url``

    @property
    def dashboard_url(self) -> str:
        """The database the dashboard reads: the replica when one is set."""
        return self.dashboard_database_url or self.database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("LLMOPS_HOME") or ".llmops")
        _check_home(home, named="LLMOPS_HOME" in env and bool(env.get("LLMOPS_HOME")))
        content = (env.get("LLMOPS_CONTENT") or "full").strip().lower()
        if content not in CONTENT_MODES:
            raise ConfigError(
                f"LLMOPS_CONTENT={content!r}: expected one of {', '.join(CONTENT_MODES)}"
            )
        prices = env.get("LLMOPS_PRICES")
        prices_file = Path(prices) if prices else None
        if prices_file is None and Path("prices.yaml").is_file():
            prices_file = Path("prices.yaml")
        config = read_config_file(env)
        return cls(
            home=home,
            prompts_dir=Path(env.get("LLMOPS_PROMPTS_DIR") or "prompts"),
            database_url=env.get("LLMOPS_DATABASE_URL") or default_database_url(home),
            content=content,  # narrowed to ContentMode by the check above
            prices_file=prices_file,
            remote_price_map=(env.get("LLMOPS_REMOTE_PRICE_MAP") or "").lower() in _TRUE,
            daily_budget_usd=_money(env, "LLMOPS_DAILY_BUDGET", config.budgets.daily_usd),
            monthly_budget_usd=_money(env, "LLMOPS_MONTHLY_BUDGET", config.budgets.monthly_usd),
            dashboard_password=env.get("LLMOPS_DASHBOARD_PASSWORD") or None,
            dashboard_database_url=env.get("LLMOPS_DASHBOARD_DATABASE_URL") or None,
            budgets=config.budgets.limits,
            alerts=config.alerts,
            retention=config.retention,
        )


Window = Literal["day", "week", "month"]
BudgetAction = Literal["alert", "block"]
ScopeKey = Literal["user", "tag", "prompt", "model", "source", "key"]
SCOPE_KEYS: tuple[ScopeKey, ...] = get_args(ScopeKey)
EACH = "each"  # a scope value: a separate limit for every user (tag, prompt, ...)
MAX_LIMIT_USD = 1e9


KEY_BUDGET_PREFIX = "key-"
"""The names of the virtual keys' monthly budgets (``key-NAME``), which llmops.yaml may not
take: two budgets of one name would share their leases."""


class Budget(BaseModel):
    """A spend limit: ``limit_usd`` per calendar ``window`` (UTC; weeks start on Monday), over
    every call or over a ``scope`` (one key: ``{model: gpt-4o}`` for one value,
    ``{user: each}`` for a separate limit per user). ``action`` ``alert`` reports
    ``thresholds`` (percent of the limit) as they are crossed; ``block`` also refuses, in
    the gateway, every call that could take the spend past the limit
    (:mod:`llmops.gateway.budgets`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    window: Window
    # strict: `true` or "25" is not a limit (a number only; an integer is one)
    limit_usd: float = Field(gt=0, le=MAX_LIMIT_USD, allow_inf_nan=False, strict=True)
    action: BudgetAction = "alert"
    # block only: when the ledger cannot be read (the database is down), ``allow`` keeps the
    # app working on what its lease still holds and then lets calls through (logged);
    # ``block`` refuses them.
    unreachable: Literal["allow", "block"] = "allow"
    scope: dict[ScopeKey, str] = Field(default_factory=dict)
    thresholds: tuple[float, ...] = (50.0, 80.0, 100.0)

    @field_validator("scope")
    @classmethod
    def _one_key(cls, scope: dict[ScopeKey, str]) -> dict[ScopeKey, str]:
        if len(scope) > 1:
            keys = ", ".join(SCOPE_KEYS[:-1]) + f" or {SCOPE_KEYS[-1]}"
            raise ValueError(f"a scope names one key ({keys})")
        for value in scope.values():
            if not value.strip() or len(value) > 200:
                raise ValueError("a scope value is 1 to 200 characters, or 'each'")
        return scope

    @field_validator("thresholds")
    @classmethod
    def _percentages(cls, thresholds: tuple[float, ...]) -> tuple[float, ...]:
        if not thresholds:
            raise ValueError("give at least one threshold (percent of the limit)")
        if any(not 0 < t <= 1000 or not math.isfinite(t) for t in thresholds):
            raise ValueError("thresholds are percentages above 0 and at most 1000")
        return tuple(sorted(set(thresholds)))

    @property
    def scope_key(self) -> ScopeKey | None:
        return next(iter(self.scope), None)

    @property
    def scope_value(self) -> str | None:
        return next(iter(self.scope.values()), None)

    def describe_scope(self) -> str:
        key, value = self.scope_key, self.scope_value
        if key is None:
            return "all calls"
        return f"each {key}" if value == EACH else f"{key} {value}"


class Budgets(BaseModel):
    """``budgets:`` in the config file: the chart lines and the named limits."""

    model_config = ConfigDict(extra="forbid")

    daily_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    monthly_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    limits: tuple[Budget, ...] = ()

    @field_validator("limits")
    @classmethod
    def _unique_names(cls, limits: tuple[Budget, ...]) -> tuple[Budget, ...]:
        seen: set[str] = set()
        for budget in limits:
            if budget.name in seen:
                raise ValueError(f"two budgets are named {budget.name!r}")
            if budget.name.startswith(KEY_BUDGET_PREFIX):
                raise ValueError(
                    f"budget {budget.name!r}: names starting with {KEY_BUDGET_PREFIX!r} are the "
                    "virtual keys' own monthly budgets (llmops keys create --budget-usd-month); "
                    "a budget on a key's calls takes scope {key: NAME} and another name"
                )
            seen.add(budget.name)
        return limits


MIN_RETENTION_DAYS = 183  # the AI Act's six months (Art. 19, Art. 26(6)) for call logs


class Retention(BaseModel):
    """``retention:`` in the config file: what ``llmops db prune`` drops when run without
    ages. Content (prompts, responses, comments) may go sooner than the call metadata,
    which is kept at least ``minimum_days`` unless ``--force``."""

    model_config = ConfigDict(extra="forbid")

    content_days: int | None = Field(default=None, ge=1, le=36_600)
    calls_days: int | None = Field(default=None, ge=1, le=36_600)
    minimum_days: int = Field(default=MIN_RETENTION_DAYS, ge=0, le=36_600)

    @model_validator(mode="after")
    def _calls_kept_long_enough(self) -> Retention:
        if self.calls_days is not None and self.calls_days < self.minimum_days:
            raise ValueError(
                f"calls_days {self.calls_days} is under minimum_days {self.minimum_days} "
                "(call logs are kept at least six months: EU AI Act Art. 19, 26(6))"
            )
        return self


class ConfigFile(BaseModel):
    """``llmops.yaml``: settings that belong in a reviewed file rather than the environment."""

    model_config = ConfigDict(extra="forbid")

    budgets: Budgets = Field(default_factory=Budgets)
    alerts: Alerts = Field(default_factory=lambda: Alerts())
    retention: Retention = Field(default_factory=Retention)

    @field_validator("budgets", "alerts", "retention", mode="before")
    @classmethod
    def _empty_section(cls, value: object) -> object:
        """``budgets:`` with nothing under it sets nothing, as ``budgets: {}`` does."""
        return {} if value is None else value

    @field_validator("alerts")
    @classmethod
    def _known_budgets(cls, alerts: Alerts, info: ValidationInfo) -> Alerts:
        budgets = info.data.get("budgets")
        if isinstance(budgets, Budgets):
            alerts.check_budgets(tuple(budget.name for budget in budgets.limits))
        return alerts


def config_json_schema() -> dict[str, object]:
    """The JSON Schema of ``llmops.yaml`` (``llmops config schema``): what
    :func:`read_config_file` accepts, for editors and for checks outside llmops."""
    return ConfigFile.model_json_schema()


def read_config_file(env: Mapping[str, str]) -> ConfigFile:
    """Read ``LLMOPS_CONFIG`` (or ``./llmops.yaml``); errors name the file and line."""
    named = env.get("LLMOPS_CONFIG")
    path = Path(named) if named else Path("llmops.yaml")
    if not named and not path.exists() and not path.is_symlink():
        return ConfigFile()
    what = "config file (LLMOPS_CONFIG)" if named else "config file"
    text = read_text(path, what=what, max_bytes=MAX_YAML_BYTES)
    data, lines = parse_yaml(text, path)
    if data is not None and not isinstance(data, dict):
        got = type(data).__name__
        raise ConfigFileError(f"expected a mapping of settings, got a {got}", file=path, line=1)
    try:
        return ConfigFile.model_validate(data or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        line = line_of(lines, tuple(error["loc"]))
        raise ConfigFileError(validation_message(error), file=path, line=line) from None


def _money(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an amount in USD, like 25 or 12.5") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}={raw!r}: a budget must be a finite amount more than 0")
    return value


def _check_home(home: Path, *, named: bool) -> None:
    """LLMOPS_HOME must be a folder, or a path where one can be created."""
    what = "LLMOPS_HOME folder" if named else "llmops state folder (LLMOPS_HOME)"
    check_directory(home, what=what, writable=False)


def default_database_url(home: Path) -> str:
    """The SQLite file under ``home``."""
    return f"sqlite:///{(home / 'llmops.db').as_posix()}"


# -- alerts: ``alerts:`` in the config file (evaluated by llmops.control.alerts) ----------

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_EMAIL_ADDRESS = 254


def parse_duration(value: object, low: timedelta, high: timedelta) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` or ``1w`` as a timedelta in [low, high]."""
    if isinstance(value, timedelta):
        duration = value
    else:
        text = value.strip() if isinstance(value, str) else ""
        number, unit = text[:-1].strip(), text[-1:]
        if unit not in _DURATION_UNITS or not (number.isascii() and number.isdigit()):
            raise ValueError("expected a duration like 90s, 15m, 2h, 1d or 1w")
        digits = number.lstrip("0") or "0"
        if len(digits) > 12:  # far above any bound; int() of thousands of digits is slow
            raise ValueError("expected a duration like 90s, 15m, 2h, 1d or 1w (too long)")
        duration = timedelta(seconds=int(digits) * _DURATION_UNITS[unit])
    if not low <= duration <= high:
        raise ValueError(
            f"expected a duration from {format_duration(low)} to {format_duration(high)}"
        )
    return duration


def format_duration(duration: timedelta) -> str:
    """A timedelta in the largest whole unit: ``15m``, ``1d``, ``90s``."""
    seconds = int(duration.total_seconds())
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _alert_window(value: object) -> timedelta:
    return parse_duration(value, timedelta(minutes=1), timedelta(days=31))


def _check_interval(value: object) -> timedelta:
    return parse_duration(value, timedelta(seconds=5), timedelta(days=1))


def _delivery_timeout(value: object) -> timedelta:
    return parse_duration(value, timedelta(seconds=1), timedelta(minutes=5))


def _email_address(value: object) -> object:
    """A bare address (``oncall@acme.test``): one @, no spaces, no control characters."""
    if isinstance(value, str):
        local, at, domain = value.partition("@")
        if (
            at
            and local
            and domain
            and "@" not in domain
            and len(value) <= MAX_EMAIL_ADDRESS
            and value.isprintable()
            and not any(c.isspace() or c in "<>,;\"'" for c in value)
        ):
            return value
    raise ValueError("expected an e-mail address like oncall@example.com")


AlertWindow = Annotated[timedelta, BeforeValidator(_alert_window)]
EnvName = Annotated[str, Field(pattern=_ENV_NAME, max_length=200)]
EmailAddress = Annotated[str, BeforeValidator(_email_address)]


_CREDENTIAL_KEYS = {"url": "url_env", "headers": "headers_env", "password": "password_env",
                    "username": "username_env"}  # fmt: skip


class _AlertChannel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)

    @model_validator(mode="before")
    @classmethod
    def _no_credentials(cls, data: object) -> object:
        """``url: https://hooks.slack.com/...`` would put a credential in a reviewed file."""
        if isinstance(data, dict):
            for key, instead in _CREDENTIAL_KEYS.items():
                if key in data:
                    raise ValueError(
                        f"{key!r} would put a credential in the file: set an environment "
                        f"variable to it and name the variable in {instead}"
                    )
        return data


class SlackChannel(_AlertChannel):
    """A Slack incoming webhook (or a compatible one: Mattermost, Rocket.Chat); its URL holds
    a token, so the file names the environment variable that holds it."""

    type: Literal["slack"]
    url_env: EnvName


class WebhookChannel(_AlertChannel):
    """An HTTP POST of a JSON body to a URL from the environment; ``headers_env`` names a
    variable holding a JSON object of extra headers (``{"Authorization": "Bearer ..."}``)."""

    type: Literal["webhook"]
    url_env: EnvName
    headers_env: EnvName | None = None


class EmailChannel(_AlertChannel):
    """Plain-text e-mail through an SMTP server (``ssl``: SMTP over TLS, usually port 465;
    ``starttls``: upgrade a plain connection, usually port 587)."""

    type: Literal["email"]
    to: tuple[EmailAddress, ...] = Field(min_length=1, max_length=100)
    sender: EmailAddress = Field(alias="from")
    smtp_host: str = Field(default="localhost", min_length=1, max_length=253)
    smtp_port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    username_env: EnvName | None = None
    password_env: EnvName | None = None

    @model_validator(mode="after")
    def _consistent(self) -> EmailChannel:
        if self.ssl and self.starttls:
            raise ValueError("give ssl (SMTP over TLS) or starttls, not both")
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("give both username_env and password_env, or neither")
        return self


class LogChannel(_AlertChannel):
    """The ``llmops.alerts`` logger: fired at WARNING, resolved at INFO."""

    type: Literal["log"]


AlertChannel = Annotated[
    SlackChannel | WebhookChannel | EmailChannel | LogChannel, Field(discriminator="type")
]
CallGrouping = Literal["model", "prompt", "all"]


class _AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    channels: tuple[str, ...] = Field(min_length=1, max_length=20)
    send_resolved: bool = True  # also notify when the condition clears

    @field_validator("channels")
    @classmethod
    def _distinct(cls, channels: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(channels)) != len(channels):
            raise ValueError("a channel is named twice")
        return channels


class BudgetAlert(_AlertRule):
    """Each threshold of each budget (or of the one named), once per window."""

    kind: Literal["budget"]
    budget: str | None = Field(default=None, min_length=1, max_length=100)


class SpendAnomalyAlert(_AlertRule):
    """Today's spend so far (UTC) against the spend up to the same time of day on each of the
    last ``days`` days: fires above ``factor`` x their median and ``min_usd``."""

    kind: Literal["spend_anomaly"]
    factor: float = Field(default=3.0, gt=1, le=1000, allow_inf_nan=False)
    days: int = Field(default=7, ge=1, le=90)
    min_usd: float = Field(default=5.0, ge=0, le=MAX_LIMIT_USD, allow_inf_nan=False)


class ErrorRateAlert(_AlertRule):
    """The share of calls that ended in an error in the last ``window``, per ``by``."""

    kind: Literal["error_rate"]
    window: AlertWindow = timedelta(minutes=15)
    threshold: float = Field(default=0.05, gt=0, lt=1, allow_inf_nan=False)
    min_calls: int = Field(default=20, ge=1, le=10_000_000, strict=True)
    by: CallGrouping = "model"
    source: str | None = Field(default="app", min_length=1, max_length=16)


class LatencyAlert(_AlertRule):
    """The p95 latency of the last ``window`` above ``factor`` x the p95 of the ``days``
    before it, or above ``threshold_ms``."""

    kind: Literal["latency_p95"]
    window: AlertWindow = timedelta(minutes=15)
    factor: float | None = Field(default=None, gt=1, le=1000, allow_inf_nan=False)
    threshold_ms: float | None = Field(default=None, gt=0, le=86_400_000, allow_inf_nan=False)
    days: int = Field(default=7, ge=1, le=90)
    min_calls: int = Field(default=20, ge=1, le=10_000_000, strict=True)
    by: CallGrouping = "model"
    source: str | None = Field(default="app", min_length=1, max_length=16)

    @model_validator(mode="after")
    def _one_limit(self) -> LatencyAlert:
        if (self.factor is None) == (self.threshold_ms is None):
            raise ValueError(
                "give factor (times the p95 of the previous days) or threshold_ms, one of them"
            )
        return self


class FeedbackDriftAlert(_AlertRule):
    """Per prompt version: the average ``feedback`` score of the last ``window`` more than
    ``drop`` (relative) below its average over the ``days`` before."""

    kind: Literal["feedback_drift"]
    feedback: str = Field(default="rating", min_length=1, max_length=100)
    window: AlertWindow = timedelta(days=1)
    days: int = Field(default=14, ge=1, le=365)
    drop: float = Field(default=0.15, gt=0, lt=1, allow_inf_nan=False)
    min_count: int = Field(default=20, ge=1, le=10_000_000)
    source: str | None = Field(default="app", min_length=1, max_length=16)


class EvalDropAlert(_AlertRule):
    """The newest eval run of a suite, prompt reference and model more than ``drop`` (pass
    rate points, 0.05 = 5) below the run before it."""

    kind: Literal["eval_drop"]
    drop: float = Field(default=0.05, gt=0, le=1, allow_inf_nan=False)
    suite: str | None = Field(default=None, min_length=1, max_length=200)
    label: str | None = Field(default=None, min_length=1, max_length=200)


AlertRule = Annotated[
    BudgetAlert
    | SpendAnomalyAlert
    | ErrorRateAlert
    | LatencyAlert
    | FeedbackDriftAlert
    | EvalDropAlert,
    Field(discriminator="kind"),
]
ALERT_KINDS = (
    "budget",
    "spend_anomaly",
    "error_rate",
    "latency_p95",
    "feedback_drift",
    "eval_drop",
)


class Alerts(BaseModel):
    """``alerts:`` in the config file: where notifications go (``channels``), what is watched
    (``rules``), how often a long-running process checks, and how long one delivery may
    take. Credentials (webhook URLs, SMTP passwords) are never in the file: only the names
    of the environment variables that hold them (``*_env``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channels: tuple[AlertChannel, ...] = ()
    rules: tuple[AlertRule, ...] = ()
    check_interval: Annotated[timedelta, BeforeValidator(_check_interval)] = timedelta(minutes=1)
    timeout: Annotated[timedelta, BeforeValidator(_delivery_timeout)] = timedelta(seconds=10)

    @field_validator("channels", "rules", mode="before")
    @classmethod
    def _empty_list(cls, value: object) -> object:
        return () if value is None else value

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: tuple[AlertChannel, ...]) -> tuple[AlertChannel, ...]:
        _unique("channel", [channel.name for channel in channels])
        return channels

    @field_validator("rules")
    @classmethod
    def _known_channels(
        cls, rules: tuple[AlertRule, ...], info: ValidationInfo
    ) -> tuple[AlertRule, ...]:
        _unique("rule", [rule.name for rule in rules])
        channels = info.data.get("channels")
        if channels is None:  # the channels are invalid: that error is reported
            return rules
        declared = [channel.name for channel in channels]
        for rule in rules:
            for name in rule.channels:
                if name not in declared:
                    known = ", ".join(declared) or "none are declared"
                    raise ValueError(
                        f"rule {rule.name!r} names channel {name!r}, which alerts.channels "
                        f"does not declare ({known})"
                    )
        return rules

    def check_budgets(self, names: tuple[str, ...]) -> None:
        """Every ``budget`` rule watches declared budgets (``names``)."""
        for rule in self.rules:
            if not isinstance(rule, BudgetAlert):
                continue
            if not names:
                raise ValueError(
                    f"rule {rule.name!r} watches budgets, but none are declared (budgets.limits)"
                )
            if rule.budget is not None and rule.budget not in names:
                raise ValueError(
                    f"rule {rule.name!r} names budget {rule.budget!r}, which budgets.limits "
                    f"does not declare ({', '.join(names)})"
                )

    def channel(self, name: str) -> AlertChannel:
        return next(channel for channel in self.channels if channel.name == name)


def _unique(what: str, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {what}s are named {name!r}")
        seen.add(name)


ConfigFile.model_rebuild()
