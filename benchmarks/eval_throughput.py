"""Eval throughput: wall time and calls/s of `llmops eval` runs at several concurrency levels.

A generated suite of N cases (default 500; `--quick`: 100) runs over two versions of a small
prompt (the working tree as candidate, the `production` label as baseline: 2N model calls per
run) through the Runner and a Gateway with `source="eval"` that records every call to a
SQLite file, with the response cache off, so that every case really calls the model. The
model is one local FakeLLMServer answering with the deterministic SimulatedModel after a
fixed latency (`--latency`, default 50 ms). By default the server runs in a child process,
so that its own CPU time does not compete with the harness for this process's GIL (a real
provider is remote); `--server in-process` runs it in this process instead, as `llmops eval
run --offline` does. Prompts live in a throwaway git repository: two committed versions, the
first labelled `production` with `PromptRegistry.promote` and committed.

For each concurrency level: wall time of `Runner.run`, calls/s, the ideal calls/s given the
latency (concurrency / latency), efficiency = achieved / ideal, the median per-call latency
seen by the runner, CPU time of this process per call and by thread (the event loop's, the
others) and of the server, and the rows added to `llm_calls` after `gateway.flush()`. Levels
run in turn, rotating the order every round, after a warm-up run; with several rounds the
figures are medians. Exits non-zero when the rows, the requests the server saw, or the
successful cases differ from the calls made. `--profile C` adds a last run at concurrency C
under cProfile, timed with a per-thread CPU clock in the event loop's thread and in the
threads started during the run (asyncio's executor), and prints where the CPU time goes.
No figure is asserted.

Usage: python benchmarks/eval_throughput.py [--cases N | --quick] [--latency S]
           [--concurrency 1 8 32] [--rounds R] [--server subprocess|in-process]
           [--route direct|litellm]
           [--profile C [--top N]]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import ROOT, count_rows, median

PROMPT = "bench/answer"
PROMPT_V1 = """\
description: Answers a support question (benchmark prompt, v1).
model: gpt-4o-mini
params: {temperature: 0.2, max_tokens: 200}
input_schema:
  type: object
  required: [question, product]
  properties:
    question: {type: string}
    product: {type: string}
messages:
  - role: system
    content: You are a support agent for {{ product }}. Answer in at most two sentences.
  - role: user
    content: "{{ question }}"
"""
PROMPT_V2 = PROMPT_V1.replace("v1", "v2").replace(
    "Answer in at most two sentences.",
    "Start with the most likely fix, as numbered steps, then say how to tell it worked. "
    "Never invent product features.",
)
PRODUCTS = ("Acme Router", "Acme Mesh", "Acme Cloud")
QUESTIONS = (
    "How do I reset it to factory settings?",
    "The Wi-Fi keeps dropping in the evening.",
    "I forgot my password and cannot sign in.",
    "Why was I charged twice this month?",
    "How do I update the firmware?",
    "How do I set it up for the first time?",
    "It stopped working this morning.",
)
# A child process serving the FakeLLMServer; each line on stdin asks for the requests seen
# since the last line and the process's CPU seconds. EOF stops it.
SERVER = """\
import sys, time
from llmops.demo.knowledge import ACME
from llmops.simulate import FakeLLMServer, SimulatedModel
with FakeLLMServer(responder=SimulatedModel(latency=float(sys.argv[1]), world=ACME)) as server:
    print(server.base_url, flush=True)
    for _ in sys.stdin:
        print(len(server.requests), time.process_time(), flush=True)
        server.reset()
"""


class Server:
    """The FakeLLMServer, in a child process or in this one, with the same small interface."""

    def __init__(self, latency: float, mode: str) -> None:
        self.mode, self.latency = mode, latency
        self._fake: Any = None
        self._child: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> Server:
        if self.mode == "in-process":
            from llmops.demo.knowledge import ACME
            from llmops.simulate import FakeLLMServer, SimulatedModel

            model = SimulatedModel(latency=self.latency, world=ACME)
            self._fake = FakeLLMServer(responder=model).start()
            self.base_url = self._fake.base_url
        else:
            self._child = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(self.latency)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert self._child.stdin and self._child.stdout
            self.base_url = self._child.stdout.readline().strip()
            if not self.base_url.startswith("http://"):
                raise SystemExit("the FakeLLMServer child process did not start")
        return self

    def take(self) -> tuple[int, float | None]:
        """Requests seen since the last call (then forgotten), and the child's CPU seconds
        so far (None in-process: the server's threads count as this process's)."""
        if self._fake is not None:
            seen = len(self._fake.requests)
            self._fake.reset()
            return seen, None
        assert self._child and self._child.stdin and self._child.stdout
        self._child.stdin.write("\n")
        self._child.stdin.flush()
        seen, cpu = self._child.stdout.readline().split()
        return int(seen), float(cpu)

    def __exit__(self, *exc_info: object) -> None:
        if self._fake is not None:
            self._fake.stop()
        if self._child is not None:
            assert self._child.stdin
            self._child.stdin.close()
            self._child.wait(timeout=10)


def git(root: Path, *args: str) -> str:
    identity = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    command = ["git", *identity, "-c", "commit.gpgsign=false", *args]
    return subprocess.run(command, cwd=root, check=True, capture_output=True, text=True).stdout


def make_project(root: Path, cases: int) -> tuple[Any, Path, Path]:
    """A git repo with two committed prompt versions, v1 labelled production; the suites."""
    from llmops.prompts import PromptRegistry

    prompt_file = root / "prompts" / f"{PROMPT}.yaml"
    prompt_file.parent.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    prompt_file.write_text(PROMPT_V1, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v1")
    v1 = git(root, "rev-parse", "HEAD").strip()
    prompt_file.write_text(PROMPT_V2, encoding="utf-8")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "v2")
    registry = PromptRegistry(root / "prompts")
    registry.promote(PROMPT, v1, "production")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "promote v1 to production")
    evals = root / "evals"
    evals.mkdir()
    suite, warmup = evals / "throughput.yaml", evals / "warmup.yaml"
    suite.write_text(suite_yaml(cases), encoding="utf-8")
    warmup.write_text(suite_yaml(min(cases, 16)), encoding="utf-8")
    return registry, suite, warmup


def suite_yaml(cases: int) -> str:
    """A suite of `cases` cases with two cheap assertions each (a substring and the cost)."""
    lines = [
        "description: Generated by benchmarks/eval_throughput.py.",
        f"prompt: {PROMPT}",
        "threshold: 0",
        "defaults:",
        "  assert:",
        "    - {type: icontains, value: acme}",
        "    - {type: cost, value: 0.001}",
        "cases:",
    ]
    for i in range(cases):
        product = PRODUCTS[i % len(PRODUCTS)]
        question = f"{QUESTIONS[i % len(QUESTIONS)]} (ticket {i + 1})"
        lines.append(
            f'  - {{id: case-{i + 1:04d}, vars: {{product: {product}, question: "{question}"}}}}'
        )
    return "\n".join(lines) + "\n"


@dataclass
class Measure:
    concurrency: int
    calls: int
    wall: float
    cpu_loop: float  # CPU seconds of this thread (the event loop's)
    cpu_other: float  # CPU seconds of this process's other threads
    server_cpu: float | None
    latency_ms: float  # median per call, as the runner saw it
    rows: int
    requests: int
    failed: int  # cases whose model call failed
    passed: int

    @property
    def rate(self) -> float:
        return self.calls / self.wall


class ThreadProfiles:
    """cProfile, counting CPU time per thread, in this thread and in every thread started
    while it is on (asyncio's default executor is new in every `asyncio.run`). Threads that
    already ran before (the gateway's writer, an in-process server) are not profiled."""

    def __init__(self) -> None:
        self.profiles: list[tuple[str, cProfile.Profile]] = []
        self._lock = threading.Lock()

    def _start(self, *_: object) -> None:
        profile = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append((threading.current_thread().name, profile))
        profile.enable()  # replaces this hook in the calling thread

    def __enter__(self) -> ThreadProfiles:
        threading.setprofile(self._start)
        self._start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        threading.setprofile(None)
        self.profiles[0][1].disable()  # this thread; the others have ended or stay on


class Bench:
    """One gateway, one server, one suite: runs at a given concurrency and checks the rows."""

    def __init__(self, gateway: Any, registry: Any, server: Server) -> None:
        self.gateway, self.registry, self.server = gateway, registry, server

    def route(self, model: str) -> dict[str, Any]:
        return {"api_base": self.server.base_url, "api_key": "sk-bench", "num_retries": 0}

    def run(self, suite: Any, concurrency: int, profiles: ThreadProfiles | None = None) -> Measure:
        from llmops.evals.runner import Runner, plan

        suite_plan = plan(suite, self.registry, concurrency=concurrency)
        runner = Runner(self.gateway, cache=None, call_kwargs=self.route)
        before = count_rows(self.gateway.database_url)
        _, server_cpu = self.server.take()
        cpu, loop_cpu = time.process_time(), time.thread_time()
        start = time.perf_counter()
        with profiles or contextlib.nullcontext():
            report = runner.run(suite_plan)
        wall = time.perf_counter() - start
        loop_cpu, cpu = time.thread_time() - loop_cpu, time.process_time() - cpu
        requests, server_after = self.server.take()
        if not self.gateway.flush(timeout=120):
            print("gateway.flush() timed out", file=sys.stderr)
        results = [r for run in report.runs for r in run.results]
        return Measure(
            concurrency=concurrency,
            calls=len(suite_plan.jobs),
            wall=wall,
            cpu_loop=loop_cpu,
            cpu_other=cpu - loop_cpu,
            server_cpu=None
            if server_cpu is None or server_after is None
            else server_after - server_cpu,
            latency_ms=median([r.latency_ms or 0.0 for r in results]),
            rows=count_rows(self.gateway.database_url) - before,
            requests=requests,
            failed=sum(r.error is not None for r in results),
            passed=sum(r.passed for r in results),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--cases", type=int, default=500, help="cases in the suite (x2 calls)")
    size.add_argument("--quick", action="store_true", help="100 cases")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per model call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=1, help="runs per level (medians)")
    parser.add_argument("--server", choices=["subprocess", "in-process"], default="subprocess")
    parser.add_argument(
        "--route",
        choices=["direct", "litellm"],
        default="direct",
        help="direct: OpenAI-compatible calls sent by llmops, as `llmops eval run` does; "
        "litellm: every call through litellm",
    )
    parser.add_argument("--profile", type=int, metavar="C", help="profile one run at C")
    parser.add_argument("--top", type=int, default=20, help="profile rows to print")
    args = parser.parse_args()
    cases = 100 if args.quick else args.cases
    with tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        return run(args, cases, Path(tmp))


def run(args: argparse.Namespace, cases: int, home: Path) -> int:
    from llmops import litellm_loader
    from llmops.evals.suite import load_suite
    from llmops.gateway import Gateway
    from llmops.store.engine import display_url

    litellm_loader.load()  # the ~4 s import happens here, not in the first timed run
    registry, suite_file, warmup_file = make_project(home / "project", cases)
    suite, warmup = load_suite(suite_file), load_suite(warmup_file)
    url = f"sqlite:///{home / 'calls.db'}"
    gateway = Gateway(
        database_url=url,
        prompts=registry,
        source="eval",
        home=home / "gw",
        direct=args.route == "direct",
    )
    levels = args.concurrency
    measures: dict[int, list[Measure]] = {c: [] for c in levels}
    profiles = ThreadProfiles() if args.profile else None
    with Server(args.latency, args.server) as server:
        bench = Bench(gateway, registry, server)
        checks = [bench.run(warmup, max(levels))]  # warm-up: checked, not reported
        for i in range(args.rounds):
            for level in levels[i % len(levels) :] + levels[: i % len(levels)]:
                m = bench.run(suite, level)
                measures[level].append(m)
                print(f"  round {i + 1}, concurrency {level}: {m.wall:.2f} s", file=sys.stderr)
        if profiles is not None:  # last: profiles of threads that outlive the run stay on
            checks.append(bench.run(suite, args.profile, profiles))
    where = display_url(gateway.database_url)
    stats = gateway.writer.stats
    gateway.close()

    calls = 2 * cases
    print(
        f"{cases} cases x 2 prompt versions = {calls} model calls per run; FakeLLMServer "
        f"({args.server}) with SimulatedModel(latency={args.latency * 1000:.0f} ms); response "
        f"cache off; recorded to {where}; {litellm_loader.price_map_source()}; {args.rounds} "
        f"round(s); {os.cpu_count()} CPUs; Python {sys.version.split()[0]}.\n"
    )
    print(
        f"{'concurrency':>11} {'wall s':>7} {'calls/s':>8} {'ideal/s':>8} {'efficiency':>10} "
        f"{'median call ms':>14} {'CPU ms/call':>11} {'loop CPU s':>10} {'other CPU s':>11} "
        f"{'server CPU s':>12} {'rows':>5}"
    )
    for level, ms in measures.items():
        wall = median([m.wall for m in ms])
        rate, ideal = calls / wall, level / args.latency
        per_call = median([(m.cpu_loop + m.cpu_other) / m.calls * 1000 for m in ms])
        server_cpu = [m.server_cpu for m in ms if m.server_cpu is not None]
        server = f"{median(server_cpu):.2f}" if server_cpu else "-"
        print(
            f"{level:>11} {wall:>7.2f} {rate:>8.1f} {ideal:>8.0f} {rate / ideal:>10.1%} "
            f"{median([m.latency_ms for m in ms]):>14.1f} {per_call:>11.2f} "
            f"{median([m.cpu_loop for m in ms]):>10.2f} {median([m.cpu_other for m in ms]):>11.2f} "
            f"{server:>12} {'/'.join(str(m.rows) for m in ms):>5}"
        )
    passed = median([m.passed / m.calls for ms in measures.values() for m in ms])
    print(
        "\nideal = concurrency / latency; efficiency = calls/s / ideal; median call ms: the "
        "latency the runner\nrecorded per call; CPU ms/call: this process's CPU time per call; "
        "loop CPU s: the thread running\nthe event loop; other CPU s: this process's other "
        "threads (asyncio's default executor, the\ngateway's writer, litellm's workers"
        + (", the in-process server" if args.server == "in-process" else "")
        + f"). Pass rate {passed:.1%} (not the point here).\nWriter: {stats}"
    )
    if profiles is not None:
        print_profile(checks[-1], profiles, top=args.top)
    checks += [m for ms in measures.values() for m in ms]
    bad = [m for m in checks if m.rows != m.calls or m.requests != m.calls or m.failed]
    for m in bad:
        print(
            f"FAIL at concurrency {m.concurrency}: {m.calls} calls, {m.rows} rows in llm_calls, "
            f"{m.requests} server requests, {m.failed} failed calls",
            file=sys.stderr,
        )
    if bad or stats.spooled or stats.rejected:
        return 1
    print(
        f"Rows: every run ({len(checks)}, warm-up included) added exactly one llm_calls row "
        "per call, and the server saw exactly one request per call."
    )
    return 0


# (path suffix, function, label) of the profile's key functions; indented = called by the above.
KEY_FUNCTIONS = (
    ("llmops/evals/runner.py", "_run_case", "Runner._run_case: one case, on the event loop"),
    ("llmops/gateway/gateway.py", "acomplete", "  Gateway.acomplete"),
    ("llmops/gateway/gateway.py", "_prepare", "    Gateway._prepare (render the prompt)"),
    ("litellm/chat_completions/dispatch.py", "acompletion", "    litellm.acompletion"),
    ("litellm/main.py", "completion", "      litellm.completion (sync, in asyncio's executor)"),
    ("openai/_base_client.py", "post", "      openai AsyncAPIClient.post (request, response)"),
    ("httpx/_client.py", "send", "        httpx AsyncClient.send"),
    ("litellm_core_utils/get_llm_provider_logic.py", "get_llm_provider", "      get_llm_provider"),
    (
        "litellm_core_utils/get_llm_provider_logic.py",
        "_endpoint_matches_api_base",
        "        _endpoint_matches_api_base (api_base vs known endpoints)",
    ),
    ("response_metadata.py", "update_response_metadata", "      update_response_metadata"),
    ("litellm/cost_calculator.py", "completion_cost", "        completion_cost"),
    ("litellm_logging.py", "async_success_handler", "      Logging.async_success_handler"),
    ("llmops/gateway/recorder.py", "record_response", "    Recorder.record_response"),
    ("llmops/evals/assertions.py", "check", "  assertions.check"),
    ("llmops/evals/cache.py", "cache_key", "  cache_key"),
)


def area(filename: str) -> str:
    """What a profiled function belongs to: a package, a stdlib module, or built-ins."""
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/llmops/" in path:
        return "llmops." + path.split("/llmops/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith(("~", "<")):
        return "built-ins"
    return "stdlib " + Path(path).stem if "/python3" in path else path


def thread_group(name: str) -> str:
    if name.startswith("asyncio_"):
        return "asyncio default executor (asyncio_N)"
    return name.split("-", 1)[0] if name.startswith("ThreadPoolExecutor-") else name


def print_profile(measure: Measure, profiles: ThreadProfiles, *, top: int) -> None:
    """CPU time per thread group and per area, then the functions with the most time."""
    by_thread: dict[str, float] = {}
    for name, profile in profiles.profiles:
        own = sum(entry[2] for entry in pstats.Stats(profile).stats.values())
        by_thread[thread_group(name)] = by_thread.get(thread_group(name), 0.0) + own
    stats = pstats.Stats(profiles.profiles[0][1])
    for _, profile in profiles.profiles[1:]:
        stats.add(profile)
    entries: dict[Any, Any] = stats.stats
    total = sum(entry[2] for entry in entries.values())
    print(
        f"\nProfile: one run at concurrency {measure.concurrency} under cProfile with a "
        f"per-thread CPU clock: {measure.wall:.2f} s wall ({measure.rate:.0f} calls/s; "
        f"profiling slows it), {total:.2f} CPU s profiled. cProfile's cost per function call\n"
        "inflates functions called very often (urlparse here): a sampling profiler gives them "
        "smaller shares.\nCPU by thread:"
    )
    for name, seconds in sorted(by_thread.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.005:
            print(f"  {seconds:>7.2f} s {seconds / total:>6.1%}  {name}")
    by_area: dict[str, float] = {}
    for (filename, _, _), entry in entries.items():
        by_area[area(filename)] = by_area.get(area(filename), 0.0) + entry[2]
    print("Own CPU time by area:")
    for name, seconds in sorted(by_area.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {seconds:>7.2f} s {seconds / total:>6.1%}  {name}")
    calls = measure.calls
    print(
        "\nKey functions, cumulative CPU (s, share of profiled CPU, calls per model call; a "
        "coroutine\ncounts each resumption; litellm.completion runs in other threads):"
    )
    for suffix, function, label in KEY_FUNCTIONS:
        found = [
            entry
            for (filename, _, name), entry in entries.items()
            if name == function and filename.replace("\\", "/").endswith(suffix)
        ]
        seconds, count = sum(e[3] for e in found), sum(e[1] for e in found)
        print(f"  {seconds:>7.2f} {seconds / total:>6.1%} {count / calls:>6.1f}  {label}")
    print(f"\nTop {top} functions by own CPU time (s, share of profiled CPU, calls):")
    for (filename, line, name), entry in sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]:
        where = f"{area(filename)}:{name}" + (f" (line {line})" if line else "")
        print(f"  {entry[2]:>7.2f} {entry[2] / total:>6.1%} {entry[1]:>8} {where}")


if __name__ == "__main__":
    sys.exit(main())
