"""``llmops score``: grade recorded production calls with eval assertions, stored as
feedback."""

from __future__ import annotations

from pathlib import Path

import typer

from llmops.cli import _recorded as recorded
from llmops.cli._options import DatabaseOption, check_prompts_dir, database_url
from llmops.cli._output import table
from llmops.config import Settings
from llmops.money import usd


def score(
    prompt: str = typer.Option(..., "--prompt", help="The prompt whose calls are scored."),
    assertions_file: Path = typer.Option(
        ...,
        "--assert",
        help="Assertions file: a YAML list of assertions (the suite format), or {assert: [...]}.",
    ),
    sample_size: str | None = typer.Option(
        None,
        "--sample",
        help="A random sample of the calls not scored yet: N calls, or a share (5%) "
        "[default: all].",
    ),
    since: str = typer.Option("1d", "--since", help=recorded.SinceHelp),
    until: str | None = typer.Option(None, "--until", help=recorded.UntilHelp),
    model: list[str] = recorded.ModelOption,
    version: list[str] = recorded.VersionOption,
    tag: list[str] = recorded.TagOption,
    include_eval: bool = recorded.IncludeEvalOption,
    seed: int = recorded.SeedOption,
    name_prefix: str = typer.Option(
        "score:", "--name-prefix", help="Feedback names: PREFIX + the assertion's metric or type."
    ),
    judge: str | None = typer.Option(
        None,
        "--judge",
        help="Judge model for llm-rubric [default: the file's judge, else the call's model].",
    ),
    concurrency: int = typer.Option(8, "--concurrency", min=1, max=256),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be scored; call no judge, store nothing."
    ),
    prompts_dir: Path | None = typer.Option(None, "--prompts-dir", help="The prompt folder."),
    url: str | None = DatabaseOption,
) -> None:
    """Run assertions on a sample of a prompt's recorded calls (their stored answers) and
    store each result as feedback (score:METRIC, a score in [0, 1], the reason as comment).
    Calls already scored are skipped. Exit 3 when some results errored."""
    from llmops.errors import ConfigError
    from llmops.evals.online import load_assertions, score_calls
    from llmops.evals.sampling import parse_sample

    if not 0 < len(name_prefix) < 90:
        raise ConfigError("--name-prefix: expected 1 to 89 characters")
    size = parse_sample(sample_size) if sample_size is not None else None
    selected = recorded.selection(
        prompt=prompt, since=since, until=until, models=model, versions=version, tags=tag,
        statuses=["ok"], include_eval=include_eval,
    )  # fmt: skip
    assertions = load_assertions(assertions_file, name_prefix)
    engine = recorded.engine(url)
    if dry_run:
        run = score_calls(engine, selected, assertions, size=size, seed=seed)
    else:
        from llmops.evals.grading import Grader
        from llmops.gateway import Gateway
        from llmops.prompts import PromptRegistry

        settings = Settings.from_env()
        registry = PromptRegistry(check_prompts_dir(prompts_dir or settings.prompts_dir))
        gateway = Gateway(database_url=database_url(url), prompts=registry, source="eval")
        try:
            grader = Grader(gateway, judge_tags=("score", "judge"))

            def store(call_id: str, value: float, name: str, comment: str) -> None:
                gateway.feedback(call_id, value, name=name, comment=comment, user="llmops score")

            run = score_calls(
                engine, selected, assertions, size=size, seed=seed, grader=grader,
                feedback=store, judge=judge, concurrency=concurrency,
            )  # fmt: skip
        finally:
            gateway.close()
    sampled = f"a sample of {size} (seed {seed}), " if size is not None else ""
    typer.echo(
        f"{prompt}: {recorded.plural(run.matched, 'ok call', 'ok calls')} "
        f"{recorded.span(selected)}; {run.fully_scored} scored already; {sampled}"
        f"{run.sampled} to score"
        + (
            f"; {run.without_content} without a stored answer: skipped"
            if run.without_content
            else ""
        )
        + ("." if not dry_run else " (dry run: nothing graded or stored).")
    )
    if dry_run:
        judged = sum(run.tallies[a.name].to_score for a in assertions.assertions if a.judged)
        table(
            ["FEEDBACK", "TO SCORE", "SCORED ALREADY"],
            [[t.name, t.to_score, t.already] for t in run.tallies.values()],
            right={1, 2},
        )
        if judged:
            typer.echo(f"{judged} judge call(s) at most.")
        return
    table(
        ["FEEDBACK", "SCORED", "PASSED", "MEAN", "ERRORS", "SKIPPED", "JUDGE COST"],
        [
            [
                t.name,
                t.scored,
                t.passed,
                "" if t.mean is None else f"{t.mean:.3f}",
                t.errors,
                t.already,
                usd(t.judge_cost),
            ]
            for t in run.tallies.values()
        ],
        right={1, 2, 3, 4, 5, 6},
    )
    for tally in run.tallies.values():
        if tally.first_error:
            typer.echo(
                f"{tally.name}: {tally.errors} result(s) errored (not stored), e.g. "
                f"{tally.first_error[:300]}",
                err=True,
            )
    if run.errors:
        raise typer.Exit(3)
