"""Options shared by several commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import typer

from llmops.config import Settings
from llmops.errors import ConfigError

DatabaseOption = typer.Option(
    None,
    "--database-url",
    help="SQLAlchemy URL [default: $LLMOPS_DATABASE_URL or sqlite:///.llmops/llmops.db].",
    show_default=False,
)


def database_url(value: str | None) -> str:
    return value or Settings.from_env().database_url


def parse_when(value: str, option: str) -> datetime:
    """A UTC time from ``2026-11-01``, an ISO timestamp, or a span back from now (``7d``)."""
    text = value.strip()
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if text[:-1].isdigit() and text[-1:] in units:
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: expected a date (2026-11-01), an ISO time, or a span like 7d"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
