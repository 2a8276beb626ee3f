"""Settings read from the environment. Every option is documented in README.md."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where llmops keeps its files.

    - ``LLMOPS_HOME``: local state (database, caches); default ``./.llmops``.
    - ``LLMOPS_PROMPTS_DIR``: the prompt folder; default ``./prompts``.
    """

    home: Path
    prompts_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            home=Path(env.get("LLMOPS_HOME") or ".llmops"),
            prompts_dir=Path(env.get("LLMOPS_PROMPTS_DIR") or "prompts"),
        )
