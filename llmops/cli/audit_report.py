"""``llmops audit report``: the evidence report on one prompt (EU AI Act record-keeping,
quality management and post-market monitoring), as Markdown, HTML or JSON."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import typer

from llmops.cli._options import DatabaseOption, check_prompts_dir, database_url, parse_when

_DAY_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")


class ReportFormat(StrEnum):
    md = "md"
    html = "html"
    json = "json"


def report(
    prompt: str = typer.Argument(
        ..., metavar="PROMPT[@REF]", help="A prompt, or one version of it (label, version, commit)."
    ),
    since: str | None = typer.Option(
        None,
        "--from",
        help="Start: 2026-06-01, an ISO time or a span back (30d) [default: 183 days ago].",
        show_default=False,
    ),
    until: str | None = typer.Option(
        None,
        "--to",
        help="End: a date (that whole day included), an ISO time or a span [default: now].",
        show_default=False,
    ),
    fmt: ReportFormat = typer.Option(ReportFormat.md, "--format", help="md, html or json."),
    out: Path | None = typer.Option(
        None, "--out", help="Write to this file (owner-only, 0600) instead of stdout."
    ),
    prompts_dir: Path | None = typer.Option(None, "--prompts-dir", help="The prompt folder."),
    url: str | None = DatabaseOption,
) -> None:
    """Write the evidence report on a prompt: versions, label history, texts and diffs,
    eval evidence, operation, integrity, and the AI Act articles they serve."""
    from llmops.audit.render import render
    from llmops.audit.report import DEFAULT_DAYS, build_report, check_prompt
    from llmops.config import Settings
    from llmops.errors import ConfigError
    from llmops.files import check_output_file, write_private
    from llmops.prompts import PromptRegistry
    from llmops.store.engine import check_schema, create_engine, display_url

    now = datetime.now(UTC)
    start = parse_when(since, "--from") if since else now - timedelta(days=DEFAULT_DAYS)
    end = _end(until, now)
    if end <= start:
        raise ConfigError(f"--to {until or 'now'} is not after --from {since}")
    if out is not None:
        check_output_file(out, what="report")
    target = database_url(url)  # the URL's own checks, before the prompt's (git) ones
    settings = Settings.from_env()
    registry = PromptRegistry(check_prompts_dir(prompts_dir or settings.prompts_dir))
    check_prompt(registry, prompt)
    _refuse_missing_sqlite(target)
    engine = create_engine(target)
    try:
        check_schema(engine, create=False)
        built = build_report(
            engine,
            registry,
            prompt,
            start,
            end,
            database=display_url(target),
            retention_settings=settings.retention,
            now=now,
        )
    finally:
        engine.dispose()
    text = render(built, fmt.value)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_private(out, text, what="report")
    typer.echo(f"Report on {prompt} written to {out} ({fmt.value}).", err=True)


def _end(until: str | None, now: datetime) -> datetime:
    """``--to``: a bare date means the end of that day; anything else the moment named."""
    if until is None:
        return now
    end = parse_when(until, "--to")
    if _DAY_ONLY.fullmatch(until.strip()):
        end += timedelta(days=1)
    return end


def _refuse_missing_sqlite(url: str) -> None:
    """A report reads a database: a SQLite file that is not there is a mistake (a typo in
    the path), not a database to create."""
    from llmops.errors import ConfigError
    from llmops.store.engine import display_url, normalize_url, sqlite_file

    parsed = normalize_url(url)
    path = sqlite_file(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is None:
        return
    if not path.exists():
        raise ConfigError(f"no database at {display_url(url)}: nothing to report on")
