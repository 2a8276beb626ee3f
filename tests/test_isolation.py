"""What tests/conftest.py guarantees every test: no ``LLMOPS_*`` setting leaks in from the
developer's shell, and the in-process ``cli`` fixture leaves nothing behind."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PromptRepo

# Some variables the settings read, and one that does not exist yet: every name counts.
EXPORTED = {
    "LLMOPS_CONFIG": "/nonexistent/llmops.yaml",
    "LLMOPS_DAILY_BUDGET": "0.01",
    "LLMOPS_MONTHLY_BUDGET": "0.02",
    "LLMOPS_DASHBOARD_PASSWORD": "hunter2",
    "LLMOPS_SOME_FUTURE_SETTING": "1",
}


@pytest.fixture(scope="module")
def exported() -> Iterator[dict[str, str]]:
    """The variables set in ``os.environ`` as a developer's shell would: module scope, so
    before the function-scoped autouse ``_isolated_env`` runs."""
    saved = {key: os.environ.get(key) for key in EXPORTED}
    os.environ.update(EXPORTED)
    yield EXPORTED
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_no_llmops_variable_reaches_a_test(exported: dict[str, str]) -> None:
    assert [key for key in os.environ if key.startswith("LLMOPS_")] == []


# -- the in-process CLI --------------------------------------------------------------------


def test_the_in_process_cli_restores_the_folder_and_environment(cli, tmp_path: Path) -> None:
    before = os.getcwd()
    result = cli("--version", cwd=tmp_path, env={"LLMOPS_HOME": str(tmp_path / "home")})
    assert result.code == 0 and result.stdout.startswith("llmops ") and result.stderr == ""
    assert result.exception is None
    assert os.getcwd() == before
    assert "LLMOPS_HOME" not in os.environ


def test_the_in_process_cli_shows_what_escapes_main(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A logged warning reaches stderr (as Python's last-resort handler prints it in a real
    process); an exception that escapes ``main`` (LLMOPS_DEBUG=1) is kept, with its
    traceback on stderr and exit code 1, as a real process would die."""
    import llmops.cli.prompts as prompts_cli

    def broken(*args: object, **kwargs: object) -> None:
        logging.getLogger("llmops.test").warning("about to break")
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(prompts_cli, "_registry", broken)
    debug = cli("prompts", "list", cwd=tmp_path, env={"LLMOPS_DEBUG": "1"})
    assert debug.code == 1 and isinstance(debug.exception, ZeroDivisionError)
    assert "about to break" in debug.stderr and "Traceback" in debug.stderr
    handled = cli("prompts", "list", cwd=tmp_path)
    assert handled.code == 1 and handled.exception is None
    assert handled.stderr.splitlines() == [
        "about to break",
        "error: internal error: ZeroDivisionError: a bug (a bug in llmops: please report it;"
        " LLMOPS_DEBUG=1 shows the traceback)",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ("prompts", "list"),
        ("prompts", "render", "greet", "--var", "name=Ann"),
        ("prompts", "show", "gret"),  # exit 2, one line on stderr
        ("prompts", "nonsense"),  # a usage error click finds
        ("spend", "--days", "0"),
        ("--help",),
    ],
)
def test_the_in_process_cli_matches_a_real_process(
    project: PromptRepo, cli, real_cli, args: tuple[str, ...]
) -> None:
    assert cli(*args, cwd=project.root) == real_cli(*args, cwd=project.root)
