"""Re-pricing stored calls: costs change in the calls and in the daily rollups alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.pricing.prices import ModelPrice, PriceBook
from llmops.pricing.recompute import recompute_costs
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

    # without the custom price acme-x cannot be priced: it keeps its cost, loudly...
    report = recompute_costs(engine, PriceBook(), since=NOW - timedelta(days=30), model="acme-x")
    assert (report.changed, report.kept, report.kept_models) == (0, 30, {"acme-x": 30})
    assert costs("acme-x") == {(1000 * 2e-6 + 500 * 6e-6, "custom")}
    # ...unless asked: then every change in this batch sets the cost to NULL (unpriced) again
    report = recompute_costs(
        engine, PriceBook(), since=NOW - timedelta(days=30), model="acme-x", allow_unpriced=True
    )
    assert report.changed == 30 and report.unpriced == 30
    assert costs("acme-x") == {(None, "unpriced")}
    assert_rollups_match(engine)


def test_recompute_prices_a_count_too_large_for_its_column_as_reported(
    database_url: str, tmp_path: Path
) -> None:
    """3 billion prompt tokens do not fit llm_calls.prompt_tokens (NULL there, as reported
    in usage_details.out_of_range): re-pricing counts them; it skipped the call."""
    engine = create_engine(database_url)
    check_schema(engine)
    row = call_row(
        model="acme-x", created_at=NOW - timedelta(hours=1), prompt_tokens=3_000_000_000,
        completion_tokens=500, cost_usd=None, cost_status="unpriced",
    )  # fmt: skip
    store_rows(engine, tmp_path / "spool", [row, call_row(model="acme-x", prompt_tokens=None)])
    custom = PriceBook({"acme-x": ModelPrice(input_per_million=2, output_per_million=6)})
    report = recompute_costs(engine, custom, since=NOW - timedelta(days=1))
    assert (report.examined, report.changed) == (1, 1)  # a call without usage is left alone
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(CALLS.c.prompt_tokens, CALLS.c.cost_usd).where(CALLS.c.id == row["id"])
        ).one()
    assert stored.prompt_tokens is None
    assert stored.cost_usd == pytest.approx(3_000_000_000 * 2e-6 + 500 * 6e-6, rel=1e-12)


def test_recompute_reproduces_every_stored_price(server, database_url: str, tmp_path: Path):
    """Issue: a call priced through the model that served it went back to unpriced. Every
    dimension the gateway priced is stored (usage_details), so the same price map gives the
    same costs, exactly."""
    from llmops import Gateway
    from llmops.testing import Reply

    gw = Gateway(database_url=database_url, home=tmp_path / "home", prompts=tmp_path / "none")
    messages = [{"role": "user", "content": "hi"}]
    openai = {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}
    calls = [
        ({"model": "azure/gpt-4o", "api_base": server.url, "api_key": "k", "api_version":
          "2024-10-21"}, Reply(prompt_tokens=1000, completion_tokens=100,
                               model="gpt-4o-mini-2024-07-18")),
        ({"model": "openai/o3", **openai, "service_tier": "flex"},
         Reply(prompt_tokens=20000, cached_tokens=5000, completion_tokens=4000,
               reasoning_tokens=3000, service_tier="flex")),
        ({"model": "anthropic/claude-sonnet-4-5", "api_base": server.anthropic_base_url,
          "api_key": "k"}, Reply(prompt_tokens=9000, cached_tokens=1000,
                                 cache_write_tokens=5000, cache_write_1h_tokens=3000,
                                 completion_tokens=300)),
        ({"model": "openai/gpt-4o-audio-preview-2024-12-17", **openai},
         Reply(prompt_tokens=3000, audio_input_tokens=2500, completion_tokens=1200,
               audio_output_tokens=1000)),
        ({"model": "gemini/gemini-2.5-flash", "api_base": server.gemini_base_url,
          "api_key": "k"}, Reply(prompt_tokens=20000, cached_tokens=8000,
                                 audio_input_tokens=5000, cached_audio_tokens=3000,
                                 completion_tokens=1000, grounding_queries=["a", "b"])),
        ({"model": "openai/gpt-6-astra", **openai},
         Reply(prompt_tokens=10000, cache_write_tokens=3000, cache_write_12h_tokens=2000,
               completion_tokens=100)),
        ({"model": "anthropic/claude-opus-4-8", "api_base": server.anthropic_base_url,
          "api_key": "k"}, Reply(prompt_tokens=1000, completion_tokens=200,
                                 inference_geo="us", speed="fast")),
        ({"model": "perplexity/sonar-deep-research", **openai},
         Reply(prompt_tokens=108, completion_tokens=3256, usage_fields={
             "citation_tokens": 7299, "num_search_queries": 74, "reasoning_tokens": 73248,
             "search_context_size": "low", "completion_tokens_details": None})),
        ({"model": "openrouter/deepseek/deepseek-chat", **openai},  # the bill it reports
         Reply(prompt_tokens=3000, completion_tokens=400, usage_fields={"cost": 0.02124})),
    ]  # fmt: skip
    for params, reply in calls:
        server.enqueue(reply)
        gw.complete(messages=messages, **params)
    # OpenAI's EU host (x1.1 for gpt-6-sol): not reachable here, so litellm's mock answer
    gw.complete(messages=messages, model="gpt-6-sol", api_key="sk-test", mock_response="hi",
                api_base="https://eu.api.openai.com/v1")  # fmt: skip
    gw.close()
    engine = create_engine(database_url)
    with engine.connect() as connection:
        query = sa.select(CALLS.c.model, CALLS.c.cost_usd, CALLS.c.usage_details)
        before = {row.model: row for row in connection.execute(query)}
    assert before["azure/gpt-4o"].usage_details["served_model"] == "gpt-4o-mini-2024-07-18"
    assert before["openai/o3"].usage_details["service_tier"] == "flex"
    split = before["anthropic/claude-sonnet-4-5"].usage_details
    assert split["cache_write_1h_tokens"] == 3000
    assert before["openai/gpt-6-astra"].usage_details["cache_write_12h_tokens"] == 2000
    where = before["anthropic/claude-opus-4-8"].usage_details
    assert (where["inference_geo"], where["speed"]) == ("us", "fast")
    assert before["anthropic/claude-opus-4-8"].cost_usd == pytest.approx(0.022)
    eu = before["gpt-6-sol"]
    assert eu.usage_details["data_residency"] == "eu"
    assert eu.cost_usd == pytest.approx((10 * 2 + 20 * 10) / 1e6 * 1.1)  # mock: 10 in, 20 out
    assert before["perplexity/sonar-deep-research"].cost_usd == pytest.approx(0.630606)
    routed = before["openrouter/deepseek/deepseek-chat"]
    assert (routed.cost_usd, routed.usage_details["billed_usd"]) == (0.02124, 0.02124)
    report = recompute_costs(engine, PriceBook(), since=datetime.now(UTC) - timedelta(hours=1))
    assert (report.examined, report.changed, report.kept) == (10, 0, 0)
    assert report.new_total_usd == pytest.approx(report.old_total_usd, rel=1e-12)


def test_off_peak_calls_keep_their_rates_through_recompute(server, database_url, tmp_path):
    """A DeepSeek call is billed at the rates of when it ended (the map's off-peak block),
    and `costs recompute` prices it the same way from its stored time and latency."""
    from llmops import Gateway
    from llmops.testing import Reply

    sunday, monday = datetime(2026, 12, 6, 12, tzinfo=UTC), datetime(2026, 12, 7, 2, tzinfo=UTC)
    for at in (sunday, monday):
        gw = Gateway(database_url=database_url, home=tmp_path / "home", clock=lambda at=at: at,
                     prompts=tmp_path / "none")  # fmt: skip
        server.enqueue(Reply(prompt_tokens=1_000_000, completion_tokens=1_000_000))
        gw.complete(model="deepseek/deepseek-v4-flash", api_base=server.base_url,
                    api_key="sk-test", num_retries=0,
                    messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        gw.close()
    engine = create_engine(database_url)
    with engine.connect() as connection:
        query = sa.select(CALLS.c.cost_usd, CALLS.c.cost_status).order_by(CALLS.c.created_at)
        stored = [tuple(row) for row in connection.execute(query)]
    assert stored == [(pytest.approx(0.75), "priced"), (pytest.approx(1.5), "priced")]
    report = recompute_costs(engine, PriceBook(), since=sunday - timedelta(hours=1))
    assert (report.examined, report.changed) == (2, 0)


def test_prices_given_in_code_are_kept_by_recompute(server, database_url: str, tmp_path):
    from llmops import Gateway

    prices = {"openai/acme-1": {"input_per_million": 1, "output_per_million": 2}}
    gw = Gateway(database_url=database_url, home=tmp_path / "home", prompts=tmp_path / "none",
                 prices=prices)  # fmt: skip
    gw.complete(model="openai/acme-1", messages=[{"role": "user", "content": "hi"}],
                api_base=server.base_url, api_key="k", num_retries=0)  # fmt: skip
    gw.close()
    engine = create_engine(database_url)
    with engine.connect() as connection:
        source = connection.execute(sa.select(CALLS.c.price_source)).scalar_one()
    assert source == "custom:mapping"
    since = datetime.now(UTC) - timedelta(hours=1)
    assert recompute_costs(engine, PriceBook(), since=since).examined == 0
    report = recompute_costs(engine, PriceBook(), since=since, include_overrides=True)
    assert (report.examined, report.kept, report.changed) == (1, 1, 0)  # loudly kept


def test_recompute_is_an_audit_event_and_the_chains_still_verify(
    database_url: str, tmp_path: Path
) -> None:
    """Re-pricing changes stored costs on purpose: an event that `audit verify` lists, not
    a break (the hashes do not cover the cost columns); a dry run records nothing."""
    from llmops.audit.verify import verify
    from llmops.store.audit_log import list_events

    engine = create_engine(database_url)
    check_schema(engine)
    rows = [call_row(model="acme-x", created_at=NOW - timedelta(hours=i), prompt_tokens=1000,
                     completion_tokens=500, cost_usd=None, cost_status="unpriced")
            for i in range(5)]  # fmt: skip
    store_rows(engine, tmp_path / "spool", rows)
    custom = PriceBook({"acme-x": ModelPrice(input_per_million=2, output_per_million=6)})
    recompute_costs(engine, custom, since=NOW - timedelta(days=1), dry_run=True)
    assert [e.kind for e in list_events(engine)] == ["chain_start"]
    recompute_costs(engine, custom, since=NOW - timedelta(days=1))
    result = verify(engine)
    assert result.ok, result.breaks
    (event,) = result.events
    assert (event.kind, event.rows, event.intact) == ("recompute", 5, True)
    assert event.details is not None and event.details["new_total_usd"] == pytest.approx(0.025)
    assert event.details["old_total_usd"] == 0 and "@" in event.actor
    engine.dispose()
