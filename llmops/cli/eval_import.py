"""``llmops eval import promptfoo``: suites and prompt files from a promptfoo config."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from llmops.cli._output import one_line
from llmops.config import Settings

import_app = typer.Typer(
    help="Import suites and prompts from other eval tools (promptfoo).", no_args_is_help=True
)


@import_app.command("promptfoo")
def promptfoo(
    config: Path = typer.Argument(..., metavar="CONFIG", help="promptfooconfig.yaml"),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="The suite file [default: evals/NAME.yaml, NAME from the config's description].",
    ),
    prompts_dir: Path | None = typer.Option(
        None, "--prompts-dir", help="Where prompt files go [default: prompts]."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the files that would be written; write nothing."
    ),
) -> None:
    """Write llmops suites and prompt files from a promptfoo config. Everything llmops
    cannot express is listed on stderr (and at the top of the suite), never dropped
    silently; exit 2 on bad input."""
    from llmops.evals.importers.promptfoo import import_config, write_files

    folder = prompts_dir or Settings.from_env().prompts_dir
    result = import_config(config, out=out, prompts_dir=folder)
    for notice in result.notices:
        typer.echo(f"not imported: {one_line(notice)}", err=True)
    for note in result.notes:
        typer.echo(f"note: {one_line(note)}", err=True)
    if dry_run:
        for path, text in result.files.items():
            typer.echo(f"--- {path} (not written)")
            typer.echo(text)
    else:
        write_files(result, force=force)
        for path in result.files:
            typer.echo(f"wrote {path}")
    typer.echo(f"Imported {result.summary()}.")
    if not dry_run:
        suites = " ".join(shlex.quote(str(p)) for p in result.suite_files)
        where = f" --prompts-dir {shlex.quote(str(folder))}" if prompts_dir is not None else ""
        typer.echo(f"Next: llmops eval run {suites}{where} --dry-run")
