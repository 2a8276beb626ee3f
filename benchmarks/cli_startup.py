"""CLI start-up: `llmops prompts list`, `llmops --help` and the database commands (`spend`,
`calls`, `db status`, `feedback`, on an empty SQLite file) against a bare interpreter.

Runs each command alternately, side by side, so that machine noise hits all of them alike,
and reports medians plus the ratio to `python -c pass`; `import sqlalchemy` shows the share
of the database commands that is the database library's own import. Python writes its
bytecode caches (PYTHONDONTWRITEBYTECODE, set on some machines, is removed: a user's
install has them). Goal: `llmops prompts list` under 0.5 s on the example prompts.
Usage: python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLMOPS = str(Path(sys.executable).with_name("llmops"))

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "python -c 'import litellm' (for scale)": [sys.executable, "-c", "import litellm"],
    "llmops --help": [LLMOPS, "--help"],
    "llmops prompts list": [LLMOPS, "prompts", "list"],
    "llmops prompts render support/answer": [
        LLMOPS, "prompts", "render", "support/answer",
        "--var", "question=How do I reset it?", "--var", "product=Acme Router",
    ],
    "python -c 'import sqlalchemy' (for scale)": [sys.executable, "-c", "import sqlalchemy"],
    "llmops spend": [LLMOPS, "spend"],
    "llmops calls": [LLMOPS, "calls"],
    "llmops db status": [LLMOPS, "db", "status"],
    # a call id that was never recorded: the command's whole path, then exit 2
    "llmops feedback (unknown call)": [LLMOPS, "feedback", str(uuid.uuid4()), "1"],
}  # fmt: skip
FAILS = {"llmops feedback (unknown call)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    folder = tempfile.mkdtemp(prefix="llmops-cli-startup-")
    env["LLMOPS_DATABASE_URL"] = f"sqlite:///{folder}/llmops.db"
    env["LLMOPS_HOME"] = f"{folder}/home"
    subprocess.run([LLMOPS, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            if "litellm" in name and len(times[name]) >= 3:
                continue  # slow; three runs are enough to show its scale
            start = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True)
            if done.returncode != (2 if name in FAILS else 0):
                raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr.decode()}")
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["python -c pass (baseline)"])
    print(f"{'command':<42} {'median s':>9} {'x baseline':>10} {'added s':>8}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<42} {median:>9.3f} {median / base:>10.1f} {median - base:>8.3f}")
    listed = statistics.median(times["llmops prompts list"])
    verdict = "meets" if listed < 0.5 else "MISSES"
    print(f"\n`llmops prompts list`: {listed:.3f} s, {verdict} the 0.5 s goal ({args.runs} runs)")


if __name__ == "__main__":
    main()
