"""``llmops dashboard`` finds its app in the ``llmops.dashboard`` package (the repository's
``dashboard/`` folder, mapped at build time). From a wheel, with and without the
``[dashboard]`` extra, it is checked by ``.ci/check-wheel`` (a fresh venv, a served page)."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmops.cli.dashboard import app_path, streamlit_command
from tests.conftest import CliResult

REPO = Path(__file__).resolve().parents[2]


def test_the_app_is_the_llmops_dashboard_package() -> None:
    spec = importlib.util.find_spec("llmops.dashboard")
    assert spec is not None and spec.submodule_search_locations
    assert app_path() == REPO / "dashboard" / "app.py"  # this checkout, installed editable
    assert (app_path().parent / "icon.png").is_file()  # the favicon ships with it
    command = streamlit_command(8501)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == str(app_path())


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 that a listening socket holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _one_error_line(result: CliResult, expect: str) -> None:
    assert result.code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: ") and expect in result.stderr, result.stderr


def test_dashboard_refuses_a_busy_port_and_an_address_it_cannot_have(
    real_cli, tmp_path: Path, busy_port: int
) -> None:
    """Checked before Streamlit starts (a real process: the command becomes Streamlit): a
    port in use and an address of no interface (TEST-NET-1) are one line and exit 2, as
    for ``llmops serve``; nothing is made at the database URL."""
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    busy = real_cli("dashboard", "--port", str(busy_port), "--database-url", url, cwd=tmp_path)
    _one_error_line(busy, f"cannot listen on 127.0.0.1:{busy_port}")
    foreign = real_cli("dashboard", "--address", "192.0.2.1", "--port", str(busy_port),
                       "--database-url", url, cwd=tmp_path)  # fmt: skip
    _one_error_line(foreign, f"cannot listen on 192.0.2.1:{busy_port}")
    assert busy.stdout == foreign.stdout == "" and not (tmp_path / "llmops.db").exists()


@pytest.mark.integration  # before the check, the demo simulated in a child process
def test_demo_refuses_a_busy_dashboard_port_before_simulating(
    cli, tmp_path: Path, busy_port: int
) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {"LLMOPS_HOME": str(tmp_path / "home")}
    result = cli("demo", "--port", str(busy_port), "--no-evals", "--days", "1", "--calls", "10",
                 "--database-url", url, cwd=tmp_path, env=env)  # fmt: skip
    _one_error_line(result, f"cannot listen on 127.0.0.1:{busy_port}")
    assert "Simulating" not in result.stdout
    assert not (tmp_path / "demo.db").exists() and not (tmp_path / "home" / "demo").exists()


def test_demo_without_the_dashboards_packages_says_so_before_simulating(
    cli, tmp_path: Path, monkeypatch
) -> None:
    """Without streamlit (a plain `pip install llmops`), the demo simulated a minute, then
    failed to serve the dashboard."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "streamlit" else real(name, *a),
    )
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    result = cli("demo", "--no-evals", "--days", "1", "--calls", "10", "--database-url", url,
                 cwd=tmp_path, env={"LLMOPS_HOME": str(tmp_path / "home")})  # fmt: skip
    _one_error_line(result, "the dashboard needs streamlit")
    assert "Simulating" not in result.stdout and not (tmp_path / "demo.db").exists()
