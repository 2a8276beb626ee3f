"""``llmops demo``: fill a database with a month of simulated support-app traffic, with an
eval run at every prompt promotion, set budgets, and open the dashboard. No API key and no
network needed."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import typer

from llmops.cli._options import MAX_PORT, DatabaseOption, check_listen, database_url

#: Requests (per day x days) from which the back office runs in a process of its own.
SPLIT_AT = 3000

if TYPE_CHECKING:
    from llmops.demo.support_app import DemoStats
    from llmops.demo.traffic import Schedule
    from llmops.demo.workspace import Workspace


def demo(
    calls: int = typer.Option(
        500,
        "--calls",
        min=10,
        max=20_000,
        help="Requests per day on average (weekdays about 1.15x, weekends about 0.7x).",
    ),
    days: int = typer.Option(30, "--days", min=1, max=365, help="Days to simulate, up to today."),
    seed: int = typer.Option(7, "--seed", min=0, max=2**31, help="Seed of the simulation."),
    no_dashboard: bool = typer.Option(False, "--no-dashboard", help="Stop after the data."),
    no_evals: bool = typer.Option(False, "--no-evals", help="No eval run at the promotions."),
    port: int = typer.Option(8501, "--port", min=1, max=MAX_PORT, help="The dashboard's port."),
    url: str | None = DatabaseOption,
) -> None:
    """Simulate a month of a support app (retrieval-augmented answers, ticket triage,
    escalation drafts, summaries) through the gateway, with a prompt rollout, incidents and
    an eval at each promotion; set a daily and monthly budget; start the dashboard."""
    from llmops.cli.dashboard import LOCAL_ADDRESS, app_path
    from llmops.config import Settings
    from llmops.demo.support_app import suggest_budgets
    from llmops.demo.traffic import Schedule
    from llmops.demo.workspace import Workspace
    from llmops.store.engine import display_url

    settings = Settings.from_env()
    target = database_url(url)
    if not no_dashboard:  # before a simulation of a minute: the dashboard can be served
        app_path()  # streamlit and pandas installed
        check_listen(LOCAL_ADDRESS, port)
    schedule = Schedule.of(days, datetime.now(UTC))
    workspace = Workspace.create(
        (settings.home / "demo").absolute(), at=schedule.start - timedelta(hours=20)
    )
    typer.echo(f"Database: {display_url(target)}")
    typer.echo(f"Demo prompts, evals and budgets: {workspace.root}")
    typer.echo(
        f"Simulating {days} day(s) of a support app, about {calls} requests a day, "
        "on a local simulated provider (no API key, no network)..."
    )
    started = time.perf_counter()
    stats = _simulate(target, workspace, schedule, calls, seed, evals=not no_evals)
    elapsed = time.perf_counter() - started
    daily, monthly = suggest_budgets(stats, schedule)
    workspace.write_config(daily, monthly)
    _report(stats, schedule, elapsed, daily, monthly)
    env = {
        "LLMOPS_DATABASE_URL": target,
        "LLMOPS_PROMPTS_DIR": str(workspace.prompts),
        "LLMOPS_CONFIG": str(workspace.config),
        "LLMOPS_DAILY_BUDGET": f"{daily:g}",
        "LLMOPS_MONTHLY_BUDGET": f"{monthly:g}",
    }
    if no_dashboard:
        shown = " ".join(f"{k}={v}" for k, v in env.items() if k != "LLMOPS_DATABASE_URL")
        typer.echo(f"Done. Look at it with: {shown} llmops dashboard --database-url {target}")
        return
    _serve(env, port)


def _simulate(
    target: str, workspace: Workspace, schedule: Schedule, calls: int, seed: int, *, evals: bool
) -> DemoStats:
    """The provider in a child process; the help widget in this process, with the back
    office in another child process when the run is large enough to be worth its start-up
    (a second litellm import): a month of traffic on the machine's cores."""
    import asyncio

    from llmops.config import Settings
    from llmops.demo.backoffice import BACK_OFFICE, BackOffice, BackOfficeSettings
    from llmops.demo.model import failing_model
    from llmops.demo.promotion import PromotionEvals
    from llmops.demo.provider import ProviderProcess
    from llmops.demo.support_app import Providers, SimulatedClock, run_month
    from llmops.demo.traffic import KINDS
    from llmops.gateway import Gateway
    from llmops.simulate import FakeLLMServer

    home = Settings.from_env().home.absolute()
    clock = SimulatedClock(schedule.start)
    with (
        ProviderProcess() as working,
        FakeLLMServer(responder=failing_model(429)) as limited,
        FakeLLMServer(responder=failing_model()) as down,
    ):
        providers = Providers(working, limited, down)
        back_office = None
        if calls * schedule.days >= SPLIT_AT:
            back_office = BackOffice(
                BackOfficeSettings(
                    database_url=target,
                    home=str(home),
                    workspace=str(workspace.root),
                    days=schedule.days,
                    now=schedule.end.isoformat(),
                    calls_per_day=calls,
                    seed=seed,
                    working=working.url,
                    limited=limited.url,
                    down=down.url,
                )
            )
        gateway = Gateway(
            database_url=target, prompts=workspace.registry(), clock=clock, budgets=[],
            direct=True, home=home,
        )  # fmt: skip
        on_promotion = None
        if evals:
            on_promotion = PromotionEvals(
                target, workspace, lambda model: providers.route(model, None), echo=typer.echo
            )

        async def run() -> DemoStats:
            here = KINDS if back_office is None else [k for k in KINDS if k not in BACK_OFFICE]
            stats = await run_month(
                gateway, workspace, providers, schedule, clock, calls_per_day=calls,
                seed=seed, kinds=here, on_promotion=on_promotion,
                on_released=back_office.start if back_office else None, progress=_progress(),
            )  # fmt: skip
            if back_office is not None:
                stats.add(await asyncio.to_thread(back_office.finish))
            return stats

        try:
            return asyncio.run(run())
        finally:
            if back_office is not None:
                back_office.stop()
            gateway.close()


def _report(
    stats: DemoStats, schedule: Schedule, elapsed: float, daily: float, monthly: float
) -> None:
    from llmops.money import usd

    costs = [stats.cost_by_day.get(schedule.day(i), 0.0) for i in range(schedule.days)]
    over = sum(cost > daily for cost in costs)
    typer.echo(
        f"Simulated app: {stats.calls} calls ({stats.streamed} streamed), {stats.errors} "
        f"provider errors, {stats.feedback} feedback scores over {schedule.days} days, "
        f"in {elapsed:.1f} s."
    )
    typer.echo(
        f"Spend per day: min {usd(min(costs))}, median {usd(statistics.median(costs))}, "
        f"max {usd(max(costs))}; total {usd(sum(costs))}."
    )
    typer.echo(
        f"Budgets: {usd(daily)} a day ({over} day(s) over it), {usd(monthly)} a month. "
        f"Prompt rollout {schedule.rollout:%Y-%m-%d %H:%M}, launch day {schedule.launch_day}, "
        f"retry-loop spike {schedule.spike_day}, outage {schedule.outage:%Y-%m-%d %H:00} UTC."
    )


def _progress() -> Callable[[int, int], None]:
    def report(done: int, total: int) -> None:
        if done == total or done % max(total // 5, 1) == 0:
            typer.echo(f"  {done}/{total} requests", err=True)

    return report


def _serve(settings: dict[str, str], port: int) -> None:
    from llmops.cli.dashboard import LOCAL_ADDRESS, streamlit_command

    env = {**os.environ, **settings}
    process = subprocess.Popen(streamlit_command(port, LOCAL_ADDRESS), env=env)
    address = f"http://{LOCAL_ADDRESS}:{port}"
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
