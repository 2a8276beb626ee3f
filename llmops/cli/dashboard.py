"""``llmops dashboard``: start the Streamlit dashboard."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import sys
from pathlib import Path

import typer

from llmops.cli._options import MAX_PORT, DatabaseOption, check_listen, database_url
from llmops.config import Settings
from llmops.errors import ConfigError


def app_path() -> Path:
    """The dashboard's entry script: ``app.py`` of the ``llmops.dashboard`` package (the
    repository's ``dashboard/`` folder, installed under that name), once its extra's
    dependencies (streamlit, pandas) are installed."""
    missing = [name for name in ("streamlit", "pandas") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the dashboard needs {' and '.join(missing)} (not installed here): "
            'pip install "llmops[dashboard]"'
        )
    spec = importlib.util.find_spec("llmops.dashboard")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        app = Path(folder) / "app.py"
        if app.is_file():
            return app
    raise ConfigError("the dashboard is not installed here (no llmops/dashboard/app.py)")


_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*\.?")


def check_address(address: str) -> None:
    """``--address`` must be an IP address or a host name (checked here: Streamlit would
    only fail after starting)."""
    try:
        ipaddress.ip_address(address)
        return
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(address):
        raise ConfigError(f"--address {address!r}: expected an IP address or a host name")


LOCAL_ADDRESS = "127.0.0.1"


def streamlit_command(port: int, address: str = LOCAL_ADDRESS) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", address,
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def dashboard(
    port: int = typer.Option(8501, "--port", min=1, max=MAX_PORT, help="The port to serve on."),
    address: str = typer.Option(LOCAL_ADDRESS, "--address", help="The address to bind."),
    url: str | None = DatabaseOption,
) -> None:
    """Serve the dashboard (spend, latency, feedback, evals, calls) until interrupted."""
    from llmops.store.engine import display_url

    check_address(address)
    app_path()
    target = database_url(url or Settings.from_env().dashboard_url)
    check_listen(address, port)  # Streamlit would print a traceback, or exit 1, for these
    env = {**os.environ, "LLMOPS_DATABASE_URL": target, "LLMOPS_DASHBOARD_DATABASE_URL": target}
    typer.echo(f"Dashboard on http://{address}:{port} (database {display_url(target)})")
    command = streamlit_command(port, address)
    sys.stdout.flush()
    # Become Streamlit (exec), so signals reach the server and nothing is left orphaned.
    os.execve(command[0], command, env)  # noqa: S606
