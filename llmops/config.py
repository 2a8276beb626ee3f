"""Settings read from the environment. Every option is documented in README.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
    """

    home: Path
    prompts_dir: Path
    database_url: str
    content: ContentMode
    prices_file: Path | None
    remote_price_map: bool

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
        return cls(
            home=home,
            prompts_dir=Path(env.get("LLMOPS_PROMPTS_DIR") or "prompts"),
            database_url=env.get("LLMOPS_DATABASE_URL") or default_database_url(home),
            content=content,  # type: ignore[arg-type]
            prices_file=prices_file,
            remote_price_map=(env.get("LLMOPS_REMOTE_PRICE_MAP") or "").lower() in _TRUE,
        )


def default_database_url(home: Path) -> str:
    """The SQLite file under ``home``."""
    return f"sqlite:///{(home / 'llmops.db').as_posix()}"
