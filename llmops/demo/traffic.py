"""When the demo's support app is used: a month of requests with a realistic shape.

:func:`plan_traffic` turns an average number of requests per day into timed
:class:`Event` objects, deterministically from a seed:

- **Weekly and daily shape**: weekdays carry about 1.7 times the traffic of weekend days,
  and the hours follow European and American office hours (UTC), quiet at night; the
  volume grows about 12% over the period, and each day varies by up to 5%.
- **Features**: 63% help-widget answers (``support/answer``), 25% ticket extraction from
  emails (``extract/ticket``), 11.5% drafts for escalated tickets on o3
  (``support/escalate``, office hours only), and a nightly batch of handoff summaries on
  claude-haiku-4-5 (``summarize/thread``, 02:00-02:40).
- **Incidents** (see :class:`Schedule`): a launch day with twice the customer traffic (the
  day over the daily budget), a spike day on which the escalation agent retries in a loop
  all afternoon (o3 calls, some rate-limited: about 3x the day's spend), an outage hour in
  which the OpenAI-style models answer 503/500, and a rare 429 or 5xx on any day.

Each event carries its own seed: what it asks, for whom and how it is rated are drawn from
it when it runs, so the plan is the same whatever order concurrent requests finish in.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

__all__ = ["KINDS", "Event", "Fault", "Kind", "Schedule", "plan_traffic"]

Kind = Literal["answer", "ticket", "escalate", "summary"]
KINDS: tuple[Kind, ...] = ("answer", "ticket", "escalate", "summary")
#: Where a call goes instead of the working provider: ``limited`` answers 429, ``down``
#: answers 503 (1 in 4: 500).
Fault = Literal["limited", "down"]

#: Share of a day's requests per feature (summaries are a nightly batch of this size).
SHARES: dict[Kind, float] = {"answer": 0.63, "ticket": 0.25, "escalate": 0.115, "summary": 0.005}
#: Relative traffic per weekday, Monday first.
WEEKDAYS = (1.14, 1.18, 1.16, 1.12, 1.02, 0.72, 0.68)
#: Relative traffic per hour of the day (UTC): Europe's and the Americas' office hours.
HOURS = (
    1.6, 1.2, 1.0, 0.9, 1.0, 1.3, 2.2, 3.8, 5.8, 7.2, 7.6, 7.4,
    7.0, 7.6, 8.2, 8.6, 8.2, 7.2, 6.2, 5.2, 4.6, 4.0, 3.2, 2.2,
)  # fmt: skip
#: Weekend hours: later mornings, a flatter afternoon.
WEEKEND_HOURS = (
    2.0, 1.6, 1.2, 1.0, 1.0, 1.0, 1.2, 1.8, 2.8, 4.0, 5.0, 5.6,
    5.8, 6.0, 6.0, 5.8, 5.6, 5.4, 5.2, 5.0, 4.6, 4.0, 3.2, 2.6,
)  # fmt: skip
#: Escalations are drafted while agents work (07:00-19:00 UTC).
AGENT_HOURS = tuple(1.0 if 7 <= hour < 19 else 0.0 for hour in range(24))
LAUNCH_FACTOR = 2.0
LOOP_HOURS = (12, 20)  # the spike day's retry loop runs from 12:00 to 20:00 UTC
LOOP_REPEATS = 6  # extra o3 calls per escalation while the loop runs
LOOP_LIMITED = 0.15  # share of the loop's calls that are rate-limited
BACKGROUND_ERRORS = 0.003  # share of calls that get a 429 or a 5xx on an ordinary day


@dataclass(frozen=True)
class Schedule:
    """The period and its incidents, placed by :meth:`of`.

    ``start`` is 00:00 UTC of the first day and ``end`` the moment the simulation stops
    (the last day is "today so far"). The v2 of ``support/answer`` is committed at
    ``v2_committed`` and promoted to production at ``rollout`` (in the middle of the
    period); ``launch_day`` and ``spike_day`` are distinct weekdays when the period has
    two complete ones; the outage lasts from ``outage`` for one hour.
    """

    start: datetime
    end: datetime
    days: int
    rollout: datetime
    v2_committed: datetime
    outage: datetime
    spike_day: date
    launch_day: date

    @classmethod
    def of(cls, days: int, now: datetime) -> Schedule:
        """The ``days`` calendar days (UTC) that end with ``now``'s day."""
        if days < 1:
            raise ValueError("days must be at least 1")
        first = now.astimezone(UTC).date() - timedelta(days=days - 1)
        start = datetime.combine(first, time(), UTC)
        complete = [i for i in range(days) if i < days - 1 or days < 3]
        weekdays = [i for i in complete if (first + timedelta(days=i)).weekday() < 5]
        used: list[int] = []

        def pick(fraction: float) -> int:
            """The free weekday nearest ``fraction`` of the period (else any free day, else
            any day)."""
            target = round(fraction * (days - 1))
            for pool in (weekdays, complete, list(range(days))):
                free = [i for i in pool if i not in used]
                if free:
                    break
            else:
                free = list(range(days))
            chosen = min(free, key=lambda i: (abs(i - target), i))
            used.append(chosen)
            return chosen

        spike, launch, outage = pick(0.7), pick(0.85), pick(0.3)
        rollout = start + timedelta(days=(days - 1) // 2, hours=10)
        return cls(
            start=start,
            end=now.astimezone(UTC),
            days=days,
            rollout=rollout,
            v2_committed=max(start + timedelta(hours=1), rollout - timedelta(hours=20)),
            outage=start + timedelta(days=outage, hours=14),
            spike_day=first + timedelta(days=spike),
            launch_day=first + timedelta(days=launch),
        )

    def day(self, index: int) -> date:
        return self.start.date() + timedelta(days=index)

    def in_outage(self, when: datetime) -> bool:
        return self.outage <= when < self.outage + timedelta(hours=1)

    def in_loop(self, when: datetime) -> bool:
        return when.date() == self.spike_day and LOOP_HOURS[0] <= when.hour < LOOP_HOURS[1]


@dataclass(frozen=True, slots=True)
class Event:
    """One request of the app: when, which feature, its seed, a forced fault, and for the
    spike day's retry loop the attempt number (0: the original request)."""

    at: datetime
    kind: Kind
    seed: int
    fault: Fault | None = None
    attempt: int = 0


def day_weight(schedule: Schedule, index: int, rng: random.Random) -> float:
    """Traffic of day ``index`` relative to the average day (weekday, trend, noise, launch)."""
    day = schedule.day(index)
    weekday = WEEKDAYS[day.weekday()] / (sum(WEEKDAYS) / 7)
    trend = 0.95 + 0.12 * index / max(schedule.days - 1, 1)
    weight = weekday * trend * rng.uniform(0.95, 1.05)
    return weight * (LAUNCH_FACTOR if day == schedule.launch_day else 1.0)


def plan_traffic(schedule: Schedule, calls_per_day: float, seed: int = 7) -> list[Event]:
    """Every request of the period, in time order (see the module docstring)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
    events: list[Event] = []
    for index in range(schedule.days):
        day_start = schedule.start + timedelta(days=index)
        volume = calls_per_day * day_weight(schedule, index, rng)
        weekend = schedule.day(index).weekday() >= 5
        for kind, share in SHARES.items():
            count = max(1, round(volume * share)) if kind == "summary" else round(volume * share)
            for _ in range(count):
                at = _when(kind, day_start, weekend, rng)
                fault: Fault | None = None
                if rng.random() < BACKGROUND_ERRORS:
                    fault = "limited" if rng.random() < 0.6 else "down"
                event = Event(at, kind, rng.getrandbits(48), fault)
                events.append(event)
                if kind == "escalate" and schedule.in_loop(at):
                    for attempt in range(1, LOOP_REPEATS + 1):
                        limited = rng.random() < LOOP_LIMITED
                        retry = at + timedelta(seconds=25 * attempt + rng.uniform(0, 10))
                        events.append(Event(retry, kind, event.seed,
                                            "limited" if limited else None, attempt))  # fmt: skip
    events.sort(key=lambda e: (e.at, e.seed, e.attempt))
    return [e for e in events if e.at < schedule.end]


def _when(kind: Kind, day_start: datetime, weekend: bool, rng: random.Random) -> datetime:
    if kind == "summary":  # the nightly batch job
        return day_start + timedelta(hours=2, seconds=rng.uniform(0, 2400))
    weights = AGENT_HOURS if kind == "escalate" else WEEKEND_HOURS if weekend else HOURS
    hour = rng.choices(range(24), weights=weights)[0]
    return day_start + timedelta(hours=hour, seconds=rng.uniform(0, 3600))
