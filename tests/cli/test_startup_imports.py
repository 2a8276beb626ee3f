"""What the commands that read the database import: nothing they do not use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # a fresh process per command: what start-up imports

NOT_NEEDED = (
    "litellm",
    "tiktoken",
    "pandas",
    "numpy",
    "streamlit",
    "rich",
    "opentelemetry",
    "jinja2",  # prompt rendering
    "jsonschema",  # prompt variables
    "httpx",
)
CODE = (
    "import sys\n"
    "from llmops.cli import main\n"
    "code = main(sys.argv[1:])\n"
    f"print('LOADED', [m for m in {NOT_NEEDED!r} if m in sys.modules])\n"
    "sys.exit(code)\n"
)


@pytest.mark.parametrize(
    "args", [("spend",), ("calls",), ("db", "status"), ("calls", "--format", "json"), ("--help",)]
)
def test_database_commands_import_only_what_they_use(args, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    upgrade = subprocess.run(
        [sys.executable, "-m", "llmops", "db", "upgrade", "--database-url", url],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stderr
    full = args if args == ("--help",) else (*args, "--database-url", url)
    result = subprocess.run(
        [sys.executable, "-c", CODE, *full], cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "LOADED []"
