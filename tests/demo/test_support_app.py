"""The demo's month of traffic at a reduced scale (5 days, ~100 requests a day), through the
real Gateway and FakeLLMServers over HTTP: its shape is read back from the database."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.demo.model import demo_model, failing_model
from llmops.demo.promotion import PromotionEvals
from llmops.demo.support_app import (
    ANSWER_MODELS,
    DemoStats,
    Providers,
    SimulatedClock,
    run_month,
    suggest_budgets,
)
from llmops.demo.traffic import Schedule
from llmops.demo.workspace import Workspace
from llmops.gateway import Gateway
from llmops.simulate import FakeLLMServer
from llmops.store.engine import create_engine

# Thursday 26 November to Tuesday 1 December 2026, 23:30 UTC.
NOW = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
DAYS = 6
TUESDAY, SUNDAY = date(2026, 12, 1), date(2026, 11, 29)  # days without an incident
PER_DAY = 100


@dataclass
class Month:
    url: str
    schedule: Schedule
    stats: DemoStats
    workspace: Workspace
    evals: PromotionEvals

    def rows(self, sql: str, **params: object) -> list[sa.Row]:
        with create_engine(self.url).connect() as connection:
            return list(connection.execute(sa.text(sql), params))


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    root = tmp_path_factory.mktemp("demo")
    url = f"sqlite:///{root / 'demo.db'}"
    schedule = Schedule.of(DAYS, NOW)
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("LLMOPS_")]:
            patch.delenv(key)
        workspace = Workspace.create(root / "workspace", at=schedule.start - timedelta(hours=20))
        clock = SimulatedClock(schedule.start)
        with (
            FakeLLMServer(responder=demo_model()) as working,
            FakeLLMServer(responder=failing_model(429)) as limited,
            FakeLLMServer(responder=failing_model()) as down,
        ):
            providers = Providers(working, limited, down)
            evals = PromotionEvals(
                url, workspace, lambda model: providers.route(model, None), echo=lambda _: None
            )
            gateway = Gateway(
                database_url=url, prompts=workspace.registry(), clock=clock, budgets=[],
                direct=True, home=root / "home", content="full",
            )  # fmt: skip
            try:
                stats = asyncio.run(
                    run_month(
                        gateway,
                        workspace,
                        providers,
                        schedule,
                        clock,
                        calls_per_day=PER_DAY,
                        on_promotion=evals,
                    )
                )
            finally:
                gateway.close()
    return Month(url, schedule, stats, workspace, evals)


def _by_day(month: Month, sql: str) -> dict[date, float]:
    return {date.fromisoformat(str(day)): value for day, value in month.rows(sql)}


def test_the_schedule_places_each_incident_on_its_own_day(month: Month) -> None:
    s = month.schedule
    assert s.start == datetime(2026, 11, 26, tzinfo=UTC) and s.end == NOW
    assert s.spike_day == date(2026, 11, 30) and s.launch_day == date(2026, 11, 27)  # Mon, Fri
    assert s.outage == datetime(2026, 11, 26, 14, tzinfo=UTC)  # Thursday
    assert s.rollout == datetime(2026, 11, 28, 10, tzinfo=UTC)  # Saturday
    assert s.v2_committed == s.rollout - timedelta(hours=20)


def test_calls_per_day_follow_the_week(month: Month) -> None:
    calls = _by_day(
        month,
        "SELECT substr(created_at, 1, 10), count(*) FROM llm_calls WHERE source = 'app' GROUP BY 1",
    )
    assert sorted(calls) == [month.schedule.day(i) for i in range(DAYS)]
    assert sum(calls.values()) == month.stats.calls  # every call the app made is recorded
    weekday, sunday = calls[TUESDAY], calls[SUNDAY]
    assert 0.9 * PER_DAY < weekday < 1.5 * PER_DAY and 0.4 * PER_DAY < sunday < 0.9 * PER_DAY
    assert weekday > 1.4 * sunday  # weekday vs weekend
    assert calls[month.schedule.launch_day] > 1.5 * weekday  # the launch day's extra traffic
    hours = {
        int(hour): count
        for hour, count in month.rows(
            "SELECT substr(created_at, 12, 2), count(*) FROM llm_calls WHERE source = 'app'"
            " GROUP BY 1"
        )
    }
    assert sum(hours.get(h, 0) for h in range(9, 15)) > 3 * sum(hours.get(h, 0) for h in range(6))


def test_the_outage_hour_is_provider_errors(month: Month) -> None:
    start = month.schedule.outage
    errors = month.rows(
        "SELECT created_at, model, error_type FROM llm_calls WHERE status = 'error'"
    )
    in_outage = [r for r in errors if start <= _utc(r[0]) < start + timedelta(hours=1)]
    assert len(in_outage) >= 3 and len(in_outage) > len(errors) / 3
    assert {error_type for *_, error_type in in_outage} == {"ProviderError"}  # 503s and 500s
    outside = [
        r for r in errors if r not in in_outage and _utc(r[0]).date() != month.schedule.spike_day
    ]
    assert len(outside) <= 0.02 * month.stats.calls  # a rare 429 or 5xx on other days
    ok_in_outage = month.rows(
        "SELECT count(*) FROM llm_calls WHERE status = 'ok' AND model LIKE 'gpt-%'"
        " AND created_at >= :a AND created_at < :b",
        a=start.replace(tzinfo=None).isoformat(sep=" "),
        b=(start + timedelta(hours=1)).replace(tzinfo=None).isoformat(sep=" "),
    )
    assert ok_in_outage[0][0] == 0  # nothing OpenAI-style got through that hour


def test_spend_reads_in_dollars_with_a_spike_and_a_day_over_budget(month: Month) -> None:
    spend = _by_day(
        month,
        "SELECT substr(created_at, 1, 10), sum(cost_usd) FROM llm_calls"
        " WHERE source = 'app' GROUP BY 1",
    )
    for day, cost in spend.items():
        assert cost == pytest.approx(month.stats.cost_by_day[day], rel=1e-6)
    weekday = spend[TUESDAY]
    assert weekday > 0.5  # ~$1 at a fifth of the default volume: dollars at the default
    assert spend[month.schedule.spike_day] > 2 * weekday  # the retry loop (3x at full scale)
    daily, monthly = suggest_budgets(month.stats, month.schedule)
    over = [day for day, cost in spend.items() if cost > daily]
    assert set(over) >= {month.schedule.spike_day, month.schedule.launch_day}
    assert len(over) == 2  # the launch and the spike day
    assert 31 * statistics.mean(spend.values()) < monthly < 50 * statistics.mean(spend.values())
    loop = month.rows(
        "SELECT count(*) FROM llm_calls WHERE model = 'o3' AND substr(created_at, 1, 10) = :d",
        d=month.schedule.spike_day.isoformat(),
    )[0][0]
    assert (
        loop
        > 3
        * month.rows(
            "SELECT count(*) FROM llm_calls WHERE model = 'o3' AND substr(created_at, 1, 10) = :d",
            d=TUESDAY.isoformat(),
        )[0][0]
    )


def test_a_realistic_model_mix_with_retrieval_sized_prompts(month: Month) -> None:
    rows = month.rows(
        "SELECT prompt_name, model, count(*), min(prompt_tokens), avg(prompt_tokens),"
        " max(prompt_tokens), sum(cost_status = 'priced') FROM llm_calls"
        " WHERE source = 'app' AND status = 'ok' GROUP BY 1, 2"
    )
    models = {model for _, model, *_ in rows}
    assert models >= {*ANSWER_MODELS.values(), "o3", "o4-mini", "claude-haiku-4-5"}
    for name, _, count, low, mean, high, priced in rows:
        assert priced == count  # every model is in the price map: exact costs
        if name == "support/answer":
            assert low >= 900 and high <= 3000 and 1200 <= mean <= 2200
        if name == "support/escalate":
            assert low >= 1500 and high <= 3200
    streamed = month.rows("SELECT count(*) FROM llm_calls WHERE ttft_ms IS NOT NULL")[0][0]
    assert 0.1 * month.stats.calls < streamed == month.stats.streamed


def test_the_new_prompt_version_is_rolled_out_and_rated_better(month: Month) -> None:
    versions = month.rows(
        "SELECT prompt_version, git_commit, min(created_at), max(created_at) FROM llm_calls"
        " WHERE prompt_name = 'support/answer' AND source = 'app' GROUP BY 1 ORDER BY 3"
    )
    assert len(versions) == 2 and all(commit for _, commit, *_ in versions)
    (old, _, _, old_last), (new, _, new_first, _) = versions
    rollout = month.schedule.rollout
    assert _utc(old_last) < rollout <= _utc(new_first)
    feedback = {
        (version, name): (count, mean)
        for version, name, count, mean in month.rows(
            "SELECT c.prompt_version, f.name, count(*), avg(f.score) FROM feedback f"
            " JOIN llm_calls c ON c.id = f.call_id GROUP BY 1, 2"
        )
    }
    names = {name for _, name in feedback}
    assert names >= {"thumbs", "stars", "parsed", "accepted"}
    assert feedback[(new, "thumbs")][1] > feedback[(old, "thumbs")][1] + 0.2
    assert feedback[(new, "stars")][1] > feedback[(old, "stars")][1] + 0.5
    assert sum(count for count, _ in feedback.values()) == month.stats.feedback
    log = subprocess.run(
        ["git", "log", "--format=%aI %s", "--", "prompts/support/answer.yaml"],
        cwd=month.workspace.root, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert log[0].startswith(month.schedule.v2_committed.isoformat()) and "v2" in log[0]
    labels = month.workspace.registry().labels().of("support/answer")
    assert labels["production"] == new


def test_each_promotion_has_an_eval_run_dated_at_the_promotion(month: Month) -> None:
    runs = month.rows(
        "SELECT batch_id, role, prompt_version, started_at, pass_rate FROM eval_runs"
        " ORDER BY started_at, role DESC"
    )
    batches: dict[str, list[tuple[str, str, datetime, float]]] = defaultdict(list)
    for batch, role, version, started, rate in runs:
        batches[batch].append((role, version, _utc(started), rate))
    first, second = sorted(batches.values(), key=lambda b: b[0][2])
    assert [(role, at) for role, _, at, _ in first] == [("candidate", month.schedule.start)]
    rollout = month.schedule.rollout
    assert {(role, at) for role, _, at, _ in second} == {
        ("candidate", rollout),
        ("baseline", rollout),
    }
    rates = {role: (version, rate) for role, version, _, rate in second}
    assert rates["baseline"][0] == first[0][1]  # the version promoted first
    assert rates["candidate"][1] > rates["baseline"][1]
    eval_calls = month.rows("SELECT min(created_at), max(created_at) FROM llm_calls"
                            " WHERE source = 'eval'")[0]  # fmt: skip
    assert {_utc(eval_calls[0]), _utc(eval_calls[1])} == {month.schedule.start, rollout}
    assert len(month.evals.reports) == 2


def _utc(value: object) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def test_the_plan_is_the_same_for_the_same_seed() -> None:
    from llmops.demo.traffic import plan_traffic

    schedule = Schedule.of(30, NOW)
    first, again = plan_traffic(schedule, 500, seed=3), plan_traffic(schedule, 500, seed=3)
    assert first == again and first != plan_traffic(schedule, 500, seed=4)
    per_day: dict[date, int] = defaultdict(int)
    for event in first:
        per_day[event.at.date()] += 1
    ordinary = [n for day, n in per_day.items() if day not in (schedule.spike_day,
                schedule.launch_day)]  # fmt: skip
    assert min(ordinary) >= 300 and max(per_day.values()) <= 3000
    assert 450 <= statistics.mean(per_day.values()) <= 600


def test_a_folder_that_is_not_the_demos_is_refused(tmp_path: Path) -> None:
    from llmops.errors import ConfigError

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not a folder of `llmops demo`"):
        Workspace.create(tmp_path / "demo", at=NOW)
    assert (tmp_path / "demo" / "notes.txt").read_text() == "mine"


def test_without_git_the_versions_come_from_the_working_tree(tmp_path: Path) -> None:
    schedule = Schedule.of(2, NOW)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    workspace = Workspace.create(tmp_path / "demo", at=schedule.start, use_git=False)
    assert workspace.git is None and not (workspace.root / ".git").exists()
    clock = SimulatedClock(schedule.start)
    with (
        FakeLLMServer(responder=demo_model()) as working,
        FakeLLMServer(responder=failing_model(429)) as limited,
        FakeLLMServer(responder=failing_model()) as down,
    ):
        providers = Providers(working, limited, down)
        evals = PromotionEvals(url, workspace, lambda m: providers.route(m, None), echo=print)
        gateway = Gateway(
            database_url=url, prompts=workspace.registry(), clock=clock, budgets=[],
            direct=True, home=tmp_path / "home", content="full",
        )  # fmt: skip
        try:
            stats = asyncio.run(
                run_month(
                    gateway,
                    workspace,
                    providers,
                    schedule,
                    clock,
                    calls_per_day=30,
                    kinds=["answer"],
                    on_promotion=evals,
                )
            )
        finally:
            gateway.close()
    with create_engine(url).connect() as connection:
        versions = connection.execute(
            sa.text(
                "SELECT prompt_version, count(*), max(git_commit) FROM llm_calls"
                " WHERE source = 'app' GROUP BY 1"
            )
        ).all()
        roles = connection.execute(sa.text("SELECT role FROM eval_runs")).scalars().all()
    assert len(versions) == 2 and all(commit is None for *_, commit in versions)
    assert sum(count for _, count, _ in versions) == stats.calls
    assert sorted(roles) == ["candidate", "candidate"]  # no baseline to load without git
