"""Settings read from the environment. Every option is documented in README.md."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
            budgets=config.budgets.limits,
        )


Window = Literal["day", "week", "month"]
BudgetAction = Literal["alert", "block"]
ScopeKey = Literal["user", "tag", "prompt", "model", "source"]
EACH = "each"  # a scope value: a separate limit for every user (tag, prompt, ...)
MAX_LIMIT_USD = 1e9


class Budget(BaseModel):
    """A spend limit: ``limit_usd`` per calendar ``window`` (UTC; weeks start on Monday), over
    every call or over a ``scope`` (one key: ``{model: gpt-4o}`` for one value,
    ``{user: each}`` for a separate limit per user). ``action`` ``alert`` reports
    ``thresholds`` (percent of the limit) as they are crossed; ``block`` also refuses calls
    once the limit is reached."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    window: Window
    limit_usd: float = Field(gt=0, le=MAX_LIMIT_USD, allow_inf_nan=False)
    action: BudgetAction = "alert"
    scope: dict[ScopeKey, str] = Field(default_factory=dict)
    thresholds: tuple[float, ...] = (50.0, 80.0, 100.0)

    @field_validator("scope")
    @classmethod
    def _one_key(cls, scope: dict[ScopeKey, str]) -> dict[ScopeKey, str]:
        if len(scope) > 1:
            raise ValueError("a scope names one key (user, tag, prompt, model or source)")
        for value in scope.values():
            if not value.strip() or len(value) > 200:
                raise ValueError("a scope value is 1 to 200 characters, or 'each'")
        return scope

    @field_validator("action")
    @classmethod
    def _enforced(cls, action: BudgetAction) -> BudgetAction:
        # Refused rather than accepted and ignored: a team must not believe it is protected.
        if action == "block":
            raise ValueError(
                "action 'block' is not enforced by this version of llmops yet; use 'alert'"
            )
        return action

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
            seen.add(budget.name)
        return limits


class ConfigFile(BaseModel):
    """``llmops.yaml``: settings that belong in a reviewed file rather than the environment."""

    model_config = ConfigDict(extra="forbid")

    budgets: Budgets = Field(default_factory=Budgets)

    @field_validator("budgets", mode="before")
    @classmethod
    def _empty_section(cls, value: object) -> object:
        """``budgets:`` with nothing under it sets nothing, as ``budgets: {}`` does."""
        return {} if value is None else value


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
