"""Alert rules evaluated over the database, notified once per crossing.

A check evaluates every rule of ``alerts.rules`` at one instant (``now``) into conditions
(:class:`Condition`: one per rule and subject, such as a model, a prompt version or a key of
a budget), then compares each with the alert's row in ``alert_state``:

- a condition that is ``firing`` where the alert is not (no row, or ``resolved``) fires it;
- a ``budget`` alert that reaches a higher threshold in the same window fires again;
- an alert that is firing resolves when its condition is ``ok``, or ``no_data`` (too few
  calls or scores to judge; the message says so), or no longer evaluated at all (the
  subject has no data; a spend-anomaly day ended). ``budget`` alerts are not resolved with a
  message (a window's spend does not go down): their row is closed quietly when the window
  ends, and the next window fires afresh.

Every change is a compare-and-set in one transaction (:func:`claim_alert_state`): of several
processes or cron jobs checking at the same moment, exactly one makes the change and sends
the notification. The state records what people were told: when no channel of the rule
delivered, the change is undone, so the next check tries again (if the condition still
holds). A channel that failed while another delivered is recorded in ``alert_events.failed``
and not retried: the alert reached people. A process that dies between the change and the
delivery loses that one notification (at most once, never twice).
"""

from __future__ import annotations

import hashlib
import logging
import os
import statistics
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Engine

from llmops.config import (
    AlertRule,
    Alerts,
    Budget,
    BudgetAlert,
    ErrorRateAlert,
    EvalDropAlert,
    FeedbackDriftAlert,
    LatencyAlert,
    Settings,
    SpendAnomalyAlert,
    format_duration,
)
from llmops.control.channels import Channel, Notification, build_channels, dashboard_url, deliver
from llmops.errors import LLMOpsError
from llmops.money import usd
from llmops.store.audit_log import utc
from llmops.store.queries import (
    AlertEventRow,
    AlertStateRow,
    alert_states,
    budget_status,
    claim_alert_state,
    error_counts,
    eval_series,
    feedback_averages,
    latency_p95,
    record_alert_event,
    remove_alert_state,
    spend_in_spans,
)

__all__ = ["AlertChecker", "CheckResult", "Condition", "Transition", "format_value"]

logger = logging.getLogger("llmops.alerts")

Status = Literal["firing", "ok", "no_data"]
Event = Literal["fired", "resolved"]
MAX_KEY = 400  # alert_state.key
MAX_SUBJECT = 300  # alert_state.subject
MAX_BUDGET_KEYS = 1000  # keys of one ``each`` budget watched (the highest spenders)
ALL = "all calls"
NO_PROMPT = "(no prompt)"


@dataclass(frozen=True)
class Condition:
    """One rule evaluated for one subject at one instant."""

    rule: str
    kind: str
    key: str  # rule, subject and window: the alert's identity in alert_state
    subject: str
    status: Status
    value: float | None
    threshold: float | None
    message: str
    window: str  # what the figures cover, for people: "15m", "month from 2026-12-01"
    window_start: datetime | None = None
    escalates: bool = False  # a higher threshold fires again (budgets)

    def to_json(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "key": self.key,
            "subject": self.subject,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "window": self.window,
            "message": self.message,
        }


@dataclass(frozen=True)
class Transition:
    """An alert that fired or resolved in a check, and where its notification went."""

    event: Event
    condition: Condition
    channels: tuple[str, ...]  # the rule's
    delivered: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()  # "channel: reason"
    notified: bool = True  # False: a dry run, or a resolution the rule keeps quiet

    def to_json(self) -> dict[str, object]:
        return {
            "event": self.event,
            **self.condition.to_json(),
            "channels": list(self.channels),
            "delivered": list(self.delivered),
            "failed": list(self.failed),
        }


@dataclass(frozen=True)
class CheckResult:
    """What one check found and did."""

    at: datetime
    dry_run: bool
    conditions: tuple[Condition, ...]
    transitions: tuple[Transition, ...]

    @property
    def fired(self) -> list[Transition]:
        return [t for t in self.transitions if t.event == "fired"]

    @property
    def resolved(self) -> list[Transition]:
        return [t for t in self.transitions if t.event == "resolved"]

    @property
    def failed(self) -> list[Transition]:
        return [t for t in self.transitions if t.failed]

    @property
    def exit_code(self) -> int:
        """For ``llmops alerts check``: 1 when an alert fired (or would, in a dry run) or a
        delivery failed, else 0 (a resolution alone is good news)."""
        return 1 if self.fired or self.failed else 0

    def to_json(self) -> dict[str, object]:
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "fired": len(self.fired),
            "resolved": len(self.resolved),
            "events": [t.to_json() for t in self.transitions],
            "conditions": [c.to_json() for c in self.conditions],
        }


# -- evaluating rules ---------------------------------------------------------------------


def alert_key(rule: str, subject: str, window: str = "") -> str:
    """``rule|subject|window``; a key too long for its column keeps its start and a hash."""
    key = f"{rule}|{subject}|{window}" if window else f"{rule}|{subject}"
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[: MAX_KEY - len(digest) - 1]}#{digest}"


def _key_prefix(budget: Budget) -> str:
    """What the subjects of an ``each`` budget's alerts start with: ``per-user (user ``."""
    return f"{budget.name} ({budget.scope_key} "


def _subject(text: str) -> str:
    return text if len(text) <= MAX_SUBJECT else text[: MAX_SUBJECT - 1] + "\u2026"


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def format_value(kind: str, value: float | None) -> str:
    """A condition's value or threshold in its rule's unit, for people."""
    if value is None:
        return ""
    if kind == "budget":
        return f"{value:.1f}%"
    if kind == "spend_anomaly":
        return usd(value)
    if kind in ("error_rate", "eval_drop"):
        return _percent(value)
    if kind == "latency_p95":
        return _ms(value)
    return f"{value:.3g}"


class _Evaluator:
    """Evaluates rules at one instant; ``states`` are the alert rows of each rule (eval_drop
    remembers in its row the pass rate a suite must get back to)."""

    def __init__(
        self,
        engine: Engine,
        now: datetime,
        budgets: Sequence[Budget],
        states: Mapping[str, AlertStateRow],
    ) -> None:
        self.engine = engine
        self.now = now
        self.budgets = budgets
        self.states = states
        # (subject prefix, window start) of each ``each`` budget with more keys
        # than MAX_BUDGET_KEYS: a key not among the highest spenders is not evaluated, so
        # its alert stays as it is
        self.partly_watched: set[tuple[str, datetime]] = set()

    def evaluate(self, rule: AlertRule) -> list[Condition]:
        if isinstance(rule, BudgetAlert):
            return self.budget(rule)
        if isinstance(rule, SpendAnomalyAlert):
            return self.spend_anomaly(rule)
        if isinstance(rule, ErrorRateAlert):
            return self.error_rate(rule)
        if isinstance(rule, LatencyAlert):
            return self.latency(rule)
        if isinstance(rule, FeedbackDriftAlert):
            return self.feedback_drift(rule)
        return self.eval_drop(rule)

    def budget(self, rule: BudgetAlert) -> list[Condition]:
        chosen = [b for b in self.budgets if rule.budget in (None, b.name)]
        found = []
        statuses = budget_status(self.engine, chosen, now=self.now, top=MAX_BUDGET_KEYS)
        keys = Counter(row.budget.name for row in statuses if row.key is not None)
        self.partly_watched |= {
            (_key_prefix(row.budget), utc(row.window_start))
            for row in statuses
            if keys[row.budget.name] >= MAX_BUDGET_KEYS
        }
        for row in statuses:
            if row.crossed is None:
                continue
            budget = row.budget
            scope = budget.describe_scope()
            if row.key is not None:
                scope = f"{budget.scope_key} {row.key}"
            subject = budget.name if row.key is None else f"{_key_prefix(budget)}{row.key})"
            subject = _subject(subject)
            day = f"{row.window_start:%Y-%m-%d}"
            message = (
                f"budget {budget.name} ({scope}): {row.crossed:g}% reached: "
                f"{usd(row.spent_usd)} of {usd(row.limit_usd)} this {budget.window} "
                f"(from {day})"
            )
            window = f"{budget.window} from {day}"
            condition = _condition(
                rule, subject, "firing", row.percent, row.crossed, message, window,
                period=day, window_start=row.window_start, escalates=True,
            )  # fmt: skip
            found.append(condition)
        return found

    def spend_anomaly(self, rule: SpendAnomalyAlert) -> list[Condition]:
        now = self.now
        day = datetime.combine(now.date(), datetime.min.time(), UTC)
        elapsed = now - day
        spans = [(day, now)] + [
            (day - timedelta(days=k), day - timedelta(days=k) + elapsed)
            for k in range(1, rule.days + 1)
        ]
        today, *before = spend_in_spans(self.engine, spans)
        median = statistics.median(before)
        limit = max(rule.factor * median, rule.min_usd)
        firing = today > limit
        times = f"{today / median:.1f}x" if median else "far above"
        message = (
            f"spend today {usd(today)} by {now:%H:%M} UTC is {times} the median of the same "
            f"hours of the last {rule.days} days ({usd(median)}); alert above "
            f"{rule.factor:g}x that and {usd(rule.min_usd)}"
        )
        if not firing:
            message = (
                f"spend today {usd(today)} by {now:%H:%M} UTC; the median of the same hours of "
                f"the last {rule.days} days is {usd(median)} (alert above {usd(limit)})"
            )
        date = f"{day:%Y-%m-%d}"
        status: Status = "firing" if firing else "ok"
        window = f"today ({date})"
        return [
            _condition(
                rule, ALL, status, today, limit, message, window, period=date, window_start=day
            )
        ]

    def error_rate(self, rule: ErrorRateAlert) -> list[Condition]:
        window = format_duration(rule.window)
        found = []
        rows = error_counts(self.engine, self.now - rule.window, self.now, rule.by, rule.source)
        for row in rows:
            subject = _subject(_group_name(rule.by, row.subject))
            status: Status
            if row.calls < rule.min_calls:
                status = "no_data"
                message = (
                    f"{subject}: {row.calls} calls in the last {window}, fewer than the "
                    f"{rule.min_calls} needed to judge the error rate"
                )
            else:
                status = "firing" if row.rate > rule.threshold else "ok"
                message = (
                    f"{subject}: {_percent(row.rate)} of {row.calls} calls failed in the last "
                    f"{window} (alert above {_percent(rule.threshold)})"
                )
            found.append(
                _condition(rule, subject, status, row.rate, rule.threshold, message, window)
            )
        return found

    def latency(self, rule: LatencyAlert) -> list[Condition]:
        window = format_duration(rule.window)
        start = self.now - rule.window
        current = latency_p95(self.engine, start, self.now, rule.by, rule.source)
        baseline = {}
        if rule.factor is not None:
            earlier = start - timedelta(days=rule.days)
            baseline = latency_p95(self.engine, earlier, start, rule.by, rule.source)
        found = []
        for group, figures in current.items():
            subject = _subject(_group_name(rule.by, group))
            p95 = figures.p95_ms
            base = baseline.get(group)
            status: Status = "no_data"
            limit, against = rule.threshold_ms, f"alert above {_ms(rule.threshold_ms or 0)}"
            if (
                rule.factor is not None
                and base is not None
                and base.calls >= rule.min_calls
                and base.p95_ms > 0  # 0 ms (written by SQL): nothing to be a multiple of
            ):
                limit = rule.factor * base.p95_ms
                against = (
                    f"{p95 / base.p95_ms:.3g}x the p95 of the {rule.days} days before "
                    f"({_ms(base.p95_ms)}; alert above {rule.factor:g}x)"
                )
            if figures.calls < rule.min_calls:
                message = (
                    f"{subject}: {figures.calls} completed calls in the last {window}, fewer "
                    f"than the {rule.min_calls} needed to judge the p95 latency"
                )
            elif limit is None:
                message = (
                    f"{subject}: p95 latency {_ms(p95)} in the last {window}; too few calls "
                    f"(or a p95 of 0 ms) in the {rule.days} days before to compare with"
                )
            else:
                status = "firing" if _above(p95, limit) else "ok"
                message = (
                    f"{subject}: p95 latency {_ms(p95)} over {figures.calls} calls in the "
                    f"last {window}, {against}"
                )
            found.append(_condition(rule, subject, status, p95, limit, message, window))
        return found

    def feedback_drift(self, rule: FeedbackDriftAlert) -> list[Condition]:
        window = format_duration(rule.window)
        start = self.now - rule.window
        current = feedback_averages(self.engine, rule.feedback, start, self.now, rule.source)
        earlier = start - timedelta(days=rule.days)
        baseline = feedback_averages(self.engine, rule.feedback, earlier, start, rule.source)
        found = []
        for version, figures in sorted(current.items()):
            subject = _subject(f"{figures.prompt_name}@{figures.prompt_version}")
            base = baseline.get(version)
            name = rule.feedback
            status: Status = "no_data"
            limit = None
            if figures.count < rule.min_count:
                message = (
                    f"{subject}: {figures.count} {name} scores in the last {window}, fewer "
                    f"than the {rule.min_count} needed to judge"
                )
            elif base is None or base.count < rule.min_count or base.average == 0:
                message = (
                    f"{subject}: average {name} {figures.average:.3g} over {figures.count} in "
                    f"the last {window}; not enough scores in the {rule.days} days before "
                    "to compare with"
                )
            else:
                limit = base.average - abs(base.average) * rule.drop
                change = (figures.average - base.average) / abs(base.average)
                status = "firing" if _below(figures.average, limit) else "ok"
                message = (
                    f"{subject}: average {name} {figures.average:.3g} over {figures.count} "
                    f"scores in the last {window}, {_change(change)} its average of the "
                    f"{rule.days} days before ({base.average:.3g} over {base.count}; alert "
                    f"beyond a {rule.drop:.0%} drop)"
                )
            found.append(_condition(rule, subject, status, figures.average, limit, message, window))
        return found

    def eval_drop(self, rule: EvalDropAlert) -> list[Condition]:
        found = []
        for series in eval_series(self.engine, suite=rule.suite, label=rule.label):
            subject = _subject(
                f"{series.suite}: {series.prompt_name}@{series.prompt_ref} on {series.model}"
            )
            key = alert_key(rule.name, subject)
            newest = series.newest
            state = self.states.get(key)
            window = f"run of {newest.started_at:%Y-%m-%d %H:%M} UTC"
            points = f"{100 * rule.drop:g} points"
            if state is not None and state.state == "firing" and state.threshold is not None:
                # firing: until a run gets back to the level the drop was measured against
                limit = state.threshold
                firing = _below(newest.pass_rate, limit)
                message = (
                    f"{subject}: pass rate {_percent(newest.pass_rate)} in the {window}"
                    f"{' still' if firing else ', back'} {'below' if firing else 'to at least'} "
                    f"{_percent(limit)} (within {points} of the run before the drop)"
                )
            elif series.previous is None:
                continue
            else:
                previous = series.previous.pass_rate
                limit = previous - rule.drop
                firing = _below(newest.pass_rate, limit)
                message = (
                    f"{subject}: pass rate {_percent(newest.pass_rate)} in the {window}, "
                    f"{_percent(previous)} in the run before (alert on a drop of more than "
                    f"{points})"
                )
            status: Status = "firing" if firing else "ok"
            found.append(
                _condition(rule, subject, status, newest.pass_rate, limit, message, window)
            )
        return found


def _condition(
    rule: AlertRule,
    subject: str,
    status: Status,
    value: float | None,
    threshold: float | None,
    message: str,
    window: str,
    *,
    period: str = "",
    window_start: datetime | None = None,
    escalates: bool = False,
) -> Condition:
    """A condition of ``rule`` about ``subject`` (in ``period``: a day, a budget window)."""
    return Condition(
        rule=rule.name, kind=rule.kind, key=alert_key(rule.name, subject, period),
        subject=subject, status=status, value=value, threshold=threshold, message=message,
        window=window, window_start=window_start, escalates=escalates,
    )  # fmt: skip


def _below(value: float, limit: float) -> bool:
    """``value < limit``, ignoring float noise (a drop of exactly the limit does not fire)."""
    return value < limit - 1e-9


def _above(value: float, limit: float) -> bool:
    """``value > limit``, ignoring float noise (exactly the limit, 1.15 x 200 ms against
    230 ms, does not fire)."""
    return value > limit + 1e-9


def _change(change: float) -> str:
    if change < 0:
        return f"{-change:.0%} below"
    return f"{change:.0%} above"


def _group_name(by: str, value: str | None) -> str:
    if by == "all":
        return ALL
    return value if value is not None else NO_PROMPT


def _stale(rule: AlertRule, row: AlertStateRow) -> Condition:
    """A firing alert whose subject the rule no longer evaluates: resolved, saying why."""
    window = ""
    if isinstance(rule, BudgetAlert):
        message = f"{row.subject}: no threshold reached in the current window"
    elif isinstance(rule, SpendAnomalyAlert):
        day = f"{row.window_start:%Y-%m-%d}" if row.window_start else "the day"
        message = f"the day {day} ended (spend so far {usd(row.value)} when it fired)"
        window = f"today ({day})"
    else:
        if isinstance(rule, ErrorRateAlert | LatencyAlert | FeedbackDriftAlert):
            window = format_duration(rule.window)
        recent = f" in the last {window}" if window else ""
        message = f"{row.subject}: no data{recent} to evaluate any more"
    return Condition(
        rule=rule.name, kind=rule.kind, key=row.key, subject=row.subject, status="no_data",
        value=None, threshold=row.threshold, message=message, window=window,
        window_start=row.window_start,
    )  # fmt: skip


# -- the state machine ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    event: Event | None  # None: closed quietly (a budget window ended)
    condition: Condition
    expected: AlertStateRow | None  # the row as read (None: no row yet)
    new: AlertStateRow


def _plan(
    rule: AlertRule,
    conditions: Sequence[Condition],
    states: Mapping[str, AlertStateRow],
    now: datetime,
    partly_watched: Set[tuple[str, datetime]] = frozenset(),
) -> list[_Change]:
    """The state changes the conditions call for, given the rows as read. A firing alert
    of a key of a budget and window in ``partly_watched`` (see ``_Evaluator``) that was not
    evaluated stays firing: its key left the highest spenders, and closing it would notify
    it again when it comes back."""
    changes = []
    seen = set()
    for condition in conditions:
        seen.add(condition.key)
        row = states.get(condition.key)
        if condition.status == "firing":
            if row is None or row.state != "firing":
                new = AlertStateRow(
                    key=condition.key, rule=rule.name, kind=rule.kind,
                    subject=condition.subject, state="firing", fired_at=now, changed_at=now,
                    window_start=condition.window_start, value=condition.value,
                    threshold=condition.threshold, message=condition.message,
                )  # fmt: skip
                changes.append(_Change("fired", condition, row, new))
            elif (
                condition.escalates
                and condition.threshold is not None
                and (row.threshold is None or condition.threshold > row.threshold)
            ):
                new = replace(
                    row, value=condition.value, threshold=condition.threshold,
                    message=condition.message, changed_at=now,
                )  # fmt: skip
                changes.append(_Change("fired", condition, row, new))
            elif (
                condition.escalates
                and condition.threshold is not None
                and row.threshold is not None
                and condition.threshold < row.threshold
            ):  # the share fell (a limit raised, re-pricing): re-armed quietly, so that
                # reaching the higher threshold again is told
                new = replace(
                    row, value=condition.value, threshold=condition.threshold,
                    message=condition.message, changed_at=now,
                )  # fmt: skip
                changes.append(_Change(None, condition, row, new))
        elif row is not None and row.state == "firing" and not isinstance(rule, BudgetAlert):
            changes.append(_Change("resolved", condition, row, _resolved(row, condition, now)))
    for key, row in states.items():
        if key in seen or row.state != "firing":
            continue
        start = row.window_start if isinstance(rule, BudgetAlert) else None
        if start is not None and any(
            row.subject.startswith(prefix) and utc(start) == window
            for prefix, window in partly_watched
        ):
            continue
        # a budget's window ended (or its spend was re-priced): closed without a message
        event: Event | None = None if isinstance(rule, BudgetAlert) else "resolved"
        condition = _stale(rule, row)
        changes.append(_Change(event, condition, row, _resolved(row, condition, now)))
    return changes


def _resolved(row: AlertStateRow, condition: Condition, now: datetime) -> AlertStateRow:
    return replace(
        row,
        state="resolved",
        changed_at=now,
        resolved_at=now,
        value=condition.value if condition.value is not None else row.value,
        message=condition.message,
    )


@dataclass
class _Thread:
    thread: threading.Thread
    stop: threading.Event = field(default_factory=threading.Event)


class AlertChecker:
    """Checks the alert rules of a config against a database and notifies their channels.

    ``check()`` once (``llmops alerts check``, a cron job), or ``start()`` a daemon thread
    that checks every ``alerts.check_interval`` until ``stop()``. Channel credentials are
    read from ``env`` (default: ``os.environ``) when the checker is built: a missing
    variable is a :class:`~llmops.errors.ConfigError` then, not at 3 a.m.

    ``clock`` (default: the time now, UTC) gives the instant of each check; tests and
    replays pass their own, or ``check(now=...)``.
    """

    def __init__(
        self,
        engine: Engine,
        alerts: Alerts,
        budgets: Sequence[Budget] = (),
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.engine = engine
        self.alerts = alerts
        self.budgets = tuple(budgets)
        self.channels: dict[str, Channel] = build_channels(alerts, env)
        self.dashboard = dashboard_url(env)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._thread: _Thread | None = None
        self._lock = threading.Lock()  # one check at a time in this process
        self.last_result: CheckResult | None = None
        self.last_error: BaseException | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, env: Mapping[str, str] | None = None
    ) -> AlertChecker:
        """A checker on the settings' database (its schema checked), rules and budgets."""
        from llmops.store.engine import check_schema, create_engine

        settings = settings or Settings.from_env(env)
        engine = create_engine(settings.database_url)
        check_schema(engine)
        return cls(engine, settings.alerts, settings.budgets, env=env)

    # -- one check ---------------------------------------------------------------------

    def check(self, now: datetime | None = None, *, dry_run: bool = False) -> CheckResult:
        """Evaluate every rule at ``now`` and fire or resolve alerts (``dry_run``: only say
        what would change; nothing is sent or stored)."""
        now = (now or self._clock()).astimezone(UTC)
        with self._lock:
            names = [rule.name for rule in self.alerts.rules]
            rows = alert_states(self.engine, names, firing_only=True)
            conditions: list[Condition] = []
            transitions: list[Transition] = []
            for rule in self.alerts.rules:
                states = {row.key: row for row in rows if row.rule == rule.name}
                evaluator = _Evaluator(self.engine, now, self.budgets, states)
                found = evaluator.evaluate(rule)
                conditions += found
                # the rows of alerts that fire now and fired before (resolved since)
                again = [c.key for c in found if c.status == "firing" and c.key not in states]
                if again:
                    states.update((r.key, r) for r in alert_states(self.engine, keys=again))
                for change in _plan(rule, found, states, now, evaluator.partly_watched):
                    transition = self._apply(rule, change, now, dry_run)
                    if transition is not None:
                        transitions.append(transition)
            result = CheckResult(now, dry_run, tuple(conditions), tuple(transitions))
            if not dry_run:
                self.last_result = result
            return result

    def _apply(
        self, rule: AlertRule, change: _Change, now: datetime, dry_run: bool
    ) -> Transition | None:
        condition, event = change.condition, change.event
        quiet = event is None or (event == "resolved" and not rule.send_resolved)
        if dry_run:
            if event is None:
                return None
            return Transition(event, condition, rule.channels, notified=False)
        if not claim_alert_state(self.engine, change.expected, change.new):
            return None  # another process made this change (and notifies)
        if event is None:
            return None
        if quiet:
            return Transition(event, condition, rule.channels, notified=False)
        notification = Notification(
            event=event, rule=rule.name, kind=rule.kind, subject=condition.subject,
            key=condition.key, value=condition.value, threshold=condition.threshold,
            window=condition.window, message=condition.message, at=now,
            dashboard=self.dashboard,
        )  # fmt: skip
        channels = [self.channels[name] for name in rule.channels]
        timeout = self.alerts.timeout.total_seconds()
        delivered, failed = deliver(channels, notification, timeout)
        record_alert_event(
            self.engine,
            AlertEventRow(
                key=condition.key, rule=rule.name, kind=rule.kind, subject=condition.subject,
                event=event, at=now, value=condition.value, threshold=condition.threshold,
                message=condition.message, delivered=delivered, failed=failed,
            ),
        )  # fmt: skip
        if not delivered:  # nobody was told: undo, so that the next check tries again
            if change.expected is None:
                remove_alert_state(self.engine, change.new)
            else:
                claim_alert_state(self.engine, change.new, change.expected)
        return Transition(event, condition, rule.channels, tuple(delivered), tuple(failed))

    # -- the background thread --------------------------------------------------------------

    def start(self, interval: float | timedelta | None = None) -> AlertChecker:
        """Check now and then every ``interval`` (default ``alerts.check_interval``) in a
        daemon thread, until :meth:`stop`. A failed check is logged and retried at the next
        interval. Returns the checker."""
        seconds = (
            self.alerts.check_interval.total_seconds()
            if interval is None
            else interval.total_seconds()
            if isinstance(interval, timedelta)
            else float(interval)
        )
        if seconds <= 0:
            raise ValueError("the interval must be more than 0 seconds")
        if self._thread is not None:
            raise RuntimeError("the alert checker is already running")
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(seconds, stop), name="llmops-alerts", daemon=True
        )
        self._thread = _Thread(thread, stop)
        thread.start()
        return self

    def _run(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check()
                self.last_error = None
            except LLMOpsError as exc:
                self.last_error = exc
                logger.warning("alert check failed: %s", exc)
            except Exception as exc:  # a bug: keep checking, say what happened
                self.last_error = exc
                logger.error("alert check failed: %s: %s", type(exc).__name__, exc)
            stop.wait(interval)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; wait for a check in progress (at most ``timeout`` seconds;
        default: the delivery timeout plus 5 s)."""
        current, self._thread = self._thread, None
        if current is None:
            return
        current.stop.set()
        wait = self.alerts.timeout.total_seconds() + 5 if timeout is None else timeout
        current.thread.join(wait)

    def __enter__(self) -> AlertChecker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
