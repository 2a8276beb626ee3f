"""The Prometheus exporter: a collector that reads its figures from the database when
scraped, and the HTTP server that serves them on ``/metrics``.

Every figure comes from the database, never from counters kept in an app process, so it is
right however many processes (and machines) write to that database. A scrape reads the
database at most once every ``cache_seconds`` (default 5): scrapes within that time, and
scrapes that arrive while a read runs, are served the figures of that one read. What a
scrape shows is therefore at most ``cache_seconds`` (plus one read) old;
``llmops_exporter_last_refresh_timestamp_seconds`` says when it was read.

Metrics (``K`` = the labels ``model``, ``prompt``, ``version``, ``source``):

- ``llmops_spend_usd_total{K}``: the known cost of every stored call (counter).
- ``llmops_calls_total{K, status}``: stored calls; ``status`` is ``ok``, ``error``,
  ``cancelled`` or ``blocked`` (refused by a budget).
- ``llmops_tokens_total{K, type}``: ``type`` is ``prompt`` or ``completion``.
- ``llmops_unpriced_calls_total{K}``: calls without a known price (not in the spend).
- ``llmops_latency_seconds{model, quantile}``: a summary: the quantiles (0.5, 0.95, 0.99)
  are over the successful calls that started in the last ``latency_window`` (5 minutes),
  ``_sum`` and ``_count`` are all-time counters of the successful calls with a latency.
- ``llmops_ttft_seconds{model, quantile}``: gauges, time to first token of the successful
  streamed calls of the same window.
- ``llmops_budget_limit_usd``, ``llmops_budget_spend_usd``, ``llmops_budget_remaining_usd``,
  ``llmops_budget_used_ratio``, ``llmops_budget_projected_usd`` ``{budget, window, key}``:
  every budget of the config in its current window (``key``: the user, tag, ... of an
  ``each`` budget, the ``budget_keys`` highest spenders; empty otherwise).
- ``llmops_database_up``: 1 when the last read worked, 0 when the database could not be
  read (then only the exporter's own metrics are served, and the scrape still succeeds).
- ``llmops_exporter_refresh_duration_seconds``, ``llmops_exporter_last_refresh_timestamp_seconds``,
  ``llmops_exporter_info{version}``.

Bounded labels: no user label on any counter. At most ``top`` combinations of model,
prompt, version and source get their own series; the calls of every other combination sum
under ``"(other)"`` in all four labels. The first read names the ``top`` combinations that
cost most in the last 30 days; combinations seen later get their own series while there is
room. A combination never moves between its own series and ``"(other)"`` while the exporter
runs, so that every series only grows (restarting the exporter chooses again). The same
holds for the ``model`` label of the latency metrics. Prompts and versions without a value
show as ``"(none)"``.

A read sums the daily rollups (exact to the last stored call, whatever the number of calls):
today's rows every time, and the rows of the days before only when a cheap signature of them
(their sums, no grouping) changed since the last read, on a new day, and every 10 minutes.

Counters never go down: each one starts at the all-time total of its first read and then
adds what later reads add. A stored total that drops (retention deleting calls, re-pricing
to a lower price) is not passed on, since Prometheus would take the drop for a counter reset
and count the whole total again; restart the exporter to re-read the exact totals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import CollectorRegistry
from sqlalchemy.engine import Engine

from llmops import __version__
from llmops.config import Budget
from llmops.errors import ConfigError, LLMOpsError
from llmops.store import queries
from llmops.store.queries import OTHER, BudgetStatus, CallTotals, RecentLatency

__all__ = [
    "CACHE_SECONDS",
    "DEFAULT_PORT",
    "LATENCY_WINDOW",
    "QUANTILES",
    "TOP_SERIES",
    "MetricsServer",
    "SpendCollector",
    "exposition",
    "make_registry",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 9464
CACHE_SECONDS = 5.0
TOP_SERIES = 50
NAMING_DAYS = 30  # the first read names the combinations that cost most over these days
PAST_MAX_SECONDS = 600.0  # the totals of past days are read again at least this often
LATENCY_WINDOW = timedelta(minutes=5)
QUANTILES = (0.5, 0.95, 0.99)
BUDGET_KEYS = 20  # series per `each` budget: its highest spenders
NONE = "(none)"  # a prompt or version without a value

KEY_LABELS = ("model", "prompt", "version", "source")
Key = tuple[str, str, str, str]
OTHER_KEY: Key = (OTHER, OTHER, OTHER, OTHER)
BUDGET_LABELS = ("budget", "window", "key")

Series = tuple[str, ...]  # what a counter value is kept under: its family, then labels
K = TypeVar("K", bound=Hashable)


class _Sticky(Generic[K]):
    """Which keys get their own series: at most ``top``, chosen once and kept while the
    exporter runs, the rest summed under ``other``."""

    def __init__(self, top: int, other: K) -> None:
        self.top = top
        self.other = other
        self._named: set[K] = set()
        self._as_other: set[K] = set()
        self._started = False

    def place(
        self, keys: Iterable[K], rank: Callable[[K], Any], eligible: Callable[[K], bool]
    ) -> dict[K, K]:
        """Each key -> the key it counts under. Keys never seen before are taken in ``rank``
        order while there is room; on the first call, only ``eligible`` ones."""
        found = set(keys)
        for key in sorted(found - self._named - self._as_other, key=rank):
            if len(self._named) < self.top and (self._started or eligible(key)):
                self._named.add(key)
            else:
                self._as_other.add(key)
        self._started = True
        return {key: key if key in self._named else self.other for key in found}

    @property
    def named(self) -> frozenset[K]:
        return frozenset(self._named)


class _Monotonic:
    """Counter values that never go down: the first value read, then what each later read
    adds (a drop is not passed on)."""

    def __init__(self) -> None:
        self._read: dict[Series, float] = {}
        self._shown: dict[Series, float] = {}

    def update(self, values: dict[Series, float]) -> dict[Series, float]:
        for series, value in values.items():
            before = self._read.get(series)
            if before is None:
                self._shown[series] = value
            else:
                self._shown[series] += max(0.0, value - before)
            self._read[series] = value
        for series in self._read.keys() - values.keys():  # gone from the database: 0 now
            self._read[series] = 0.0
        return dict(self._shown)


@dataclass(frozen=True)
class _Past:
    """The totals of the days before ``day``, and the signature they were read at."""

    day: date
    signature: tuple[float, ...]
    read_at: float  # time.monotonic()
    totals: list[CallTotals]


@dataclass(frozen=True)
class _Read:
    """What one database read found."""

    totals: list[CallTotals]
    budgets: list[BudgetStatus]
    latency: list[RecentLatency]


class SpendCollector:
    """A ``prometheus_client`` collector over the llmops database (see the module doc)."""

    def __init__(
        self,
        engine: Engine,
        budgets: Sequence[Budget] = (),
        *,
        cache_seconds: float = CACHE_SECONDS,
        top: int = TOP_SERIES,
        latency_window: timedelta = LATENCY_WINDOW,
        budget_keys: int = BUDGET_KEYS,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if top < 1:
            raise ValueError("top must be at least 1")
        self.engine = engine
        self.budgets = tuple(budgets)
        self.cache_seconds = cache_seconds
        self.latency_window = latency_window
        self.budget_keys = budget_keys
        self.clock = clock or (lambda: datetime.now(UTC))
        self._keys: _Sticky[Key] = _Sticky(top, OTHER_KEY)
        self._models: _Sticky[str] = _Sticky(top, OTHER)
        self._model_of: dict[str, str] = {}  # model -> the model label it counts under
        self._counters = _Monotonic()
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._past: _Past | None = None
        self._read_at: float | None = None  # time.monotonic() of the last read
        self._last_success: float | None = None  # time.time() of the last good read
        self.database_up = False
        self.last_error: str | None = None
        self.reads = 0  # database reads so far (tests and benchmarks count them)

    def collect(self) -> Iterator[Metric]:
        """The metrics, read from the database unless the last read is fresh enough."""
        with self._lock:  # one read at a time; scrapes that waited get its figures
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self.cache_seconds:
                self._families = self._refresh()
                self._read_at = time.monotonic()
            families = self._families
        yield from families

    def _refresh(self) -> list[Metric]:
        started = time.perf_counter()
        self.reads += 1
        try:
            read = self._read(self.clock())
        except LLMOpsError as exc:  # DatabaseError, SchemaOutdatedError: no figures now
            if self.database_up:  # changes of state are logged, not every failed read
                log.warning("llmops metrics: cannot read the database: %s", exc)
            self.database_up = False
            self.last_error = str(exc)
            return self._own(0, time.perf_counter() - started)
        if self.last_error is not None:
            log.warning("llmops metrics: the database answers again")
        self.database_up = True
        self.last_error = None
        self._last_success = time.time()
        families = self._figures(read)
        return [*self._own(1, time.perf_counter() - started), *families]

    def _read(self, now: datetime) -> _Read:
        totals = self._totals(now.astimezone(UTC).date())
        models = self._place_models(totals)
        latency = queries.recent_latency(
            self.engine, now - self.latency_window, now, QUANTILES, models.named
        )
        budgets = queries.budget_status(self.engine, self.budgets, now=now, top=self.budget_keys)
        return _Read(totals, budgets, latency)

    def _totals(self, today: date) -> list[CallTotals]:
        """All-time totals: today's rollup rows, read every time, and those of the days
        before, read again only when their signature changes (a call of those days stored
        late, deleted or re-priced), on a new day, or after ``PAST_MAX_SECONDS``."""
        recent = today - timedelta(days=NAMING_DAYS - 1)
        signature = queries.rollup_signature(self.engine, before=today)
        past = self._past
        if (
            past is None
            or past.day != today
            or past.signature != signature
            or time.monotonic() - past.read_at > PAST_MAX_SECONDS
        ):
            totals = queries.call_totals(self.engine, recent, before=today)
            past = self._past = _Past(today, signature, time.monotonic(), totals)
        return [*past.totals, *queries.call_totals(self.engine, recent, since=today)]

    def _place_models(self, totals: list[CallTotals]) -> _Sticky[str]:
        recent: dict[str, int] = {}
        for t in totals:
            recent[t.model] = recent.get(t.model, 0) + t.recent_calls
        self._model_of = self._models.place(
            recent, rank=lambda m: (-recent[m], m), eligible=lambda m: recent[m] > 0
        )
        return self._models

    def _own(self, up: int, seconds: float) -> list[Metric]:
        """The exporter's own metrics, served whether the database answers or not."""
        info = InfoMetricFamily("llmops_exporter", "The llmops exporter.", {"version": __version__})
        families: list[Metric] = [
            info,
            GaugeMetricFamily(
                "llmops_database_up",
                "1 if the last read of the llmops database worked, 0 if it failed.",
                value=up,
            ),
            GaugeMetricFamily(
                "llmops_exporter_refresh_duration_seconds",
                "How long the last read of the database took.",
                value=seconds,
            ),
        ]
        if self._last_success is not None:
            families.append(
                GaugeMetricFamily(
                    "llmops_exporter_last_refresh_timestamp_seconds",
                    "When the figures served were read from the database (Unix time).",
                    value=self._last_success,
                )
            )
        return families

    # -- the figures --------------------------------------------------------------------

    def _figures(self, read: _Read) -> list[Metric]:
        keys = self._place_keys(read.totals)
        values: dict[Series, float] = {}

        def add(series: tuple[str, ...], value: float) -> None:
            values[series] = values.get(series, 0.0) + value

        for t in read.totals:
            key = keys[_key(t)]
            add(("spend", *key), t.cost_usd)
            add(("calls", *key, t.status), t.calls)
            add(("tokens", *key, "prompt"), t.prompt_tokens)
            add(("tokens", *key, "completion"), t.completion_tokens)
            add(("unpriced", *key), t.unpriced_calls)
            if t.status == "ok":
                model = self._model_of[t.model]
                add(("latency_count", model), t.latency_calls)
                add(("latency_sum", model), t.latency_ms_sum / 1000)
        shown = self._counters.update(values)
        return [
            *self._counters_families(shown),
            *self._latency_families(shown, read.latency),
            *self._budget_families(read.budgets),
        ]

    def _place_keys(self, totals: list[CallTotals]) -> dict[Key, Key]:
        cost: dict[Key, float] = {}
        calls: dict[Key, int] = {}
        for t in totals:
            key = _key(t)
            cost[key] = cost.get(key, 0.0) + t.recent_cost_usd
            calls[key] = calls.get(key, 0) + t.recent_calls
        return self._keys.place(
            cost, rank=lambda k: (-cost[k], -calls[k], k), eligible=lambda k: calls[k] > 0
        )

    def _counters_families(self, shown: dict[Series, float]) -> list[Metric]:
        spend = CounterMetricFamily(
            "llmops_spend_usd",
            "Known cost (USD) of the stored calls; unpriced calls add nothing.",
            labels=KEY_LABELS,
        )
        calls = CounterMetricFamily(
            "llmops_calls",
            "Stored model calls, by status (ok, error, cancelled, blocked).",
            labels=(*KEY_LABELS, "status"),
        )
        tokens = CounterMetricFamily(
            "llmops_tokens",
            "Tokens of the stored calls, by type (prompt, completion).",
            labels=(*KEY_LABELS, "type"),
        )
        unpriced = CounterMetricFamily(
            "llmops_unpriced_calls",
            "Stored calls without a known price (their cost is not in llmops_spend_usd).",
            labels=KEY_LABELS,
        )
        families = {"spend": spend, "calls": calls, "tokens": tokens, "unpriced": unpriced}
        for series in sorted(shown):
            family = families.get(series[0])
            if family is not None:
                family.add_metric(list(series[1:]), shown[series])
        return [spend, calls, tokens, unpriced]

    def _latency_families(
        self, shown: dict[Series, float], recent: list[RecentLatency]
    ) -> list[Metric]:
        minutes = f"{self.latency_window.total_seconds() / 60:g}"
        latency = SummaryMetricFamily(
            "llmops_latency_seconds",
            f"Latency of successful calls: quantiles over the calls of the last {minutes} "
            "minutes, sum and count over every call.",
            labels=["model"],
        )
        ttft = GaugeMetricFamily(
            "llmops_ttft_seconds",
            f"Time to first token of successful streamed calls, quantiles over the calls of "
            f"the last {minutes} minutes.",
            labels=["model", "quantile"],
        )
        by_model = {r.model: r for r in recent}
        models = sorted(
            {s[1] for s in shown if s[0] == "latency_count"},
            key=lambda m: (m == OTHER, m),
        )
        for model in models:
            for q, value in zip(QUANTILES, _quantiles(by_model.get(model)), strict=True):
                if value is not None:
                    latency.add_sample(
                        "llmops_latency_seconds", {"model": model, "quantile": f"{q:g}"}, value
                    )
            count, total = shown[("latency_count", model)], shown[("latency_sum", model)]
            latency.add_metric([model], int(count), total)
        for r in recent:
            for q, value in zip(QUANTILES, r.ttft_ms, strict=True):
                if value is not None:
                    ttft.add_metric([r.model, f"{q:g}"], value / 1000)
        return [latency, ttft]

    def _budget_families(self, statuses: list[BudgetStatus]) -> list[Metric]:
        def gauge(name: str, help_text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, help_text, labels=BUDGET_LABELS)

        limit = gauge("llmops_budget_limit_usd", "The budget's limit (USD) per window.")
        spend = gauge("llmops_budget_spend_usd", "Known cost (USD) in the current window.")
        remaining = gauge(
            "llmops_budget_remaining_usd", "What is left of the limit (USD); 0 once over."
        )
        used = gauge("llmops_budget_used_ratio", "Spend over limit (1 = all of it).")
        projected = gauge(
            "llmops_budget_projected_usd",
            "Spend projected to the window's end at the current rate (after its first hour).",
        )
        for s in statuses:
            labels = [s.budget.name, s.budget.window, s.key or ""]
            limit.add_metric(labels, s.limit_usd)
            spend.add_metric(labels, s.spent_usd)
            remaining.add_metric(labels, max(0.0, s.limit_usd - s.spent_usd))
            used.add_metric(labels, s.used)
            if s.projected_usd is not None:
                projected.add_metric(labels, s.projected_usd)
        return [limit, spend, remaining, used, projected]


def _key(t: CallTotals) -> Key:
    return (t.model, t.prompt or NONE, t.version or NONE, t.source)


def _quantiles(recent: RecentLatency | None) -> Iterator[float | None]:
    for value in recent.latency_ms if recent else (None,) * len(QUANTILES):
        yield None if value is None else value / 1000


# -- exposition and serving ---------------------------------------------------------------


def make_registry(collector: SpendCollector) -> CollectorRegistry:
    """A registry of its own holding ``collector`` only (no process or Python metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> str:
    """The metrics in the Prometheus text format (what ``/metrics`` serves by default)."""
    return generate_latest(registry).decode("utf-8")


@dataclass
class MetricsServer:
    """The ``/metrics`` HTTP server, answering on a thread of its own."""

    host: str
    port: int
    server: WSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(registry: CollectorRegistry, host: str, port: int) -> MetricsServer:
    """Serve ``registry`` over HTTP on ``host:port`` (0: a free port) from a thread; every
    path but ``/favicon.ico`` answers with the metrics. A port in use or a host that cannot
    be listened on is a :class:`ConfigError`."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # in use, not permitted, an unknown host (socket.gaierror)
        reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {reason}") from None
    return MetricsServer(host, server.server_port, server, thread)
