"""Server overhead: what `llmops serve` adds to a call, against calling the model directly.

Arms, called with the official `openai` SDK (one client per arm, keep-alive), interleaved in
rounds (rotating which goes first, after a warm-up), one call at a time:
  direct   the upstream itself: a FakeLLMServer in a child process (the model, ~0 ms)
  llmops   `llmops serve` (one worker, SQLite in a temporary folder) -> the same upstream
  litellm  with `--litellm-proxy PATH`: the LiteLLM proxy (`PATH --config cfg.yaml --port P
           --num_workers 1`, no database) -> the same upstream
Added latency of an arm = median over rounds of (median arm - median direct), with a
bootstrap interval of the difference of the overall medians.

Throughput: `llmops serve --workers 2` (and the LiteLLM proxy with `--num_workers 2`) with C
concurrent clients (asyncio + httpx, one call after the other each) for S seconds, rounds
alternating between the servers; calls/s is the median over rounds. The clients and the
upstream share the machine with the server, as they would on a 2-core box.

Goals: llmops adds at most a quarter of LiteLLM's added latency; with two workers it serves
at least twice LiteLLM's calls/s. `--profile N` runs N calls through the llmops app in this
process (httpx's ASGI transport, no socket) under cProfile and shows where the time goes.
Exits 1 when the database does not hold exactly one row per llmops call.

Usage: python benchmarks/server_overhead.py [--calls N] [--rounds R] [--warmup W]
           [--litellm-proxy PATH] [--concurrency C ...] [--seconds S] [--throughput-rounds R]
           [--no-throughput] [--profile N]
The LiteLLM proxy, in a throwaway venv: python -m venv /tmp/litellm-proxy-venv &&
/tmp/litellm-proxy-venv/bin/pip install "litellm[proxy]==1.80.0"; then
--litellm-proxy /tmp/litellm-proxy-venv/bin/litellm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import count_rows, median, quartiles
from gateway_overhead import Arm, compare, interleave

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You answer questions about parcels, briefly."},
    {"role": "user", "content": "Where is my parcel? The order number is 1234."},
]
REPLY = {"text": "Your parcel left the depot this morning.", "prompt_tokens": 30,
         "completion_tokens": 8}  # fmt: skip
GOAL_LATENCY_SHARE, GOAL_THROUGHPUT_RATIO = 0.25, 2.0
START_TIMEOUT = 180.0  # the LiteLLM proxy takes a while to import

# The upstream: a FakeLLMServer in its own process, with a listen backlog that many
# connections at once do not overflow (socketserver's default is 5; dropped SYNs cost 1 s).
UPSTREAM = """
import json, socketserver, sys
socketserver.TCPServer.request_queue_size = 1024
from llmops.simulate import FakeLLMServer, Reply
with FakeLLMServer() as server:
    server.route(sys.argv[1], Reply(**json.loads(sys.argv[2])))
    print(server.base_url, flush=True)
    sys.stdin.read()
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise SystemExit(f"{process.args} exited {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"{url} did not answer in {START_TIMEOUT} s:\n{log.read_text()}")
        time.sleep(0.1)


@contextlib.contextmanager
def upstream() -> Iterator[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, MODEL, json.dumps(REPLY)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        base_url = child.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise SystemExit("the FakeLLMServer child process did not start")
        yield base_url
    finally:
        child.stdin.close()
        child.wait(10)


class Server:
    """A server process (llmops or the LiteLLM proxy) on a free port; output to a log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], folder: Path,
                 health: str) -> None:  # fmt: skip
        self.name, self.port = name, free_port()
        self.log = folder / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)], cwd=folder, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"
        wait_http(self.url + health, self.process, self.log)

    def pids(self) -> list[int]:
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        return [pid, *(int(p) for p in children.read_text().split())] if children.exists() else []

    def cpu_seconds(self) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


def llmops_server(folder: Path, base_url: str, workers: int) -> Server:
    home = folder / f"llmops-{workers}w"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env.update(
        LLMOPS_HOME=str(home / "home"), LLMOPS_DATABASE_URL=f"sqlite:///{folder / 'llmops.db'}",
        LLMOPS_PROMPTS_DIR=str(home / "prompts"), OPENAI_BASE_URL=base_url,
        OPENAI_API_KEY="sk-upstream",
    )  # fmt: skip
    command = [sys.executable, "-m", "llmops", "serve", "--workers", str(workers)]
    return Server(f"llmops-{workers}w", command, env, home, "/health")


def litellm_server(folder: Path, binary: str, base_url: str, workers: int) -> Server:
    home = folder / f"litellm-{workers}w"
    home.mkdir()
    config = home / "config.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: {base_url}\n"
        "      api_key: sk-upstream\n",
        encoding="utf-8",
    )
    drop = ("LLMOPS_", "DATABASE_URL", "OPENAI_", "LITELLM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
    command = [binary, "--config", str(config), "--host", "127.0.0.1",
               "--num_workers", str(workers)]  # fmt: skip
    return Server(f"litellm-{workers}w", command, env, home, "/health/liveliness")


def sdk_call(base_url: str) -> Any:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0, timeout=60)

    def call() -> None:
        answer = client.chat.completions.create(model=MODEL, messages=MESSAGES)
        assert answer.choices[0].message.content == REPLY["text"]

    return call


# -- throughput -------------------------------------------------------------------------------


async def _flood(url: str, clients: int, seconds: float) -> tuple[int, int, float]:
    """(calls, errors, wall seconds) of `clients` callers, one call after another each."""
    import httpx

    body = {"model": MODEL, "messages": MESSAGES}
    calls = errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        deadline = time.monotonic() + seconds

        async def caller() -> None:
            nonlocal calls, errors
            while time.monotonic() < deadline:
                try:
                    answer = await client.post(url, json=body)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                calls += ok
                errors += not ok

        started = time.monotonic()
        await asyncio.gather(*(caller() for _ in range(clients)))
        return calls, errors, time.monotonic() - started


def throughput(
    targets: dict[str, str], clients: int, seconds: float, rounds: int, cpu: dict[str, Server]
) -> dict[str, dict[str, float]]:
    """Median calls/s per target over `rounds` alternating rounds (after a short warm-up)."""
    rates: dict[str, list[float]] = {name: [] for name in targets}
    totals: dict[str, list[int]] = {name: [0, 0] for name in targets}  # calls, errors
    cpu_per_call: dict[str, list[float]] = {name: [] for name in targets}
    warm: dict[str, int] = {}
    for name, url in targets.items():  # every worker imports litellm on its first call
        warm[name] = asyncio.run(_flood(url, clients, 2.0))[0]
    for i in range(rounds):
        order = list(targets)
        order = order[i % len(order) :] + order[: i % len(order)]
        for name in order:
            server = cpu.get(name)
            before = server.cpu_seconds() if server else 0.0
            calls, errors, wall = asyncio.run(_flood(targets[name], clients, seconds))
            if server and calls:
                cpu_per_call[name].append((server.cpu_seconds() - before) / calls * 1000)
            rates[name].append(calls / wall)
            totals[name][0] += calls
            totals[name][1] += errors
    return {
        name: {
            "rate": median(rates[name]),
            "min": min(rates[name]),
            "max": max(rates[name]),
            "calls": totals[name][0],
            "warm": warm[name],
            "errors": totals[name][1],
            "cpu_ms": median(cpu_per_call[name]) if cpu_per_call[name] else float("nan"),
        }
        for name in targets
    }


# -- where the time goes ----------------------------------------------------------------------


def profile(folder: Path, base_url: str, calls: int) -> None:
    """N calls through the llmops app in this process (no socket) under cProfile."""
    import httpx

    os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"] = base_url, "sk-upstream"
    from llmops.gateway import Gateway
    from llmops.server.app import create_app

    gateway = Gateway(f"sqlite:///{folder / 'profile.db'}", home=folder / "profile",
                      prompts=folder / "no-prompts", direct=True)  # fmt: skip
    app = create_app(gateway)
    body = {"model": MODEL, "messages": MESSAGES}

    async def run(n: int) -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            started = time.perf_counter()
            for _ in range(n):
                answer = await client.post("/v1/chat/completions", json=body)
                assert answer.status_code == 200, answer.text
            return time.perf_counter() - started

    asyncio.run(run(50))  # warm-up: imports, connection pools, price lookups
    profiler = cProfile.Profile()
    profiler.enable()
    wall = asyncio.run(run(calls))
    profiler.disable()
    gateway.close()
    stats = pstats.Stats(profiler)
    per_call = wall / calls * 1000
    print(
        f"\nProfile: {calls} calls through the app in this process (ASGI transport, no "
        f"socket), {per_call:.2f} ms per call under cProfile (inflates small functions)."
    )
    buckets: dict[str, float] = {}
    total = 0.0
    for (path, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        key = _bucket(path)
        buckets[key] = buckets.get(key, 0.0) + tottime
    print("Own time by package (share of the profiled time):")
    for key, value in sorted(buckets.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {key:<28} {value / total:>6.1%}   {value / calls * 1000:>6.2f} ms/call")
    print("Cumulative time of the steps of one request (ms per call):")
    wanted = {  # (file, function): label
        ("llmops/server/app.py", "chat_completions"): "server: the endpoint (all below)",
        ("llmops/server/access.py", "admit"): "server: access.admit (virtual keys)",
        ("llmops/server/app.py", "_json_body"): "server: read and parse the body",
        ("llmops/gateway/gateway.py", "acomplete"): "gateway: Gateway.acomplete",
        ("llmops/gateway/gateway.py", "_prepare"): "gateway: _prepare",
        ("llmops/gateway/gateway.py", "_asend"): "gateway: _asend (the model call)",
        ("llmops/gateway/direct.py", "asend"): "gateway: direct.asend (aiohttp to upstream)",
        ("llmops/gateway/recorder.py", "record_response"): "gateway: recorder.record_response",
        ("llmops/server/app.py", "_completion_body"): "server: response -> JSON (model_dump)",
        ("llmops/store/writer.py", "put"): "store: writer.put (journal)",
    }
    seen: dict[str, float] = {}
    for (path, _, func), (_, _, _, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        for (where, name), label in wanted.items():
            if func == name and path.endswith(where):
                seen[label] = max(seen.get(label, 0.0), cumtime)
    for label, value in sorted(seen.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<42} {value / calls * 1000:>6.2f}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print("\nTop cumulative entries:\n" + "\n".join(out.getvalue().splitlines()[6:40]))


def _bucket(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/llmops/" in path:
        return "llmops." + path.split("/llmops/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith("<") or "/lib/python3" in path:
        return "python stdlib/builtins"
    return path


# -- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=600, help="timed calls per arm")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=50, help="calls per arm before timing")
    parser.add_argument("--litellm-proxy", metavar="PATH", help="the `litellm` executable")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16])
    parser.add_argument("--seconds", type=float, default=8.0, help="per throughput round")
    parser.add_argument("--throughput-rounds", type=int, default=3)
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args()
    if args.litellm_proxy and not Path(args.litellm_proxy).is_file():
        parser.error(f"--litellm-proxy {args.litellm_proxy}: no such file")
    with tempfile.TemporaryDirectory(prefix="llmops-bench-serve-") as tmp, upstream() as base:
        return run(args, Path(tmp), base)


def run(args: argparse.Namespace, folder: Path, base_url: str) -> int:
    per_round = max(1, args.calls // args.rounds)
    servers: list[Server] = []
    llmops_calls = 0
    try:
        one = llmops_server(folder, base_url, 1)
        servers.append(one)
        arms = [Arm("direct", sdk_call(base_url)), Arm("llmops serve", sdk_call(one.url + "/v1"))]
        if args.litellm_proxy:
            proxy = litellm_server(folder, args.litellm_proxy, base_url, 1)
            servers.append(proxy)
            arms.append(Arm("litellm proxy", sdk_call(proxy.url + "/v1")))
        interleave(arms, args.rounds, per_round, args.warmup, lambda: None)
        llmops_calls += args.warmup + args.rounds * per_round
        results = {arm.name: compare(arms[0], arm) for arm in arms[1:]}
        one.stop()
        servers.remove(one)
        if args.litellm_proxy:
            proxy.stop()
            servers.remove(proxy)

        rates: dict[int, dict[str, dict[str, float]]] = {}
        if not args.no_throughput:
            two = llmops_server(folder, base_url, 2)
            servers.append(two)
            targets = {"direct": f"{base_url}/chat/completions",
                       "llmops --workers 2": f"{two.url}/v1/chat/completions"}  # fmt: skip
            owners = {"llmops --workers 2": two}
            if args.litellm_proxy:
                proxy2 = litellm_server(folder, args.litellm_proxy, base_url, 2)
                servers.append(proxy2)
                targets["litellm --num_workers 2"] = f"{proxy2.url}/v1/chat/completions"
                owners["litellm --num_workers 2"] = proxy2
            for clients in args.concurrency:
                rates[clients] = throughput(
                    targets, clients, args.seconds, args.throughput_rounds, owners
                )
                ours = rates[clients]["llmops --workers 2"]
                llmops_calls += int(ours["calls"] + ours["warm"])
            two_code = two.stop()
            servers.remove(two)
            if two_code != 0:
                print(f"note: llmops --workers 2 exited {two_code} on SIGTERM")
    finally:
        for server in servers:
            server.stop()

    report(args, per_round, arms, results, rates)
    if args.profile:
        profile(folder, base_url, args.profile)
    rows = count_rows(f"sqlite:///{folder / 'llmops.db'}")
    print(f"\nRows: {rows} in llm_calls for {llmops_calls} answered llmops calls")
    if rows != llmops_calls:
        print("FAIL: the database does not hold exactly one row per llmops call",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def report(
    args: argparse.Namespace,
    per_round: int,
    arms: list[Arm],
    results: dict[str, dict[str, float]],
    rates: dict[int, dict[str, dict[str, float]]],
) -> None:
    from importlib.metadata import version

    print(f"llmops serve (uvicorn {version('uvicorn')}, litellm {version('litellm')}) against "
          "a FakeLLMServer child process; openai SDK "
          f"{version('openai')}, one call at a time, keep-alive.")  # fmt: skip
    print(
        f"{args.rounds} rounds x {per_round} calls per arm, rotating which arm goes first, "
        f"after {args.warmup} warm-up calls each; per-call wall time.\n"
    )
    print(f"{'arm':<16} {'calls':>6} {'median ms':>10} {'IQR ms':>7}")
    for arm in arms:
        q1, q3 = quartiles(arm.all)
        print(f"{arm.name:<16} {len(arm.all):>6} {median(arm.all) * 1e3:>10.2f} "
              f"{(q3 - q1) * 1e3:>7.2f}")  # fmt: skip
    print(f"\n{'arm':<16} {'added ms':>9} {'rounds min..max':>17} {'bootstrap 95% CI':>17}")
    for name, r in results.items():
        print(f"{name:<16} {r['added'] / 1e3:>+9.2f} "
              f"{r['round_min'] / 1e3:>+8.2f}..{r['round_max'] / 1e3:<+8.2f}"
              f"{r['ci_low'] / 1e3:>+8.2f}..{r['ci_high'] / 1e3:<+8.2f}")  # fmt: skip
    if "litellm proxy" in results:
        ours, theirs = results["llmops serve"]["added"], results["litellm proxy"]["added"]
        share = ours / theirs if theirs > 0 else float("inf")
        verdict = "met" if share <= GOAL_LATENCY_SHARE else "NOT MET"
        print(f"Goal: llmops adds <= {GOAL_LATENCY_SHARE:.0%} of LiteLLM's added latency: "
              f"{ours / 1e3:.2f} / {theirs / 1e3:.2f} ms = {share:.0%}: {verdict}")  # fmt: skip
    for clients, table in rates.items():
        print(
            f"\nThroughput, {clients} concurrent clients, {args.throughput_rounds} rounds of "
            f"{args.seconds:.0f} s per target (median calls/s; server CPU ms per call):"
        )
        for name, r in table.items():
            cpu = "" if r["cpu_ms"] != r["cpu_ms"] else f"  CPU {r['cpu_ms']:.1f} ms/call"
            print(f"  {name:<26} {r['rate']:>7.0f} calls/s  (rounds {r['min']:.0f}..{r['max']:.0f};"
                  f" {r['calls']} calls, {r['errors']} errors){cpu}")  # fmt: skip
        ours = table["llmops --workers 2"]["rate"]
        theirs = table.get("litellm --num_workers 2", {}).get("rate")
        if theirs:
            ratio = ours / theirs
            verdict = "met" if ratio >= GOAL_THROUGHPUT_RATIO else "NOT MET"
            print(f"Goal: llmops --workers 2 >= {GOAL_THROUGHPUT_RATIO:.0f}x LiteLLM's calls/s: "
                  f"{ratio:.2f}x: {verdict}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
