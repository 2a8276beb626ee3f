"""Several processes logging into one database at once, from a fresh start: no lost rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.gateway.gateway import NOT_SENT
from llmops.store.engine import create_engine

pytestmark = pytest.mark.integration  # every test starts Python processes

WORKER = """
import sys
from llmops import Gateway

url, home, base, calls, tag = sys.argv[1:]
gateway = Gateway(database_url=url, home=home, direct=True)  # the database is the subject
for i in range(int(calls)):
    result = gateway.complete(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"{tag}-{i}"}],
        api_base=base,
        api_key="sk-test",
        num_retries=0,
    )
    if i % 10 == 0:
        gateway.feedback(result.call_id, i % 5)
gateway.close()
"""


def test_processes_share_one_database(empty_database_url: str, server, tmp_path: Path) -> None:
    """Three processes make the schema (one does, the others wait) and store their calls."""
    database_url = empty_database_url
    processes, calls = 3, 60
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, database_url, str(tmp_path / "home"), server.base_url,
             str(calls), f"p{n}"],
            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]  # fmt: skip
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr
    with create_engine(database_url).connect() as connection:
        query = sa.text("SELECT response_text FROM llm_call_content")
        texts = connection.execute(query).scalars().all()
        feedback = connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar_one()
    expected = {f"Echo: p{n}-{i}" for n in range(processes) for i in range(calls)}
    assert len(texts) == processes * calls
    assert set(texts) == expected
    assert feedback == processes * len(range(0, calls, 10))


FIRST_STREAM = """
import sys, time
from llmops import Gateway

url, home, base = sys.argv[1:]
gateway = Gateway(database_url=url, home=home)
start = time.perf_counter()
with gateway.stream(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
    api_base=base, api_key="sk-test", num_retries=0,
) as stream:
    "".join(stream)
print(stream.result.ttft_ms, (time.perf_counter() - start) * 1000)
gateway.close()
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_first_call_of_a_process_times_only_the_model(
    database_url: str, server, tmp_path: Path
) -> None:
    """litellm imports about a hundred modules on its first call (1.4 s or more): the
    gateway warms it up before the timed region, so the first stream of a fresh process
    records the provider's time to first token, not the imports."""
    from llmops.testing import Reply

    server.enqueue(Reply(text="hello there", ttft=0.05))
    done = subprocess.run(
        [sys.executable, "-c", FIRST_STREAM, database_url, str(tmp_path / "home"),
         server.base_url],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ttft_ms, wall_ms = map(float, done.stdout.split())
    assert ttft_ms >= 50  # the scripted wait is in it
    # the first call paid for the imports (its wall time), its time to first token did not:
    # 98-111 ms of 5.2 s here, 0.9-1.0 s of 5.2-5.5 s without the warm-up (a fifth). A share
    # of the wall time, not a fixed bound: on a loaded machine (CI's other worker) both
    # grow, and a bound of 300 ms failed at 336 ms of 10.9 s and 766 ms of 16.2 s
    assert wall_ms - ttft_ms > 500 and ttft_ms < wall_ms / 10, (ttft_ms, wall_ms)


FIRST_ASYNC_CALL = """
import asyncio, json, sys, time
from llmops import Gateway
from tests.stalls import Stalls

url, home, base = sys.argv[1:]
gateway = Gateway(database_url=url, home=home)
ask = dict(model="gpt-4o-mini", api_base=base, api_key="sk-test", num_retries=0)


async def main():
    async with Stalls() as stalls:
        assert "litellm" not in sys.modules
        first = gateway.acomplete(messages=[{"role": "user", "content": "a"}], **ask)
        left = asyncio.create_task(first)
        await asyncio.sleep(0.3)  # litellm is being imported
        left.cancel()
        started = time.perf_counter()
        answer = await gateway.acomplete(messages=[{"role": "user", "content": "b"}], **ask)
        took = time.perf_counter() - started
    return {"took": took, "stalled": stalls.longest, "text": answer.text, "left": left.cancelled()}

print(json.dumps(asyncio.run(main())))
gateway.close()
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_first_async_call_imports_litellm_off_the_event_loop(
    database_url: str, server, tmp_path: Path
) -> None:
    """The first acomplete/astream of a process imported litellm (about 4 s) on the event
    loop: an app's every other task (a web server's requests) stopped for as long. It is now
    imported in a thread; a call cancelled while it waits is recorded as cancelled at cost 0
    (never sent)."""
    import json

    done = subprocess.run(
        [sys.executable, "-c", FIRST_ASYNC_CALL, database_url, str(tmp_path / "home"),
         server.base_url],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
        capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parents[2],  # where `tests.stalls` is imported from
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["stalled"] < 0.5, f"the event loop stopped for {seen['stalled']:.2f} s"
    assert seen["text"] == "Echo: b" and seen["left"]
    assert seen["took"] > 1.0, seen  # litellm was imported meanwhile
    with create_engine(database_url).connect() as connection:
        query = sa.text("SELECT status, cost_usd, price_source FROM llm_calls ORDER BY created_at")
        recorded = [tuple(row) for row in connection.execute(query)]
    assert recorded[0] == ("cancelled", 0.0, NOT_SENT), recorded
    assert recorded[1][0] == "ok" and recorded[1][1] > 0, recorded
