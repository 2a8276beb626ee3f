"""Options shared by several commands, and the checks that make a bad value a one-line
usage error (exit 2) before any work is done."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer

from llmops.config import Settings
from llmops.errors import ConfigError
from llmops.files import check_directory

DatabaseOption = typer.Option(
    None,
    "--database-url",
    help="SQLAlchemy URL [default: $LLMOPS_DATABASE_URL or sqlite:///.llmops/llmops.db].",
    show_default=False,
)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest time a ``--since``/``--until`` may name (no model call is older)."""
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""The latest such time: a day's margin below what Python's datetime can hold."""
MAX_TOP = 1_000_000
MAX_PORT = 65_535

_SPAN = re.compile(r"([0-9]+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_SQLITE_MAGIC = b"SQLite format 3\x00"


def database_url(value: str | None, *, existing: bool = False) -> str:
    """The database URL from ``--database-url`` or the settings, checked (see
    :func:`check_database_url`)."""
    url = value or Settings.from_env().database_url
    check_database_url(url, existing=existing)
    return url


def check_database_url(url: str, *, existing: bool = False) -> None:
    """Refuse, as a usage error, a database URL that cannot work whatever the network does:
    a malformed URL, an unsupported database, a port out of range, and for SQLite a path
    that is a directory, a folder that cannot be created, a file that is not an SQLite
    database, or (``existing``: for commands that only look) a file that is not there. (A
    server that does not answer is not a usage error: that is found when connecting, and
    exits 1.)"""
    from llmops.store.engine import display_url, normalize_url, sqlite_file

    try:
        parsed = normalize_url(url)
    except ValueError as exc:  # sqlalchemy's make_url on a port that is not a number
        raise ConfigError(f"bad database URL (is the port a number?): {exc}") from None
    where = display_url(parsed)
    try:
        port = parsed.port
    except ValueError:
        raise ConfigError(f"database URL {where}: the port is not a number") from None
    if port is not None and not 1 <= port <= MAX_PORT:
        raise ConfigError(f"database URL {where}: port {port} is not in 1-{MAX_PORT}")
    if parsed.get_backend_name() != "sqlite":
        return
    path = sqlite_file(parsed)  # a URI (file:...?uri=true) names its file too
    if path is None:
        return
    if existing and not path.exists():  # a command that only looks makes nothing
        raise ConfigError(
            f"{where}: no such database file (llmops creates it on first use; "
            "`llmops db upgrade` creates it now)"
        )
    if existing and path.is_file() and path.stat().st_size == 0:  # nor writes a schema
        raise ConfigError(
            f"{where}: an empty file, with no calls in it (llmops fills it on first use; "
            "`llmops db upgrade` now)"
        )
    check_directory(path.parent, what="folder of the SQLite database", create=True)
    check_sqlite_file(path, what=f"database {where}")


def check_sqlite_file(path: Path, *, what: str) -> None:
    """``path`` is an SQLite database, an empty file, or nothing yet (it will be created);
    not a directory nor some other file."""
    try:
        if path.is_dir():
            raise ConfigError(f"{what}: {path} is a directory, not an SQLite file")
        if not path.exists():
            return
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_MAGIC))
    except PermissionError:
        raise ConfigError(f"{what}: cannot open {path}: permission denied") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{what}: cannot open {path}: {reason}") from None
    if header and header != _SQLITE_MAGIC:
        raise ConfigError(f"{what}: {path} is not an SQLite database")


def check_listen(host: str, port: int) -> None:
    """``host:port`` can be listened on now: a port in use, or an address this machine does
    not have, is a one-line error before a server starts (or any work is done for one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def check_prompts_dir(folder: Path) -> Path:
    """A prompt folder may be missing (no prompts yet) but not be a file."""
    try:
        is_file = folder.exists() and not folder.is_dir()
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"{folder}: not a usable prompt folder: {reason}") from None
    if is_file:
        raise ConfigError(f"{folder}: not a directory (expected the prompt folder)")
    return folder


def parse_when(value: str, option: str) -> datetime:
    """A UTC time from ``2026-11-01``, an ISO timestamp, or a span back from now (``7d``),
    between 1970 and 9999."""
    text = value.strip()
    span = _SPAN.fullmatch(text)
    if span:
        try:
            when = datetime.now(UTC) - timedelta(**{_UNITS[span[2]]: int(span[1])})
        except OverflowError:
            when = None
        if when is None or when < EARLIEST:
            raise ConfigError(
                f"{option} {value!r}: too far back (the earliest is {EARLIEST:%Y-%m-%d})"
            )
        return when
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r}: expected a date (2026-11-01), an ISO time, or a span like 7d"
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        in_range = EARLIEST <= when < LATEST
    except OverflowError:  # an offset that moves the time outside datetime's range
        in_range = False
    if not in_range:
        raise ConfigError(
            f"{option} {value!r}: expected a time from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d}"
        )
    return when


def check_choices(option: str, values: Iterable[str], allowed: Iterable[str]) -> None:
    """Every value of a repeatable option must be one of ``allowed``."""
    known = tuple(allowed)
    for value in values:
        if value not in known:
            raise ConfigError(f"{option} {value!r}: expected one of {', '.join(known)}")
