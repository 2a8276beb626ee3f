"""``llmops demo``: fill a database with a month of simulated traffic, run the example
evals offline, and open the dashboard. No API key and no network needed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from llmops.cli._options import MAX_PORT, DatabaseOption, database_url

if TYPE_CHECKING:
    from datetime import datetime


def demo(
    calls: int = typer.Option(300, "--calls", min=10, max=100_000, help="Simulated requests."),
    days: int = typer.Option(30, "--days", min=1, max=365, help="Spread over this many days."),
    no_dashboard: bool = typer.Option(False, "--no-dashboard", help="Stop after the data."),
    no_evals: bool = typer.Option(False, "--no-evals", help="Skip the example eval suites."),
    port: int = typer.Option(8501, "--port", min=1, max=MAX_PORT, help="The dashboard's port."),
    url: str | None = DatabaseOption,
) -> None:
    """Simulate a support app over the example prompts, run the evals, start the dashboard."""
    from llmops.config import Settings
    from llmops.demo.knowledge import ACME
    from llmops.demo.support_app import SimulatedClock, run_support_app, simulated_model
    from llmops.gateway import Gateway
    from llmops.simulate import FakeLLMServer
    from llmops.store.engine import display_url

    settings = Settings.from_env()
    target = database_url(url)
    typer.echo(f"Database: {display_url(target)}")
    typer.echo("Starting the simulated model (no API key, no network)...")
    clock = SimulatedClock(start=_now())
    with FakeLLMServer(responder=simulated_model(ACME)) as server:
        gateway = Gateway(database_url=target, prompts=settings.prompts_dir, clock=clock)
        try:
            stats = run_support_app(
                gateway, server, clock, calls=calls, days=days, progress=_progress()
            )
        finally:
            gateway.close()
    typer.echo(
        f"Simulated app: {stats.calls} calls ({stats.streamed} streamed), "
        f"{stats.errors} provider errors, {stats.feedback} feedback scores over {days} days."
    )
    if not no_evals:
        _run_evals(target)
    if no_dashboard:
        typer.echo(f"Done. Look at it with: llmops dashboard --database-url {target}")
        return
    _serve(target, port)


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _progress() -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if done == total or done % max(total // 5, 1) == 0:
            typer.echo(f"  {done}/{total} requests", err=True)

    return report


def _run_evals(target: str) -> None:
    from llmops.cli.evals import run as eval_run

    suites = Path("evals")
    if not suites.is_dir():
        typer.echo("No evals/ folder here: skipping the example evals.")
        return
    typer.echo("Running the example eval suites offline (working tree vs production)...")
    try:
        eval_run(
            paths=[suites], version=None, baseline=None, model=[], concurrency=None,
            repeat=None, no_cache=False, dry_run=False, offline=True, fail_on_regression=False,
            alpha=None, max_errors=0, junit_file=None, markdown_file=None, json_file=None,
            prompts_dir=None, url=target,
        )  # fmt: skip
    except typer.Exit as exit_:
        if exit_.exit_code:
            typer.echo("(an eval gate failed: see above; the demo goes on)")


def _serve(target: str, port: int) -> None:
    from llmops.cli.dashboard import streamlit_command

    env = {**os.environ, "LLMOPS_DATABASE_URL": target}
    process = subprocess.Popen(streamlit_command(port), env=env)
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{address}/_stcore/health", timeout=2) as response:  # noqa: S310
                if response.read().strip() == b"ok":
                    break
        except OSError:
            time.sleep(0.5)
    typer.echo(f"\nDashboard: {address}  (Ctrl-C to stop)")
    try:
        sys.exit(process.wait())
    except KeyboardInterrupt:
        process.terminate()
        process.wait(10)
