"""Several processes logging into one database at once, from a fresh start: no lost rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.store.engine import create_engine

pytestmark = pytest.mark.integration  # every test starts Python processes

WORKER = """
import sys
from llmops import Gateway

url, home, base, calls, tag = sys.argv[1:]
gateway = Gateway(database_url=url, home=home)
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


def test_processes_share_one_database(database_url: str, server, tmp_path: Path) -> None:
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
