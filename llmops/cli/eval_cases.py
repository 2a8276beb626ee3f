"""``llmops eval cases from-calls``: recorded production calls as eval cases (JSONL)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from llmops.cli import _recorded as recorded
from llmops.cli._options import DatabaseOption
from llmops.cli._recorded import plural
from llmops.errors import ConfigError, ConfigFileError
from llmops.files import MAX_FILE_BYTES, check_directory, check_output_file, describe_size

app = typer.Typer(help="Eval cases from recorded calls.", no_args_is_help=True)


@app.command("from-calls")
def from_calls(
    prompt: str = typer.Option(..., "--prompt", help="The prompt whose calls become cases."),
    feedback: list[str] = typer.Option(
        [],
        "--feedback",
        help="Only calls with such feedback: NAME<SCORE, NAME<=SCORE, NAME>SCORE, NAME>=SCORE "
        "or NAME=SCORE (repeatable: all of them).",
    ),
    since: str = typer.Option("30d", "--since", help=recorded.SinceHelp),
    until: str | None = typer.Option(None, "--until", help=recorded.UntilHelp),
    tag: list[str] = recorded.TagOption,
    status: list[str] = typer.Option(
        [], "--status", help="Only calls with this status: ok, error, cancelled, blocked."
    ),
    model: list[str] = recorded.ModelOption,
    min_cost: float | None = recorded.MinCostOption,
    version: list[str] = recorded.VersionOption,
    sample_size: str | None = typer.Option(
        None, "--sample", help="A random sample: N calls, or a share (10%) [default: all]."
    ),
    seed: int = recorded.SeedOption,
    include_eval: bool = recorded.IncludeEvalOption,
    reference: str = typer.Option(
        "none",
        "--assert",
        help="An assertion on the production answer in each case: none (a reviewer adds "
        "them), equals, rouge-n or llm-rubric.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="The JSONL cases file; '-' for stdout [default: evals/cases/PROMPT.jsonl].",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite the file if it exists."),
    url: str | None = DatabaseOption,
) -> None:
    """Turn recorded calls of a prompt into eval cases: their stored variables, the
    production answer as metadata.reference, the call and its feedback as metadata."""
    from llmops.evals.from_calls import REFERENCE_ASSERTIONS, export_cases, parse_feedback_condition
    from llmops.evals.sampling import parse_sample

    if reference not in REFERENCE_ASSERTIONS:
        raise ConfigError(
            f"--assert {reference!r}: expected one of {', '.join(REFERENCE_ASSERTIONS)}"
        )
    conditions = tuple(parse_feedback_condition(text) for text in feedback)
    size = parse_sample(sample_size) if sample_size is not None else None
    selected = recorded.selection(
        prompt=prompt, since=since, until=until, models=model, versions=version, tags=tag,
        statuses=status, min_cost=min_cost, feedback=conditions, include_eval=include_eval,
    )  # fmt: skip
    to_stdout = out is not None and str(out) == "-"
    target = out or Path("evals") / "cases" / f"{prompt.replace('/', '-')}.jsonl"
    if not to_stdout:
        if target.suffix != ".jsonl":
            raise ConfigFileError("--out: a cases file must end in .jsonl", file=target)
        if target.exists() and not target.is_dir() and not force:
            raise ConfigFileError("exists already: give --force to overwrite it", file=target)
    made = [] if to_stdout else [p for p in (target.parent, *target.parent.parents)
                                 if not p.exists()]  # fmt: skip
    if not to_stdout:
        check_directory(target.parent, what="folder of the cases file", create=True)
        check_output_file(target, what="cases file")
    try:
        engine = recorded.engine(url)
    except Exception:  # a database that is not there: the folders made for it go too
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    export = export_cases(engine, selected, size=size, seed=seed, reference_assert=reference)
    text = "".join(f"{line}\n" for line in export.lines)
    if len(text.encode()) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{export.cases} cases would take {len(text.encode()) / 2**20:.1f} MB, more than the "
            f"{describe_size(MAX_FILE_BYTES)} a cases file may hold: use --sample"
        )
    if export.without_variables:
        calls = plural(export.without_variables, "call has", "calls have")
        typer.echo(
            f"{calls} no stored variables (content mode none or raw messages): skipped", err=True
        )
    if export.redacted:
        cases = plural(export.redacted, "case holds", "cases hold")
        typer.echo(
            f"{cases} redacted text ([EMAIL], [REDACTED], ...): it stays redacted; review the "
            "cases before you commit them",
            err=True,
        )
    matched = plural(export.matched, "matching call", "matching calls")
    where = f"{matched} of {prompt} ({recorded.span(selected)})"
    if not export.lines:
        typer.echo(f"No case from {where}: nothing written.", err=True)
        return
    if to_stdout:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from llmops.files import write_private

        write_private(target, text, what="cases file")
    skipped = []
    if export.duplicates:
        skipped.append(f"{export.duplicates} with the same variables as a newer call")
    if export.without_variables:
        skipped.append(f"{export.without_variables} without stored variables")
    cases = plural(export.cases, "case", "cases")
    typer.echo(
        f"Wrote {cases} to {'stdout' if to_stdout else target} from {where}"
        + (f"; skipped {', '.join(skipped)}" if skipped else "")
        + (f"; a sample of {size} (seed {seed})" if size is not None else "")
        + ".",
        err=to_stdout,
    )
    if export.without_reference:
        cases = plural(export.without_reference, "case has", "cases have")
        typer.echo(
            f"{cases} no production answer (failed calls): no reference, no assertion.",
            err=to_stdout,
        )
    if not to_stdout:
        typer.echo(
            "Next: point a suite's `cases_file:` at it (a path from the suite's folder), "
            "review the cases and add assertions."
        )
