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
from llmops.files import MAX_YAML_BYTES, check_directory, line_of, parse_yaml, read_text

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
    - ``LLMOPS_CONFIG``: a YAML config file; default ``./llmops.yaml`` when it exists.
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
        )


class Budgets(BaseModel):
    """USD budgets drawn on the dashboard's spend charts."""

    model_config = ConfigDict(extra="forbid")

    daily_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    monthly_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)


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
        loc = tuple(error["loc"])
        where = ".".join(str(p) for p in loc)
        raise ConfigFileError(
            f"{where}: {error['msg']}", file=path, line=line_of(lines, loc)
        ) from None


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
