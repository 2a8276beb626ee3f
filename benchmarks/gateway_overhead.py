"""Gateway overhead: the same calls through bare `litellm.completion` and through `gw.complete`.

Both run in one process against one local FakeLLMServer, interleaved in rounds (each round
N/rounds calls of each, alternating which goes first) after a warm-up, while the gateway
records every call to a SQLite file in a temporary folder (or to `--database-url`, or to a
throwaway PostgreSQL with `--postgres`). A second, network-free pair does the same with
`mock_response="hi"`, and an instrumented pass times the gateway's own code on either side
of `litellm.completion`. Goal: the gateway adds under 5% and under 150 us per call.
Exits non-zero when the database does not hold exactly one row per gateway call.

Usage: python benchmarks/gateway_overhead.py [--calls N] [--rounds R]
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


class Timed:
    """Per-call seconds of one arm, kept per round."""

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


def interleave(bare: Timed, gateway: Timed, rounds: int, per_round: int, warmup: int) -> None:
    for _ in range(warmup):
        bare.call()
        gateway.call()
    for i in range(rounds):
        for arm in (bare, gateway) if i % 2 == 0 else (gateway, bare):
            arm.run(per_round)


def summarize(bare: Timed, gateway: Timed) -> dict[str, float]:
    b, g = median(bare.all) * 1e6, median(gateway.all) * 1e6
    per_round = sorted(
        (median(gr) - median(br)) * 1e6 for br, gr in zip(bare.rounds, gateway.rounds, strict=True)
    )
    low, high = bootstrap_median_diff(bare.all, gateway.all)
    return {
        "bare": b,
        "gateway": g,
        "ratio": g / b,
        "added": median(per_round),
        "round_min": per_round[0],
        "round_max": per_round[-1],
        "ci_low": low * 1e6,
        "ci_high": high * 1e6,
        "bare_iqr": (quartiles(bare.all)[1] - quartiles(bare.all)[0]) * 1e6,
        "gw_iqr": (quartiles(gateway.all)[1] - quartiles(gateway.all)[0]) * 1e6,
    }


@contextlib.contextmanager
def instrumented(gw: Any) -> Iterator[dict[str, list[float]]]:
    """Time the gateway's own steps by wrapping bound methods on this one instance
    (llmops itself is untouched): `_prepare` (before litellm), `_record_response` (after
    litellm returns, including `_record`), and `Writer.put` inside it."""
    times: dict[str, list[float]] = {"_prepare": [], "_record_response": [], "writer.put": []}

    def wrap(owner: Any, name: str, key: str) -> None:
        method = getattr(owner, name)

        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                times[key].append(time.perf_counter() - start)

        setattr(owner, name, timed)

    wrap(gw, "_prepare", "_prepare")
    wrap(gw, "_record_response", "_record_response")
    wrap(gw.writer, "put", "writer.put")
    try:
        yield times
    finally:
        for owner, name in ((gw, "_prepare"), (gw, "_record_response"), (gw.writer, "put")):
            delattr(owner, name)  # back to the class's method


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per arm and pair")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=100, help="calls per arm before timing")
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
    from llmops.gateway import _litellm
    from llmops.gateway.gateway import Gateway
    from llmops.store.engine import display_url
    from llmops.testing import FakeLLMServer

    litellm = _litellm.load()  # configured exactly as the gateway configures it
    per_round = max(1, args.calls // args.rounds)
    gw = Gateway(database_url=url, home=home, prompts=home / "prompts", content="full")
    before = count_rows(gw.database_url)
    gateway_calls = 0

    def counted(call: Callable[[], Any]) -> Callable[[], Any]:
        def wrapper() -> Any:
            nonlocal gateway_calls
            gateway_calls += 1
            return call()

        return wrapper

    results: dict[str, dict[str, float]] = {}
    with FakeLLMServer() as server:
        http = {"api_base": server.base_url, "api_key": "sk-test"}
        mock = {"mock_response": "hi"}
        pairs = {"HTTP (FakeLLMServer)": http, "mock_response, no network": mock}
        for pair, kwargs in pairs.items():
            bare = Timed(
                "litellm.completion",
                functools.partial(litellm.completion, model=MODEL, messages=MESSAGES, **kwargs),
            )
            gateway = Timed(
                "gw.complete",
                counted(functools.partial(gw.complete, model=MODEL, messages=MESSAGES, **kwargs)),
            )
            interleave(bare, gateway, args.rounds, per_round, args.warmup)
            server.reset()  # the server keeps every request; forget them between pairs
            results[pair] = summarize(bare, gateway)
        # The gateway's own code, outside litellm, on the HTTP path.
        with instrumented(gw) as steps:
            call = counted(functools.partial(gw.complete, model=MODEL, messages=MESSAGES, **http))
            for _ in range(max(per_round, 200)):
                call()
    flushed = gw.flush(timeout=120)
    stats = gw.writer.stats
    rows = count_rows(gw.database_url) - before
    where = display_url(gw.database_url)
    gw.close()

    print(f"litellm {_litellm.price_map_source()}; database {where}; content=full")
    print(
        f"{args.rounds} rounds x {per_round} calls per arm, alternating which arm goes first, "
        f"after {args.warmup} warm-up calls each; per-call wall time.\n"
    )
    print(f"{'pair':<27} {'arm':<19} {'calls':>5} {'median us':>10} {'IQR us':>7} {'x bare':>7}")
    for pair, r in results.items():
        n = args.rounds * per_round
        print(f"{pair:<27} {'litellm.completion':<19} {n:>5} {r['bare']:>10.0f} "
              f"{r['bare_iqr']:>7.0f} {1.0:>7.3f}")  # fmt: skip
        print(f"{'':<27} {'gw.complete':<19} {n:>5} {r['gateway']:>10.0f} "
              f"{r['gw_iqr']:>7.0f} {r['ratio']:>7.3f}")  # fmt: skip
    print(
        f"\n{'pair':<27} {'added us/call':>13} {'rounds min..max':>17} "
        f"{'bootstrap 95% CI':>18} {'added %':>8}  goal (<5% and <150 us)"
    )
    verdicts = []
    for pair, r in results.items():
        share = r["added"] / r["bare"]
        met = share < GOAL_RATIO and r["added"] < GOAL_US
        verdicts.append(met)
        print(
            f"{pair:<27} {r['added']:>+13.0f} {r['round_min']:>+8.0f}..{r['round_max']:<+7.0f} "
            f"{r['ci_low']:>+8.0f}..{r['ci_high']:<+8.0f} {share:>8.1%}  "
            f"{'met' if met else 'NOT MET'}"
        )
    print("  (added = median over rounds of median(gw.complete) - median(litellm.completion))")
    prepare, record, put = (median(steps[k]) * 1e6 for k in steps)
    print(
        f"\nGateway code around litellm.completion (HTTP, {len(steps['_prepare'])} calls, "
        f"median us): _prepare {prepare:.0f}, _record_response {record:.0f} "
        f"(of which writer.put {put:.0f}); total {prepare + record:.0f}"
    )
    http_added = results["HTTP (FakeLLMServer)"]["added"]
    print(
        f"  the rest of the added time, ~{http_added - prepare - record:.0f} us, is indirect: "
        "the writer thread's inserts competing for the GIL and the 2 cores"
    )
    print(
        f"\nRows: {gateway_calls} gateway calls, {rows} new rows in {where} after flush "
        f"(flush {'returned' if flushed else 'TIMED OUT'}; writer stats: {stats})"
    )
    if not flushed or rows != gateway_calls or stats.spooled or stats.rejected:
        print("FAIL: the database does not hold exactly one row per gateway call", file=sys.stderr)
        return 1
    http_met = verdicts[0]
    print(f"Goal (HTTP pair): {'met' if http_met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
