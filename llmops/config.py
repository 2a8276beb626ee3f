"""Settings read from the environment. Every option is documented in README.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmops.errors import ConfigError

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
            content=content,  # type: ignore[arg-type]
            prices_file=prices_file,
            remote_price_map=(env.get("LLMOPS_REMOTE_PRICE_MAP") or "").lower() in _TRUE,
            daily_budget_usd=_money(env, "LLMOPS_DAILY_BUDGET", config.budgets.daily_usd),
            monthly_budget_usd=_money(env, "LLMOPS_MONTHLY_BUDGET", config.budgets.monthly_usd),
            dashboard_password=env.get("LLMOPS_DASHBOARD_PASSWORD") or None,
        )


class Budgets(BaseModel):
    """USD budgets drawn on the dashboard's spend charts."""

    model_config = ConfigDict(extra="forbid")

    daily_usd: float | None = Field(default=None, gt=0)
    monthly_usd: float | None = Field(default=None, gt=0)


class ConfigFile(BaseModel):
    """``llmops.yaml``: settings that belong in a reviewed file rather than the environment."""

    model_config = ConfigDict(extra="forbid")

    budgets: Budgets = Field(default_factory=Budgets)


def read_config_file(env: Mapping[str, str]) -> ConfigFile:
    """Read ``LLMOPS_CONFIG`` (or ``./llmops.yaml``); errors name the file and line."""
    named = env.get("LLMOPS_CONFIG")
    path = Path(named) if named else Path("llmops.yaml")
    if not path.is_file():
        if named:
            raise ConfigError(f"LLMOPS_CONFIG={named}: no such file")
        return ConfigFile()
    from llmops.errors import ConfigFileError
    from llmops.prompts._format import _parse_yaml, line_of

    data, lines = _parse_yaml(path.read_text(encoding="utf-8"), str(path))
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
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: a budget must be more than 0")
    return value


def default_database_url(home: Path) -> str:
    """The SQLite file under ``home``."""
    return f"sqlite:///{(home / 'llmops.db').as_posix()}"
