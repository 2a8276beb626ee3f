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
        texts = connection.execute(sa.text("SELECT response_text FROM llm_calls")).scalars().all()
        feedback = connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar_one()
    expected = {f"Echo: p{n}-{i}" for n in range(processes) for i in range(calls)}
    assert len(texts) == processes * calls
    assert set(texts) == expected
    assert feedback == processes * len(range(0, calls, 10))
