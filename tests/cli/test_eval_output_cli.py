"""What ``llmops eval run`` prints while and after it runs: a few progress lines in a log, one
updating line on a terminal, and metrics lines that say which side they are."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import CLI_ENV, PromptRepo

MOST_LINES = 4  # progress lines per suite in a log, whatever its size
PROGRESS = re.compile(r"^greet: (\d+)/(\d+)\b")


def cases(count: int) -> str:
    return "\n".join(f"  - id: c{i}\n    vars: {{name: N{i}}}" for i in range(count))


def write_suite(repo: PromptRepo, count: int, extra: str = "") -> None:
    path = repo.root / "evals" / "greet.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(f"prompt: greet\n{extra}cases:\n{cases(count)}\n"))


def eval_env(server, tmp_path) -> dict[str, str]:
    return {
        "OPENAI_API_BASE": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
    }


@pytest.mark.parametrize("count", [1, 3, 10, 64])
def test_a_log_gets_a_few_progress_lines(count, cli, server, project, tmp_path) -> None:
    write_suite(project, count)
    result = cli("eval", "run", cwd=project.root, env=eval_env(server, tmp_path))
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    progress = [PROGRESS.match(line) for line in lines]
    assert all(progress), lines  # nothing else on stderr
    runs = 2 * count  # candidate and baseline
    done = [int(m.group(1)) for m in progress if m]
    assert 1 <= len(done) <= MOST_LINES
    assert done == sorted(set(done)) and done[-1] == runs
    assert all(int(m.group(2)) == runs for m in progress if m)
    assert lines[-1] == f"greet: {runs}/{runs} case runs (100%)"
    assert len(server.requests) == runs


def test_metrics_lines_say_which_side(cli, server, project, tmp_path) -> None:
    """The candidate says Howdy, the baseline (production) Hello."""
    write_suite(
        project, 4, "defaults:\n  assert: [{type: icontains, value: howdy, metric: greeting}]\n"
    )
    result = cli("eval", "run", "--baseline", "production", cwd=project.root,
                 env=eval_env(server, tmp_path))  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    assert "Candidate metrics on gpt-4o-mini: greeting 1.00" in result.stdout.splitlines()
    assert "Baseline metrics on gpt-4o-mini: greeting 0.00" in result.stdout.splitlines()
    assert "Metrics (" not in result.stdout
    alone = cli("eval", "run", "--baseline", "none", cwd=project.root,
                env=eval_env(server, tmp_path))  # fmt: skip
    assert "Candidate metrics on gpt-4o-mini: greeting 1.00" in alone.stdout
    assert "Baseline metrics" not in alone.stdout


@pytest.mark.integration  # a real process whose stderr is a terminal
def test_a_terminal_gets_one_updating_line(server, project, tmp_path) -> None:
    write_suite(project, 10)
    env = {**os.environ, **CLI_ENV, **eval_env(server, tmp_path)}
    env.pop("CI", None)
    main, child = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmops", "eval", "run"],
            cwd=project.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=child,
        )
        os.close(child)
        stdout, _ = process.communicate(timeout=120)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
    assert process.returncode == 0, seen.decode()
    text = seen.decode().replace("\r\n", "\n")  # the terminal turns \n into \r\n
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, ended once
    updates = [part for part in text.rstrip("\n").split("\r") if part]
    assert len(updates) == 20  # one per case run, each over the previous
    assert updates[-1] == f"greet [{'#' * 30}] 20/20 case runs"
    assert "Pass-rate gate" in stdout.decode()


DRY_RUN = """
import sys
from llmops.cli import main
if sys.argv[1] == "import":
    from llmops import litellm_loader
    litellm_loader.load()
code = main(["eval", "run", "--dry-run"])
print("litellm imported:", "litellm" in sys.modules)
sys.exit(code)
"""


@pytest.mark.integration  # fresh processes: what the dry run imports
def test_the_dry_run_estimates_without_importing_litellm(project, tmp_path) -> None:
    """The same estimate as with litellm's own price map, without its 4 s import."""
    write_suite(project, 10)
    env = {**os.environ, **CLI_ENV, "LLMOPS_HOME": str(tmp_path / "home")}
    runs = {
        mode: subprocess.run(
            [sys.executable, "-c", DRY_RUN, mode],
            cwd=project.root, env=env, capture_output=True, text=True, timeout=120,
        )
        for mode in ("no-import", "import")
    }  # fmt: skip
    for run in runs.values():
        assert run.returncode == 0, run.stderr
    without, with_litellm = runs["no-import"].stdout, runs["import"].stdout
    assert without.splitlines()[-1] == "litellm imported: False"
    assert with_litellm.splitlines()[-1] == "litellm imported: True"
    assert "20 model call(s)" in without and "estimated cost at most $0.0" in without
    assert "Unpriced" not in without
    assert without.splitlines()[:-1] == with_litellm.splitlines()[:-1]
