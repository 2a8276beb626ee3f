"""Re-pricing stored calls: costs change in the calls and in the daily rollups alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from llmops.gateway.accounting import ModelPrice, PriceBook
from llmops.gateway.repricing import recompute_costs
from llmops.store.engine import check_schema, create_engine
from llmops.store.tables import CALLS
from tests.store.test_rollups import assert_rollups_match
from tests.store.test_writer import call_row, store_rows

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def test_recompute_updates_calls_and_rollups(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    rows = [
        call_row(
            model=model, created_at=NOW - timedelta(hours=7 * i), prompt_tokens=1000,
            completion_tokens=500, cost_usd=cost, cost_status=status, price_source="test",
        )
        for i in range(30)
        for model, cost, status in (("acme-x", None, "unpriced"), ("gpt-4o-mini", 9.0, "priced"))
    ]  # fmt: skip
    store_rows(engine, tmp_path / "spool", rows)

    def costs(model: str) -> set:
        with engine.connect() as connection:
            query = sa.select(CALLS.c.cost_usd, CALLS.c.cost_status).where(CALLS.c.model == model)
            return set(connection.execute(query).all())

    custom = PriceBook({"acme-x": ModelPrice(input_per_million=2, output_per_million=6)})
    report = recompute_costs(engine, custom, since=NOW - timedelta(days=30))
    assert (report.examined, report.changed) == (60, 60)
    assert costs("acme-x") == {(1000 * 2e-6 + 500 * 6e-6, "custom")}
    assert {status for _, status in costs("gpt-4o-mini")} == {"priced"}
    assert_rollups_match(engine)

    # every change in this batch sets the cost to NULL (unpriced) again
    report = recompute_costs(engine, PriceBook(), since=NOW - timedelta(days=30), model="acme-x")
    assert report.changed == 30 and report.unpriced == 30
    assert costs("acme-x") == {(None, "unpriced")}
    assert_rollups_match(engine)
