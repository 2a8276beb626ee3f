"""``llmops serve``: the OpenAI-compatible proxy (see :mod:`llmops.server.app`)."""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import typer

from llmops.cli._options import MAX_PORT, DatabaseOption, check_listen, database_url
from llmops.errors import ConfigError
from llmops.server import HEAD_TIMEOUT_ENV, HEAD_TIMEOUT_SECONDS, METRICS_URL_ENV

DEFAULT_PORT = 4000
# uvicorn's default (5 s) closes pooled client connections that a busy client is about to
# reuse: it then reads a reset (seen with 200 streaming clients). Load balancers use 60+.
KEEP_ALIVE_SECONDS = 75
# uvicorn's httptools protocol with a bounded request head (llmops.server.protocol)
HTTP_PROTOCOL = "llmops.server.protocol:BoundedHttpToolsProtocol"


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=1, max=MAX_PORT, help="Port."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes."),
    allow_anonymous: bool = typer.Option(
        False,
        "--allow-anonymous",
        help="Listen on a non-loopback address although no key was created.",
    ),
    header_timeout: float = typer.Option(
        HEAD_TIMEOUT_SECONDS,
        "--header-timeout",
        min=0.1,
        max=3600,
        help="Seconds a request's headers may take to arrive once its first byte has "
        "(408 after, connection closed); headers over 64 KB are refused with 431.",
    ),
    direct: bool = typer.Option(
        True,
        "--direct/--via-litellm",
        help="Send calls to OpenAI-compatible upstreams directly (the default: far less "
        "overhead) or every call through litellm.",
    ),
    url: str | None = DatabaseOption,
) -> None:
    """Serve /v1/chat/completions (and /v1/models, /v1/feedback, /health) for apps in any
    language: every call goes through the Gateway and is recorded. Provider keys and bases
    come from the server's environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...). Once a key
    exists (`llmops keys create`), every request must present one."""
    from llmops.store.engine import check_schema, create_engine
    from llmops.store.keys import list_keys

    chosen = database_url(url)
    engine = create_engine(chosen)
    check_schema(engine)
    if not _loopback(host) and not allow_anonymous and not list_keys(engine):
        raise ConfigError(
            f"--host {host}: no key was created, so anyone who can reach the server could "
            "call models on its provider keys; create one (`llmops keys create --name NAME`), "
            "listen on 127.0.0.1, or pass --allow-anonymous behind your own authentication"
        )
    engine.dispose()
    check_listen(host, port)
    os.environ["LLMOPS_DATABASE_URL"] = chosen  # for the workers' gateways
    os.environ["LLMOPS_SERVE_DIRECT"] = "1" if direct else "0"
    os.environ[HEAD_TIMEOUT_ENV] = repr(header_timeout)
    import uvicorn

    typer.echo(f"llmops: serving on http://{host}:{port}/v1 ({workers} worker(s))", err=True)
    config = uvicorn.Config(
        "llmops.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        http=HTTP_PROTOCOL,
    )
    if workers > 1:  # uvicorn's supervisor: it stops its workers and exits 0 on SIGTERM
        with _shared_exporter(chosen):
            uvicorn.run(
                "llmops.server.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning", access_log=False,
                timeout_keep_alive=KEEP_ALIVE_SECONDS, http=HTTP_PROTOCOL,
            )  # fmt: skip
        return
    _quiet_server(config).run()


@contextlib.contextmanager
def _shared_exporter(url: str) -> Iterator[None]:
    """The one Prometheus exporter of several workers, in this (the supervisor) process on
    a free loopback port: every worker's ``/metrics`` serves its figures, so that they are
    one series (counters started once, the same series chosen, one read cache)."""
    from llmops.config import Settings
    from llmops.control.metrics import SpendCollector, make_registry
    from llmops.control.metrics import serve as serve_metrics
    from llmops.store.engine import create_engine

    engine = create_engine(url)
    collector = SpendCollector(engine, [*Settings.from_env().budgets])
    exporter = serve_metrics(make_registry(collector), "127.0.0.1", 0)
    os.environ[METRICS_URL_ENV] = exporter.url
    try:
        yield
    finally:
        exporter.close()
        engine.dispose()


def _server_class() -> type:
    import uvicorn

    class QuietServer(uvicorn.Server):
        """uvicorn's server, except that after a graceful stop on SIGTERM/SIGINT it exits
        0 instead of raising the signal again (supervisors and `docker stop` expect 0)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    return QuietServer


def _quiet_server(config: object) -> Any:
    return _server_class()(config)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
