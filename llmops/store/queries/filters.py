"""Which calls a figure covers: a time range and equality filters."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.audit_log import utc
from llmops.store.tables import (
    CALLS,
)

_c = CALLS.c


@dataclass(frozen=True)
class Filters:
    """Which calls a figure covers: a time range [start, end) and optional equality filters."""

    start: datetime
    end: datetime
    models: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @classmethod
    def days(cls, first: date, last: date, **kwargs: Any) -> Filters:
        """The whole UTC days ``first`` to ``last``, both included, as the dashboard's ranges
        are: no partial day is left to read from the calls (today's rollup rows hold every
        call of today stored so far)."""
        return cls(start=midnight(first), end=midnight(last + timedelta(days=1)), **kwargs)

    @classmethod
    def recent_days(cls, days: int, today: date | None = None, **kwargs: Any) -> Filters:
        """The last ``days`` whole UTC days, ``today`` (UTC) included: the dashboard's
        default ranges and the CLI's ``--days``, summed from the rollups alone. A call
        stamped later today (an app server's clock ahead of this one) counts, as it does
        on the dashboard."""
        last = today or datetime.now(UTC).date()
        return cls.days(last - timedelta(days=days - 1), last, **kwargs)

    @classmethod
    def last_days(cls, days: int, now: datetime | None = None, **kwargs: Any) -> Filters:
        """The last ``days`` UTC days until ``now``: today is the partial day until now,
        read from the calls (a range the API may ask for; neither the dashboard nor the CLI
        builds it)."""
        now = utc(now or datetime.now(UTC))
        first = midnight(now.date() - timedelta(days=days - 1))
        return cls(start=first, end=now + timedelta(seconds=1), **kwargs)

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The conditions on ``llm_calls``: the range, then :meth:`equalities`."""
        return [_c.created_at >= self.start, _c.created_at < self.end, *self.equalities()]

    def equalities(self) -> list[sa.ColumnElement[bool]]:
        """The equality filters' conditions alone (none: every call of the range). '' stands
        for none too (a call without a user, prompt or version), as in the rollups' keys."""
        conditions: list[sa.ColumnElement[bool]] = []
        for column, values in (
            (_c.model, self.models),
            (_c.prompt_name, self.prompts),
            (_c.prompt_version, self.versions),
            (_c.user_id, self.users),
            (_c.status, self.statuses),
            (_c.source, self.sources),
        ):
            if values:
                condition: sa.ColumnElement[bool] = column.in_(values)
                if "" in values and column.nullable:
                    condition = sa.or_(condition, column.is_(None))
                conditions.append(condition)
        return conditions

    def whole_days(self) -> tuple[date, date] | None:
        """The whole UTC days [first, last) inside the range, if any."""
        start, end = utc(self.start), utc(self.end)
        first = midnight(start.date())
        if first < start:
            first += timedelta(days=1)
        last = midnight(end.date())
        return (first.date(), last.date()) if first < last else None

    def edges(self) -> list[Filters]:
        """The partial days at both ends of the range that ``whole_days`` leaves out."""
        days = self.whole_days()
        if days is None:
            return [self]
        first, last = (midnight(d) for d in days)
        spans = [(utc(self.start), first), (last, utc(self.end))]
        return [replace(self, start=lo, end=hi) for lo, hi in spans if lo < hi]


def midnight(day: date) -> datetime:
    """The start of a UTC day."""
    return datetime.combine(day, time.min, UTC)


def _day(engine: Engine) -> sa.ColumnElement[date]:
    """The UTC calendar day of a call, as a date on both databases."""
    if engine.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", _c.created_at), sa.Date)
    return sa.type_coerce(sa.func.substr(sa.cast(_c.created_at, sa.String), 1, 10), sa.Date)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
