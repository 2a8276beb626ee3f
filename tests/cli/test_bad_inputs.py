"""Every bad input in ``bad_inputs.py`` is one ``error:`` line on stderr and exit code 2.

The corpus runs in-process (``llmops.cli.main(argv)``), which takes milliseconds per entry;
a handful also run in a real process. Nothing may start a server or another process: a bad
input must be refused before that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmops.cli import main
from tests.cli.bad_inputs import BASE_ENV, BASE_FILES, CASES, SUBPROCESS, Bad, Content, Dir, Huge

BOX_DRAWING = set("╭╮╰╯│─┌┐└┘")
CLEARED = (
    "LLMOPS_CONFIG",
    "LLMOPS_PRICES",
    "LLMOPS_OFFLINE",
    "LLMOPS_DAILY_BUDGET",
    "LLMOPS_MONTHLY_BUDGET",
    "LLMOPS_DASHBOARD_PASSWORD",
    "LLMOPS_DEBUG",
    "OPENAI_API_KEY",
)
BY_ID = {case.id: case for case in CASES}


def _fill(text: str, root: Path) -> str:
    return text.replace("{tmp}", str(root))


def _write(path: Path, content: Content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is Dir:
        path.mkdir(exist_ok=True)
    elif isinstance(content, Huge):
        with path.open("wb") as handle:
            handle.truncate(content.size)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        assert isinstance(content, str)
        path.write_text(content, encoding="utf-8")


def _project(case: Bad, root: Path) -> tuple[list[str], dict[str, str]]:
    root.mkdir()
    for name, content in {**BASE_FILES, **case.files}.items():
        _write(root / name, _fill(content, root) if isinstance(content, str) else content)
    env = {key: _fill(value, root) for key, value in {**BASE_ENV, **case.env}.items()}
    return [_fill(arg, root) for arg in case.args], env


def _check(case: Bad, code: int, stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith("error: "), stderr
    assert not BOX_DRAWING & set(stderr), stderr
    assert "internal error" not in stderr, stderr
    assert code == 2, f"exit code {code}: {stderr}"
    assert case.expect.lower() in stderr.lower(), f"{case.expect!r} not in {stderr!r}"


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad input must be refused before the dashboard or the simulated model starts."""
    from llmops.testing import FakeLLMServer

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"a bad input got as far as starting a server: {args[:1]}")

    popen = subprocess.Popen

    def no_streamlit(command, *args, **kwargs):  # type: ignore[no-untyped-def]
        if any("streamlit" in str(part) for part in command):
            refuse(command)
        return popen(command, *args, **kwargs)

    monkeypatch.setattr(os, "execve", refuse)
    monkeypatch.setattr(subprocess, "Popen", no_streamlit)
    monkeypatch.setattr(FakeLLMServer, "__enter__", refuse)


def test_the_corpus_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 140
    assert len(BY_ID) == len(CASES)
    assert set(SUBPROCESS) <= set(BY_ID)


@pytest.mark.usefixtures("no_servers")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_error_line_and_exit_2(
    case: Bad, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "project"
    args, env = _project(case, root)
    for key in CLEARED:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    started = time.monotonic()
    code = main(args)
    elapsed = time.monotonic() - started
    _, stderr = capsys.readouterr()
    _check(case, code, stderr)
    assert elapsed < 10, f"took {elapsed:.1f} s"


@pytest.mark.integration  # `python -m llmops` in a real process
@pytest.mark.parametrize("name", SUBPROCESS)
def test_the_real_entry_point_behaves_the_same(name: str, tmp_path: Path) -> None:
    case = BY_ID[name]
    root = tmp_path / "project"
    args, env = _project(case, root)
    clean = {k: v for k, v in os.environ.items() if k not in CLEARED}
    result = subprocess.run(
        [sys.executable, "-m", "llmops", *args],
        cwd=root,
        env={**clean, **env, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    _check(case, result.returncode, result.stderr)


def test_a_bad_report_path_fails_before_any_model_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """``--json /nonexistent/x.json`` used to fail only after the whole suite had run."""
    case = BY_ID["eval-json-nonexistent-folder"]
    root = tmp_path / "project"
    args, env = _project(case, root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    from llmops.testing import FakeLLMServer

    def no_server(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the simulated model was started")

    monkeypatch.setattr(FakeLLMServer, "__enter__", no_server)
    started = time.monotonic()
    assert main(args) == 2
    assert time.monotonic() - started < 5
    assert "--json report" in capsys.readouterr().err
    assert not (root / "db").exists()  # no eval run stored, no database even created


def test_help_and_version_still_exit_0(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("llmops ")
    for args in (["--help"], ["-h"], ["eval", "run", "--help"], ["spend", "--help"]):
        assert main(args) == 0, args
        captured = capsys.readouterr()
        assert "Usage" in captured.out and not captured.err


def test_no_arguments_prints_the_help(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "Usage" in captured.out and "prompts" in captured.out


def test_an_unreachable_server_is_exit_1_not_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A server that does not answer may answer later: exit 1, still one line."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    code = main(["db", "status", "--database-url", "postgresql://nobody@127.0.0.1:1/none"])
    stderr = capsys.readouterr().err
    assert code == 1 and stderr.startswith("error: database:") and len(stderr.splitlines()) == 1


def test_an_internal_error_says_so_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    import llmops.cli.prompts as prompts_cli

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("a bug")

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMOPS_DEBUG", raising=False)
    monkeypatch.setattr(prompts_cli, "_registry", broken)
    assert main(["prompts", "list"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: internal error: ZeroDivisionError: a bug")
    assert len(stderr.splitlines()) == 1 and "report" in stderr
    monkeypatch.setenv("LLMOPS_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["prompts", "list"])


def test_error_lines_are_one_printable_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """A file name with a line break or a terminal escape cannot forge more output."""
    monkeypatch.chdir(tmp_path)
    name = "evil\n\x1b[31mline.yaml"
    (tmp_path / name).write_bytes(BINARY_SAMPLE)
    assert main(["eval", "run", name, "--dry-run"]) == 2
    stderr = capsys.readouterr().err
    assert len(stderr.splitlines()) == 1 and "\x1b" not in stderr and "\\x1b" in stderr


BINARY_SAMPLE = b"\x00\x01\x02binary"
