"""``llmops metrics``: the Prometheus exporter (``/metrics`` over HTTP, or once to stdout)."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

import typer

from llmops.cli._options import MAX_PORT, DatabaseOption, database_url

# llmops.control.metrics's defaults, written here so that CLI start-up does not import
# prometheus_client (a test checks that they agree)
DEFAULT_PORT = 9464
TOP_SERIES = 50
CACHE_SECONDS = 5.0
MAX_SERIES = 10_000


def metrics(
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."
    ),
    port: int = typer.Option(
        DEFAULT_PORT, "--port", min=0, max=MAX_PORT, help="Port to listen on (0: any free port)."
    ),
    once: bool = typer.Option(
        False, "--once", help="Print the metrics once to stdout and exit (no server)."
    ),
    top: int = typer.Option(
        TOP_SERIES,
        "--top",
        min=1,
        max=MAX_SERIES,
        help="Model/prompt/version/source combinations with series of their own; the rest "
        'sum as "(other)".',
    ),
    cache_seconds: float = typer.Option(
        CACHE_SECONDS,
        "--cache-seconds",
        min=0,
        max=3600,
        help="Serve the figures of one database read for this long (scrape storms).",
    ),
    url: str | None = DatabaseOption,
) -> None:
    """Prometheus metrics of the recorded calls and budgets, read from the database: spend,
    calls by status, tokens, latency, budget usage. Serves http://HOST:PORT/metrics."""
    from llmops.config import Settings
    from llmops.control.metrics import SpendCollector, exposition, make_registry, serve
    from llmops.errors import DatabaseError
    from llmops.store.engine import check_schema, create_engine

    budgets = Settings.from_env().budgets
    engine = create_engine(database_url(url, existing=once))  # --once only looks
    try:
        try:
            check_schema(engine)
        except DatabaseError as exc:  # not reachable now: serve llmops_database_up 0 meanwhile
            if not once:
                typer.echo(f"warning: {exc} (serving llmops_database_up 0 meanwhile)", err=True)
        collector = SpendCollector(engine, budgets, cache_seconds=cache_seconds, top=top)
        registry = make_registry(collector)
        if once:
            typer.echo(exposition(registry), nl=False)
            if not collector.database_up:
                raise DatabaseError(collector.last_error or "database: cannot be read")
            return
        server = serve(registry, host, port)
        typer.echo(f"llmops metrics: serving {server.url} (Ctrl-C stops)", err=True)
        try:
            with _until_stopped() as stopped:
                stopped.wait()
        finally:
            server.close()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _until_stopped() -> Iterator[threading.Event]:
    """An event set by SIGTERM; Ctrl-C (SIGINT) ends the wait as well, without a traceback."""
    stopped = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        yield stopped
    except KeyboardInterrupt:
        sys.stderr.write("\n")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
