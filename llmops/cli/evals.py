"""``llmops eval``: run regression suites against prompt versions, and gate CI on them."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from llmops.cli import eval_cases
from llmops.cli._options import (
    DatabaseOption,
    check_prompts_dir,
    check_sqlite_file,
    database_url,
)
from llmops.cli.eval_import import import_app
from llmops.config import Settings
from llmops.errors import ConfigError
from llmops.files import check_directory, check_output_file, write_private

if TYPE_CHECKING:  # imported where used, to keep `llmops --help` fast
    from llmops.evals.cache import ResponseCache
    from llmops.evals.runner import Plan, SuiteReport
    from llmops.prompts import PromptRegistry

#: Per-model keyword arguments of the model calls (see _model_routes).
Routes = Callable[[str], dict[str, Any]]

app = typer.Typer(help="Eval suites: score prompt versions, gate CI.", no_args_is_help=True)
app.add_typer(import_app, name="import")
app.add_typer(eval_cases.app, name="cases")


def suite_files(paths: list[Path]) -> list[Path]:
    """Suite files from files and folders (a folder means its *.yaml / *.yml files)."""
    found: list[Path] = []
    for path in paths:
        try:
            if path.is_dir():
                found += sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            elif path.is_file():
                found.append(path)
            else:
                raise ConfigError(f"{path}: no such suite file or folder")
        except OSError as exc:
            reason = (exc.strerror or type(exc).__name__).lower()
            raise ConfigError(f"{path}: cannot read the suite file or folder: {reason}") from None
    if not found:
        raise ConfigError(f"no suite files in {', '.join(str(p) for p in paths)}")
    return found


@app.command()
def run(
    paths: list[Path] = typer.Argument(
        None, metavar="PATH", help="Suite files or folders [default: evals/]."
    ),
    version: str | None = typer.Option(
        None, "--version", help="Candidate prompt reference [default: the working tree]."
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", help="Baseline reference [default: production]; 'none' for none."
    ),
    model: list[str] = typer.Option([], "--model", help="Run on this model (repeatable)."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, max=256),
    repeat: int | None = typer.Option(None, "--repeat", min=1, max=100),
    no_cache: bool = typer.Option(False, "--no-cache", help="Call models even when cached."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the calls and an estimated cost; call nothing."
    ),
    offline: bool = typer.Option(
        False,
        "--offline",
        help="Answer from the demo's deterministic simulated model (it knows the demo's "
        "Acme products) [env LLMOPS_OFFLINE=1].",
    ),
    fail_on_regression: bool = typer.Option(
        False, "--fail-on-regression", help="Exit 1 on a significant regression."
    ),
    alpha: float | None = typer.Option(
        None,
        "--alpha",
        min=1e-9,
        max=0.49,
        help="Significance level of the one-sided regression test [default: each suite's "
        "alpha, 0.025]; Holm-adjusted across the run's suites and models.",
    ),
    max_errors: int = typer.Option(
        0,
        "--max-errors",
        min=0,
        max=10**9,
        help="Errored cases (failed model, judge or check calls) tolerated before the run "
        "is inconclusive (exit 3).",
    ),
    junit_file: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    markdown_file: Path | None = typer.Option(None, "--markdown", help="Write Markdown here."),
    json_file: Path | None = typer.Option(None, "--json", help="Write JSON here."),
    prompts_dir: Path | None = typer.Option(None, "--prompts-dir", help="The prompt folder."),
    url: str | None = DatabaseOption,
) -> None:
    """Run suites; exit 0 when every gate passes, 1 when one fails, 2 on bad input, 3 when
    more cases errored than --max-errors allows (inconclusive)."""
    from llmops.evals.runner import plan
    from llmops.evals.suite import load_suite
    from llmops.prompts import PromptRegistry

    settings = Settings.from_env()
    outputs = {"--junit": junit_file, "--markdown": markdown_file, "--json": json_file}
    for option, target in outputs.items():
        if target is not None:  # before any model call, not after the whole run
            check_output_file(target, what=f"{option} report")
    registry = PromptRegistry(check_prompts_dir(prompts_dir or settings.prompts_dir))
    offline = offline or os.environ.get("LLMOPS_OFFLINE", "").lower() in ("1", "true", "yes")
    suites = [load_suite(path) for path in suite_files(paths or [Path("evals")])]
    plans = [
        plan(
            suite,
            registry,
            version=version,
            baseline=baseline,
            models=model or None,
            repeat=repeat,
            concurrency=concurrency,
        )
        for suite in suites
    ]
    scope = "offline" if offline else "live"
    target_url = "" if dry_run else database_url(url)  # checked before any model call
    if target_url:  # reachable, with a current schema (a new one is made), before any call
        from llmops.store.engine import check_schema, create_engine

        probe = create_engine(target_url)
        try:
            check_schema(probe)
        finally:
            probe.dispose()
    cache = None
    if not no_cache:
        from llmops.evals.cache import ResponseCache

        cache_file = settings.home / "eval-cache.db"
        check_directory(settings.home, what="folder of the eval cache (LLMOPS_HOME)", create=True)
        check_sqlite_file(cache_file, what="eval cache")
        cache = ResponseCache(cache_file)
    if dry_run:
        _dry_run(plans, cache, scope, settings)
        return
    _preload_litellm(plans)
    with _model_routes(offline) as routes:
        reports = _run_all(plans, cache, scope, routes, target_url, registry, alpha)
    from llmops.evals import report as render
    from llmops.evals.stats import adjust

    adjust([c for r in reports for c in r.comparisons.values()])  # Holm, over the whole run
    gates = render.Gates(reports, fail_on_regression=fail_on_regression, max_errors=max_errors)

    for suite_report in reports:
        typer.echo(render.console(suite_report))
        typer.echo("")
    if junit_file:
        write_private(junit_file, render.junit(reports), what="--junit report")
    if markdown_file:
        write_private(markdown_file, render.markdown(reports, gates), what="--markdown report")
    if json_file:
        write_private(
            json_file, json.dumps(render.to_json(reports, gates), indent=2), what="--json report"
        )
    for line, colour in gates.summary():
        typer.secho(line, fg=colour)
    if gates.exit_code:
        raise typer.Exit(gates.exit_code)


def _preload_litellm(plans: list[Plan]) -> None:
    """Start importing litellm in the background when some model of the run needs it (one
    the direct route does not take), so that the import overlaps the run's set-up."""
    from llmops import litellm_loader

    models = {t.model for p in plans for t in p.targets if t.prompt is not None}
    models |= {p.suite.spec.judge for p in plans if p.suite.spec.judge}
    models |= {
        a.provider
        for p in plans
        for case in p.suite.cases
        for a in p.suite.case_assertions(case)
        if a.provider
    }
    if any(litellm_loader.openai_route(model) is None for model in models):
        threading.Thread(target=litellm_loader.load, name="llmops-litellm", daemon=True).start()


@contextlib.contextmanager
def _model_routes(offline: bool) -> Iterator[Routes]:
    """Per-model call arguments: none live; offline, the address of the demo's simulated
    model (its world is the demo's Acme products, which the example suites are about)."""
    if not offline:
        yield lambda model: {}
        return
    from llmops.demo.knowledge import ACME
    from llmops.gateway import provider_of
    from llmops.simulate import FakeLLMServer, SimulatedModel

    with FakeLLMServer(responder=SimulatedModel(world=ACME)) as server:

        def route(model: str) -> dict[str, Any]:
            provider = provider_of(model)
            if provider == "anthropic":
                base = server.anthropic_base_url
                return {"api_base": base, "api_key": "offline", "num_retries": 0}
            found = {"api_base": server.base_url, "api_key": "offline", "num_retries": 0}
            if provider not in ("openai", "text-completion-openai"):
                # Azure, Replicate, Groq, Ollama, ...: their own paths or response checks;
                # the simulated model speaks OpenAI's chat API, so every model is sent so
                found["custom_llm_provider"] = "openai"
            return found

        yield route


def _run_all(
    plans: list[Plan],
    cache: ResponseCache | None,
    scope: str,
    routes: Routes,
    url: str,
    registry: PromptRegistry,
    alpha: float | None,
) -> list[SuiteReport]:
    from llmops.evals.runner import Runner
    from llmops.evals.storage import save_report
    from llmops.gateway import Gateway

    # OpenAI-compatible calls go out directly: no litellm import (4 s) for them
    gateway = Gateway(database_url=url, prompts=registry, source="eval", direct=True)
    reports = []
    try:
        for suite_plan in plans:
            progress = _progress(suite_plan.suite.name, len(suite_plan.jobs))
            runner = Runner(
                gateway,
                cache=cache,
                call_kwargs=routes,
                cache_scope=scope,
                progress=progress,
                alpha=alpha,
            )
            report = runner.run(suite_plan)
            save_report(gateway.engine, report)
            reports.append(report)
    finally:
        gateway.close()
    return reports


PROGRESS_LINES = 4
"""Progress lines per suite in a log (not a terminal): at 25%, 50%, 75% and 100%."""


def _progress(name: str, total: int) -> Callable[[int, int], None]:
    """A progress callback on stderr: on a terminal, one line updated in place; in a log
    (stderr not a terminal, or ``CI`` set), at most :data:`PROGRESS_LINES` lines a suite."""
    interactive = sys.stderr.isatty() and not os.environ.get("CI")
    printed = 0  # quarters reached so far

    def report(done: int, total: int = total) -> None:
        nonlocal printed
        if interactive:
            width = 30
            filled = int(width * done / total)
            bar = f"[{'#' * filled}{'.' * (width - filled)}]"
            sys.stderr.write(f"\r{name} {bar} {done}/{total} case runs")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
            return
        reached = done * PROGRESS_LINES // total
        if reached > printed:
            printed = reached
            typer.echo(f"{name}: {done}/{total} case runs ({done / total:.0%})", err=True)

    return report


def _dry_run(
    plans: list[Plan], cache: ResponseCache | None, scope: str, settings: Settings
) -> None:
    from llmops.evals import graders
    from llmops.evals.cache import cache_key
    from llmops.evals.runner import version_name
    from llmops.pricing.prices import PriceBook
    from llmops.pricing.usage import Usage, count_message_tokens

    book = PriceBook.from_file(settings.prices_file, remote_price_map=settings.remote_price_map)
    grand_calls = 0
    grand_cost = 0.0
    unpriced: set[str] = set()
    for suite_plan in plans:
        calls = cached = apps = 0
        cost = 0.0
        for job in suite_plan.jobs:
            target = job.run.target
            if target.prompt is None:  # an app target: its calls cannot be estimated
                apps += 1
                continue
            messages = suite_plan.messages[(target.prompt.version, str(job.case.id))]
            key = cache_key(target.model, messages, target.call_params, job.repeat, scope)
            if cache is not None and cache.contains(key):
                cached += 1
                continue
            calls += 1
            prompt_tokens = count_message_tokens(target.model, messages)
            completion = int(target.call_params.get("max_tokens") or 256)
            price = book.price(target.model, Usage(prompt_tokens, completion))
            if price.cost_usd is None:
                unpriced.add(target.model)
            else:
                cost += price.cost_usd
        judges = sum(
            1 if a.base_type == "llm-rubric" else graders.judge_calls(a)
            for job in suite_plan.jobs
            for a in suite_plan.suite.case_assertions(job.case)
        )
        several = suite_plan.suite.spec.prompts is not None
        targets = ", ".join(
            f"{t.role} {version_name(t, several_prompts=several)} on {t.model_label}"
            for t in suite_plan.targets
        )
        typer.echo(f"{suite_plan.suite.name}: {targets}")
        typer.echo(
            f"  {len(suite_plan.jobs)} case runs: {calls} model call(s), {cached} from the cache"
            + (f", up to {judges} judge call(s)" if judges else "")
            + (
                f", {apps} run(s) of the app target (their model calls not estimated)"
                if apps
                else ""
            )
            + f"; estimated cost at most ${cost:.4f}"
        )
        grand_calls += calls
        grand_cost += cost
    typer.echo(
        f"Total: {grand_calls} model call(s), estimated at most ${grand_cost:.4f} "
        "(input counted with tiktoken, output at each prompt's max_tokens or 256)."
    )
    if unpriced:
        typer.echo(f"Unpriced models (not in the estimate): {', '.join(sorted(unpriced))}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of suite files (for editors and linters)."""
    from llmops.evals.suite import suite_json_schema

    typer.echo(json.dumps(suite_json_schema(), indent=2))
