"""``llmops demo`` end to end (the in-process ``cli``): a few days of traffic through the
simulated provider's own process, the eval at each promotion, the budgets, the printed
figures, and the demo's folder with its prompt history."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.config import Settings
from llmops.store.engine import create_engine

pytestmark = pytest.mark.integration  # the simulated provider runs in a child process


def _money(text: str, label: str) -> float:
    match = re.search(rf"{label} \$([0-9.,]+)", text)
    assert match, text
    return float(match.group(1).replace(",", ""))


def test_demo_fills_days_sets_budgets_and_prints_how_to_look(cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    home = tmp_path / "home"
    today = datetime.now(UTC).date()  # the demo's days end with today's part so far
    result = cli("demo", "--no-dashboard", "--days", "4", "--calls", "60", "--database-url", url,
                 cwd=tmp_path, env={"LLMOPS_HOME": str(home)})  # fmt: skip
    assert result.code == 0, result.stdout + result.stderr
    out = result.stdout
    calls = int(re.search(r"Simulated app: (\d+) calls", out).group(1))  # type: ignore[union-attr]
    assert 150 < calls < 600  # 4 days of about 60 requests (a spike and a launch day)
    daily = _money(out, "Budgets:")
    assert _money(out, "max") > daily > _money(out, "min")  # a day over the budget
    assert out.count("eval support at ") == 2  # one per promotion of support/answer
    workspace = home / "demo"
    done = out.splitlines()[-1]
    assert done.startswith("Done. Look at it with: ") and f"--database-url {url}" in done
    assert f"LLMOPS_PROMPTS_DIR={workspace / 'prompts'}" in done
    assert f"LLMOPS_CONFIG={workspace / 'llmops.yaml'}" in done
    assert f"LLMOPS_DAILY_BUDGET={daily:g}" in done

    settings = Settings.from_env({"LLMOPS_CONFIG": str(workspace / "llmops.yaml")})
    assert settings.daily_budget_usd == daily and settings.monthly_budget_usd
    budgets = cli("budgets", "--json", "--database-url", url, cwd=tmp_path,
                  env={"LLMOPS_CONFIG": str(workspace / "llmops.yaml")})  # fmt: skip
    assert budgets.code == 0, budgets.stderr
    assert {row["budget"] for row in json.loads(budgets.stdout)} == {
        "all-calls-daily",
        "o3-monthly",
    }
    log = cli("prompts", "log", "support/answer", "--dir", str(workspace / "prompts"),
              cwd=tmp_path)  # fmt: skip
    assert log.code == 0 and len(log.stdout.strip().splitlines()) == 3  # header, v2, v1
    assert "production" in log.stdout.splitlines()[1]  # v2, promoted

    with create_engine(url).connect() as connection:
        per_day = connection.execute(
            sa.text(
                "SELECT substr(created_at, 1, 10), count(*) FROM llm_calls WHERE source = 'app' "
                "GROUP BY 1"
            )
        ).all()
        batches = connection.execute(
            sa.text("SELECT count(DISTINCT batch_id) FROM eval_runs")
        ).scalar_one()
    found = {date.fromisoformat(day) for day, _ in per_day}
    assert sum(n for _, n in per_day) == calls and batches == 2
    # the three days before today, and today unless the demo ran in its first hours (at night
    # the app has few calls)
    past = {today - timedelta(days=n) for n in (1, 2, 3)}
    assert past <= found <= past | {today}, found
    assert today in found or datetime.now(UTC).hour < 12, found

    again = cli("demo", "--no-dashboard", "--no-evals", "--days", "1", "--calls", "10",
                "--database-url", f"sqlite:///{tmp_path / 'again.db'}", cwd=tmp_path,
                env={"LLMOPS_HOME": str(home)})  # fmt: skip
    assert again.code == 0, again.stderr  # the demo's folder is replaced
    assert "eval support" not in again.stdout
    log = cli("prompts", "log", "support/answer", "--dir", str(workspace / "prompts"),
              cwd=tmp_path)  # fmt: skip
    assert len(log.stdout.strip().splitlines()) == 3


def test_demo_refuses_a_folder_it_did_not_make(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "mine.txt").write_text("keep me")
    result = cli("demo", "--no-dashboard", "--days", "1", "--calls", "10",
                 "--database-url", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path,
                 env={"LLMOPS_HOME": str(home)})  # fmt: skip
    assert result.code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "is not a folder of `llmops demo`" in result.stderr
    assert (home / "demo" / "mine.txt").read_text() == "keep me"


def test_the_back_office_runs_its_share_of_the_plan_in_its_own_process(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from llmops.demo.backoffice import BACK_OFFICE, BackOffice, BackOfficeSettings
    from llmops.demo.model import failing_model
    from llmops.demo.provider import ProviderProcess
    from llmops.demo.traffic import Schedule, plan_traffic
    from llmops.demo.workspace import PROMPTS, Workspace
    from llmops.simulate import FakeLLMServer

    now = datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    schedule = Schedule.of(2, now)
    workspace = Workspace.create(tmp_path / "demo", at=schedule.start - timedelta(hours=5))
    workspace.promote(list(PROMPTS), "production", schedule.start)  # the first release
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    with (
        ProviderProcess() as working,
        FakeLLMServer(responder=failing_model(429)) as limited,
        FakeLLMServer(responder=failing_model()) as down,
    ):
        settings = BackOfficeSettings(
            database_url=url, home=str(tmp_path / "home"), workspace=str(workspace.root),
            days=2, now=now.isoformat(), calls_per_day=80, seed=7, working=working.url,
            limited=limited.url, down=down.url,
        )  # fmt: skip
        back_office = BackOffice(settings)
        back_office.start()
        stats = back_office.finish()
        broken = BackOffice(BackOfficeSettings(**{**settings.__dict__, "database_url": "nope"}))
        broken.start()
        with pytest.raises(RuntimeError, match="back office failed"):
            broken.finish()
    planned = [e for e in plan_traffic(schedule, 80, 7) if e.kind in BACK_OFFICE]
    assert stats.calls == len(planned) > 20
    with create_engine(url).connect() as connection:
        rows = dict(
            connection.execute(
                sa.text("SELECT prompt_name, count(*) FROM llm_calls GROUP BY 1")
            ).all()
        )
    assert set(rows) == {"extract/ticket", "support/escalate", "summarize/thread"}
    assert sum(rows.values()) == stats.calls


@pytest.mark.parametrize(
    ("spend", "budget"), [(7.43, 7.5), (13.2, 15.0), (0.41, 0.43), (0.66, 0.68), (0.031, 0.04)]
)
def test_budgets_are_round_numbers_in_whole_cents(spend: float, budget: float) -> None:
    from llmops.demo.workspace import nice_budget
    from llmops.money import usd

    assert nice_budget(spend) == budget
    assert usd(nice_budget(spend)) == f"${budget:.2f}"  # shown as it is set
