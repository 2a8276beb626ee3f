"""The ``llmops`` command line.

Heavy modules (litellm) are imported only inside commands that call a model.
"""

from __future__ import annotations

import os
import sys

import typer

try:  # typer >= 0.20 vendors click as typer._click; older versions use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from llmops import __version__
from llmops.cli import (
    alerts,
    audit,
    budgets,
    config,
    costs,
    dashboard,
    db,
    demo,
    evals,
    keys,
    metrics,
    prompts,
    score,
    serve,
    usage,
)
from llmops.cli._help import Group, use_plain_usage
from llmops.cli._output import one_line
from llmops.errors import LLMOpsError

app = typer.Typer(
    name="llmops",
    cls=Group,
    help="Git-native prompts, recorded model calls, CI evals and a spend dashboard.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: Rich markup ate "[default: ...]" (see cli/_help.py)
    # help wraps at 80 columns whatever the terminal says: the same text in every shell,
    # pipe and CI log
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 80},
)
app.add_typer(prompts.app, name="prompts")
app.add_typer(db.app, name="db")
app.add_typer(costs.app, name="costs")
app.add_typer(evals.app, name="eval")
app.add_typer(alerts.app, name="alerts")
app.add_typer(config.app, name="config")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.command("spend")(usage.spend)
app.command("budgets")(budgets.budgets)
app.command("calls")(usage.calls)
app.command("feedback")(usage.feedback)
app.command("dashboard")(dashboard.dashboard)
app.command("demo")(demo.demo)
app.command("metrics")(metrics.metrics)
app.command("serve")(serve.serve)
app.command("score")(score.score)
use_plain_usage(app)


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
    """Run the CLI and return its exit code.

    Every error a user can cause prints one line, ``error: ...``, without a traceback:
    an :class:`~llmops.errors.LLMOpsError` exits with its ``exit_code`` (2 for usage and
    configuration errors), a usage error click finds (an unknown option or command, a
    missing argument, a value out of range) exits 2, a database that cannot be reached
    exits 1. Anything else is a bug: it prints ``error: internal error: ...`` and exits 1
    (``LLMOPS_DEBUG=1`` shows the traceback instead).
    """
    try:
        result = app(args=argv, prog_name="llmops", standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as exc:
        # `llmops` or `llmops prompts` alone: the help, as before (exit 2)
        help_text = exc.ctx.get_help()
        if help_text:
            typer.echo(help_text)
        return 2
    except click_exceptions.UsageError as exc:
        hint = ""
        if exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        message = exc.format_message().replace("Value error, ", "")
        _error(f"{message.rstrip('.') if hint else message}{hint}")
        return 2
    except click_exceptions.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except typer.Abort:
        _error("aborted")
        return 1
    except LLMOpsError as exc:
        _error(str(exc))
        return exc.exit_code
    except BrokenPipeError:  # `llmops calls | head -1`: the reader left; not an error
        _silence_stdout()
        return 1
    except SystemExit as exc:  # `llmops demo` ends with the dashboard's exit status
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:
        if os.environ.get("LLMOPS_DEBUG"):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {exc} "
            "(a bug in llmops: please report it; LLMOPS_DEBUG=1 shows the traceback)"
        )
        return 1
    if isinstance(result, int) and not isinstance(result, bool):
        return result  # an Exit raised by a command, or --help / --version (0)
    return 0


def _error(message: str) -> None:
    typer.secho(f"error: {one_line(message)}", err=True, fg=typer.colors.RED)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
