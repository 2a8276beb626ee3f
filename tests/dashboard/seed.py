"""A database seeded through the public API (gateways, feedback, an eval batch), and the
figures the dashboard should show, computed here from what was seeded.

Costs are known exactly: every reply scripts its token counts and the test prices them with
the list prices below. Latencies are wall-clock times nobody can script exactly, so they are
read back per call from the table (plain SQL, not ``llmops.store.queries``) and the test
computes their percentiles itself; time to first token comes from the stream results.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.evals.runner import Runner, plan
from llmops.evals.storage import save_report
from llmops.evals.suite import load_suite
from llmops.store.engine import create_engine
from llmops.testing import Reply
from tests.conftest import PromptRepo, prompt_yaml

# USD per million tokens (input, output)
PRICES = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00)}
UNPRICED_MODEL = "openai/acme-private-1"
DAILY_BUDGET = 1.00
MONTHLY_BUDGET = 50.00
EVAL_TOKENS = (1_000, 100)  # every eval call (gpt-4o-mini)


def price(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    per_input, per_output = PRICES[model]
    return prompt_tokens * per_input / 1e6 + completion_tokens * per_output / 1e6


@dataclass
class Call:
    created_at: datetime
    model: str
    status: str = "ok"
    source: str = "app"
    prompt_name: str | None = None
    prompt_version: str | None = None
    user: str | None = None
    tags: list[str] | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None  # what the call costs at the list prices (None: not priced)
    unpriced: bool = False  # stored as cost_status "unpriced"
    ttft_ms: float | None = None
    key: str | None = None  # the virtual key it came with (`llmops serve`)
    id: str | None = None
    feedback: list[Feedback] = field(default_factory=list)

    @property
    def day(self) -> date:
        return self.created_at.date()


@dataclass
class Feedback:
    score: float
    comment: str | None
    created_at: datetime
    name: str = "thumbs"


@dataclass
class Seed:
    now: datetime
    calls: list[Call]
    latency_ms: dict[str, float]  # call id -> stored latency
    versions: dict[str, str]  # "answer-v1", "answer-v2", "greet-prod", "greet-working"
    sources: dict[str, str]  # the same keys -> the prompt file text
    eval_batch: str

    @property
    def today(self) -> date:
        return self.now.date()

    def in_days(self, days: int) -> list[Call]:
        """The calls of the last ``days`` UTC days (today included)."""
        first = datetime.combine(self.today - timedelta(days=days - 1), time.min, UTC)
        return [c for c in self.calls if c.created_at >= first]

    def latencies(self, calls: list[Call]) -> list[float]:
        ids = {c.id for c in calls}
        return [v for k, v in self.latency_ms.items() if k in ids]


class Clock:
    """The gateways' clock: whatever time a test sets."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


EVAL_SUITE = """\
prompt: greet
threshold: 0.5
concurrency: 4
cases:
{cases}
"""


def eval_cases() -> str:
    """c0-c5 want "hello" (only the baseline says it), c6-c8 want the name (both pass),
    c9 wants "howdy" (only the candidate says it)."""
    lines = []
    for i in range(10):
        wanted = "hello" if i < 6 else (f"N{i}" if i < 9 else "howdy")
        lines.append(
            f"  - id: c{i}\n    vars: {{name: N{i}}}\n"
            f"    assert: [{{type: icontains, value: {wanted}}}]"
        )
    return "\n".join(lines)


# (days ago, model, prompt version key or None, prompt tokens, completion tokens, user, tags,
#  kind, feedback scores and comments)
APP_CALLS: list[tuple[Any, ...]] = [
    (0, "gpt-4o", "answer-v2", 100_000, 10_000, "alice", ["web"], "ok", [(1, "Great answer")]),
    (0, "gpt-4o-mini", "answer-v1", 1_000_000, 100_000, "bob", ["web", "beta"], "ok",
     [(0, "Wrong product")]),
    (0, "gpt-4o-mini", None, None, None, "alice", None, "error", []),
    (0, "gpt-4o-mini", "answer-v2", 10_000, 1_000, "carol", ["mobile"], "stream", [(1, None)]),
    (1, "gpt-4o", "answer-v1", 200_000, 20_000, "bob", None, "ok", [(0, "Too long")]),
    (1, "gpt-4o-mini", "answer-v2", 20_000, 2_000, "alice", ["web"], "stream", [(1, None)]),
    (3, "gpt-4o", "answer-v2", 400_000, 40_000, "alice", ["web"], "ok", [(1, "Spot on")]),
    (5, UNPRICED_MODEL, None, 1_000, 100, "dave", None, "unpriced", []),
    (20, "gpt-4o", "answer-v1", 100_000, 10_000, "bob", None, "ok", [(0, None)]),
]  # fmt: skip


def seed(database_url: str, repo: PromptRepo, server: Any, make_gateway: Any) -> Seed:
    now = datetime.now(UTC)
    # the calls are some minutes before now on their day: minutes made shorter in today's
    # first hour, so that no call of today (and of n days ago) falls on the day before
    minute = min(timedelta(minutes=1), (now - datetime.combine(now.date(), time.min, UTC)) / 60)
    versions, sources = write_prompts(repo)
    clock = Clock(now)
    routing = {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}
    app = make_gateway(prompts=repo.prompts, clock=clock)
    private = make_gateway(prompts=repo.prompts, clock=clock, content="none")
    calls: list[Call] = []
    for index, (days, model, key, pt, ct, user, tags, kind, scores) in enumerate(APP_CALLS):
        at = now - timedelta(days=days) - (10 + index) * minute
        assert at.date() == (now - timedelta(days=days)).date()
        clock.at = at
        prompt = f"support/answer@{versions[key]}" if key else None
        call = Call(at, model, user=user, tags=tags)
        if prompt:
            call.prompt_name, call.prompt_version = "support/answer", versions[key]
        args: dict[str, Any] = (
            {"prompt": prompt, "variables": {"name": "Ada"}}
            if prompt
            else {"messages": [{"role": "user", "content": "Ping?"}]}
        )
        if kind == "error":
            server.enqueue(Reply(status=500, text="upstream exploded"))
            with pytest.raises(Exception, match="upstream exploded"):
                app.complete(**args, model=model, user=user, tags=tags, **routing)
            call.status = "error"
            calls.append(call)
            continue
        call.prompt_tokens, call.completion_tokens = pt, ct
        if kind == "stream":
            server.enqueue(
                Reply(text="Sure, here it is", prompt_tokens=pt, completion_tokens=ct, ttft=0.02)
            )
            call.key = "web"  # as if through `llmops serve` with a key named web
            with app.stream(
                **args, model=model, user=user, tags=tags, api_key_name="web", **routing
            ) as stream:
                assert "".join(stream) == "Sure, here it is"
            result = stream.result
            assert result is not None and result.ttft_ms is not None
            call.ttft_ms = round(result.ttft_ms, 3)
        else:
            server.enqueue(Reply(prompt_tokens=pt, completion_tokens=ct))
            gateway = private if kind == "unpriced" else app
            result = gateway.complete(**args, model=model, user=user, tags=tags, **routing)
        call.id = result.call_id
        if kind == "unpriced":
            assert result.cost_status == "unpriced" and result.cost_usd is None
            call.unpriced = True
        else:
            call.cost = price(model, pt, ct)
            # the price map agrees with the list prices above
            assert result.cost_usd == pytest.approx(call.cost, rel=1e-9)
        for offset, (score, comment) in enumerate(scores):
            clock.at = at + (1 + offset) * minute
            app.feedback(call.id, score, name="thumbs", comment=comment, user="reviewer")
            call.feedback.append(Feedback(score, comment, clock.at))
        calls.append(call)

    # an eval batch: candidate (working tree, "Howdy") against baseline (production, "Hello")
    clock.at = now - 2 * minute
    server.route(
        "gpt-4o-mini", Reply(prompt_tokens=EVAL_TOKENS[0], completion_tokens=EVAL_TOKENS[1])
    )
    suite_path = repo.root / "evals" / "greet.yaml"
    suite_path.parent.mkdir(exist_ok=True)
    suite_path.write_text(EVAL_SUITE.format(cases=eval_cases()), encoding="utf-8")
    evals = make_gateway(prompts=repo.prompts, clock=clock, source="eval")
    report = Runner(evals, call_kwargs=lambda model: routing).run(
        plan(load_suite(suite_path), repo.registry)
    )
    save_report(evals.engine, report)
    candidate, baseline = report.runs
    assert (candidate.passed, baseline.passed) == (4, 9)
    for run, key in ((candidate, "greet-working"), (baseline, "greet-prod")):
        for result in run.results:
            calls.append(
                Call(
                    clock.at,
                    "gpt-4o-mini",
                    source="eval",
                    tags=["eval", "greet"],  # the runner tags its calls with the suite
                    prompt_name="greet",
                    prompt_version=versions[key],
                    prompt_tokens=EVAL_TOKENS[0],
                    completion_tokens=EVAL_TOKENS[1],
                    cost=price("gpt-4o-mini", *EVAL_TOKENS),
                    id=result.call_id,
                )
            )
    for gateway in (app, private, evals):
        assert gateway.flush(timeout=30)

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT id, latency_ms, status, cost_status FROM llm_calls")
            ).all()
    finally:
        engine.dispose()
    latency = {call_id: float(value) for call_id, value, _, _ in rows}
    # The error call's id is not returned by the gateway (it raises): find it in the table,
    # with whether the gateway stores failures as unpriced or as a priced $0.
    ((error_id, error_status),) = [(r[0], r[3]) for r in rows if r[2] == "error"]
    (error,) = [c for c in calls if c.status == "error"]
    error.id, error.unpriced = error_id, error_status == "unpriced"
    assert len(latency) == len(calls)
    return Seed(now, calls, latency, versions, sources, report.batch_id)


def write_prompts(repo: PromptRepo) -> tuple[dict[str, str], dict[str, str]]:
    """support/answer: v1 (production) and v2 (staging), both committed; greet: production
    says Hello (committed), the working tree says Howdy (not committed)."""
    sources = {
        "answer-v1": prompt_yaml("Good day"),
        "answer-v2": prompt_yaml("Hi there", extra="tags: [support]\n"),
        "greet-prod": prompt_yaml("Hello"),
        "greet-working": prompt_yaml("Howdy"),
    }
    versions = {}
    repo.write("support/answer.yaml", sources["answer-v1"])
    repo.write("greet.yaml", sources["greet-prod"])
    repo.commit("v1")
    versions["answer-v1"] = repo.registry.load("support/answer").version
    versions["greet-prod"] = repo.registry.load("greet").version
    repo.registry.promote("support/answer", "HEAD", "production")
    repo.registry.promote("greet", "HEAD", "production")
    repo.write("support/answer.yaml", sources["answer-v2"])
    repo.commit("v2")
    versions["answer-v2"] = repo.registry.load("support/answer").version
    repo.registry.promote("support/answer", "HEAD", "staging")
    repo.write("greet.yaml", sources["greet-working"])
    versions["greet-working"] = repo.registry.load("greet").version
    return versions, {k: textwrap.dedent(v) for k, v in sources.items()}


# -- figures computed from the seed ---------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def sign_test(b: int, c: int) -> float:
    """Exact one-sided p-value that b of b + c flips went the worse way: P(X >= b)."""
    n = b + c
    return sum(math.comb(n, i) for i in range(b, n + 1)) / 2**n


def spend_between(calls: list[Call], start: datetime, end: datetime, *, inclusive: bool) -> float:
    return sum(
        c.cost or 0.0
        for c in calls
        if start <= c.created_at and (c.created_at <= end if inclusive else c.created_at < end)
    )


def periods(seed: Seed, now: datetime) -> dict[str, tuple[float, float]]:
    """(spend, spend in the period before) for today, yesterday, this week and this month;
    a running period against the one before up to the same point (like with like)."""
    day = timedelta(days=1)
    today = datetime.combine(now.date(), time.min, UTC)
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    previous_month = (month - day).replace(day=1)
    calls = seed.calls

    def until(start: datetime, end: datetime) -> float:  # end included
        return spend_between(calls, start, end, inclusive=True)

    def before(start: datetime, end: datetime) -> float:  # end excluded
        return spend_between(calls, start, end, inclusive=False)

    same_days = previous_month + (now - month)
    return {
        "today": (until(today, now), until(today - day, now - day)),
        "yesterday": (before(today - day, today), before(today - 2 * day, today - day)),
        "this week": (until(week, now), until(week - 7 * day, now - 7 * day)),
        "this month": (
            until(month, now),
            until(previous_month, same_days)
            if same_days < month
            else before(previous_month, month),
        ),
    }
