"""A simulated support app: what ``llmops demo`` runs to fill a database with a month of
realistic calls.

It is an ordinary llmops user. It loads its prompts by label (``support/answer@production``)
from the demo's workspace (:mod:`llmops.demo.workspace`), retrieves help-center articles
for every question (:mod:`llmops.demo.articles`), calls models through a
:class:`~llmops.gateway.Gateway` pointed at the local simulated provider
(:mod:`llmops.demo.model`) over real HTTP, streams part of the answers, and sends end-user
feedback that depends on the answers. Only the clock is simulated: each call is recorded at
its planned time (:mod:`llmops.demo.traffic`). Nothing is written to the tables directly.

What happens during the period (:func:`run_month`):

- at the start, every prompt's first version is promoted to production;
- at ``v2_committed``, version 2 of ``support/answer`` is committed, and at ``rollout``
  it is promoted to production: its answers give numbered steps and invent no features,
  so its thumbs-up rate is about twice version 1's;
- each promotion of ``support/answer`` calls ``on_promotion`` first (``llmops demo`` runs
  the eval suite there, recorded at the promotion time: :mod:`llmops.demo.promotion`);
- the incidents of :class:`~llmops.demo.traffic.Schedule` (launch day, retry loop, outage).

Requests run concurrently on one asyncio loop (``Gateway.acomplete``/``astream``); each
sets the simulated clock in its own context, so concurrent calls keep their own times.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import random
import statistics
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol

from llmops.demo.articles import context_text, retrieve
from llmops.demo.knowledge import INVENTED_FEATURES, PRODUCTS
from llmops.demo.traffic import KINDS, Event, Fault, Kind, Schedule, plan_traffic
from llmops.demo.workspace import ANSWER_V2, PROMPTS, Workspace, nice_budget
from llmops.errors import ConfigError
from llmops.gateway import Gateway
from llmops.prompts import Prompt
from llmops.simulate import FakeLLMServer

__all__ = [
    "ANSWER_MODELS",
    "DemoStats",
    "Endpoint",
    "Providers",
    "SimulatedClock",
    "run_month",
    "suggest_budgets",
]

ANSWER_MODELS = {"free": "gpt-4o-mini", "pro": "gpt-4o", "enterprise": "gpt-5"}
TIERS = (("free", 45), ("pro", 38), ("enterprise", 17))
CUSTOMERS = {"free": 900, "pro": 260, "enterprise": 40}  # distinct users per tier
CHANNELS = (("web", 50), ("mobile", 30), ("widget", 20))
PRODUCT_WEIGHTS = (45, 30, 25)
STREAMED = 0.7  # share of web answers that are streamed

QUESTIONS = (
    "How do I reset my {p} to factory settings?",
    "My wifi keeps dropping every evening.",
    "Internet is really slow upstairs, what can I do?",
    "I forgot my admin password, how do I log in?",
    "I was charged twice this month.",
    "Where can I download my invoice?",
    "How do I update the firmware on my {p}?",
    "How do I set up my new {p}?",
    "The connection drops when I use the microwave.",
    "Is there a firmware update for my {p}?",
    "I moved house, should I reset the {p}?",
    "I can't log in, it says wrong password.",
    "My {p} stopped working after the power cut.",
    "Can I get a refund for the annual plan?",
)
LAUNCH_QUESTIONS = (  # the launch day: a firmware release for Acme Mesh
    "Is the new firmware 3.0 for my {p} out, and how do I install it?",
    "Since the firmware update my {p} keeps disconnecting.",
    "The update is stuck at 60%, what should I do with my {p}?",
)
EMAILS = (
    "Hi, I was charged twice for my {p} subscription this month. Please refund one.",
    "Our {p} is down across the whole office! Nobody can work. Please help asap.",
    "The {p} app crashes every time I open the settings page. Error 500.",
    "How do I set up port forwarding on the {p}?",
    "Could you send me a copy of last month's invoice? No rush.",
    "All my {p} nodes went offline after the storm.",
    "Hello, since yesterday the {p} drops the connection every hour and we lose calls.",
    "Dear support, I want to cancel the {p} subscription and get a refund for this month.",
)
SIGNATURE = (
    "\n\nBest regards,\n{name}\nOperations, Northwind Traders\n+44 20 7946 0000\n\n"
    "This email and any attachments are confidential and intended solely for the use of "
    "the individual to whom they are addressed. If you have received this email in error, "
    "please notify the sender and delete it."
)
AGENT_NOTES = (
    "Customer already restarted the device twice and replaced the cable.",
    "Diagnostics show {n} reconnects in the last 24 hours, firmware 3.2.{n}.",
    "Tier 1 suggested a factory reset; the customer does not want to lose the settings.",
    "The customer has {n} sites with the same setup and the problem on all of them.",
)
COMPLAINTS = (
    "It told me about a feature my {p} doesn't have.",
    "Too vague, I needed actual steps.",
    "Didn't answer my question.",
)
PRAISE = ("Clear steps, fixed it!", "Quick and helpful.", "Worked first time, thanks.")
NAMES = ("Dana", "Lee", "Sam", "Priya", "Jonas", "Ana", "Kofi", "Mei")
AGENTS = tuple(f"agent-{n:02d}" for n in range(1, 13))
OPENAI_STYLE = ("gpt-", "o1", "o3", "o4")


class SimulatedClock:
    """The time calls are recorded at. Each asyncio task (or thread) sets its own with
    :meth:`set`; the Gateway reads it when it records a call or a feedback."""

    def __init__(self, start: datetime) -> None:
        self._default = start
        self._now: contextvars.ContextVar[datetime] = contextvars.ContextVar("demo_clock")

    def set(self, when: datetime) -> None:
        self._now.set(when)

    def __call__(self) -> datetime:
        return self._now.get(self._default)


class Endpoint(Protocol):
    """A simulated provider's addresses: a FakeLLMServer, or the demo's ProviderProcess."""

    @property
    def base_url(self) -> str: ...

    @property
    def anthropic_base_url(self) -> str: ...


@dataclass(frozen=True)
class Providers:
    """Where the app's calls go: the working simulated provider, and two in trouble."""

    working: Endpoint
    limited: Endpoint  # answers 429
    down: Endpoint  # answers 503 (1 in 4: 500)

    def route(self, model: str, fault: Fault | None) -> dict[str, Any]:
        """litellm-style keyword arguments for a call to ``model``."""
        anthropic = model.startswith(("claude", "anthropic/"))
        server = {"limited": self.limited, "down": self.down}.get(fault or "", self.working)
        base = server.anthropic_base_url if anthropic else server.base_url
        return {"api_base": base, "api_key": "sk-demo", "num_retries": 0}

    def forget(self) -> None:
        """Drop the requests the servers recorded (a month of them would fill the memory)."""
        for server in (self.working, self.limited, self.down):
            if isinstance(server, FakeLLMServer):
                server.reset()


@dataclass
class DemoStats:
    """What the app did: calls (errors included), errors, streamed calls, feedback scores,
    and per UTC day the calls and their cost in USD."""

    calls: int = 0
    errors: int = 0
    streamed: int = 0
    feedback: int = 0
    calls_by_day: dict[date, int] = field(default_factory=dict)
    cost_by_day: dict[date, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "errors": self.errors,
            "streamed": self.streamed,
            "feedback": self.feedback,
            "calls_by_day": {day.isoformat(): n for day, n in self.calls_by_day.items()},
            "cost_by_day": {day.isoformat(): usd for day, usd in self.cost_by_day.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DemoStats:
        return cls(
            calls=int(data["calls"]),
            errors=int(data["errors"]),
            streamed=int(data["streamed"]),
            feedback=int(data["feedback"]),
            calls_by_day={date.fromisoformat(d): int(n) for d, n in data["calls_by_day"].items()},
            cost_by_day={date.fromisoformat(d): float(c) for d, c in data["cost_by_day"].items()},
        )

    def add(self, other: DemoStats) -> None:
        """Add what another part of the app (another process) did."""
        self.calls += other.calls
        self.errors += other.errors
        self.streamed += other.streamed
        self.feedback += other.feedback
        for day, n in other.calls_by_day.items():
            self.calls_by_day[day] = self.calls_by_day.get(day, 0) + n
        for day, usd in other.cost_by_day.items():
            self.cost_by_day[day] = self.cost_by_day.get(day, 0.0) + usd

    def count(self, when: datetime, cost: float | None, *, error: bool = False) -> None:
        day = when.date()
        self.calls += 1
        self.errors += error
        self.calls_by_day[day] = self.calls_by_day.get(day, 0) + 1
        self.cost_by_day[day] = self.cost_by_day.get(day, 0.0) + (cost or 0.0)


BUDGET_HEADROOM = 1.25  # the daily budget: a typical weekday's spend times this, rounded up
MONTH_HEADROOM = 1.2  # the monthly budget: 31 average days times this, rounded up


def suggest_budgets(stats: DemoStats, schedule: Schedule) -> tuple[float, float]:
    """The budgets ``llmops demo`` sets: daily, a typical weekday's spend (the median of the
    complete weekdays without an incident) plus 25%, so that the launch and spike days go
    over it; monthly, a 31-day month of average days plus 20%. Both are rounded up to a
    number a person would pick (:func:`~llmops.demo.workspace.nice_budget`)."""
    costs = stats.cost_by_day
    if not costs:
        return nice_budget(1.0), nice_budget(31 * MONTH_HEADROOM)
    last_day = datetime.combine(schedule.end.date(), time(), schedule.end.tzinfo)
    partial = schedule.end - last_day < timedelta(hours=22)
    ordinary = {
        day: cost
        for day, cost in costs.items()
        if day not in (schedule.spike_day, schedule.launch_day)
        and not (partial and day == schedule.end.date())
    }
    weekdays = [cost for day, cost in ordinary.items() if day.weekday() < 5]
    typical = statistics.median(weekdays) if weekdays else max(ordinary.values(), default=0.0)
    typical = typical or statistics.mean(costs.values())
    return (
        nice_budget(typical * BUDGET_HEADROOM),
        nice_budget(statistics.mean(costs.values()) * 31 * MONTH_HEADROOM),
    )


#: ``on_promotion(prompt name, time)``: awaited before a promotion of support/answer.
OnPromotion = Callable[[str, datetime], Awaitable[None]]


@dataclass
class _App:
    gateway: Gateway
    providers: Providers
    schedule: Schedule
    clock: SimulatedClock
    stats: DemoStats
    prompts: dict[str, Prompt] = field(default_factory=dict)

    def load_prompts(self) -> None:
        """Load the production version of every prompt, as the app does when it starts and
        after a promotion (the Gateway records each call's prompt version and commit)."""
        self.prompts = {name: self.gateway.prompt(f"{name}@production") for name in PROMPTS}

    async def handle(self, event: Event) -> None:
        self.clock.set(event.at)
        rng = random.Random(event.seed)  # noqa: S311 - a reproducible simulation
        try:
            if event.kind == "answer":
                await self._answer(event, rng)
            elif event.kind == "ticket":
                await self._ticket(event, rng)
            elif event.kind == "escalate":
                await self._escalate(event, rng)
            else:
                await self._summary(event, rng)
        except ConfigError:  # a prompt that cannot load is not a provider error: stop
            raise
        except Exception:  # the provider failed (a simulated 429/5xx): the app moves on
            self.stats.count(event.at, None, error=True)

    def _route(self, event: Event, model: str) -> dict[str, Any]:
        fault = event.fault
        if self.schedule.in_outage(event.at) and model.startswith(OPENAI_STYLE):
            fault = "down"
        return self.providers.route(model, fault)

    async def _complete(self, event: Event, name: str, variables: dict[str, Any],
                        model: str | None, **kwargs: Any) -> tuple[str, str]:  # fmt: skip
        """Call the model; count it; returns the answer text and the call id."""
        prompt = self.prompts[name]
        route = self._route(event, model or prompt.model or "")
        result = await self.gateway.acomplete(prompt, variables, model=model, **kwargs, **route)
        self.stats.count(event.at, result.cost_usd)
        return result.text, result.call_id

    async def _feedback(self, when: datetime, call_id: str, score: float, name: str,
                        comment: str | None = None, user: str | None = None) -> None:  # fmt: skip
        self.clock.set(when)
        self.gateway.feedback(call_id, score, name=name, comment=comment, user=user)
        self.stats.feedback += 1

    async def _answer(self, event: Event, rng: random.Random) -> None:
        launch = event.at.date() == self.schedule.launch_day
        if launch and rng.random() < 0.6:
            product, question = "Acme Mesh", rng.choice(LAUNCH_QUESTIONS)
        else:
            product, question = rng.choices(PRODUCTS, PRODUCT_WEIGHTS)[0], rng.choice(QUESTIONS)
        question = question.format(p=product)
        tier = rng.choices([t for t, _ in TIERS], [w for _, w in TIERS])[0]
        user = f"{tier}-{rng.randrange(CUSTOMERS[tier]):04d}"
        channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
        articles = retrieve(product, question, rng.randint(3, 6), rng)
        variables: dict[str, Any] = {
            "question": question,
            "product": product,
            "tier": tier,
            "context": context_text(articles),
        }
        if rng.random() < 0.4:
            variables["customer_name"] = rng.choice(NAMES)
        streamed = channel == "web" and rng.random() < STREAMED
        rated, good_draw, stars, commented = (rng.random() for _ in range(4))
        later = event.at + timedelta(minutes=rng.uniform(0.5, 20))
        model = ANSWER_MODELS[tier]
        call: dict[str, Any] = {
            "model": model,
            "user": user,
            "session": f"s-{event.seed % 10**8:08d}",
            "tags": ["support", channel],
            "metadata": {"tier": tier, "articles": [a.id for a in articles]},
            **self._route(event, model),
        }
        prompt = self.prompts["support/answer"]
        if streamed:
            stream = await self.gateway.astream(prompt, variables, **call)
            async with stream:
                async for _ in stream:
                    pass
            text, call_id = stream.text, stream.call_id
            result = stream.result
            self.stats.count(event.at, result.cost_usd if result else None)
            self.stats.streamed += 1
        else:
            completion = await self.gateway.acomplete(prompt, variables, **call)
            text, call_id = completion.text, completion.call_id
            self.stats.count(event.at, completion.cost_usd)
        if rated >= 0.45:  # about half the customers rate the answer
            return
        invented = any(feature in text for feature in INVENTED_FEATURES)
        steps = "1. " in text
        good = good_draw < (0.12 if invented else 0.86 if steps else 0.55)
        comment = None
        if commented < 0.3:
            comment = (rng.choice(PRAISE) if good else rng.choice(COMPLAINTS)).format(p=product)
        await self._feedback(later, call_id, 1 if good else 0, "thumbs", comment, user)
        if stars < 0.3:
            score = rng.choice((4, 5)) if good else rng.choice((1, 2, 3))
            await self._feedback(later, call_id, score, "stars", None, user)

    async def _ticket(self, event: Event, rng: random.Random) -> None:
        product = rng.choices(PRODUCTS, PRODUCT_WEIGHTS)[0]
        email = rng.choice(EMAILS).format(p=product)
        if rng.random() < 0.5:
            email += SIGNATURE.format(name=rng.choice(NAMES))
        model = "o4-mini" if rng.random() < 0.15 else "gpt-4o-mini"
        checked = rng.random() < 0.3
        text, call_id = await self._complete(
            event, "extract/ticket", {"email": email}, model, user="inbox",
            tags=["tickets", "email"], metadata={"product": product},
        )  # fmt: skip
        if checked:  # a triage agent looks at the ticket: did it parse?
            try:
                parsed = isinstance(json.loads(text), dict)
            except ValueError:
                parsed = False
            later = event.at + timedelta(minutes=rng.uniform(5, 90))
            await self._feedback(later, call_id, 1 if parsed else 0, "parsed", None,
                                 rng.choice(AGENTS))  # fmt: skip

    async def _escalate(self, event: Event, rng: random.Random) -> None:
        product = rng.choices(PRODUCTS, PRODUCT_WEIGHTS)[0]
        email = rng.choice(EMAILS).format(p=product)
        notes = [rng.choice(AGENT_NOTES).format(n=rng.randrange(2, 60)) for _ in range(2)]
        ticket = "\n".join(
            [email, "", "Earlier in this ticket:",
             "Agent: Could you restart it and tell me what the status light shows?",
             "Customer: I did, it still happens, and it is getting worse.",
             *(f"Agent note: {note}" for note in notes)]
        )  # fmt: skip
        articles = retrieve(product, email, rng.randint(5, 7), rng)
        agent = rng.choice(AGENTS)
        reviewed, accepted = rng.random(), rng.random()
        metadata: dict[str, Any] = {"articles": [a.id for a in articles]}
        if event.attempt:
            metadata["attempt"] = event.attempt + 1
        text, call_id = await self._complete(
            event, "support/escalate",
            {"ticket": ticket, "product": product, "context": context_text(articles)},
            None, user=agent, tags=["escalations", "agent-assist"], metadata=metadata,
        )  # fmt: skip
        if event.attempt or reviewed >= 0.5:
            return
        good = "1. " in text and not any(f in text for f in INVENTED_FEATURES)
        later = event.at + timedelta(minutes=rng.uniform(2, 30))
        await self._feedback(later, call_id, 1 if accepted < (0.8 if good else 0.3) else 0,
                             "accepted", None, agent)  # fmt: skip

    async def _summary(self, event: Event, rng: random.Random) -> None:
        product = rng.choices(PRODUCTS, PRODUCT_WEIGHTS)[0]
        messages = [{"author": "customer", "text": rng.choice(QUESTIONS).format(p=product)}]
        for turn in range(rng.randint(2, 5)):
            note = rng.choice(AGENT_NOTES).format(n=rng.randrange(2, 60))
            messages.append({"author": "agent", "text": f"{note} Could you try restarting it?"})
            reply = "That worked, thanks!" if turn and rng.random() < 0.3 else (
                "I did, it still happens.")  # fmt: skip
            messages.append({"author": "customer", "text": reply})
        useful, score = rng.random(), rng.random()
        _, call_id = await self._complete(
            event, "summarize/thread", {"messages": messages}, None,
            user="handoff-bot", tags=["internal", "batch"],
        )  # fmt: skip
        if useful < 0.15:
            later = event.at + timedelta(hours=rng.uniform(6, 8))  # the morning shift
            await self._feedback(later, call_id, 1 if score < 0.85 else 0, "useful", None,
                                 rng.choice(AGENTS))  # fmt: skip


def _segments(events: list[Event], cuts: Iterable[datetime]) -> Iterator[list[Event]]:
    """``events`` (in time order) cut before each of ``cuts`` (sorted)."""
    index = 0
    for cut in cuts:
        end = index
        while end < len(events) and events[end].at < cut:
            end += 1
        yield events[index:end]
        index = end
    yield events[index:]


async def run_month(
    gateway: Gateway,
    workspace: Workspace,
    providers: Providers,
    schedule: Schedule,
    clock: SimulatedClock,
    *,
    calls_per_day: float = 500,
    seed: int = 7,
    concurrency: int = 16,
    kinds: Collection[Kind] = KINDS,
    releases: bool = True,
    on_promotion: OnPromotion | None = None,
    on_released: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoStats:
    """Simulate the period of ``schedule``: about ``calls_per_day`` requests a day on
    average (see :mod:`llmops.demo.traffic`), the promotions and the incidents.

    ``gateway`` must load its prompts from ``workspace.prompts`` and read ``clock``.
    ``kinds``: the features to run (the others are left to another process, see
    :mod:`llmops.demo.backoffice`). ``releases``: make the releases (the first one, then
    support/answer v2); ``False`` in a process that only uses the prompts, once the first
    release is out. ``on_released()`` is called once the first release is out.
    """
    events = [e for e in plan_traffic(schedule, calls_per_day, seed) if e.kind in kinds]
    stats = DemoStats()
    app = _App(gateway, providers, schedule, clock, stats)
    done = 0

    async def first_release() -> None:
        if on_promotion is not None:
            await on_promotion("support/answer", schedule.start)
        workspace.promote(list(PROMPTS), "production", schedule.start)

    async def commit_v2() -> None:
        if workspace.git is None:  # without history, v1 must stay the working tree until
            return  # it is replaced in production
        workspace.write_prompt("support/answer", ANSWER_V2)
        workspace.commit(
            "support/answer v2: numbered steps, say how to tell it worked, invent nothing",
            schedule.v2_committed,
        )

    async def roll_out() -> None:
        if workspace.git is None:
            workspace.write_prompt("support/answer", ANSWER_V2)
        if on_promotion is not None:
            await on_promotion("support/answer", schedule.rollout)
        workspace.promote(["support/answer"], "production", schedule.rollout)

    milestones: dict[datetime, Callable[[], Awaitable[None]]] = {}
    if releases:
        milestones = {schedule.v2_committed: commit_v2, schedule.rollout: roll_out}
    days = [schedule.start + timedelta(days=i) for i in range(1, schedule.days)]
    cuts = sorted(set(milestones) | set(days))

    async def drain(segment: list[Event]) -> None:
        nonlocal done
        queue = iter(segment)

        async def worker() -> None:
            nonlocal done
            for event in queue:
                await app.handle(event)
                done += 1
                if progress is not None:
                    progress(done, len(events))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        providers.forget()

    if releases:
        await first_release()
    if on_released is not None:
        on_released()
    app.load_prompts()
    for segment, cut in zip(_segments(events, cuts), [*cuts, None], strict=True):
        await drain(segment)
        if cut in milestones:
            await milestones[cut]()
            app.load_prompts()
    return stats
