"""The ``llmops`` command line.

Heavy modules (litellm) are imported only inside commands that call a model.
"""

from __future__ import annotations

import typer

from llmops import __version__
from llmops.cli import costs, dashboard, db, demo, evals, prompts, usage
from llmops.errors import LLMOpsError

app = typer.Typer(
    name="llmops",
    help="Git-native prompts, recorded model calls, CI evals and a spend dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(prompts.app, name="prompts")
app.add_typer(db.app, name="db")
app.add_typer(costs.app, name="costs")
app.add_typer(evals.app, name="eval")
app.command("spend")(usage.spend)
app.command("calls")(usage.calls)
app.command("feedback")(usage.feedback)
app.command("dashboard")(dashboard.dashboard)
app.command("demo")(demo.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Git-native prompts, recorded model calls, CI evals and a spend dashboard."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; an LLMOpsError prints one clear line (no traceback) and sets the exit code."""
    try:
        app(args=argv, prog_name="llmops")
    except LLMOpsError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        return exc.exit_code
    except Exception as exc:
        if not type(exc).__module__.startswith("sqlalchemy"):
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        typer.secho(f"error: database: {reason}", err=True, fg=typer.colors.RED)
        return 1
    except SystemExit as exc:  # click's standalone mode ends every run this way
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0
