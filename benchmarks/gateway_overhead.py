"""Gateway overhead: the same calls through bare `litellm.completion` and through `gw.complete`.

Both run in one process against one local FakeLLMServer (in this process, as in the
tests), interleaved in rounds: each round N/rounds calls of each arm, rotating which goes
first, after a warm-up; between blocks of calls the benchmark waits (untimed) until the
gateway's writer is idle, so that its backlog does not slow down the next arm. The gateway
records every call to a SQLite file in a temporary folder (or to `--database-url`, or to a
throwaway PostgreSQL with `--postgres`). A second, network-free pair does the same with
`mock_response="hi"`, and an instrumented pass times the gateway's own code on either side
of `litellm.completion` (wall and CPU time of the calling thread). `--diagnose` adds a third
arm to each pair: a second gateway whose `writer.put` is stubbed on the instance (nothing
recorded), which separates the cost of the background writer from the rest. Goal: the
gateway adds under 5% and under 150 us per call. Exits non-zero when the database does not
hold exactly one row per gateway call.

Usage: python benchmarks/gateway_overhead.py [--calls N] [--rounds R] [--diagnose]
                                             [--database-url URL | --postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _common import bootstrap_median_diff, count_rows, median, quartiles, throwaway_postgres

MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You answer questions about parcels, briefly."},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Where is my parcel? The order number is 1234."},
]
GOAL_RATIO, GOAL_US = 0.05, 150.0
BARE, GATEWAY, STUBBED = "litellm.completion", "gw.complete", "gw.complete, put stubbed"


class Arm:
    """One way of making the call, with its per-call seconds kept per round."""

    def __init__(self, name: str, call: Callable[[], Any]) -> None:
        self.name, self.call = name, call
        self.rounds: list[list[float]] = []

    def run(self, n: int) -> None:
        call, clock, times = self.call, time.perf_counter, []
        for _ in range(n):
            start = clock()
            call()
            times.append(clock() - start)
        self.rounds.append(times)

    @property
    def all(self) -> list[float]:
        return [t for r in self.rounds for t in r]


def interleave(
    arms: list[Arm], rounds: int, per_round: int, warmup: int, settle: Callable[[], Any]
) -> None:
    """Warm up, then `rounds` rounds of `per_round` calls per arm, rotating the order.

    `settle` (untimed) runs after every block of calls: it waits until the gateway's writer
    is idle, so that its backlog does not slow down the arm that comes next."""
    for _ in range(warmup):
        for arm in arms:
            arm.call()
    settle()
    for i in range(rounds):
        shift = i % len(arms)
        for arm in arms[shift:] + arms[:shift]:
            arm.run(per_round)
            settle()


def compare(bare: Arm, arm: Arm) -> dict[str, float]:
    """Medians in microseconds, and the added time of `arm` over `bare`."""
    b, a = median(bare.all) * 1e6, median(arm.all) * 1e6
    per_round = sorted(
        (median(ar) - median(br)) * 1e6 for br, ar in zip(bare.rounds, arm.rounds, strict=True)
    )
    low, high = bootstrap_median_diff(bare.all, arm.all)
    q1, q3 = quartiles(arm.all)
    return {
        "median": a,
        "iqr": (q3 - q1) * 1e6,
        "ratio": a / b,
        "added": median(per_round),
        "share": median(per_round) / b,
        "round_min": per_round[0],
        "round_max": per_round[-1],
        "ci_low": low * 1e6,
        "ci_high": high * 1e6,
    }


@contextlib.contextmanager
def instrumented(gw: Any) -> Iterator[dict[str, tuple[list[float], list[float]]]]:
    """Time the gateway's own steps by wrapping bound methods on this one instance
    (llmops itself is untouched): `_prepare` (before litellm), `recorder.record_response`
    (after litellm returns: usage, price, the row), and `Writer.put` inside it. Each step gets its
    wall time and the calling thread's CPU time; the gap is time spent waiting (the GIL)."""
    names = ("_prepare", "record_response", "writer.put")
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    targets = ((gw, "_prepare"), (gw.recorder, "record_response"), (gw.writer, "put"))

    def timed(method: Callable[..., Any], key: str) -> Callable[..., Any]:
        wall, cpu = times[key]

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start, start_cpu = time.perf_counter(), time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                cpu.append(time.thread_time() - start_cpu)
                wall.append(time.perf_counter() - start)

        return wrapper

    for (owner, name), key in zip(targets, names, strict=True):
        setattr(owner, name, timed(getattr(owner, name), key))
    try:
        yield times
    finally:
        for owner, name in targets:
            delattr(owner, name)  # back to the class's method


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per arm and pair")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=100, help="calls per arm before timing")
    parser.add_argument("--diagnose", action="store_true", help="add the put-stubbed arm")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--database-url", help="record to this database instead of SQLite")
    target.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmops-bench-")))
        url = args.database_url
        if args.postgres:
            url = stack.enter_context(throwaway_postgres()).new_database("bench")
        return run(args, home, url)


def run(args: argparse.Namespace, home: Path, url: str | None) -> int:
    from llmops import litellm_loader
    from llmops.gateway.gateway import Gateway
    from llmops.simulate import FakeLLMServer
    from llmops.store.engine import display_url

    litellm = litellm_loader.load()  # configured exactly as the gateway configures it
    per_round = max(1, args.calls // args.rounds)
    gw = Gateway(database_url=url, home=home / "gw", prompts=home / "prompts", content="full")
    stubbed = None
    if args.diagnose:  # records nothing: its own SQLite, and put() is a no-op on the instance
        stubbed = Gateway(home=home / "stubbed", prompts=home / "prompts", content="full")
        stubbed.writer.put = lambda kind, row: None
    before = count_rows(gw.database_url)
    gateway_calls = 0

    def counted(call: Callable[[], Any]) -> Callable[[], Any]:
        def wrapper() -> Any:
            nonlocal gateway_calls
            gateway_calls += 1
            return call()

        return wrapper

    results: dict[str, dict[str, dict[str, float]]] = {}
    bare_medians: dict[str, tuple[float, float]] = {}
    with FakeLLMServer() as server:
        http = {"api_base": server.base_url, "api_key": "sk-test"}
        pairs = {"HTTP (FakeLLMServer)": http, "mock_response, no network": {"mock_response": "hi"}}
        for pair, kwargs in pairs.items():
            request = {"model": MODEL, "messages": MESSAGES, **kwargs}
            arms = [
                Arm(BARE, functools.partial(litellm.completion, **request)),
                Arm(GATEWAY, counted(functools.partial(gw.complete, **request))),
            ]
            if stubbed is not None:
                arms.append(Arm(STUBBED, functools.partial(stubbed.complete, **request)))
            interleave(arms, args.rounds, per_round, args.warmup, gw.flush)
            server.reset()  # the server keeps every request; forget them between pairs
            bare = arms[0]
            q1, q3 = quartiles(bare.all)
            bare_medians[pair] = (median(bare.all) * 1e6, (q3 - q1) * 1e6)
            results[pair] = {arm.name: compare(bare, arm) for arm in arms[1:]}
        # The gateway's own code on the caller's thread, outside litellm, on the HTTP path.
        with instrumented(gw) as steps:
            call = counted(functools.partial(gw.complete, model=MODEL, messages=MESSAGES, **http))
            for _ in range(max(per_round, 200)):
                call()
    flushed = gw.flush(timeout=120)
    stats = gw.writer.stats
    rows = count_rows(gw.database_url) - before
    where = display_url(gw.database_url)
    gw.close()
    if stubbed is not None:
        stubbed.close()

    n = args.rounds * per_round
    print(f"litellm {litellm_loader.price_map_source()}; database {where}; content=full")
    print(
        f"{args.rounds} rounds x {per_round} calls per arm, rotating which arm goes first, after "
        f"{args.warmup} warm-up calls each; per-call wall time, microseconds.\n"
    )
    print(f"{'pair':<27} {'arm':<25} {'calls':>5} {'median us':>10} {'IQR us':>7} {'x bare':>7}")
    for pair, arms_result in results.items():
        b, iqr = bare_medians[pair]
        print(f"{pair:<27} {BARE:<25} {n:>5} {b:>10.0f} {iqr:>7.0f} {1.0:>7.3f}")
        for name, r in arms_result.items():
            print(
                f"{'':<27} {name:<25} {n:>5} {r['median']:>10.0f} {r['iqr']:>7.0f} "
                f"{r['ratio']:>7.3f}"
            )
    print(
        f"\n{'pair':<27} {'arm':<25} {'added us':>8} {'rounds min..max':>17} "
        f"{'bootstrap 95% CI':>17} {'added %':>7}  goal: <5% and <150 us"
    )
    for pair, arms_result in results.items():
        for name, r in arms_result.items():
            met = r["share"] < GOAL_RATIO and r["added"] < GOAL_US
            print(
                f"{pair:<27} {name:<25} {r['added']:>+8.0f} "
                f"{r['round_min']:>+8.0f}..{r['round_max']:<+7.0f} "
                f"{r['ci_low']:>+7.0f}..{r['ci_high']:<+7.0f} {r['share']:>7.1%}  "
                f"{'met' if met else 'NOT MET'}"
            )
    print(
        "added = median over rounds of (median gw - median bare); the bootstrap interval is of\n"
        "the difference of the overall medians, resampling calls."
    )
    calls = len(steps["_prepare"][0])
    print(
        f"\nGateway code on the caller's thread, outside litellm (HTTP, {calls} calls, median us):"
    )
    for key, (wall, cpu) in steps.items():
        print(f"  {key:<17} wall {median(wall) * 1e6:>6.0f}   CPU {median(cpu) * 1e6:>5.0f}")
    print(
        "  wall minus CPU is time the caller waited, mostly for the GIL (uuid4's os.urandom\n"
        "  releases it; the writer thread, busy with an INSERT, may hold it for a while)."
    )
    print(
        f"\nRows: {gateway_calls} gateway calls, {rows} new rows in {where} after flush "
        f"(flush {'returned' if flushed else 'TIMED OUT'}; {stats})"
    )
    if not flushed or rows != gateway_calls or stats.spooled or stats.rejected:
        print("FAIL: the database does not hold exactly one row per gateway call", file=sys.stderr)
        return 1
    http = results["HTTP (FakeLLMServer)"][GATEWAY]
    met = http["share"] < GOAL_RATIO and http["added"] < GOAL_US
    print(
        f"Goal (HTTP pair, gw.complete): +{http['added']:.0f} us = {http['share']:.1%} per call: "
        f"{'met' if met else 'NOT MET'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
