"""CLI start-up: `llmops prompts list` and `llmops --help` against a bare interpreter.

Runs each command alternately, side by side, so that machine noise hits all of them alike,
and reports medians plus the ratio to `python -c pass`. Goal: `llmops prompts list` under
0.5 s on the example prompts. Usage: python benchmarks/cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
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
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            if "litellm" in name and len(times[name]) >= 3:
                continue  # slow; three runs are enough to show its scale
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
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
