"""``--help`` of every command reads right: bracketed text kept, flags without a value
placeholder, arguments named in the usage line; `calls --status` names the valid statuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from llmops.cli import app
from llmops.store.tables import CALL_STATUSES

BRACKETED = re.compile(r"\[[^\[\]]+\]")


def _commands() -> list[tuple[tuple[str, ...], typer.core.TyperCommand]]:
    """Every command and group of the app, with its path (the root is ``()``)."""
    found = []

    def walk(command, path: tuple[str, ...]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()
IDS = [" ".join(path) or "llmops" for path, _ in COMMANDS]


def _options(help_text: str) -> list[str]:
    """The lines of the Options section of a help text."""
    return help_text.split("\nOptions:\n", 1)[1].split("\n\n", 1)[0].splitlines()


def _flat(text: str) -> str:
    """Help text as one line: wrapping (also after a hyphen) undone."""
    return " ".join(re.sub(r"-\n\s+", "-", text).split())


def test_the_walk_finds_every_command() -> None:
    paths = {path for path, _ in COMMANDS}
    assert {("eval", "run"), ("prompts", "diff"), ("db", "status"), ("calls",)} <= paths
    assert len(paths) >= 30


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_exits_0_and_keeps_bracketed_text(path, command, cli, tmp_path: Path) -> None:
    result = cli(*path, "--help", cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"Usage: {' '.join(('llmops', *path))} ")
    shown = _flat(result.stdout)
    texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
    expected = [m.group(0) for text in texts for m in BRACKETED.finditer(_flat(text))]
    for bracketed in expected:
        assert bracketed in shown, f"{bracketed!r} missing from `{' '.join(path)} --help`"
    assert "<bool>" not in result.stdout
    assert "{" not in result.stdout.splitlines()[0]  # no {name}-style arguments in the usage


def test_the_reported_help_lines_read_whole(cli, tmp_path: Path) -> None:
    shown = _flat(cli("eval", "run", "--help", cwd=tmp_path).stdout)
    assert "Candidate prompt reference [default: the working tree]." in shown
    assert "Baseline reference [default: production]; 'none' for none." in shown
    assert "[env LLMOPS_OFFLINE=1]" in shown
    assert "SQLAlchemy URL [default: $LLMOPS_DATABASE_URL or sqlite:///.llmops/llmops.db]" in shown


@pytest.mark.parametrize(
    ("path", "flag", "text"),
    [
        (("eval", "run"), "--dry-run", "Print the calls and an estimated cost"),
        (("eval", "run"), "--fail-on-regression", "Exit 1 on a significant regression."),
        (("costs", "recompute"), "--allow-unpriced", "Let calls the new prices"),
        (("alerts", "list"), "--all", "Also the alerts that have resolved."),
        (("keys", "list"), "--json", "Print JSON instead of a table."),
        ((), "--version", "Print the version and exit."),
    ],
)
def test_a_flag_reads_without_a_value(path, flag, text, cli, tmp_path: Path) -> None:
    lines = _options(cli(*path, "--help", cwd=tmp_path).stdout)
    (line,) = [line for line in lines if line.strip().startswith(flag + " ")]
    assert re.fullmatch(rf"\s+{re.escape(flag)}\s{{2,}}{re.escape(text)}.*", line), line


def test_every_boolean_flag_is_shown_without_a_value(cli, tmp_path: Path) -> None:
    flags = 0
    for path, command in COMMANDS:
        lines = _options(cli(*path, "--help", cwd=tmp_path).stdout)
        for param in command.params:
            if not getattr(param, "is_flag", False) or getattr(param, "hidden", False):
                continue
            for name in (*param.opts, *param.secondary_opts):
                if not name.startswith("--"):
                    continue
                flags += 1
                (line,) = [x for x in lines if re.search(rf"(^|[ ,/])\s*{re.escape(name)}\b", x)]
                after = line.split(name, 1)[1]
                assert not re.match(r" <?[a-z]", after), f"{' '.join(path)}: {line!r}"
    assert flags >= 20


def test_prompts_diff_names_its_arguments(cli, tmp_path: Path) -> None:
    help_text = cli("prompts", "diff", "--help", cwd=tmp_path).stdout
    assert help_text.splitlines()[0] == (
        "Usage: llmops prompts diff [OPTIONS] NAME VERSION_A [VERSION_B]"
    )
    shown = _flat(help_text)
    assert "NAME <str> The prompt name" in shown
    assert "VERSION_A <str> The old version: a label (production), a version id or a commit" in (
        shown
    )
    assert "VERSION_B <str> The new version, the same way [default: the working tree]" in shown
    none = cli("prompts", "diff", cwd=tmp_path)
    assert none.code == 2
    assert none.stderr == ("error: Missing argument 'NAME' (see 'llmops prompts diff --help')\n")
    one = cli("prompts", "diff", "greet", cwd=tmp_path)
    assert one.code == 2
    assert one.stderr.startswith("error: Missing argument 'VERSION_A'")


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (("feedback",), "Usage: llmops feedback [OPTIONS] CALL_ID SCORE"),
        (("prompts", "promote"), "Usage: llmops prompts promote [OPTIONS] NAME VERSION"),
        (("prompts", "show"), "Usage: llmops prompts show [OPTIONS] REF"),
        (("keys", "revoke"), "Usage: llmops keys revoke [OPTIONS] NAME"),
        (("eval", "run"), "Usage: llmops eval run [OPTIONS] [PATH...]"),
    ],
)
def test_usage_lines_name_arguments_in_capitals(args, usage, cli, tmp_path: Path) -> None:
    assert cli(*args, "--help", cwd=tmp_path).stdout.splitlines()[0] == usage


def test_the_root_help_lists_each_command_with_its_whole_first_sentence(cli, tmp_path) -> None:
    shown = _flat(cli("--help", cwd=tmp_path).stdout)
    assert (
        "budgets Budgets (budgets.limits in llmops.yaml): spend in the current window, the "
        "share of the limit, and the spend projected to the window's end at the current rate."
    ) in shown
    assert "..." not in shown.split("Commands:")[1]  # no first sentence cut short


def test_calls_status_names_the_valid_statuses(cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    result = cli("calls", "--status", "failed", "--database-url", url, cwd=tmp_path)
    assert result.code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: --status 'failed': expected one of {', '.join(CALL_STATUSES)}\n"
    )
    assert not (tmp_path / "calls.db").exists() or (tmp_path / "calls.db").stat().st_size == 0
    shown = _flat(cli("calls", "--help", cwd=tmp_path).stdout)
    assert all(status in shown.split("--status")[1].split("--source")[0]
               for status in CALL_STATUSES)  # fmt: skip
