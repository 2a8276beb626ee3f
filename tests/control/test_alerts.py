"""Alert rules on seeded data (SQLite and PostgreSQL): every kind fires and resolves, once
per crossing, notified through a real webhook receiver; failed and hanging deliveries;
several processes checking at the same moment notify once."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.config import Alerts, Budget
from llmops.control.alerts import AlertChecker, CheckResult, alert_key
from llmops.store import queries as q
from llmops.store.engine import check_schema, create_engine
from llmops.store.tables import ALERT_EVENTS, ALERT_STATE, CALLS, EVAL_RUNS, FEEDBACK
from tests.control.receivers import HttpReceiver, free_port

NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)  # a Wednesday
TOKEN = "T0000/B0000/XXXXsecretXXXX"
HOOK = {"name": "hook", "type": "webhook", "url_env": "HOOK"}


def call(at: datetime, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": str(uuid.uuid4()), "created_at": at, "source": "app",
        "prompt_name": "support/answer", "prompt_version": "v1", "model": "gpt-4o",
        "status": "ok", "cost_usd": 0.001, "cost_status": "priced", "latency_ms": 100.0,
        "tokens_estimated": False, "prompt_tokens": 10, "completion_tokens": 5,
        "user_id": None,
    }  # fmt: skip
    row.update(overrides)
    return row


def insert(engine: Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if rows:
        with engine.begin() as connection:
            connection.execute(table.insert(), rows)


def seed_calls(engine: Engine, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    insert(engine, CALLS, rows)
    return rows


@pytest.fixture
def engine(database_url: str) -> Engine:
    engine = create_engine(database_url)
    check_schema(engine)
    return engine


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as server:
        yield server


def checker(
    engine: Engine,
    receiver: HttpReceiver,
    rules: list[dict[str, Any]],
    budgets: tuple[Budget, ...] = (),
    channels: list[dict[str, Any]] | None = None,
    env: dict[str, str] | None = None,
    **settings: Any,
) -> AlertChecker:
    alerts = Alerts.model_validate({"channels": channels or [HOOK], "rules": rules, **settings})
    return AlertChecker(
        engine, alerts, budgets, env={"HOOK": receiver.url(f"/{TOKEN}"), **(env or {})}
    )


def told(receiver: HttpReceiver) -> list[tuple[str, str, str]]:
    """(event, rule, subject) of every notification received."""
    return [(b["event"], b["rule"], b["subject"]) for b in receiver.bodies()]


def firing(engine: Engine) -> dict[str, q.AlertStateRow]:
    return {row.key: row for row in q.alert_states(engine, firing_only=True)}


# -- every kind ----------------------------------------------------------------------------


def test_budget_thresholds_fire_once_each_per_window(engine, receiver) -> None:
    budgets = (
        Budget(name="daily", window="day", limit_usd=1.0),
        Budget(name="weekly", window="week", limit_usd=1.2),
        Budget(name="per-user", window="month", limit_usd=2.0, scope={"user": "each"},
               thresholds=(100,)),
    )  # fmt: skip
    rule = {"name": "budgets", "kind": "budget", "channels": ["hook"]}
    alerts = checker(engine, receiver, [rule], budgets)
    hour_ago = NOW - timedelta(hours=1)
    seed_calls(engine, [call(hour_ago, cost_usd=0.3, user_id="ann"),
                        call(hour_ago, cost_usd=0.3, user_id="bob")])  # fmt: skip
    result = alerts.check(NOW)
    assert told(receiver) == [("fired", "budgets", "daily"), ("fired", "budgets", "weekly")]
    first = receiver.bodies()[0]
    assert (first["value"], first["threshold"]) == (pytest.approx(60.0), 50.0)
    assert first["window"] == "day from 2026-12-02"
    assert first["message"] == (
        "budget daily (all calls): 50% reached: $0.60 of $1.00 this day (from 2026-12-02)"
    )
    assert result.exit_code == 1
    assert alerts.check(NOW + timedelta(minutes=5)).transitions == ()  # once per crossing

    seed_calls(engine, [call(hour_ago, cost_usd=0.25, user_id="bob")])  # daily 85%, weekly 71%
    alerts.check(NOW + timedelta(minutes=10))
    assert told(receiver)[2:] == [("fired", "budgets", "daily")]
    assert receiver.bodies()[2]["threshold"] == 80.0

    seed_calls(engine, [call(hour_ago, cost_usd=2.0, user_id="ann")])  # 285%, 238%; ann $2.30
    alerts.check(NOW + timedelta(minutes=15))
    # one notification per budget for the highest threshold reached, not one per threshold
    assert [(b["subject"], b["threshold"]) for b in receiver.bodies()[3:]] == [
        ("daily", 100.0), ("weekly", 100.0), ("per-user (user ann)", 100.0),
    ]  # fmt: skip
    assert alerts.check(NOW + timedelta(minutes=20)).transitions == ()

    # the next day: the daily window starts fresh; the old one closes without a message
    tomorrow = NOW + timedelta(days=1)
    assert alerts.check(tomorrow).transitions == ()
    assert len(receiver.requests) == 6
    assert {row.subject for row in firing(engine).values()} == {"weekly", "per-user (user ann)"}
    seed_calls(engine, [call(tomorrow - timedelta(minutes=5), cost_usd=0.55)])
    alerts.check(tomorrow)
    assert told(receiver)[6:] == [("fired", "budgets", "daily")]
    assert receiver.bodies()[6]["key"] == "budgets|daily|2026-12-03"


def test_a_key_that_leaves_the_highest_spenders_and_comes_back_is_not_told_again(
    engine, receiver, monkeypatch
) -> None:
    """An ``each`` budget is watched for its 1,000 highest spenders: a user pushed out of
    them had their alert closed, and told again for the same threshold on coming back."""
    from llmops.control import alerts as alerts_module

    monkeypatch.setattr(alerts_module, "MAX_BUDGET_KEYS", 3)
    budgets = (Budget(name="per-user", window="month", limit_usd=10.0, scope={"user": "each"},
                      thresholds=(50,)),
               Budget(name="mini", window="month", limit_usd=1.0, scope={"model": "gpt-4o-mini"},
                      thresholds=(50,)))  # fmt: skip
    rule = {"name": "b", "kind": "budget", "channels": ["hook"]}
    alerts = checker(engine, receiver, [rule], budgets)
    hour_ago = NOW - timedelta(hours=1)
    (mini,) = seed_calls(engine, [call(hour_ago, cost_usd=0.6, model="gpt-4o-mini")])
    seed_calls(engine, [call(hour_ago, cost_usd=6.0, user_id="alice")])
    alerts.check(NOW)
    assert sorted(told(receiver)) == [
        ("fired", "b", "mini"),
        ("fired", "b", "per-user (user alice)"),
    ]
    seed_calls(engine, [call(hour_ago, cost_usd=7.0, user_id=u) for u in ("u1", "u2", "u3")])
    with engine.begin() as connection:  # re-priced below its threshold: mini's alert closes
        connection.execute(sa.update(CALLS).where(CALLS.c.id == mini["id"]).values(cost_usd=0.1))
    alerts.check(NOW + timedelta(minutes=5))  # alice is not among the 3 highest
    assert {row.subject for row in firing(engine).values()} == {
        f"per-user (user {u})" for u in ("alice", "u1", "u2", "u3")
    }
    receiver.requests.clear()
    seed_calls(engine, [call(hour_ago, cost_usd=2.0, user_id="alice")])  # $8: back among them
    alerts.check(NOW + timedelta(minutes=10))
    assert told(receiver) == []
    # the next month: the old window's alerts close (without a message)
    alerts.check(datetime(2027, 1, 1, 0, 5, tzinfo=UTC))
    assert firing(engine) == {}


def test_a_budget_rule_can_watch_one_budget(engine, receiver) -> None:
    budgets = (Budget(name="a", window="day", limit_usd=1), Budget(name="b", window="day",
                                                                    limit_usd=1))  # fmt: skip
    rule = {"name": "only-b", "kind": "budget", "budget": "b", "channels": ["hook"]}
    seed_calls(engine, [call(NOW - timedelta(minutes=1), cost_usd=5)])
    checker(engine, receiver, [rule], budgets).check(NOW)
    assert told(receiver) == [("fired", "only-b", "b")]


def test_spend_anomaly_fires_resolves_and_ends_with_the_day(engine, receiver) -> None:
    rows = []
    for days_ago in range(1, 8):
        day = NOW - timedelta(days=days_ago)
        rows.append(call(day.replace(hour=10), cost_usd=1.0))
        rows.append(call(day.replace(hour=20), cost_usd=10.0))  # later than NOW's time of day
    rows.append(call(NOW - timedelta(days=9), cost_usd=500.0))  # older than the 7 days
    rows.append(call(NOW.replace(hour=10), cost_usd=4.0))
    seed_calls(engine, rows)
    rule = {"name": "spike", "kind": "spend_anomaly", "factor": 3, "days": 7, "min_usd": 2,
            "channels": ["hook"]}  # fmt: skip
    alerts = checker(engine, receiver, [rule])
    alerts.check(NOW)
    (fired,) = receiver.bodies()
    assert (fired["event"], fired["subject"], fired["value"], fired["threshold"]) == (
        "fired", "all calls", pytest.approx(4.0), pytest.approx(3.0),
    )  # fmt: skip
    assert fired["message"] == (
        "spend today $4.00 by 15:30 UTC is 4.0x the median of the same hours of the last 7 "
        "days ($1.00); alert above 3x that and $2.00"
    )
    assert fired["key"] == "spike|all calls|2026-12-02"
    assert alerts.check(NOW + timedelta(hours=1)).transitions == ()
    # by 21:30 the other days had spent $11: today's $4 is no anomaly any more
    alerts.check(NOW.replace(hour=21))
    assert told(receiver)[1:] == [("resolved", "spike", "all calls")]
    assert receiver.bodies()[1]["message"] == (
        "spend today $4.00 by 21:30 UTC; the median of the same hours of the last 7 days is "
        "$11.00 (alert above $33.00)"
    )
    # a second crossing the same day fires again, and the day's end resolves it
    seed_calls(engine, [call(NOW.replace(hour=22, minute=0), cost_usd=40.0)])
    alerts.check(NOW.replace(hour=22, minute=30))
    alerts.check(NOW.replace(hour=22, minute=45))
    alerts.check(datetime(2026, 12, 3, 0, 30, tzinfo=UTC))
    assert told(receiver)[2:] == [("fired", "spike", "all calls"),
                                  ("resolved", "spike", "all calls")]  # fmt: skip
    assert receiver.bodies()[3]["message"] == (
        "the day 2026-12-02 ended (spend so far $44.00 when it fired)"
    )
    assert firing(engine) == {}


def test_spend_anomaly_needs_min_usd(engine, receiver) -> None:
    seed_calls(engine, [call(NOW - timedelta(minutes=5), cost_usd=1.5)])  # no history at all
    rule = {"name": "spike", "kind": "spend_anomaly", "min_usd": 2, "channels": ["hook"]}
    result = checker(engine, receiver, [rule]).check(NOW)
    assert [c.status for c in result.conditions] == ["ok"] and receiver.requests == []


def test_error_rate_per_model_and_overall(engine, receiver) -> None:
    recent = NOW - timedelta(minutes=5)
    rows = [call(recent, status="error" if i < 6 else "ok") for i in range(30)]
    rows += [call(recent, status="blocked") for _ in range(10)]  # never reached the model
    rows += [call(recent, model="mini", status="error" if i < 1 else "ok") for i in range(25)]
    rows += [call(NOW - timedelta(minutes=20), model="mini", status="error") for _ in range(30)]
    rows += [call(recent, model="mini", status="error", source="eval") for _ in range(30)]
    seed_calls(engine, rows)
    rules = [
        {"name": "errors", "kind": "error_rate", "window": "15m", "threshold": 0.1,
         "min_calls": 20, "channels": ["hook"]},
        {"name": "errors-all", "kind": "error_rate", "by": "all", "threshold": 0.1,
         "channels": ["hook"]},
    ]  # fmt: skip
    alerts = checker(engine, receiver, rules)
    result = alerts.check(NOW)
    assert told(receiver) == [("fired", "errors", "gpt-4o"), ("fired", "errors-all", "all calls")]
    first, overall = receiver.bodies()
    assert (first["value"], first["threshold"], first["window"]) == (0.2, 0.1, "15m")
    assert first["message"] == (
        "gpt-4o: 20.0% of 30 calls failed in the last 15m (alert above 10.0%)"
    )
    assert overall["value"] == pytest.approx(7 / 55)
    assert {c.subject: c.status for c in result.conditions if c.rule == "errors"} == {
        "gpt-4o": "firing", "mini": "ok",
    }  # fmt: skip

    later = NOW + timedelta(minutes=15)
    seed_calls(engine, [call(later - timedelta(minutes=1), status="error" if i < 1 else "ok")
                        for i in range(40)])  # fmt: skip
    alerts.check(later)
    assert told(receiver)[2:] == [("resolved", "errors", "gpt-4o"),
                                  ("resolved", "errors-all", "all calls")]  # fmt: skip
    assert receiver.bodies()[2]["message"] == (
        "gpt-4o: 2.5% of 40 calls failed in the last 15m (alert above 10.0%)"
    )

    # too few calls to judge resolves, saying so; no calls at all resolves too
    t = NOW + timedelta(hours=3)
    seed_calls(engine, [call(t - timedelta(minutes=1), status="error") for _ in range(20)])
    alerts.check(t)
    seed_calls(engine, [call(t + timedelta(minutes=15), model="gpt-4o") for _ in range(5)])
    alerts.check(t + timedelta(minutes=16))
    seed_calls(engine, [call(t + timedelta(hours=1), status="error") for _ in range(20)])
    alerts.check(t + timedelta(hours=1, minutes=1))
    alerts.check(t + timedelta(hours=2))
    assert [(e, r, s, b["message"]) for (e, r, s), b in
            zip(told(receiver)[4:], receiver.bodies()[4:], strict=True) if r == "errors"] == [
        ("fired", "errors", "gpt-4o",
         "gpt-4o: 100.0% of 20 calls failed in the last 15m (alert above 10.0%)"),
        ("resolved", "errors", "gpt-4o",
         "gpt-4o: 5 calls in the last 15m, fewer than the 20 needed to judge the error rate"),
        ("fired", "errors", "gpt-4o",
         "gpt-4o: 100.0% of 20 calls failed in the last 15m (alert above 10.0%)"),
        ("resolved", "errors", "gpt-4o", "gpt-4o: no data in the last 15m to evaluate any more"),
    ]  # fmt: skip


def test_error_rate_per_prompt_over_every_source(engine, receiver) -> None:
    recent = NOW - timedelta(minutes=5)
    rows = [call(recent, prompt_name=None, source="eval", status="error") for _ in range(20)]
    rows += [call(recent, status="error" if i < 2 else "ok") for i in range(20)]
    seed_calls(engine, rows)
    rule = {"name": "by-prompt", "kind": "error_rate", "by": "prompt", "source": None,
            "threshold": 0.2, "channels": ["hook"]}  # fmt: skip
    dashboard = {"LLMOPS_DASHBOARD_URL": "https://dash.example/"}
    result = checker(engine, receiver, [rule], env=dashboard).check(NOW)
    assert {c.subject: (c.status, c.value) for c in result.conditions} == {
        "(no prompt)": ("firing", 1.0), "support/answer": ("ok", 0.1),
    }  # fmt: skip
    assert [(b["subject"], b["dashboard"]) for b in receiver.bodies()] == [
        ("(no prompt)", "https://dash.example/")
    ]


def test_latency_p95_against_the_days_before_or_a_threshold(engine, receiver) -> None:
    baseline = [call(NOW - timedelta(days=1 + i % 6, minutes=i), latency_ms=100.0 + i)
                for i in range(100)]  # p95 = 194.05 ms  # fmt: skip
    baseline += [call(NOW - timedelta(days=8), latency_ms=5000.0) for _ in range(50)]  # too old
    window = [call(NOW - timedelta(minutes=1 + i % 10), latency_ms=400.0 + i) for i in range(30)]
    window += [call(NOW - timedelta(minutes=2), status="error", latency_ms=90_000.0)]
    window += [call(NOW - timedelta(minutes=2), model="mini", latency_ms=900.0)
               for _ in range(30)]  # no baseline  # fmt: skip
    seed_calls(engine, baseline + window)
    rules = [
        {"name": "slow", "kind": "latency_p95", "window": "15m", "factor": 2, "days": 7,
         "min_calls": 20, "channels": ["hook"]},
        {"name": "slow-abs", "kind": "latency_p95", "threshold_ms": 420, "by": "all",
         "channels": ["hook"]},
    ]  # fmt: skip
    alerts = checker(engine, receiver, rules)
    result = alerts.check(NOW)
    assert told(receiver) == [("fired", "slow", "gpt-4o"), ("fired", "slow-abs", "all calls")]
    slow, absolute = receiver.bodies()
    expected_p95 = 400 + 0.95 * 29  # linear interpolation over 400..429
    assert slow["value"] == pytest.approx(expected_p95)
    assert slow["threshold"] == pytest.approx(2 * (100 + 0.95 * 99))
    assert slow["message"] == (
        "gpt-4o: p95 latency 428 ms over 30 calls in the last 15m, 2.2x the p95 of the 7 days "
        "before (194 ms; alert above 2x)"
    )
    assert absolute["threshold"] == 420.0
    statuses = {(c.rule, c.subject): c.status for c in result.conditions}
    assert statuses[("slow", "mini")] == "no_data"

    later = NOW + timedelta(minutes=15)
    seed_calls(engine, [call(later - timedelta(minutes=1), latency_ms=150.0) for _ in range(30)])
    alerts.check(later)
    assert told(receiver)[2:] == [("resolved", "slow", "gpt-4o"),
                                  ("resolved", "slow-abs", "all calls")]  # fmt: skip


def test_feedback_drift_per_prompt_version(engine, receiver) -> None:
    def scores(version: str, when: datetime, values: list[float], name: str = "rating"):
        calls = [call(when - timedelta(minutes=1), prompt_version=version) for _ in values]
        seed_calls(engine, calls)
        insert(engine, FEEDBACK, [
            {"id": str(uuid.uuid4()), "call_id": c["id"], "created_at": when, "name": name,
             "score": v}
            for c, v in zip(calls, values, strict=True)
        ])  # fmt: skip

    for i in range(30):  # the 14 days before: 0.9 on average
        scores("v1", NOW - timedelta(days=2 + i % 9), [0.0 if i < 3 else 1.0])
    scores("v1", NOW - timedelta(days=20), [0.0] * 40)  # older than the 14 days
    scores("v1", NOW - timedelta(hours=3), [1.0] * 12 + [0.0] * 13)  # last day: 0.48
    scores("v1", NOW - timedelta(hours=3), [1.0] * 30, name="thumbs")  # another feedback
    scores("v2", NOW - timedelta(hours=3), [0.0] * 5)  # too few to judge
    rule = {"name": "ratings", "kind": "feedback_drift", "feedback": "rating", "window": "1d",
            "days": 14, "drop": 0.15, "min_count": 20, "channels": ["hook"]}  # fmt: skip
    alerts = checker(engine, receiver, [rule])
    result = alerts.check(NOW)
    assert told(receiver) == [("fired", "ratings", "support/answer@v1")]
    (body,) = receiver.bodies()
    assert body["value"] == pytest.approx(0.48)
    assert body["threshold"] == pytest.approx(0.9 * 0.85)
    assert body["message"] == (
        "support/answer@v1: average rating 0.48 over 25 scores in the last 1d, 47% below its "
        "average of the 14 days before (0.9 over 30; alert beyond a 15% drop)"
    )
    assert {c.subject: c.status for c in result.conditions} == {
        "support/answer@v1": "firing", "support/answer@v2": "no_data",
    }  # fmt: skip
    later = NOW + timedelta(days=1)
    scores("v1", later - timedelta(hours=1), [1.0] * 22 + [0.0] * 3)  # 0.88
    alerts.check(later)
    assert told(receiver)[1:] == [("resolved", "ratings", "support/answer@v1")]


def test_eval_drop_fires_until_a_run_gets_back(engine, receiver) -> None:
    def run(at: datetime, rate: float | None, ref: str = "production",
            finished: bool = True) -> None:  # fmt: skip
        insert(engine, EVAL_RUNS, [{
            "id": str(uuid.uuid4()), "batch_id": str(uuid.uuid4()), "role": "candidate",
            "suite": "qa", "prompt_name": "support/answer", "prompt_ref": ref,
            "prompt_version": "v1", "model": "gpt-4o", "started_at": at,
            "finished_at": at + timedelta(minutes=2) if finished else None, "cases": 10,
            "results": 10, "passed": 0, "pass_rate": rate, "cached": 0,
        }])  # fmt: skip

    run(NOW - timedelta(days=2), 0.90)
    run(NOW - timedelta(days=1), 0.80)
    run(NOW - timedelta(hours=1), 0.10, finished=False)  # still running: not counted
    run(NOW - timedelta(days=2), 0.90, ref="working")
    run(NOW - timedelta(days=1), 0.20, ref="working")  # not the label watched
    rule = {"name": "evals", "kind": "eval_drop", "drop": 0.05, "label": "production",
            "channels": ["hook"]}  # fmt: skip
    alerts = checker(engine, receiver, [rule])
    alerts.check(NOW)
    assert told(receiver) == [("fired", "evals", "qa: support/answer@production on gpt-4o")]
    (body,) = receiver.bodies()
    assert (body["value"], body["threshold"]) == (0.8, pytest.approx(0.85))
    assert body["message"] == (
        "qa: support/answer@production on gpt-4o: pass rate 80.0% in the run of 2026-12-01 "
        "15:30 UTC, 90.0% in the run before (alert on a drop of more than 5 points)"
    )
    run(NOW + timedelta(hours=1), 0.82)  # no drop against 0.80, but still below 0.85
    alerts.check(NOW + timedelta(hours=2))
    assert len(receiver.requests) == 1
    run(NOW + timedelta(hours=3), 0.86)
    alerts.check(NOW + timedelta(hours=4))
    assert told(receiver)[1:] == [("resolved", "evals", "qa: support/answer@production on gpt-4o")]
    # a drop of exactly the limit does not fire
    run(NOW + timedelta(hours=5), 0.81)
    assert alerts.check(NOW + timedelta(hours=6)).transitions == ()


# -- notifying -----------------------------------------------------------------------------


def errors_rule(**overrides: Any) -> dict[str, Any]:
    rule = {"name": "errors", "kind": "error_rate", "threshold": 0.1, "min_calls": 5,
            "channels": ["hook"]}  # fmt: skip
    return {**rule, **overrides}


def seed_errors(engine: Engine, at: datetime, errors: int, calls: int = 10) -> None:
    seed_calls(engine, [call(at - timedelta(minutes=1), status="error" if i < errors else "ok")
                        for i in range(calls)])  # fmt: skip


def test_a_failed_delivery_is_recorded_and_retried_at_the_next_check(engine, receiver) -> None:
    alerts = checker(engine, receiver, [errors_rule()])
    seed_errors(engine, NOW, 5)
    receiver.status = 500
    result = alerts.check(NOW)
    assert [t.failed for t in result.transitions] == [("hook: HTTP 500",)]
    assert result.exit_code == 1
    assert firing(engine) == {}  # nobody was told: the next check tries again
    (event,) = q.alert_events(engine)
    assert (event.event, event.delivered, event.failed) == ("fired", [], ["hook: HTTP 500"])

    receiver.status = 200
    result = alerts.check(NOW + timedelta(minutes=1))
    assert [t.delivered for t in result.transitions] == [("hook",)]
    assert alerts.check(NOW + timedelta(minutes=2)).transitions == ()
    assert [b["event"] for b in receiver.bodies()] == ["fired", "fired"]  # one failed, one ok
    assert list(firing(engine)) == ["errors|gpt-4o"]

    # a resolution that cannot be delivered stays pending too
    seed_calls(engine, [call(NOW + timedelta(minutes=20)) for _ in range(10)])
    receiver.status = 503
    alerts.check(NOW + timedelta(minutes=21))
    assert list(firing(engine)) == ["errors|gpt-4o"]
    receiver.status = 200
    alerts.check(NOW + timedelta(minutes=22))
    assert [b["event"] for b in receiver.bodies()] == ["fired", "fired", "resolved", "resolved"]
    assert firing(engine) == {}
    assert [(e.event, e.delivered, e.failed) for e in q.alert_events(engine)] == [
        ("resolved", ["hook"], []),
        ("resolved", [], ["hook: HTTP 503"]),
        ("fired", ["hook"], []),
        ("fired", [], ["hook: HTTP 500"]),
    ]


def test_one_channel_delivering_is_enough(engine, receiver) -> None:
    down = {"name": "down", "type": "webhook", "url_env": "DOWN"}
    alerts = checker(engine, receiver, [errors_rule(channels=["down", "hook"])],
                     channels=[HOOK, down],
                     env={"DOWN": f"http://127.0.0.1:{free_port()}/x"})  # fmt: skip
    seed_errors(engine, NOW, 5)
    (transition,) = alerts.check(NOW).transitions
    assert (transition.delivered, transition.failed) == (("hook",), ("down: connection refused",))
    assert alerts.check(NOW + timedelta(minutes=1)).transitions == ()
    assert len(receiver.requests) == 1


def test_a_hanging_receiver_cannot_hang_the_check(engine, receiver) -> None:
    alerts = checker(engine, receiver, [errors_rule()], timeout="1s")
    seed_errors(engine, NOW, 5)
    receiver.hang = True
    started = time.monotonic()
    (transition,) = alerts.check(NOW).transitions
    assert time.monotonic() - started < 3.0
    assert transition.failed == ("hook: timed out",)
    assert firing(engine) == {}
    receiver.hang = False
    assert [t.delivered for t in alerts.check(NOW).transitions] == [("hook",)]


def test_dry_run_sends_and_stores_nothing(engine, receiver) -> None:
    alerts = checker(engine, receiver, [errors_rule()])
    seed_errors(engine, NOW, 5)
    result = alerts.check(NOW, dry_run=True)
    assert [(t.event, t.notified) for t in result.transitions] == [("fired", False)]
    assert result.exit_code == 1
    assert receiver.requests == [] and q.alert_states(engine) == [] and q.alert_events(engine) == []
    assert alerts.check(NOW).fired  # the real check still fires


def test_send_resolved_false_resolves_quietly(engine, receiver) -> None:
    alerts = checker(engine, receiver, [errors_rule(send_resolved=False)])
    seed_errors(engine, NOW, 5)
    alerts.check(NOW)
    result = alerts.check(NOW + timedelta(hours=1))
    assert [(t.event, t.notified) for t in result.transitions] == [("resolved", False)]
    assert told(receiver) == [("fired", "errors", "gpt-4o")]
    assert firing(engine) == {}
    seed_errors(engine, NOW + timedelta(hours=2), 5)
    alerts.check(NOW + timedelta(hours=2))
    assert told(receiver) == [("fired", "errors", "gpt-4o")] * 2


def test_credentials_are_stored_and_logged_nowhere(
    engine, receiver, caplog: pytest.LogCaptureFixture, database_url: str
) -> None:
    secret_port = free_port()
    down = {"name": "down", "type": "slack", "url_env": "DOWN"}
    alerts = checker(engine, receiver, [errors_rule(channels=["down", "hook"])],
                     channels=[HOOK, down],
                     env={"DOWN": f"http://127.0.0.1:{secret_port}/services/{TOKEN}"})  # fmt: skip
    seed_errors(engine, NOW, 5)
    receiver.status = 500
    with caplog.at_level("DEBUG"):
        alerts.check(NOW)
        receiver.status = 200
        alerts.check(NOW + timedelta(minutes=1))
    stored = ""
    with engine.connect() as connection:
        for table in (ALERT_STATE, ALERT_EVENTS):
            stored += repr(connection.execute(sa.select(table)).all())
    assert "down: connection refused" in stored and "hook: HTTP 500" in stored
    for text in (stored, caplog.text, repr(alerts.channels)):
        assert TOKEN not in text and str(secret_port) not in text
        assert str(receiver.port) not in text


def test_long_subjects_make_keys_that_fit(engine, receiver) -> None:
    model = "m" * 200
    seed_calls(engine, [call(NOW - timedelta(minutes=1), model=model, status="error")
                        for _ in range(10)])  # fmt: skip
    rule = errors_rule(name="r" * 100)
    checker(engine, receiver, [rule]).check(NOW)
    (state,) = q.alert_states(engine)
    assert len(state.key) <= 400 and state.subject == model
    assert alert_key("r" * 100, "s" * 300) == alert_key("r" * 100, "s" * 300)
    assert alert_key("r" * 100, "s" * 300) != alert_key("r" * 100, "s" * 299 + "t")


# -- concurrency ---------------------------------------------------------------------------


def _check_in_process(url: str, hook: str, alerts: dict[str, Any], now: datetime,
                      barrier: Any) -> int:  # fmt: skip
    """In a child process: build a checker, wait for the others, check at ``now``."""
    engine = create_engine(url)
    checker = AlertChecker(engine, Alerts.model_validate(alerts), env={"HOOK": hook})
    with engine.connect():
        pass  # connected before the start line
    barrier.wait(timeout=60)
    result: CheckResult = checker.check(now)
    engine.dispose()
    return len(result.transitions)


@pytest.mark.integration
def test_processes_checking_at_the_same_moment_notify_once(engine, receiver, database_url) -> None:
    processes = 4
    alerts = {"channels": [HOOK], "rules": [errors_rule(), errors_rule(name="errors-2")]}
    context = multiprocessing.get_context("spawn")
    seed_errors(engine, NOW, 5)
    with context.Manager() as manager, context.Pool(processes) as pool:
        for now, event in ((NOW, "fired"), (NOW + timedelta(hours=1), "resolved")):
            barrier = manager.Barrier(processes)
            args = (database_url, receiver.url(), alerts, now, barrier)
            made = pool.starmap(_check_in_process, [args] * processes, chunksize=1)
            assert sum(made) == 2, made  # two alerts: each changed by exactly one process
            assert [b["event"] for b in receiver.bodies()].count(event) == 2
    assert sorted(told(receiver)) == sorted([
        ("fired", "errors", "gpt-4o"), ("fired", "errors-2", "gpt-4o"),
        ("resolved", "errors", "gpt-4o"), ("resolved", "errors-2", "gpt-4o"),
    ])  # fmt: skip
    assert len(q.alert_events(engine)) == 4


def test_compare_and_set_lets_one_writer_win(engine) -> None:
    new = q.AlertStateRow(key="k", rule="r", kind="error_rate", subject="s", state="firing",
                          fired_at=NOW, changed_at=NOW, threshold=0.1)  # fmt: skip
    assert q.claim_alert_state(engine, None, new)
    assert not q.claim_alert_state(engine, None, new)  # the row exists now
    (stored,) = q.alert_states(engine)
    assert stored == new
    resolved = q.AlertStateRow(**{**new.__dict__, "state": "resolved",
                                  "changed_at": NOW + timedelta(minutes=1)})  # fmt: skip
    assert q.claim_alert_state(engine, stored, resolved)
    assert not q.claim_alert_state(engine, stored, resolved)  # stale expectation
    assert not q.remove_alert_state(engine, stored)
    assert q.remove_alert_state(engine, resolved)
    assert q.alert_states(engine) == []


# -- the background thread -----------------------------------------------------------------


def test_the_background_thread_checks_until_stopped(engine, receiver) -> None:
    alerts = Alerts.model_validate({"channels": [HOOK], "rules": [errors_rule()]})
    ticks: list[datetime] = []

    def clock() -> datetime:
        ticks.append(NOW)
        return NOW

    checker_ = AlertChecker(engine, alerts, env={"HOOK": receiver.url()}, clock=clock)
    seed_errors(engine, NOW, 5)
    with checker_.start(interval=0.05):
        assert checker_.running
        deadline = time.monotonic() + 10
        while len(ticks) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not checker_.running
    assert len(ticks) >= 4
    assert told(receiver) == [("fired", "errors", "gpt-4o")]
    assert checker_.last_result is not None and checker_.last_error is None
    with pytest.raises(ValueError, match="more than 0"):
        checker_.start(interval=0)


# -- boundaries and odd stored values (attack round) ------------------------------------------

ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@ON_SQLITE
def test_a_budget_threshold_reached_exactly_fires(engine: Engine, receiver) -> None:
    """$0.99 of a $1.10 budget is 90% (`llmops budgets` shows 90.0%), but 100 * (0.99 /
    1.1) is 89.99999999999999 in floats: the 90% threshold was not reached."""
    budgets = (Budget(name="daily", window="day", limit_usd=1.1, thresholds=(90,)),)
    seed_calls(engine, [call(NOW - timedelta(hours=1), cost_usd=0.99)])
    (status,) = q.budget_status(engine, budgets, now=NOW)
    assert status.crossed == 90
    rule = [{"name": "b", "kind": "budget", "channels": ["hook"]}]
    checker(engine, receiver, rule, budgets).check(NOW)
    assert told(receiver) == [("fired", "b", "daily")]


@ON_SQLITE
def test_a_p95_exactly_factor_times_the_baseline_does_not_fire(engine: Engine, receiver) -> None:
    """The rule fires above factor x the baseline p95: 230 ms is 1.15 x 200 ms, though 1.15
    * 200.0 is 229.99999999999997 in floats. The message gave the ratio as 1.1x."""
    seed_calls(engine, [call(NOW - timedelta(days=1), latency_ms=200.0) for _ in range(5)])
    seed_calls(engine, [call(NOW - timedelta(minutes=1), latency_ms=230.0) for _ in range(5)])
    rule = {"name": "slow", "kind": "latency_p95", "window": "15m", "factor": 1.15,
            "min_calls": 5, "channels": ["hook"]}  # fmt: skip
    (condition,) = checker(engine, receiver, [rule]).check(NOW).conditions
    assert condition.status == "ok", condition.message
    assert "1.15x the p95" in condition.message


@ON_SQLITE
def test_a_baseline_p95_of_0_ms_breaks_no_rule(engine: Engine, receiver) -> None:
    """Calls of latency 0 in the baseline (written by SQL, or under the 3-decimal rounding):
    p95 / 0 raised ZeroDivisionError, and the whole check failed (the rules after it were
    never evaluated), every check for as long as the baseline held them."""
    seed_calls(engine, [call(NOW - timedelta(days=1), latency_ms=0.0) for _ in range(5)])
    seed_calls(engine, [call(NOW - timedelta(minutes=1), latency_ms=50.0) for _ in range(5)])
    seed_calls(engine, [call(NOW - timedelta(minutes=1), status="error") for _ in range(5)])
    rules = [
        {"name": "slow", "kind": "latency_p95", "window": "15m", "factor": 2,
         "min_calls": 5, "channels": ["hook"]},
        {"name": "errors", "kind": "error_rate", "window": "15m", "threshold": 0.1,
         "min_calls": 5, "channels": ["hook"]},
    ]  # fmt: skip
    result = checker(engine, receiver, rules).check(NOW)
    slow = [c for c in result.conditions if c.rule == "slow"]
    assert [c.status for c in slow] == ["no_data"], slow
    assert ("fired", "errors", "gpt-4o") in told(receiver)


@ON_SQLITE
def test_a_raised_limit_is_told_when_it_is_reached_again(engine: Engine, receiver) -> None:
    """The 100% alert of a $1 budget fired ($1.20 spent); the limit was raised to $2 the
    same day: 60%, past the 50% threshold, so the alert stayed at 100. When the spend then
    passed the new limit, nobody was told (100 is not above 100). The lower share now
    re-arms the alert quietly."""
    rule = [{"name": "b", "kind": "budget", "channels": ["hook"]}]
    small = (Budget(name="daily", window="day", limit_usd=1.0),)
    seed_calls(engine, [call(NOW - timedelta(hours=2), cost_usd=1.2)])
    checker(engine, receiver, rule, small).check(NOW)
    assert [(b["event"], b["threshold"]) for b in receiver.bodies()] == [("fired", 100.0)]
    raised = (Budget(name="daily", window="day", limit_usd=2.0),)
    checker(engine, receiver, rule, raised).check(NOW + timedelta(minutes=1))
    assert len(receiver.bodies()) == 1  # re-armed without a message
    seed_calls(engine, [call(NOW - timedelta(hours=1), cost_usd=1.0)])  # $2.20 of $2
    checker(engine, receiver, rule, raised).check(NOW + timedelta(minutes=2))
    assert [(b["event"], b["threshold"]) for b in receiver.bodies()] == [("fired", 100.0)] * 2


@ON_SQLITE
def test_an_infinite_value_is_null_in_the_webhook_body(engine: Engine, receiver) -> None:
    """An infinite cost written by SQL (SQLite keeps it) made the alert's value inf, and the
    webhook's JSON body held the bare token Infinity, which strict parsers refuse."""
    import json

    budgets = (Budget(name="daily", window="day", limit_usd=1.0),)
    seed_calls(engine, [call(NOW - timedelta(hours=1), cost_usd=float("inf"))])
    rule = [{"name": "b", "kind": "budget", "channels": ["hook"]}]
    checker(engine, receiver, rule, budgets).check(NOW)
    (request,) = receiver.requests

    def strict(token: str) -> None:
        raise AssertionError(f"not JSON: {token}")

    assert json.loads(request.body, parse_constant=strict)["value"] is None
