"""A prompt's history for the evidence report, built through the public API at known times.

Prompt ``assist`` gets three versions in a real git repository (commits dated days back),
promotions to ``production`` (and one to ``staging``) committed in ``labels.yaml`` by another
author, eval runs of every version (v1 alone, v2 against v1, v3 against v2 only after v3
went to production), and twelve days of app traffic through the real Gateway with a clock:
two models at list prices, scripted token counts, server errors, a call a blocking budget
refuses, thumbs (0/1) and stars (1-5) feedback. Calls of another prompt and of the eval
runner are there too, so that a report that counted them would be wrong. Two alert events
are stored: one in the report's period, one long before it.

Everything the tests compare the report with is kept in :class:`History`, as seeded here;
latencies, which nobody can script, are read back per call from the table.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops import Budget, BudgetExceededError
from llmops.audit.report import Report, build_report
from llmops.evals.runner import Runner, plan
from llmops.evals.storage import save_report
from llmops.evals.suite import load_suite
from llmops.prompts import PromptRegistry
from llmops.store.engine import create_engine
from llmops.store.queries import AlertEventRow, record_alert_event
from llmops.testing import Reply
from tests.conftest import PromptRepo, prompt_yaml

PROMPT = "assist"
OTHER_PROMPT = "other"
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00)}  # USD per million tokens
GREETINGS = {"v1": "Hello", "v2": "Hi", "v3": "Hey"}
AUTHOR = ("Ada Tester", "ada@example.com")
RELEASER = ("Grace Releaser", "grace@example.com")
THRESHOLD = 0.8
HOSTILE = ' <script>alert("x")</script> & | `tick` *bold*'  # escaped everywhere

# c0-c8 want the name (every version passes), c9 wants "hi" (only v2 says it)
SUITE = """\
prompt: assist
threshold: {threshold}
concurrency: 2
cases:
{cases}
"""

# (days ago, hours before that moment, model, version key, prompt tokens, completion
#  tokens, kind: ok | error, feedback [(name, score)])
TRAFFIC: list[tuple[Any, ...]] = [
    (11, 2, "gpt-4o-mini", "v1", 1_000, 100, "ok", [("thumbs", 1), ("stars", 5)]),
    (11, 1, "gpt-4o", "v1", 2_000, 200, "ok", [("thumbs", 0)]),
    (10, 3, "gpt-4o-mini", "v1", 1_500, 150, "error", []),
    (9, 1, "gpt-4o-mini", "v1", 3_000, 300, "ok", [("stars", 3)]),
    (7, 2, "gpt-4o", "v2", 4_000, 400, "ok", [("thumbs", 1), ("stars", 4)]),
    (6, 2, "gpt-4o-mini", "v2", 1_200, 120, "ok", [("thumbs", 1)]),
    (6, 1, "gpt-4o-mini", "v2", 1_200, 120, "error", []),
    (5, 1, "gpt-4o", "v2", 800, 80, "ok", [("stars", 2)]),
    (3, 2, "gpt-4o-mini", "v3", 2_500, 250, "ok", [("thumbs", 0), ("stars", 1)]),
    (2, 1, "gpt-4o-mini", "v3", 900, 90, "ok", [("thumbs", 1)]),
    (1, 3, "gpt-4o", "v3", 5_000, 500, "ok", []),
    (0, 1, "gpt-4o-mini", "v3", 700, 70, "ok", [("stars", 5)]),
]


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    per_input, per_output = PRICES[model]
    return prompt_tokens * per_input / 1e6 + completion_tokens * per_output / 1e6


@dataclass
class SeededCall:
    at: datetime
    model: str
    version: str
    status: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    id: str | None = None
    feedback: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Promotion:
    label: str
    version: str
    previous: str | None
    at: datetime
    commit: str
    author: str


@dataclass(frozen=True)
class SeededRun:
    id: str
    batch_id: str
    version: str
    role: str
    started_at: datetime
    passed_cases: int
    cases: int


@dataclass
class History:
    database_url: str
    repo: PromptRepo
    now: datetime
    versions: dict[str, str]  # "v1" -> version id
    sources: dict[str, str]  # "v1" -> file text
    commits: dict[str, str]  # "v1" -> sha of the commit that wrote it
    promotions: list[Promotion]
    runs: list[SeededRun]
    calls: list[SeededCall]  # app calls of PROMPT, blocked one included
    eval_calls: int  # calls the eval runner made for PROMPT
    latency_ms: dict[str, float] = field(default_factory=dict)  # call id -> stored latency
    alert_in_period: str = ""
    alert_before: str = ""

    @property
    def prompts(self) -> Path:
        return self.repo.prompts


def _commit(repo: PromptRepo, message: str, at: datetime, who: tuple[str, str]) -> str:
    """Commit everything as ``who`` at ``at`` (author and committer date)."""
    stamp = at.isoformat()
    env = {
        **os.environ,
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_DATE": stamp,
        "GIT_AUTHOR_NAME": who[0],
        "GIT_AUTHOR_EMAIL": who[1],
        "GIT_COMMITTER_NAME": who[0],
        "GIT_COMMITTER_EMAIL": who[1],
    }
    subprocess.run(["git", "add", "-A"], cwd=repo.root, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", message], cwd=repo.root, check=True, env=env)
    return repo.git("rev-parse", "HEAD")


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def suite_cases() -> str:
    lines = []
    for i in range(10):
        wanted = f"N{i}" if i < 9 else "hi,"
        lines.append(
            f"  - id: c{i}\n    vars: {{name: N{i}}}\n"
            f"    assert: [{{type: icontains, value: '{wanted}'}}]"
        )
    return "\n".join(lines)


@pytest.fixture
def history(
    database_url: str, repo: PromptRepo, server: Any, make_gateway: Callable[..., Any]
) -> History:
    now = datetime.now(UTC).replace(microsecond=0)

    def ago(days: int, hours: float = 0) -> datetime:
        return now - timedelta(days=days, hours=hours)

    clock = Clock(ago(12))
    routing = {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}
    suite_path = repo.root / "evals" / f"{PROMPT}.yaml"
    suite_path.parent.mkdir()
    suite_path.write_text(SUITE.format(threshold=THRESHOLD, cases=suite_cases()), "utf-8")
    evals = make_gateway(prompts=repo.prompts, clock=clock, source="eval")
    seeded = History(database_url, repo, now, {}, {}, {}, [], [], [], 0)

    def write(key: str, days: int, hours: float) -> None:
        text = prompt_yaml(GREETINGS[key])
        repo.write(f"{PROMPT}.yaml", text)
        seeded.sources[key] = text
        message = f"{PROMPT}: say {GREETINGS[key]}" + (HOSTILE if key == "v3" else "")
        seeded.commits[key] = _commit(repo, message, ago(days, hours), AUTHOR)
        seeded.versions[key] = repo.registry.load(PROMPT).version

    def promote(key: str, label: str, days: int, hours: float) -> None:
        version, previous = repo.registry.promote(PROMPT, seeded.versions[key], label)
        at = ago(days, hours)
        sha = _commit(repo, f"promote {PROMPT} {key} to {label}", at, RELEASER)
        seeded.promotions.append(Promotion(label, version, previous, at, sha, RELEASER[0]))

    def evaluate(candidate: str, baseline: str | None, days: int, hours: float) -> None:
        at = ago(days, hours)
        clock.at = at
        report = Runner(evals, call_kwargs=lambda model: routing).run(
            plan(
                load_suite(suite_path),
                repo.registry,
                version=seeded.versions[candidate],
                baseline=seeded.versions[baseline] if baseline else "none",
            )
        )
        for run in report.runs:  # the runs happened at the history's time, not today
            run.started_at, run.finished_at = at, at + timedelta(minutes=1)
        save_report(evals.engine, report)
        for run in report.runs:
            cases = {r.case_id: r.passed for r in run.results}
            seeded.runs.append(
                SeededRun(
                    run.id,
                    report.batch_id,
                    run.target.prompt.version,
                    run.role,
                    at,
                    sum(cases.values()),
                    len(cases),
                )
            )
            seeded.eval_calls += len(run.results)

    # v1: committed, evaluated (9/10), promoted
    write("v1", 12, 0)
    evaluate("v1", None, 12, -1)
    promote("v1", "production", 12, -2)
    # v2: committed, staged, evaluated against v1 (10/10 against 9/10), promoted
    write("v2", 8, 0)
    promote("v2", "staging", 8, -0.5)
    evaluate("v2", "v1", 8, -1)
    promote("v2", "production", 8, -2)
    # v3: committed and promoted straight away; evaluated against v2 only the day after
    write("v3", 4, 0)
    promote("v3", "production", 4, -1)
    evaluate("v3", "v2", 3, -1)

    app = make_gateway(prompts=repo.prompts, clock=clock)
    for days, hours, model, key, pt, ct, kind, scores in TRAFFIC:
        clock.at = ago(days, hours)
        call = SeededCall(clock.at, model, seeded.versions[key], "ok" if kind == "ok" else "error")
        args = {"prompt": f"{PROMPT}@{call.version}", "variables": {"name": "Ada"}}
        if kind == "error":
            server.enqueue(Reply(status=500, text="upstream exploded"))
            with pytest.raises(Exception, match="upstream exploded"):
                app.complete(**args, model=model, **routing)
            seeded.calls.append(call)
            continue
        server.enqueue(Reply(prompt_tokens=pt, completion_tokens=ct))
        result = app.complete(**args, model=model, **routing)
        call.id, call.prompt_tokens, call.completion_tokens = result.call_id, pt, ct
        call.cost = price(model, pt, ct)
        assert result.cost_usd == pytest.approx(call.cost, rel=1e-9)
        for offset, (name, score) in enumerate(scores):
            clock.at = call.at + timedelta(minutes=1 + offset)
            app.feedback(result.call_id, score, name=name, user="reviewer")
            call.feedback.append((name, float(score)))
        seeded.calls.append(call)

    # a call a blocking budget refuses: never sent, stored as blocked
    clock.at = ago(2, 2)
    budget = Budget(name="cap", window="day", limit_usd=0.000001, action="block")
    capped = make_gateway(prompts=repo.prompts, clock=clock, budgets=[budget])
    with pytest.raises(BudgetExceededError):
        capped.complete(
            prompt=f"{PROMPT}@{seeded.versions['v3']}",
            variables={"name": "Ada"},
            model="gpt-4o-mini",
            max_tokens=10,
            **routing,
        )
    seeded.calls.append(SeededCall(clock.at, "gpt-4o-mini", seeded.versions["v3"], "blocked"))

    # another prompt's call, in the period: not part of this report
    repo.write(f"{OTHER_PROMPT}.yaml", prompt_yaml("Yo"))
    _commit(repo, "other prompt", ago(6), AUTHOR)
    clock.at = ago(2)
    server.enqueue(Reply(prompt_tokens=50_000, completion_tokens=5_000))
    app.complete(prompt=OTHER_PROMPT, variables={"name": "Bo"}, model="gpt-4o", **routing)

    for gateway in (app, evals, capped):
        assert gateway.flush(timeout=30)

    engine = create_engine(database_url)
    try:
        in_period = AlertEventRow(
            key="budget:cap:day",
            rule="cap",
            kind="budget",
            subject="all calls",
            event="fired",
            at=ago(2, 1),
            value=0.9,
            threshold=0.8,
            message="cap at 90%",
        )
        before = AlertEventRow(
            key="errors:x",
            rule="errors",
            kind="error_rate",
            subject="gpt-4o",
            event="fired",
            at=ago(400),
            value=0.5,
            threshold=0.1,
            message="old",
        )
        record_alert_event(engine, in_period)
        record_alert_event(engine, before)
        seeded.alert_in_period, seeded.alert_before = in_period.id, before.id
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT id, latency_ms, status, created_at FROM llm_calls "
                    "WHERE prompt_name = :name AND source = 'app'"
                ),
                {"name": PROMPT},
            ).all()
    finally:
        engine.dispose()
    seeded.latency_ms = {r[0]: float(r[1]) for r in rows if r[1] is not None}
    # the failed and blocked calls' ids are not returned (the gateway raises): take them
    # from the table by status and time
    for call in seeded.calls:
        if call.id is None:
            matches = [r[0] for r in rows if r[2] == call.status and _same(r[3], call.at)]
            assert len(matches) == 1, (call, rows)
            call.id = matches[0]
    assert len(rows) == len(seeded.calls)
    return seeded


def _same(stored: Any, at: datetime) -> bool:
    moment = stored if isinstance(stored, datetime) else datetime.fromisoformat(str(stored))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return abs((moment - at).total_seconds()) < 1


def build(history: History, ref: str = PROMPT, **kwargs: Any) -> Report:
    """The report on ``ref`` over the last 183 days of the history (``start``, ``end``,
    ``now`` and ``retention_settings`` may be given)."""
    engine = create_engine(history.database_url)
    try:
        start = kwargs.pop("start", history.now - timedelta(days=183))
        end = kwargs.pop("end", history.now + timedelta(seconds=1))
        kwargs.setdefault("now", history.now)
        return build_report(
            engine, PromptRegistry(history.prompts), ref, start, end, database="test", **kwargs
        )
    finally:
        engine.dispose()
