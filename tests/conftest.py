"""Shared fixtures: throwaway git repositories of prompt files, the CLI (in this process or
in a real one), the test databases and the local model server."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llmops.files import private_dir
from llmops.prompts import PromptRegistry

if TYPE_CHECKING:
    from tests.fixtures.postgres import PostgresServer

pytest_plugins = ["tests.fixtures.postgres"]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

# `make test-fast` runs the tests not marked `integration`. A test is marked here when it
# needs a PostgreSQL server (`postgres_url`, `postgres_server`, `database_url[postgres]`),
# the CLI in a real process (`real_cli`), a Streamlit app (`dashboard_env`: every AppTest
# run needs it) or a browser (tests/browser). A test that starts a process in its own body
# (subprocess, os.fork) carries `@pytest.mark.integration` (or its module a `pytestmark`).
# Quick `git` commands (the `repo` fixture) do not count.
INTEGRATION_FIXTURES = frozenset(
    {
        "postgres_server",
        "postgres_standby",
        "postgres_url",
        "postgres_head_url",
        "real_cli",
        "dashboard_env",
    }
)
INTEGRATION_FOLDERS = frozenset({"browser"})


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        callspec = getattr(item, "callspec", None)
        folder = item.path.relative_to(here).parts[0] if item.path.is_relative_to(here) else ""
        if (
            INTEGRATION_FIXTURES.intersection(getattr(item, "fixturenames", ()))
            or (
                callspec is not None
                and "postgres"
                in (callspec.params.get("database_url"), callspec.params.get("empty_database_url"))
            )
            or folder in INTEGRATION_FOLDERS
            or item.get_closest_marker("browser") is not None
        ):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's git config, llmops settings or a parent repository."""
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for key in list(os.environ):  # every LLMOPS_* variable, including ones added later
        if key.startswith("LLMOPS_"):
            monkeypatch.delenv(key)


@dataclass
class PromptRepo:
    """A git repository with a ``prompts/`` folder, built commit by commit in a test."""

    root: Path
    _clock: int = 0

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def registry(self) -> PromptRegistry:
        return PromptRegistry(self.prompts)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.root, check=True, capture_output=True, text=True
        ).stdout.strip()

    def write(self, name: str, text: str) -> Path:
        path = self.prompts / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def commit(self, message: str) -> str:
        """Commit everything, one minute after the previous commit; return the sha."""
        self._clock += 1
        date = f"2026-01-01T10:{self._clock:02d}:00+00:00"
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        subprocess.run(["git", "add", "-A"], cwd=self.root, check=True, env=env)
        subprocess.run(["git", "commit", "-q", "-m", message], cwd=self.root, check=True, env=env)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> PromptRepo:
    root = tmp_path / "project"
    (root / "prompts").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=root, check=True)
    return PromptRepo(root)


def prompt_yaml(greeting: str = "Hello", *, model: str = "gpt-4o-mini", extra: str = "") -> str:
    """A small valid prompt file whose user message starts with ``greeting``."""
    return (
        f"description: Greets a user\nmodel: {model}\nparams:\n  temperature: 0.1\n"
        "input_schema:\n  type: object\n  required: [name]\n"
        "  properties:\n    name: {type: string}\n"
        f'messages:\n  - role: user\n    content: "{greeting}, {{{{ name }}}}!"\n{extra}'
    )


TEN_CASES = "\n".join(f"  - id: c{i}\n    vars: {{name: N{i}}}" for i in range(10))


@pytest.fixture
def project(repo: PromptRepo) -> PromptRepo:
    """Prompt ``greet``: production says Hello, the working tree says Howdy."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    repo.registry.promote("greet", "HEAD", "production")
    repo.write("greet.yaml", prompt_yaml("Howdy"))
    return repo


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None
    """In-process only: an exception that escaped ``llmops.cli.main`` (its traceback is in
    ``stderr``, as a real process would print it)."""


CLI_ENV = {"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"}


@pytest.fixture
def real_cli():
    """Run ``python -m llmops ARGS`` in a real process, in a given folder.

    For what only a process shows: which modules start-up imports, signals, crashes, the
    interpreter's exit. Everything else uses ``cli`` (same arguments, same result)."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
        result = subprocess.run(
            [sys.executable, "-m", "llmops", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, **CLI_ENV, **(env or {})},
            timeout=60,
        )
        return CliResult(result.returncode, result.stdout, result.stderr)

    return run


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """Run ``llmops ARGS`` in this process, in a given folder: ``llmops.cli.main(ARGS)`` (the
    entry point's own error handling and exit codes) under typer's ``CliRunner``, which
    swaps stdin, stdout, stderr and the ``env`` variables in and out for the call.

    The same arguments and ``CliResult`` as ``real_cli``, without a Python start-up (and,
    for commands that call a model, a 4 s litellm import) per call. Logged warnings go to
    its stderr, as Python's last-resort handler prints them in a real process (pytest's own
    log handlers would otherwise swallow them). The working folder, the environment and
    the handlers are restored after every call."""
    from typer.testing import CliRunner

    from llmops.cli import main

    runner = CliRunner()

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
        exception: BaseException | None = None
        root = logging.getLogger()
        with (
            monkeypatch.context() as patch,
            runner.isolation(env={**CLI_ENV, **(env or {})}) as (stdout, stderr, _),
        ):
            patch.chdir(cwd)
            last_resort = logging.StreamHandler(sys.stderr)  # the swapped stderr
            last_resort.setLevel(logging.WARNING)
            root.addHandler(last_resort)
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception as exc:  # what a real process would die of, with a traceback
                exception = exc
                traceback.print_exc()
                code = 1
            finally:
                root.removeHandler(last_resort)
                sys.stdout.flush()
                sys.stderr.flush()
            out, err = stdout.getvalue(), stderr.getvalue()
        return CliResult(
            code, out.decode(errors="replace"), err.decode(errors="replace"), exception
        )

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database at the current schema, with no rows: every database test runs on
    SQLite and on PostgreSQL. It is a copy of a database the migrations made once per test
    process (about 0.3 s saved per test); a test of making or migrating the schema takes
    ``empty_database_url``."""
    if request.param == "sqlite":
        file = private_dir(tmp_path / "db") / "llmops.db"
        shutil.copy2(request.getfixturevalue("sqlite_head_file"), file)
        return f"sqlite:///{file}"
    return request.getfixturevalue("postgres_head_url")


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database (no schema), on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'llmops.db'}"
    return request.getfixturevalue("postgres_url")


def _migrated(url: str) -> None:
    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()  # a PostgreSQL template must have no session


@pytest.fixture(scope="session")
def sqlite_head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file at the current schema, made once per test process; copied, not used."""
    file = tmp_path_factory.mktemp("head") / "llmops.db"
    _migrated(f"sqlite:///{file}")
    assert not file.with_name("llmops.db-wal").exists()  # closed: the copy is whole
    return file


HEAD_TEMPLATE = "llmops_head"


@pytest.fixture
def postgres_head_url(postgres_server: PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a new database at the current schema (a copy of a template the
    migrations made once per server), dropped after the test."""
    postgres_server.start()  # no-op unless an earlier test stopped it and did not restart it
    if not postgres_server.has_database(HEAD_TEMPLATE):
        made = postgres_server.new_database()
        _migrated(made)
        postgres_server.rename_database(made, HEAD_TEMPLATE)  # never copied half-made
    url = postgres_server.new_database(template=HEAD_TEMPLATE)
    yield url
    postgres_server.start()  # likewise, if this test stopped it
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def llm_server():
    """The local OpenAI-compatible server, shared by the session."""
    from llmops.testing import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def server(llm_server):
    """The local model server with no scripted replies, responder or recorded requests."""
    llm_server.reset()
    llm_server.set_responder(None)
    return llm_server


@pytest.fixture
def make_gateway(database_url: str, tmp_path: Path):
    """Build Gateways on the test database; all are closed after the test."""
    from llmops import Gateway

    gateways = []

    def make(**kwargs):
        kwargs.setdefault("database_url", database_url)
        kwargs.setdefault("home", tmp_path / "home")
        kwargs.setdefault("prompts", tmp_path / "no-prompts")
        kwargs.setdefault("retry_interval", 0.05)
        gateway = Gateway(**kwargs)
        gateways.append(gateway)
        return gateway

    yield make
    for gateway in gateways:
        gateway.close()
