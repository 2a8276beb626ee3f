"""Fixtures of the CLI tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from llmops.testing import Reply

M = 1_000_000


@pytest.fixture
def seeded(make_gateway, server, database_url):
    """Three days of calls with known token counts, so every cost is known by hand."""
    now = datetime.now(UTC).replace(microsecond=0)
    clock = {"t": now}
    gw = make_gateway(clock=lambda: clock["t"])
    plan = [  # (days ago, model, user, prompt tokens, completion tokens)
        (2, "gpt-4o-mini", "ann", 1000, 100),
        (2, "gpt-4o", "bob", 2000, 300),
        (1, "gpt-4o-mini", "ann", 500, 50),
        (0, "gpt-4o-mini", "bob", 800, 200),
        (0, "gpt-4o", "ann", 100, 10),
    ]
    price = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.0)}
    ids = []
    for days_ago, model, user, p, c in plan:
        clock["t"] = now - timedelta(days=days_ago, minutes=len(ids))
        server.enqueue(Reply(prompt_tokens=p, completion_tokens=c))
        result = gw.complete(
            model=model, messages=[{"role": "user", "content": "hi"}], user=user,
            api_base=server.base_url, api_key="sk-test", num_retries=0,
        )  # fmt: skip
        ids.append(result.call_id)
    gw.flush()
    expected = {}
    for days_ago, model, _, p, c in plan:
        day = (now - timedelta(days=days_ago)).date().isoformat()
        cell = expected.setdefault((day, model), [0, 0.0])
        cell[0] += 1
        cell[1] += p * price[model][0] / M + c * price[model][1] / M
    return database_url, ids, expected
