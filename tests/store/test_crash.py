"""SIGKILL at random moments loses no call whose ``complete()`` returned.

A child process makes calls (HTTP to the local model server, litellm's mock, and streams)
while a CPU-busy thread starves the writer thread of the GIL, prints each call id (and
feedback id) once the call returned, and is SIGKILLed at a random moment. The next process
replays the journal. Every printed id must be stored, exactly once; on PostgreSQL some runs
happen while the database is down.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.store.engine import check_schema, create_engine

pytestmark = pytest.mark.integration  # every test starts and kills Python processes

CHILD = """
import sys, threading
from llmops import Gateway

url, home, base = sys.argv[1:4]

def spin():  # a CPU-busy app thread: the writer thread hardly gets the GIL
    x = 0
    while True:
        x += 1

gateway = Gateway(database_url=url, home=home, retry_interval=0.05)
messages = [{"role": "user", "content": "Where is my parcel?"}]
http = {"api_base": base, "api_key": "sk-test", "num_retries": 0, "max_retries": 0}
i = 0
while True:
    if i == 1:  # litellm is loaded (its import under a busy thread would take minutes)
        threading.Thread(target=spin, daemon=True).start()
    if i % 5 == 4:
        with gateway.stream(model="gpt-4o-mini", messages=messages, **http) as stream:
            for _ in stream:
                pass
        call_id = stream.call_id
    elif i % 2:
        call_id = gateway.complete(model="gpt-4o-mini", messages=messages, **http).call_id
    else:
        call_id = gateway.complete(
            model="gpt-4o-mini", messages=messages, mock_response="On its way."
        ).call_id
    sys.stdout.write(f"call {call_id}\\n")
    sys.stdout.flush()
    if i % 7 == 3:
        sys.stdout.write(f"feedback {gateway.feedback(call_id, 1)}\\n")
        sys.stdout.flush()
    i += 1
"""


def run_and_kill(url: str, home: Path, base: str, delay: float) -> tuple[set[str], set[str]]:
    """Start the child, SIGKILL it ``delay`` seconds after its first call; the ids it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(home), base],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    assert child.stdout is not None
    lines: list[bytes] = []
    try:
        lines.append(child.stdout.readline())  # the first call: litellm is loaded
        time.sleep(delay)
    finally:
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=60)
    calls, feedback = set(), set()
    for line in b"".join(lines).decode().splitlines() + rest.decode().splitlines():
        kind, _, value = line.partition(" ")
        if kind == "call" and len(value) == 36:
            calls.add(value)
        elif kind == "feedback" and len(value) == 36:
            feedback.add(value)
    return calls, feedback


def replay(url: str, home: Path) -> None:
    """The next process: a gateway that starts and closes replays what the dead ones left."""
    from llmops import Gateway

    Gateway(database_url=url, home=home, retry_interval=0.05).close()


def stored_ids(url: str, table: str) -> list[str]:
    with create_engine(url).connect() as connection:
        return list(connection.execute(sa.text(f"SELECT id FROM {table}")).scalars())


def crash_runs(url: str, home: Path, base: str, runs: int, *, seed: int, outage=None) -> None:
    check_schema(create_engine(url))
    rng = random.Random(seed)
    printed_calls: set[str] = set()
    printed_feedback: set[str] = set()
    for run in range(runs):
        down = outage is not None and run % 2 == 1
        if down:
            outage.stop()
        try:
            calls, feedback = run_and_kill(url, home, base, rng.uniform(0.05, 2.0))
        finally:
            if down:
                outage.start()
        assert calls, "the child made no call before it was killed"
        printed_calls |= calls
        printed_feedback |= feedback
    replay(url, home)
    calls, feedback = stored_ids(url, "llm_calls"), stored_ids(url, "feedback")
    assert len(calls) == len(set(calls)) and len(feedback) == len(set(feedback))  # no duplicate
    lost = printed_calls - set(calls)
    assert not lost, f"seed {seed}: {len(lost)} of {len(printed_calls)} completed calls lost"
    lost_feedback = printed_feedback - set(feedback)
    assert not lost_feedback, f"seed {seed}: {len(lost_feedback)} feedback rows lost"
    # A kill between the record and the print leaves at most a call or two per run unprinted.
    assert len(set(calls) - printed_calls) <= 2 * runs
    assert not list((home / "spool").glob("*.jsonl")), "the replay left journal files"
    # the hash chains survive killed writers and replays: no gap, no break
    from llmops.audit.verify import verify

    engine = create_engine(url)
    try:
        result = verify(engine)
    finally:
        engine.dispose()
    assert result.ok, f"seed {seed}: {result.breaks[:5]}"
    assert result.checked == {"llm_calls": len(calls), "feedback": len(feedback)}


def test_sigkill_loses_no_completed_call_on_sqlite(server, tmp_path: Path) -> None:
    seed = random.randrange(10**6)
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    crash_runs(url, tmp_path / "home", server.base_url, 4, seed=seed)


def test_sigkill_loses_no_completed_call_on_postgres(
    server, postgres_server, postgres_url, tmp_path: Path
) -> None:
    seed = random.randrange(10**6)
    crash_runs(
        postgres_url, tmp_path / "home", server.base_url, 4, seed=seed, outage=postgres_server
    )
