"""Shared fixtures: throwaway git repositories of prompt files, and the CLI in a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmops.prompts import PromptRegistry

pytest_plugins = ["tests.fixtures.postgres"]

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's git config, llmops settings or a parent repository."""
    for key, value in GIT_IDENTITY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for key in (
        "LLMOPS_HOME",
        "LLMOPS_PROMPTS_DIR",
        "LLMOPS_DATABASE_URL",
        "LLMOPS_CONTENT",
        "LLMOPS_PRICES",
        "LLMOPS_REMOTE_PRICE_MAP",
    ):
        monkeypatch.delenv(key, raising=False)


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


@pytest.fixture
def cli():
    """Run ``python -m llmops ARGS`` in a real process, in a given folder."""

    def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> CliResult:
        result = subprocess.run(
            [sys.executable, "-m", "llmops", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200", **(env or {})},
            timeout=60,
        )
        return CliResult(result.returncode, result.stdout, result.stderr)

    return run


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: every database test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'llmops.db'}"
    return request.getfixturevalue("postgres_url")


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
