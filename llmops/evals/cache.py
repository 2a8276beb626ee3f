"""The response cache: re-runs and CI without API keys replay recorded outputs.

Keyed by model, messages, parameters and the repeat index (so ``--repeat`` really samples
again); stored in one SQLite file under ``LLMOPS_HOME``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmops.files import private_dir, private_file
from llmops.gateway.content import safe_params

_SKIPPED_PARAMS = {"api_base", "base_url", "metadata", "num_retries", "max_retries", "timeout"}


@dataclass(frozen=True)
class CachedResponse:
    text: str
    cost_usd: float | None
    latency_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    call_id: str | None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    logprobs: list[float] | None = None


def cache_key(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any], repeat: int, scope: str
) -> str:
    """A stable key; ``scope`` separates e.g. offline (simulated) answers from real ones."""
    kept = {k: v for k, v in safe_params(params).items() if k not in _SKIPPED_PARAMS}
    blob = json.dumps(
        {"model": model, "messages": messages, "params": kept, "repeat": repeat, "scope": scope},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """A small SQLite key-value store of model responses."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        private_file(path)  # cached answers hold prompts: owner-only
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " created_at TEXT NOT NULL)"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return CachedResponse(**json.loads(row[0]))

    def contains(self, key: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone()
                is not None
            )

    def put(self, key: str, response: CachedResponse) -> None:
        value = json.dumps(response.__dict__)
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, value, created_at) VALUES (?, ?, ?)",
                (key, value, datetime.now(UTC).isoformat()),
            )
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
