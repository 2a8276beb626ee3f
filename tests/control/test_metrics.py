"""The Prometheus exporter: its figures against the stored calls and the CLI, monotonic
counters, bounded series, the cache, a database that does not answer, and ``llmops metrics``."""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from llmops.config import Budget
from llmops.control.metrics import (
    SpendCollector,
    _Monotonic,
    exposition,
    make_registry,
    serve,
)
from llmops.store import queries as q
from llmops.store.engine import check_schema, create_engine
from llmops.testing import Reply
from tests.fixtures.postgres import free_port
from tests.store.test_writer import call_row, store_rows

M = 1_000_000
PRICES = {"openai/gpt-4o-mini": (0.15, 0.60), "openai/gpt-4o": (2.50, 10.0)}  # $ per M tokens
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(collector: SpendCollector) -> Samples:
    """Every sample of one exposition, by name and labels (parsed as Prometheus would)."""
    return parse(exposition(make_registry(collector)))


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = s.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(ls) for n, ls in samples if n == name]


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    check_schema(engine)
    yield engine
    engine.dispose()


# -- the figures against the CLI ----------------------------------------------------------


def test_figures_match_the_calls_and_llmops_spend(make_gateway, server, database_url, cli,
                                                  tmp_path) -> None:  # fmt: skip
    gw = make_gateway()
    plan = [("openai/gpt-4o-mini", 1000, 100), ("openai/gpt-4o-mini", 500, 50),
            ("openai/gpt-4o", 2000, 300)]  # fmt: skip
    for model, prompt_tokens, completion_tokens in plan:
        server.enqueue(Reply(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        gw.complete(model=model, messages=[{"role": "user", "content": "hi"}],
                    api_base=server.base_url, api_key="sk-test", num_retries=0)  # fmt: skip
    server.enqueue(Reply(status=500, text="the provider broke"))
    with pytest.raises(Exception, match="broke"):
        gw.complete(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}],
                    api_base=server.base_url, api_key="sk-test", num_retries=0)  # fmt: skip
    server.enqueue(Reply(prompt_tokens=7, completion_tokens=3))
    gw.complete(model="openai/llmops-no-such-model", messages=[{"role": "user", "content": "x"}],
                api_base=server.base_url, api_key="sk-test", num_retries=0)  # fmt: skip
    gw.flush()

    engine = create_engine(database_url)
    samples = scrape(SpendCollector(engine))
    engine.dispose()

    spend = cli("spend", "--days", "1", "--by", "model", "--format", "json",
                "--database-url", database_url, cwd=tmp_path)  # fmt: skip
    assert spend.code == 0, spend.stderr
    by_model = {r["model"]: r for r in json.loads(spend.stdout)}
    assert set(by_model) == {"openai/gpt-4o-mini", "openai/gpt-4o", "openai/llmops-no-such-model"}
    for model, row in by_model.items():
        assert total(samples, "llmops_spend_usd_total", model=model) == pytest.approx(
            row["cost_usd"], rel=1e-12, abs=1e-15
        )
        assert total(samples, "llmops_calls_total", model=model) == row["calls"]
        assert (
            total(samples, "llmops_tokens_total", model=model, type="prompt")
            == row["prompt_tokens"]
        )
        assert (
            total(samples, "llmops_tokens_total", model=model, type="completion")
            == row["completion_tokens"]
        )
        assert total(samples, "llmops_unpriced_calls_total", model=model) == row["unpriced_calls"]
    # the prices by hand, so that the CLI and the exporter are not both wrong
    for model, (price_in, price_out) in PRICES.items():
        expected = sum(p * price_in / M + c * price_out / M for m, p, c in plan if m == model)
        assert total(samples, "llmops_spend_usd_total", model=model) == pytest.approx(expected)
    assert total(samples, "llmops_calls_total", status="error") == 1
    assert total(samples, "llmops_calls_total", model="openai/gpt-4o", status="ok") == 1
    assert total(samples, "llmops_unpriced_calls_total") == 1
    assert total(samples, "llmops_calls_total") == 5
    # no prompt: "(none)"; the labels are model, prompt, version, source (+ status / type)
    assert {tuple(sorted(s)) for s in series(samples, "llmops_calls_total")} == {
        ("model", "prompt", "source", "status", "version")
    }
    assert all(
        s["prompt"] == "(none)" and s["version"] == "(none)" and s["source"] == "app"
        for s in series(samples, "llmops_spend_usd_total")
    )
    # latency: the 4 successful calls, all within the window
    assert total(samples, "llmops_latency_seconds_count") == 4
    assert total(samples, "llmops_database_up") == 1


# -- counters -----------------------------------------------------------------------------


def test_counters_only_grow_as_calls_are_added(engine, tmp_path) -> None:
    now = datetime.now(UTC)
    collector = SpendCollector(engine, cache_seconds=0)
    seen: list[Samples] = []
    expected_cost, expected_calls = 0.0, 0
    for round_ in range(4):
        rows = [
            call_row(created_at=now - timedelta(days=round_ % 2, minutes=i), cost_usd=0.001 * i,
                     status="error" if i == 3 else "ok", model=f"m{i % 2}")
            for i in range(5)
        ]  # fmt: skip
        store_rows(engine, tmp_path / "spool", rows)
        expected_cost += sum(r["cost_usd"] for r in rows)
        expected_calls += len(rows)
        seen.append(scrape(collector))
        assert total(seen[-1], "llmops_spend_usd_total") == pytest.approx(expected_cost)
        assert total(seen[-1], "llmops_calls_total") == expected_calls
    for before, after in itertools.pairwise(seen):
        for (name, labels), value in before.items():
            if name.endswith(("_total", "_count", "_sum")):
                assert after[(name, labels)] >= value, (name, labels)


def test_every_stored_call_counts_whenever_it_was_stamped(engine, tmp_path) -> None:
    """The totals are of every stored call: a call stamped before 1970 (a backfill, an app
    server's clock) fell outside the range they summed."""
    stamps = [datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC),
              datetime(1, 1, 1, 12, tzinfo=UTC), datetime(9999, 6, 1, tzinfo=UTC)]  # fmt: skip
    store_rows(engine, tmp_path / "spool", [call_row(created_at=at, cost_usd=1.0) for at in stamps])
    samples = scrape(SpendCollector(engine, cache_seconds=0))
    assert total(samples, "llmops_calls_total") == 4
    assert total(samples, "llmops_spend_usd_total") == pytest.approx(4.0)


def test_past_days_are_read_again_only_when_they_change(engine, tmp_path) -> None:
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    store_rows(engine, tmp_path / "spool", [call_row(created_at=yesterday, cost_usd=1.0)])
    collector = SpendCollector(engine, cache_seconds=0)
    scrape(collector)
    first_read = collector._past
    store_rows(engine, tmp_path / "spool", [call_row(created_at=now, cost_usd=0.5)])
    assert total(scrape(collector), "llmops_spend_usd_total") == 1.5
    assert collector._past is first_read  # only today's rows were read
    # a call of yesterday stored late (a spool replayed after an outage) is seen at once
    store_rows(engine, tmp_path / "spool", [call_row(created_at=yesterday, cost_usd=0.25)])
    assert total(scrape(collector), "llmops_spend_usd_total") == 1.75
    assert collector._past is not first_read


def test_a_drop_in_the_stored_totals_is_not_passed_on() -> None:
    counters = _Monotonic()
    assert counters.update({("c",): 5.0}) == {("c",): 5.0}
    assert counters.update({("c",): 3.0}) == {("c",): 5.0}  # calls deleted: no reset
    assert counters.update({("c",): 4.5}) == {("c",): 6.5}  # then what is added counts
    assert counters.update({}) == {("c",): 6.5}  # gone from the database: kept
    assert counters.update({("c",): 1.0}) == {("c",): 7.5}


def test_deleting_calls_keeps_every_counter_where_it_was(engine, tmp_path) -> None:
    rows = [call_row(cost_usd=0.01) for _ in range(3)]
    store_rows(engine, tmp_path / "spool", rows)
    collector = SpendCollector(engine, cache_seconds=0)
    before = scrape(collector)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM llm_calls WHERE id = :id"), {"id": rows[0]["id"]})
    after = scrape(collector)
    assert total(after, "llmops_spend_usd_total") == pytest.approx(0.03)
    assert total(after, "llmops_calls_total") == total(before, "llmops_calls_total") == 3


def test_series_are_capped_and_never_move_to_other(engine, tmp_path) -> None:
    now = datetime.now(UTC)
    costs = {"a": 0.5, "b": 0.4, "c": 0.3, "d": 0.2}
    old = call_row(model="old", cost_usd=9.0, created_at=now - timedelta(days=60))
    store_rows(engine, tmp_path / "spool",
               [old, *(call_row(model=m, cost_usd=c) for m, c in costs.items())])  # fmt: skip
    collector = SpendCollector(engine, cache_seconds=0, top=3)
    first = scrape(collector)
    spend = {s["model"]: total(first, "llmops_spend_usd_total", **s)
             for s in series(first, "llmops_spend_usd_total")}  # fmt: skip
    # the 3 that cost most in the last 30 days; the rest (and the big spender of 60 days
    # ago) under "(other)"
    assert spend == pytest.approx({"a": 0.5, "b": 0.4, "c": 0.3, "(other)": 9.2})
    other = dict.fromkeys(("model", "prompt", "version", "source"), "(other)")
    # a new model while the cap is reached: "(other)" grows, no series appears or moves
    store_rows(engine, tmp_path / "spool", [call_row(model="e", cost_usd=5.0),
                                            call_row(model="a", cost_usd=0.1)])  # fmt: skip
    second = scrape(collector)
    assert {s["model"] for s in series(second, "llmops_spend_usd_total")} == {
        "a",
        "b",
        "c",
        "(other)",
    }
    assert total(second, "llmops_spend_usd_total", **other) == pytest.approx(14.2)
    assert total(second, "llmops_spend_usd_total", model="a") == pytest.approx(0.6)
    assert total(second, "llmops_calls_total") == 7
    # latency series are capped by model the same way
    assert {s["model"] for s in series(second, "llmops_latency_seconds_count")} == {
        "a",
        "b",
        "c",
        "(other)",
    }


def test_new_combinations_get_series_while_there_is_room(engine, tmp_path) -> None:
    collector = SpendCollector(engine, cache_seconds=0, top=2)
    assert series(scrape(collector), "llmops_spend_usd_total") == []  # an empty database
    for model in ("x", "y", "z"):
        store_rows(engine, tmp_path / "spool", [call_row(model=model, cost_usd=1.0)])
        scrape(collector)
    last = scrape(collector)
    assert {s["model"] for s in series(last, "llmops_spend_usd_total")} == {"x", "y", "(other)"}
    assert total(last, "llmops_spend_usd_total", model="(other)") == 1.0


# -- latency, budgets ------------------------------------------------------------------------


def test_latency_quantiles_over_the_window(engine, tmp_path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        call_row(model="fast", latency_ms=float(ms), ttft_ms=float(ms) / 10,
                 created_at=now - timedelta(seconds=10 + i))
        for i, ms in enumerate([100, 200, 300, 400, 1000])
    ]  # fmt: skip
    rows += [
        call_row(model="fast", latency_ms=9000.0, created_at=now - timedelta(minutes=6)),  # old
        call_row(model="fast", latency_ms=5000.0, status="error", created_at=now),  # failed
        call_row(model="slow", latency_ms=2000.0, created_at=now - timedelta(minutes=1)),
        call_row(model="rare", latency_ms=4000.0, created_at=now - timedelta(minutes=1)),
    ]
    store_rows(engine, tmp_path / "spool", rows)
    collector = SpendCollector(engine, cache_seconds=0, top=2, clock=lambda: now)
    samples = scrape(collector)

    def quantile(name: str, model: str, q_: str) -> float | None:
        return samples.get((name, frozenset({("model", model), ("quantile", q_)})))

    # numpy's default (linear): 0.5 -> 300; 0.95 -> 400 + 0.8 * 600; 0.99 -> 400 + 0.96 * 600
    assert quantile("llmops_latency_seconds", "fast", "0.5") == pytest.approx(0.3)
    assert quantile("llmops_latency_seconds", "fast", "0.95") == pytest.approx(0.88)
    assert quantile("llmops_latency_seconds", "fast", "0.99") == pytest.approx(0.976)
    assert quantile("llmops_ttft_seconds", "fast", "0.5") == pytest.approx(0.03)
    # top=2 models: "fast" (6 calls) and one of the two others (1 call each, by name: rare)
    assert quantile("llmops_latency_seconds", "rare", "0.5") == pytest.approx(4.0)
    assert quantile("llmops_latency_seconds", "(other)", "0.5") == pytest.approx(2.0)
    assert quantile("llmops_ttft_seconds", "(other)", "0.5") is None  # slow does not stream
    # _count and _sum: every successful call with a latency, the old one included
    assert total(samples, "llmops_latency_seconds_count", model="fast") == 6
    assert total(samples, "llmops_latency_seconds_sum", model="fast") == pytest.approx(11.0)
    # the same figures from the query on both databases
    window = q.recent_latency(engine, now - timedelta(minutes=5), now, (0.5,), {"fast"})
    assert [(r.model, r.latency_calls, r.latency_ms) for r in window] == [
        ("fast", 5, (300.0,)),
        ("(other)", 2, (3000.0,)),
    ]


def test_budget_gauges_are_budget_status(engine, tmp_path) -> None:
    now = datetime.now(UTC)
    store_rows(engine, tmp_path / "spool", [
        call_row(cost_usd=0.30, user_id="ann", created_at=now),
        call_row(cost_usd=0.90, user_id="bob", created_at=now),
        call_row(cost_usd=0.05, user_id="bob", created_at=now - timedelta(days=40)),
    ])  # fmt: skip
    budgets = [
        Budget(name="daily", window="day", limit_usd=1.0),
        Budget(name="per-user", window="month", limit_usd=0.5, scope={"user": "each"}),
    ]
    samples = scrape(SpendCollector(engine, budgets, clock=lambda: now))
    expected = q.budget_status(engine, budgets, now=now)
    assert len(expected) == 3
    for status in expected:
        labels = {"budget": status.budget.name, "window": status.budget.window,
                  "key": status.key or ""}  # fmt: skip
        ls = frozenset(labels.items())
        assert samples[("llmops_budget_limit_usd", ls)] == status.limit_usd
        assert samples[("llmops_budget_spend_usd", ls)] == pytest.approx(status.spent_usd)
        assert samples[("llmops_budget_used_ratio", ls)] == pytest.approx(status.used)
        remaining = max(0.0, status.limit_usd - status.spent_usd)
        assert samples[("llmops_budget_remaining_usd", ls)] == pytest.approx(remaining)
    daily = frozenset({"budget": "daily", "window": "day", "key": ""}.items())
    assert samples[("llmops_budget_spend_usd", daily)] == pytest.approx(1.2)
    bob = frozenset({"budget": "per-user", "window": "month", "key": "bob"}.items())
    assert samples[("llmops_budget_remaining_usd", bob)] == 0.0  # over: 0.9 of 0.5
    assert samples[("llmops_budget_used_ratio", bob)] == pytest.approx(1.8)


# -- the database down, the cache ------------------------------------------------------------


def test_a_database_that_does_not_answer_still_gets_an_answer(tmp_path) -> None:
    engine = create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    collector = SpendCollector(engine, cache_seconds=0)
    server = serve(make_registry(collector), "127.0.0.1", 0)
    try:
        with urllib.request.urlopen(server.url, timeout=30) as response:  # noqa: S310 (http://127.0.0.1)
            assert response.status == 200
            samples = parse(response.read().decode())
    finally:
        server.close()
        engine.dispose()
    assert total(samples, "llmops_database_up") == 0
    assert {name for name, _ in samples} == {
        "llmops_exporter_info", "llmops_database_up", "llmops_exporter_refresh_duration_seconds"
    }  # fmt: skip
    assert not collector.database_up and "connection" in (collector.last_error or "")


def test_the_figures_come_back_with_the_database(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"
    engine = create_engine(url)
    collector = SpendCollector(engine, cache_seconds=0)
    assert total(scrape(collector), "llmops_database_up") == 0  # no tables yet
    check_schema(engine)
    store_rows(engine, tmp_path / "spool", [call_row(cost_usd=0.25)])
    samples = scrape(collector)
    assert total(samples, "llmops_database_up") == 1
    assert total(samples, "llmops_spend_usd_total") == 0.25
    assert total(samples, "llmops_exporter_last_refresh_timestamp_seconds") > 0
    engine.dispose()


def test_a_scrape_storm_reads_the_database_once(engine, tmp_path) -> None:
    store_rows(engine, tmp_path / "spool", [call_row(cost_usd=0.5)])
    collector = SpendCollector(engine, cache_seconds=60)
    server = serve(make_registry(collector), "127.0.0.1", 0)
    bodies: list[str] = []

    def get() -> None:
        with urllib.request.urlopen(server.url, timeout=30) as response:  # noqa: S310 (http://127.0.0.1)
            bodies.append(response.read().decode())

    try:
        threads = [threading.Thread(target=get) for _ in range(30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.close()
    assert len(bodies) == 30 and collector.reads == 1
    assert all(total(parse(b), "llmops_spend_usd_total") == 0.5 for b in bodies)
    # once the cache is stale, the next scrape reads again and sees the new calls
    store_rows(engine, tmp_path / "spool", [call_row(cost_usd=0.25)])
    assert total(scrape(collector), "llmops_spend_usd_total") == 0.5  # cached
    collector.cache_seconds = 0
    assert total(scrape(collector), "llmops_spend_usd_total") == 0.75
    assert collector.reads == 2


# -- the CLI -------------------------------------------------------------------------------


def test_cli_once_prints_the_exposition(cli, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'llmops.db'}"
    engine = create_engine(url)
    check_schema(engine)
    store_rows(engine, tmp_path / "spool", [
        call_row(cost_usd=0.125, model="gpt-4o"),
        call_row(cost_usd=0.0, model="gpt-4o", status="blocked", prompt_tokens=0,
                 completion_tokens=0),
    ])  # fmt: skip
    engine.dispose()
    (tmp_path / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: monthly, window: month, limit_usd: 10}\n"
    )
    result = cli("metrics", "--once", "--database-url", url, cwd=tmp_path)
    assert result.code == 0 and result.stderr == "", result.stderr
    samples = parse(result.stdout)
    assert total(samples, "llmops_spend_usd_total", model="gpt-4o") == 0.125
    assert total(samples, "llmops_calls_total", status="blocked") == 1
    assert total(samples, "llmops_calls_total", status="ok") == 1
    monthly = frozenset({"budget": "monthly", "window": "month", "key": ""}.items())
    assert samples[("llmops_budget_used_ratio", monthly)] == pytest.approx(0.0125)
    # LLMOPS_DATABASE_URL is read like every command's
    again = cli("metrics", "--once", cwd=tmp_path, env={"LLMOPS_DATABASE_URL": url})
    assert total(parse(again.stdout), "llmops_spend_usd_total") == 0.125


def test_cli_once_with_the_database_down_prints_up_0_and_exits_1(cli, tmp_path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = cli("metrics", "--once", "--database-url", url, cwd=tmp_path)
    assert result.code == 1
    assert total(parse(result.stdout), "llmops_database_up") == 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database: "), result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port"),
        (["--port", "-1"], "--port"),
        (["--port", "http"], "--port"),
        (["--top", "0"], "--top"),
        (["--cache-seconds", "-1"], "--cache-seconds"),
        (["--database-url", "mysql://x/y", "--once"], "unsupported database"),
        (["--host", "192.0.2.1", "--port", "0"], "cannot serve metrics on 192.0.2.1:0"),
    ],
)
def test_cli_bad_input_is_one_error_line(cli, tmp_path, args, message) -> None:
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    result = cli("metrics", "--database-url", url, *args, cwd=tmp_path)
    assert result.code == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_port_in_use_is_one_error_line(cli, tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("metrics", "--port", str(port), "--database-url",
                     f"sqlite:///{tmp_path / 'llmops.db'}", cwd=tmp_path)  # fmt: skip
    assert result.code == 2
    assert result.stderr.strip() == (
        f"error: cannot serve metrics on 127.0.0.1:{port}: address already in use"
    )


def test_cli_defaults_are_the_exporters() -> None:
    from llmops.cli import metrics as cli_metrics
    from llmops.control import metrics as exporter

    assert cli_metrics.DEFAULT_PORT == exporter.DEFAULT_PORT
    assert cli_metrics.TOP_SERIES == exporter.TOP_SERIES
    assert cli_metrics.CACHE_SECONDS == exporter.CACHE_SECONDS


def test_cli_bad_config_file_is_one_error_line(cli, tmp_path: Path) -> None:
    (tmp_path / "llmops.yaml").write_text("budgets:\n  limits:\n    - {name: x, window: year}\n")
    result = cli("metrics", "--once", cwd=tmp_path)
    assert result.code == 2 and result.stderr.startswith("error: ")
    assert "llmops.yaml:3" in result.stderr and len(result.stderr.splitlines()) == 1


# -- the Grafana dashboard -------------------------------------------------------------------

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "llmops.json"


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard: panel targets and variables."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    return exprs + [v["query"]["query"] for v in board["templating"]["list"]]


def test_the_grafana_dashboard_imports_with_a_datasource_input(tmp_path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in board["__inputs"]] == ["DS_PROMETHEUS"]
    assert board["__inputs"][0]["pluginId"] == "prometheus"
    refs = [p["datasource"] for p in board["panels"] if p["type"] != "row"]
    refs += [t["datasource"] for p in board["panels"] for t in p.get("targets", [])]
    refs += [v["datasource"] for v in board["templating"]["list"]]
    assert refs and all(r == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for r in refs)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    # every metric the dashboard asks for is one the exporter serves
    engine = create_engine(f"sqlite:///{tmp_path / 'llmops.db'}")
    check_schema(engine)
    # past the day's first hour, when a budget's projection is served
    today = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), UTC)
    later = max(datetime.now(UTC), today + timedelta(hours=2))
    call = call_row(ttft_ms=20.0, created_at=later - timedelta(minutes=1))
    store_rows(engine, tmp_path / "spool", [call])
    budgets = [Budget(name="daily", window="day", limit_usd=1.0)]
    served = {name for name, _ in scrape(SpendCollector(engine, budgets, clock=lambda: later))}
    engine.dispose()
    asked = {m for expr in dashboard_queries() for m in re.findall(r"\bllmops_[a-z_]+", expr)}
    assert asked and asked <= served, asked - served
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for subject in ("spend per day", "spend per hour", "spend by model", "error rate",
                    "tokens", "latency p95", "budget used"):  # fmt: skip
        assert subject in titles, subject
