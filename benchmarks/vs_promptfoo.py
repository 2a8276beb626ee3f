"""`llmops eval run` against `promptfoo eval`, side by side, on the same suite and model server.

For each suite size (default 1, 20, 100 cases) the same cases (a question each, checked with
`icontains`) are written as an llmops suite over a prompt in a throwaway git repository and
as a promptfoo config with the same prompt, both against one local OpenAI-compatible server
(FakeLLMServer with the simulated model, in a child process, a fixed latency per call), at
the same concurrency, caches off, no baseline. Each round runs both commands as a user
would (a new process each), alternating which goes first; the figures are medians over the
rounds of the wall time from process start to exit, and the ratio llmops / promptfoo (below
1: llmops is faster). Both must report every case passing, or the benchmark exits non-zero.
No figure is asserted.

promptfoo is not a dependency: install it once (`npm install --prefix DIR
promptfoo@0.121.20`, the newest that runs on Node 20) and pass `--promptfoo
DIR/node_modules/.bin/promptfoo` (default: `$PROMPTFOO`, else `promptfoo` on the PATH).

Usage: python benchmarks/vs_promptfoo.py [--sizes 1 20 100] [--rounds 5] [--latency 0.05]
           [--concurrency 8] [--promptfoo PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, median

SERVER = """
import sys
from llmops.demo.knowledge import ACME
from llmops.simulate import FakeLLMServer, SimulatedModel

with FakeLLMServer(responder=SimulatedModel(latency=float(sys.argv[1]), world=ACME)) as server:
    print(server.base_url, flush=True)
    sys.stdin.read()
"""

SYSTEM = "You are the support assistant for Acme. Answer in numbered steps."
QUESTIONS = [
    "How do I reset my router to factory settings?",
    "My wifi keeps dropping every evening.",
    "How do I update the firmware?",
    "The mesh node shows a red light.",
]


def make_project(root: Path, cases: int, base_url: str, concurrency: int) -> None:
    """An llmops project (prompts in git, one suite) and a promptfoo config, same cases."""
    (root / "prompts" / "bench").mkdir(parents=True)
    (root / "evals").mkdir()
    (root / "prompts" / "bench" / "answer.yaml").write_text(
        "model: gpt-4o-mini\nparams: {temperature: 0, max_tokens: 200}\nmessages:\n"
        f"  - role: system\n    content: {SYSTEM}\n"
        "  - role: user\n    content: '{{ question }}'\n"
    )
    rows = [(f"c{i}", QUESTIONS[i % len(QUESTIONS)] + f" (ticket {i})") for i in range(cases)]
    suite = {
        "prompt": "bench/answer",
        "concurrency": concurrency,
        "threshold": 1.0,
        "cases": [
            {"id": cid, "vars": {"question": q}, "assert": [{"type": "icontains", "value": "1."}]}
            for cid, q in rows
        ],
    }
    (root / "evals" / "bench.yaml").write_text(json.dumps(suite, indent=1))
    config = {
        "description": "bench",
        "prompts": [
            json.dumps(
                [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": "{{ question }}"},
                ]
            )
        ],
        "providers": [
            {
                "id": "openai:chat:gpt-4o-mini",
                "config": {"apiBaseUrl": base_url, "temperature": 0, "max_tokens": 200},
            }
        ],
        "tests": [
            {"vars": {"question": q}, "assert": [{"type": "icontains", "value": "1."}]}
            for _, q in rows
        ],
    }
    (root / "promptfooconfig.yaml").write_text(json.dumps(config, indent=1))
    for command in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=bench", "-c", "user.email=b@x", "commit", "-qm", "bench"],
    ):
        subprocess.run(["git", *command], cwd=root, check=True, capture_output=True)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    return wall, f"exit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 20, 100])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--promptfoo", default=os.environ.get("PROMPTFOO") or shutil.which("promptfoo") or ""
    )
    args = parser.parse_args()
    if not args.promptfoo or not Path(args.promptfoo).exists():
        print(f"error: no promptfoo at {args.promptfoo} (see the docstring)", file=sys.stderr)
        return 2
    llmops = [str(Path(sys.executable).parent / "llmops")]
    child = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        base_url = child.stdout.readline().strip()
        return run(args, llmops, base_url)
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=10)


def run(args: argparse.Namespace, llmops: list[str], base_url: str) -> int:
    print(
        f"cases  llmops s  promptfoo s  ratio   (medians of {args.rounds} rounds; "
        f"latency {args.latency * 1000:.0f} ms, concurrency {args.concurrency})"
    )
    failed = False
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_project(root, size, base_url, args.concurrency)
            home = root / "home"
            env = {
                **os.environ,
                "LLMOPS_HOME": str(home),
                "LLMOPS_DATABASE_URL": f"sqlite:///{root / 'calls.db'}",
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": base_url,
                "OPENAI_API_BASE": base_url,
                "PROMPTFOO_CONFIG_DIR": str(root / "pf-home"),
                "PROMPTFOO_DISABLE_TELEMETRY": "1",
                "PROMPTFOO_DISABLE_UPDATE": "1",
                "PROMPTFOO_DISABLE_SHARING": "1",
                "NO_COLOR": "1",
            }
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's machine runs it
            ours = [*llmops, "eval", "run", "evals/bench.yaml", "--no-cache", "--baseline", "none"]
            theirs = [
                args.promptfoo, "eval", "-c", "promptfooconfig.yaml", "--no-cache",
                "-j", str(args.concurrency), "--no-table", "--no-progress-bar", "--no-write",
            ]  # fmt: skip
            timed(ours, root, env)  # warm-up: bytecode, the database file, node's cache
            timed(theirs, root, env)
            walls: dict[str, list[float]] = {"llmops": [], "promptfoo": []}
            for round_ in range(args.rounds):
                order = [("llmops", ours), ("promptfoo", theirs)]
                for name, command in order if round_ % 2 == 0 else order[::-1]:
                    wall, output = timed(command, root, env)
                    ok = output.startswith("exit 0")
                    if name == "promptfoo":
                        ok = ok and f"{size} passed (100%)" in output
                    if not ok:
                        failed = True
                        print(f"{name} did not pass every case:\n{output}", file=sys.stderr)
                    walls[name].append(wall)
            ours_s, theirs_s = median(walls["llmops"]), median(walls["promptfoo"])
            print(f"{size:>5}  {ours_s:>8.2f}  {theirs_s:>11.2f}  {ours_s / theirs_s:>5.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
