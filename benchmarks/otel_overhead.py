"""OpenTelemetry export overhead: what the exporter adds to the app's call path, and what its
background thread costs.

Pair 1 (`Recorder.put`): the gateway's real `Recorder.put` with a realistic call row (three
chat messages, a 300-character answer, usage, cost, tags, a session), its writer replaced by
a sink that drops rows, with and without a `CallSpanExporter` among its observers. Both arms
run in one process, interleaved in rounds, rotating which goes first; each timed block of
puts is followed (untimed) by `exporter.flush()`, so that the export thread is idle when the
next block starts and its queue never overflows (the script checks that nothing was dropped).
The export thread works *during* the timed blocks of the exporter arm, as in an app: its CPU
competes for the GIL. The exporter sends real OTLP/HTTP protobuf to a receiver in a child
process (`--sink discard` swaps in an exporter that drops spans, to separate the encoding and
HTTP cost). Background CPU per exported call = (process CPU of the exporter arm, flushes
included, minus the bare arm's) / calls.

Pair 2 (`--gateway`): `gw.complete` against the local FakeLLMServer, exporter off vs on
(two gateways), interleaved the same way.

Usage: python benchmarks/otel_overhead.py [--calls N] [--rounds R] [--block B] [--content]
                                          [--sink otlp|discard] [--gateway]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import bootstrap_median_diff, median, quartiles

MESSAGES = [
    {"role": "system", "content": "You answer questions about parcels, briefly."},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "Where is my parcel? The order number is 1234."},
]
ANSWER = ("Your parcel left the depot this morning and should arrive tomorrow. " * 5)[:300]

RECEIVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
    """
)


def call_row(i: int) -> dict[str, Any]:
    """A row as the recorder builds it for a priced chat call."""
    return {
        "id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC),
        "source": "app",
        "prompt_name": "support/answer",
        "prompt_version": "3f2a9c1",
        "git_commit": "9c1e0b7d4a5f6e3c2b1a0f9e8d7c6b5a4f3e2d1c",
        "model": "openai/gpt-4o-mini",
        "provider": "openai",
        "status": "ok",
        "error_type": None,
        "error_message": None,
        "prompt_tokens": 412 + i % 7,
        "completion_tokens": 61,
        "cached_tokens": 256,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": 0.0000822,
        "cost_status": "priced",
        "price_source": "litellm-1.110.2",
        "latency_ms": 812.345,
        "ttft_ms": None,
        "user_id": "user-7",
        "session_id": f"sess-{i % 50}",
        "tags": ["checkout", "eu"],
        "metadata": {"order": 1234},
        "request": {"messages": MESSAGES, "params": {"temperature": 0.2, "max_tokens": 300}},
        "response_text": ANSWER,
        "usage_details": {"served_model": "gpt-4o-mini-2024-07-18"},
    }


class DropSink:
    """The writer's place: takes rows and keeps none."""

    def put(self, kind: Any, row: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """An OTLP/HTTP receiver in a child process that answers 200 and keeps nothing."""
    child = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(10)


def discard_exporter() -> Any:
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    return Discard()


class Arm:
    """One way of recording, timed per block of calls (seconds per call, per block)."""

    def __init__(self, name: str, call: Callable[[int], Any], settle: Callable[[], Any]) -> None:
        self.name, self.call, self.settle = name, call, settle
        self.blocks: list[float] = []
        self.cpu = 0.0  # process CPU seconds over the timed blocks and their settling
        self.calls = 0

    def run(self, start: int, n: int) -> None:
        call, clock = self.call, time.perf_counter
        cpu0 = time.process_time()
        t0 = clock()
        for i in range(start, start + n):
            call(i)
        self.blocks.append((clock() - t0) / n)
        self.settle()
        self.cpu += time.process_time() - cpu0
        self.calls += n


def interleave(arms: list[Arm], rounds: int, blocks: int, block: int) -> None:
    for arm in arms:  # warm-up
        arm.run(0, block)
        arm.blocks.clear()
        arm.cpu, arm.calls = 0.0, 0
    for r in range(rounds):
        shift = r % len(arms)
        for arm in arms[shift:] + arms[:shift]:
            for b in range(blocks):
                arm.run((r * blocks + b) * block, block)


def report(base: Arm, arm: Arm, unit: float = 1e6) -> None:
    b, a = median(base.blocks) * unit, median(arm.blocks) * unit
    low, high = bootstrap_median_diff(base.blocks, arm.blocks)
    q1, q3 = quartiles(arm.blocks)
    bq1, bq3 = quartiles(base.blocks)
    print(f"  {base.name:<34} median {b:9.3f} us/call  IQR {(bq3 - bq1) * unit:.3f}")
    print(f"  {arm.name:<34} median {a:9.3f} us/call  IQR {(q3 - q1) * unit:.3f}")
    print(
        f"  added on the call path: {a - b:+.3f} us/call "
        f"(95% CI {low * unit:+.3f} .. {high * unit:+.3f}; {len(arm.blocks)} blocks per arm)"
    )


def recorder_pair(args: argparse.Namespace) -> int:
    from llmops.control.otel import CallSpanExporter
    from llmops.gateway.recorder import Recorder
    from llmops.pricing.prices import PriceBook

    span_exporter = discard_exporter() if args.sink == "discard" else None
    exporter = CallSpanExporter(span_exporter, capture_content=args.content)
    rows = [call_row(i) for i in range(args.pool)]
    bare = Recorder(DropSink(), PriceBook({}), content="full", source="app")
    observed = Recorder(DropSink(), PriceBook({}), content="full", source="app")
    observed.observers.append(exporter)
    pool = len(rows)
    arms = [
        Arm("Recorder.put, no observer", lambda i: bare.put("call", rows[i % pool]), lambda: None),
        Arm(
            "Recorder.put, CallSpanExporter",
            lambda i: observed.put("call", rows[i % pool]),
            lambda: exporter.flush(60),
        ),
    ]
    blocks = max(1, args.calls // (args.rounds * args.block))
    interleave(arms, args.rounds, blocks, args.block)
    stats = exporter.stats
    print(
        f"Recorder.put with a realistic call row; sink={args.sink}, content="
        f"{'on' if args.content else 'off'}; {arms[1].calls} calls per arm, blocks of "
        f"{args.block}"
    )
    report(arms[0], arms[1])
    background = (arms[1].cpu - arms[0].cpu) / arms[1].calls * 1e6
    print(f"  background CPU (export thread, SDK, OTLP encoding + HTTP): {background:.1f} us/call")
    print(f"  exporter stats: {stats}")
    exporter.shutdown(10)
    expected = arms[1].calls + args.block  # the warm-up block too
    if stats["dropped"] or stats["errors"] or stats["spans_sent"] != expected:
        print(f"error: expected {expected} spans sent, nothing dropped", file=sys.stderr)
        return 1
    return 0


def gateway_pair(args: argparse.Namespace, home: Path) -> int:
    from llmops.control.otel import CallSpanExporter
    from llmops.gateway.gateway import Gateway
    from llmops.simulate import FakeLLMServer

    exporter = CallSpanExporter(capture_content=args.content)
    plain = Gateway(home=home / "plain", prompts=home / "prompts", content="full")
    traced = Gateway(home=home / "traced", prompts=home / "prompts", content="full")
    traced.recorder.observers.append(exporter)
    with FakeLLMServer() as server:
        request = {
            "model": "openai/gpt-4o-mini",
            "messages": MESSAGES,
            "api_base": server.base_url,
            "api_key": "sk-test",
        }

        def settle() -> None:
            plain.flush(60)
            traced.flush(60)
            exporter.flush(60)
            server.reset()

        arms = [
            Arm("gw.complete, exporter off", lambda i: plain.complete(**request), settle),
            Arm("gw.complete, exporter on", lambda i: traced.complete(**request), settle),
        ]
        block = max(1, args.gateway_calls // (args.rounds * 4))
        interleave(arms, args.rounds, 4, block)
    print(
        f"\ngw.complete against FakeLLMServer (HTTP); {arms[1].calls} calls per arm, blocks "
        f"of {block}"
    )
    report(arms[0], arms[1])
    print(f"  exporter stats: {exporter.stats}")
    exporter.shutdown(10)
    plain.close()
    traced.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="timed puts per arm")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--block", type=int, default=1000, help="puts per timed block")
    parser.add_argument("--pool", type=int, default=2000, help="distinct rows cycled")
    parser.add_argument("--content", action="store_true", help="export message content")
    parser.add_argument("--sink", choices=("otlp", "discard"), default="otlp")
    parser.add_argument("--gateway", action="store_true", help="also time gw.complete")
    parser.add_argument("--gateway-calls", type=int, default=4000)
    args = parser.parse_args()
    for key in [k for k in os.environ if k.startswith("OTEL_")]:
        del os.environ[key]
    with receiver() as url, tempfile.TemporaryDirectory(prefix="llmops-bench-") as tmp:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
        code = recorder_pair(args)
        if args.gateway:
            code = max(code, gateway_pair(args, Path(tmp)))
    return code


if __name__ == "__main__":
    sys.exit(main())
