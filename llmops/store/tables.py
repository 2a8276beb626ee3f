"""The tables llmops writes. Their columns are a public interface: people point SQL,
Grafana and notebooks at them, so change them only with a migration."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field, SQLModel

__all__ = [
    "ALERT_EVENTS",
    "ALERT_STATE",
    "API_KEYS",
    "AUDIT_CHAINS",
    "AUDIT_EVENTS",
    "BUDGET_LEASES",
    "BUSY_USER_DAYS",
    "CALLS",
    "CALLS_WITH_CONTENT",
    "CALL_CONTENT",
    "CALL_DAYS",
    "DAILY_ROLLUPS",
    "EVAL_RESULTS",
    "EVAL_RUNS",
    "FEEDBACK",
    "FEEDBACK_DAYS",
    "KEY_DAYS",
    "TAG_DAYS",
    "TIMING_BUCKETS",
    "TIMING_DAYS",
    "TIMING_GROUP_DAYS",
    "USER_CALL_DAYS",
    "USER_DAYS",
    "USER_FEEDBACK_DAYS",
    "USER_GROUP_DAYS",
    "USER_TAG_DAYS",
    "USER_TIMING_DAYS",
    "VALUE_INDEXES",
    "AlertEvent",
    "AlertState",
    "ApiKey",
    "AuditChain",
    "AuditEventRecord",
    "BudgetLease",
    "BusyUserDay",
    "CallContent",
    "CallRecord",
    "DailyCalls",
    "DailyFeedback",
    "DailyGroupTiming",
    "DailyKeySpend",
    "DailyTagSpend",
    "DailyTiming",
    "DailyUserCalls",
    "DailyUserFeedback",
    "DailyUserGroupSpend",
    "DailyUserSpend",
    "DailyUserTagSpend",
    "DailyUserTiming",
    "EvalResult",
    "EvalRun",
    "FeedbackRecord",
    "SQLModel",
    "TimingBucket",
]

# JSON columns are JSONB on Postgres, so people can index and query them.
JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

CALL_STATUSES = ("ok", "error", "cancelled", "blocked")
COST_STATUSES = ("priced", "custom", "approximate", "unpriced")


VALUE_INDEXES = (
    "ix_llm_calls_model", "ix_llm_calls_status", "ix_llm_calls_prompt", "ix_llm_calls_version",
    "ix_llm_calls_user", "ix_llm_calls_session", "ix_llm_calls_api_key",
)  # fmt: skip
"""The filter indexes of ``llm_calls`` declared below as SQLite has them, (values,
``created_at``): on PostgreSQL (migration 0019) they hold the values alone, each value once
with its calls (B-tree deduplication), 6-14 bytes per call instead of 31-82."""


def _present(name: str, *columns: str) -> sa.Index:
    """An index of the calls that have a value in the first of ``columns``."""
    where = sa.text(f"{columns[0]} IS NOT NULL")
    return sa.Index(name, *columns, sqlite_where=where, postgresql_where=where)


class CallRecord(SQLModel, table=True):
    """One model call (table ``llm_calls``).

    On PostgreSQL the table is partitioned by UTC month of ``created_at`` (migration 0012,
    :mod:`llmops.store.partitions`): its primary key there is (id, created_at), and
    ``feedback.call_id`` has no foreign key (the writer checks the call instead)."""

    __tablename__ = "llm_calls"
    __table_args__ = (
        # partial (migration 0017): only the calls with a value, as every query looks for one;
        # on PostgreSQL the VALUE_INDEXES hold the values alone (migration 0019)
        sa.Index("ix_llm_calls_created_at", "created_at"),
        _present("ix_llm_calls_prompt", "prompt_name", "prompt_version", "created_at"),
        sa.Index("ix_llm_calls_model", "model", "created_at"),
        _present("ix_llm_calls_user", "user_id", "created_at"),
        _present("ix_llm_calls_session", "session_id", "created_at"),
        sa.Index("ix_llm_calls_status", "status", "created_at"),
        _present("ix_llm_calls_version", "prompt_version", "created_at"),
        _present("ix_llm_calls_api_key", "api_key", "created_at"),
        # the Calls page's sort orders per model (migration 0017, which writes NULLS LAST on
        # PostgreSQL): each model's top of a range is the top of its part of an index
        sa.Index("ix_llm_calls_model_cost", "model", sa.text("cost_usd DESC")),
        sa.Index("ix_llm_calls_model_latency", "model", sa.text("latency_ms DESC")),
        sa.Index(
            "ix_llm_calls_model_tokens",
            "model",
            sa.text(
                "(CAST(coalesce(prompt_tokens, 0) AS BIGINT)"
                " + CAST(coalesce(completion_tokens, 0) AS BIGINT)) DESC"
            ),
        ),
        sa.Index("ix_llm_calls_chain", "chain_id", "chain_seq"),
        sa.Index(  # the few calls priced approximately, counted by the dashboard
            "ix_llm_calls_approximate", "created_at", "model",
            sqlite_where=sa.text("cost_status = 'approximate'"),
            postgresql_where=sa.text("cost_status = 'approximate'"),
        ),
    )  # fmt: skip

    id: str = Field(
        primary_key=True, max_length=36, description="UUID of the call (version 7: in time order)"
    )
    created_at: datetime = Field(description="when the call started, UTC")
    source: str = Field(default="app", max_length=16, description="app or eval")
    prompt_name: str | None = Field(default=None, max_length=200)
    prompt_version: str | None = Field(default=None, max_length=12)
    git_commit: str | None = Field(default=None, max_length=40)
    model: str = Field(max_length=200, description="the model as requested")
    provider: str | None = Field(default=None, max_length=64)
    status: str = Field(
        max_length=16, description="ok, error, cancelled or blocked (refused by a budget)"
    )
    error_type: str | None = Field(default=None, max_length=200)
    error_message: str | None = Field(default=None, sa_type=sa.Text)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = Field(default=None, description="input tokens read from cache")
    cache_write_tokens: int | None = Field(default=None, description="input tokens written")
    reasoning_tokens: int | None = Field(default=None, description="part of completion_tokens")
    tokens_estimated: bool = Field(default=False, description="counted locally (no usage)")
    cost_usd: float | None = Field(default=None, description="NULL when unpriced")
    cost_status: str = Field(max_length=16, description="priced, custom or unpriced")
    price_source: str | None = Field(default=None, max_length=100)
    latency_ms: float | None = None
    ttft_ms: float | None = Field(default=None, description="time to first token (streams)")
    user_id: str | None = Field(default=None, max_length=200)
    session_id: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = Field(default=None, sa_type=JSON)
    meta: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column("metadata", JSON, nullable=True)
    )
    params: dict[str, Any] | None = Field(
        default=None,
        sa_type=JSON,
        description="the call's parameters (temperature, max_tokens, ...): the request's params",
    )
    usage_details: dict[str, Any] | None = Field(
        default=None,
        sa_type=JSON,
        description="usage parts without a column, who served the call, the price entry used",
    )
    api_key: str | None = Field(
        default=None, max_length=100, description="name of the virtual key (llmops serve)"
    )
    # the hash chain (migration 0009, see llmops.store.chain): set by the writer
    chain_id: str | None = Field(default=None, max_length=36, description="writer's chain")
    chain_seq: int | None = Field(default=None, sa_type=sa.BigInteger, description="1, 2, ...")
    content_hash: str | None = Field(
        default=None, max_length=64, description="SHA-256, hex; NULL: no content"
    )
    row_hash: str | None = Field(default=None, max_length=64, description="SHA-256, hex")


class CallContent(SQLModel, table=True):
    """What a call said (table ``llm_call_content``, migration 0016): its request (messages,
    prompt variables, tool calls; its parameters are ``llm_calls.params``) and response
    text, as the content mode allowed. Apart from ``llm_calls`` so that the calls table
    stays narrow: the dashboard's scans read metadata only. A call without content (content
    mode ``none``, or content dropped by retention) has no row here; join on
    ``call_id = llm_calls.id`` (and ``created_at``).

    On PostgreSQL it is partitioned by month like ``llm_calls`` (same months, key
    (call_id, created_at)), so that retention drops both months together."""

    __tablename__ = "llm_call_content"
    __table_args__ = (sa.Index("ix_llm_call_content_created_at", "created_at"),)

    call_id: str = Field(primary_key=True, max_length=36, description="llm_calls.id")
    created_at: datetime = Field(description="the call's created_at")
    request: dict[str, Any] | None = Field(
        default=None, sa_type=JSON, description="messages, variables, tool_calls"
    )
    response_text: str | None = Field(default=None, sa_type=sa.Text)


class FeedbackRecord(SQLModel, table=True):
    """A score for one call (table ``feedback``); a call may have many."""

    __tablename__ = "feedback"
    __table_args__ = (sa.Index("ix_feedback_chain", "chain_id", "chain_seq"),)

    id: str = Field(primary_key=True, max_length=36)
    call_id: str = Field(foreign_key="llm_calls.id", index=True, max_length=36)
    created_at: datetime = Field(index=True)
    name: str = Field(default="rating", max_length=100)
    score: float
    comment: str | None = Field(default=None, sa_type=sa.Text)
    user_id: str | None = Field(default=None, max_length=200)
    chain_id: str | None = Field(default=None, max_length=36, description="writer's chain")
    chain_seq: int | None = Field(default=None, sa_type=sa.BigInteger, description="1, 2, ...")
    content_hash: str | None = Field(
        default=None, max_length=64, description="SHA-256, hex; NULL: no content"
    )
    row_hash: str | None = Field(default=None, max_length=64, description="SHA-256, hex")


def _table(model: type[SQLModel]) -> sa.Table:
    """The Core table of a SQLModel class (what queries and the writer use)."""
    return SQLModel.metadata.tables[str(model.__tablename__)]


# The daily rollups (migration 0005): database triggers keep them exact on every insert,
# update and delete of llm_calls and feedback, so that figures over weeks sum days instead
# of calls. '' stands for NULL in their key columns. What one call adds to them is defined
# once for the live code, in llmops.store.queries.rollups (the migration keeps a frozen copy).


class _Day(SQLModel):
    day: date = Field(primary_key=True, description="UTC day of the call")


class _CallGroup(_Day):
    model: str = Field(primary_key=True, max_length=200)
    prompt_name: str = Field(primary_key=True, max_length=200)
    prompt_version: str = Field(primary_key=True, max_length=12)
    source: str = Field(primary_key=True, max_length=16)
    status: str = Field(primary_key=True, max_length=16)


class _Spend(SQLModel):
    calls: int
    prompt_tokens: int = Field(sa_type=sa.BigInteger)
    completion_tokens: int = Field(sa_type=sa.BigInteger)
    cost_usd: float = Field(description="sum of the known costs")
    unpriced_calls: int


class _CallFigures(_Spend):
    """What ``llm_calls_daily`` sums besides the spend."""

    priced_calls: int = Field(description="calls with a cost (priced or custom)")
    estimated_calls: int = Field(description="calls whose tokens were counted locally")
    latency_ms_sum: float
    latency_calls: int = Field(description="calls with a latency")
    first_at: datetime
    last_at: datetime


class _CommitGroup(_CallGroup):
    git_commit: str = Field(primary_key=True, max_length=40)


class DailyCalls(_CallFigures, _CommitGroup, table=True):
    """Calls per UTC day and group, with commit (table ``llm_calls_daily``)."""

    __tablename__ = "llm_calls_daily"


class DailyUserSpend(_Spend, _Day, table=True):
    """Calls, tokens and cost per UTC day and user (table ``llm_calls_daily_users``)."""

    __tablename__ = "llm_calls_daily_users"

    user_id: str = Field(primary_key=True, max_length=200)


class DailyUserGroupSpend(_Spend, _CallGroup, table=True):
    """Calls, tokens and cost per UTC day, user and group (``llm_calls_daily_user_groups``,
    migration 0011), for splits by user and filters on users with other filters."""

    __tablename__ = "llm_calls_daily_user_groups"

    user_id: str = Field(primary_key=True, max_length=200)


class DailyKeySpend(_Spend, _CallGroup, table=True):
    """Calls, tokens and cost per UTC day, virtual key ('' for none) and group
    (``llm_calls_daily_keys``, migration 0015), for splits by key."""

    __tablename__ = "llm_calls_daily_keys"

    api_key: str = Field(primary_key=True, max_length=100)


class DailyTagSpend(_Spend, _CallGroup, table=True):
    """Calls, tokens and cost per UTC day, tag and group (table ``llm_calls_daily_tags``):
    a call counts once under each of its tags, and under '' when it has none."""

    __tablename__ = "llm_calls_daily_tags"

    tag: str = Field(primary_key=True, max_length=200)


class DailyFeedback(_CallGroup, table=True):
    """Feedback rows per day and group of their call, name and score (table
    ``feedback_daily``)."""

    __tablename__ = "feedback_daily"

    name: str = Field(primary_key=True, max_length=100)
    score: float = Field(primary_key=True)
    feedback_count: int


# Latency and TTFT histograms (migration 0010), kept exact by triggers like the rollups above:
# per UTC day, metric ('latency' or 'ttft') and log-spaced bucket, how many calls had a value
# in it. Bucket b holds [1.02**b, 1.02**(b+1)) ms and stands for 1.02**(b + 0.5), within
# 0.995% of every value in it; see llmops.store.queries.timing.


class TimingBucket(SQLModel, table=True):
    """The histograms' buckets (table ``timing_buckets``, filled by the migration): bucket b
    holds the values from ``lower`` up to the next bucket's; -350 holds zero and below."""

    __tablename__ = "timing_buckets"
    __table_args__ = (sa.Index("ix_timing_buckets_lower", "lower", unique=True),)

    bucket: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    lower: float | None = Field(default=None, description="ms; NULL for the zero bucket")
    value: float = Field(description="ms it stands for: the geometric midpoint (0 for zero)")


class _Timing(SQLModel):
    metric: str = Field(primary_key=True, max_length=8, description="latency or ttft")
    bucket: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    calls: int = Field(description="calls with a value in the bucket")


class DailyTiming(_Timing, _Day, table=True):
    """Latency and TTFT histograms of every call per UTC day (``llm_calls_daily_timing``)."""

    __tablename__ = "llm_calls_daily_timing"


class DailyGroupTiming(_Timing, _CallGroup, table=True):
    """Latency and TTFT histograms per UTC day and group (``llm_calls_daily_timing_groups``,
    migration 0013), for filtered views."""

    __tablename__ = "llm_calls_daily_timing_groups"


# Rollups of busy user-days (migration 0021): the days on which a user made at least 1,000
# calls are marked, and for those days only the tables below keep what the rollups above
# keep, per user too, so that a filter on a heavy user sums days; the user's other days are
# read from the calls (fewer than 1,000 each). Kept by triggers like the rollups above.


class BusyUserDay(_Day, table=True):
    """A user's UTC day rolled up by user (table ``llm_calls_busy_user_days``): marked when
    the user's calls that day reach 1,000, and never unmarked."""

    __tablename__ = "llm_calls_busy_user_days"

    user_id: str = Field(primary_key=True, max_length=200)


class _UserDay(_Day):
    user_id: str = Field(primary_key=True, max_length=200)


class _UserCallGroup(_UserDay):
    model: str = Field(primary_key=True, max_length=200)
    prompt_name: str = Field(primary_key=True, max_length=200)
    prompt_version: str = Field(primary_key=True, max_length=12)


class _UserCallKey(_UserCallGroup):
    git_commit: str = Field(primary_key=True, max_length=40)
    source: str = Field(primary_key=True, max_length=16)
    status: str = Field(primary_key=True, max_length=16)
    api_key: str = Field(primary_key=True, max_length=100)


class DailyUserCalls(_CallFigures, _UserCallKey, table=True):
    """What ``llm_calls_daily`` keeps, per busy user-day and virtual key too
    (``llm_calls_daily_user_calls``)."""

    __tablename__ = "llm_calls_daily_user_calls"


class DailyUserTagSpend(_Spend, _UserDay, table=True):
    """What ``llm_calls_daily_tags`` keeps, per busy user-day (``llm_calls_daily_user_tags``)."""

    __tablename__ = "llm_calls_daily_user_tags"

    tag: str = Field(primary_key=True, max_length=200)
    model: str = Field(primary_key=True, max_length=200)
    prompt_name: str = Field(primary_key=True, max_length=200)
    prompt_version: str = Field(primary_key=True, max_length=12)
    source: str = Field(primary_key=True, max_length=16)
    status: str = Field(primary_key=True, max_length=16)


class DailyUserFeedback(_UserCallGroup, table=True):
    """What ``feedback_daily`` keeps, per busy user-day (``feedback_daily_users``)."""

    __tablename__ = "feedback_daily_users"

    source: str = Field(primary_key=True, max_length=16)
    status: str = Field(primary_key=True, max_length=16)
    name: str = Field(primary_key=True, max_length=100)
    score: float = Field(primary_key=True)
    feedback_count: int


class _UserVersion(_UserDay):
    prompt_name: str = Field(primary_key=True, max_length=200)
    prompt_version: str = Field(primary_key=True, max_length=12)


class DailyUserTiming(_Timing, _UserVersion, table=True):
    """Latency and TTFT histograms per busy user-day, prompt and version
    (``llm_calls_daily_user_timing``)."""

    __tablename__ = "llm_calls_daily_user_timing"


CALLS = _table(CallRecord)
CALL_CONTENT = _table(CallContent)
# the calls with their content, where they have any (select from this for request/response)
CALLS_WITH_CONTENT = CALLS.outerjoin(
    CALL_CONTENT,
    sa.and_(CALL_CONTENT.c.call_id == CALLS.c.id, CALL_CONTENT.c.created_at == CALLS.c.created_at),
)
FEEDBACK = _table(FeedbackRecord)
CALL_DAYS = _table(DailyCalls)
USER_DAYS = _table(DailyUserSpend)
USER_GROUP_DAYS = _table(DailyUserGroupSpend)
KEY_DAYS = _table(DailyKeySpend)
TAG_DAYS = _table(DailyTagSpend)
FEEDBACK_DAYS = _table(DailyFeedback)
TIMING_BUCKETS = _table(TimingBucket)
TIMING_DAYS = _table(DailyTiming)
TIMING_GROUP_DAYS = _table(DailyGroupTiming)
BUSY_USER_DAYS = _table(BusyUserDay)
USER_CALL_DAYS = _table(DailyUserCalls)
USER_TAG_DAYS = _table(DailyUserTagSpend)
USER_FEEDBACK_DAYS = _table(DailyUserFeedback)
USER_TIMING_DAYS = _table(DailyUserTiming)
DAILY_ROLLUPS = (
    CALL_DAYS, USER_DAYS, USER_GROUP_DAYS, KEY_DAYS, TAG_DAYS, FEEDBACK_DAYS, TIMING_DAYS,
    TIMING_GROUP_DAYS, BUSY_USER_DAYS, USER_CALL_DAYS, USER_TAG_DAYS, USER_FEEDBACK_DAYS,
    USER_TIMING_DAYS,
)  # fmt: skip
"""The tables the triggers keep per UTC day of the calls: the rollups and the latency/TTFT
histograms."""


class EvalRun(SQLModel, table=True):
    """One suite run against one prompt version and model (table ``eval_runs``)."""

    __tablename__ = "eval_runs"
    __table_args__ = (sa.Index("ix_eval_runs_suite", "suite", "started_at"),)

    id: str = Field(primary_key=True, max_length=36)
    batch_id: str = Field(index=True, max_length=36, description="one `llmops eval run`")
    role: str = Field(max_length=16, description="candidate, baseline or other")
    suite: str = Field(max_length=200)
    prompt_name: str = Field(max_length=200)
    prompt_ref: str = Field(max_length=200, description="the reference as given")
    prompt_version: str = Field(max_length=12)
    git_commit: str | None = Field(default=None, max_length=40)
    model: str = Field(max_length=200)
    started_at: datetime
    finished_at: datetime | None = None
    cases: int = Field(default=0, description="distinct cases")
    results: int = Field(default=0, description="cases x repeats")
    passed: int = Field(default=0, description="results that passed")
    pass_rate: float | None = None
    cost_usd: float | None = Field(default=None, description="spent (cache hits cost 0)")
    cached: int = Field(default=0, description="results served from the cache")


class EvalResult(SQLModel, table=True):
    """One case (one repeat) of an eval run (table ``eval_results``)."""

    __tablename__ = "eval_results"

    id: str = Field(primary_key=True, max_length=36)
    run_id: str = Field(foreign_key="eval_runs.id", index=True, max_length=36)
    case_id: str = Field(max_length=200)
    repeat_index: int = 0
    output: str | None = Field(default=None, sa_type=sa.Text)
    score: float
    passed: bool
    details: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)
    error: str | None = Field(default=None, sa_type=sa.Text)
    latency_ms: float | None = None
    cost_usd: float | None = None
    cached: bool = False
    call_id: str | None = Field(default=None, max_length=36)


EVAL_RUNS = _table(EvalRun)
EVAL_RESULTS = _table(EvalResult)


# Spend control (migration 0007).


class BudgetLease(SQLModel, table=True):
    """A share of one budget's window held by one gateway process (table ``budget_leases``).

    A process admits calls against its lease without asking the database; the database grants
    a lease only while the ledger's spend plus every live lease's uncommitted part stays within
    the limit (see :mod:`llmops.gateway.budgets`)."""

    __tablename__ = "budget_leases"
    __table_args__ = (sa.Index("ix_budget_leases_window", "budget", "scope_value", "window_start"),)

    id: str = Field(primary_key=True, max_length=36)
    budget: str = Field(max_length=100, description="the budget's name")
    scope_value: str = Field(max_length=200, description="the user/tag/... of an each budget")
    window_start: datetime = Field(description="start of the budget window, UTC")
    holder: str = Field(max_length=200, description="host, pid and a random id")
    granted_usd: float = Field(description="USD this process may commit in the window")
    consumed_usd: float = Field(description="admitted: settled costs plus in-flight estimates")
    committed_usd: float = Field(description="the part already stored in llm_calls")
    created_at: datetime
    updated_at: datetime
    expires_at: datetime = Field(description="a lease not renewed by then no longer counts")


class AlertState(SQLModel, table=True):
    """The current state of one alert (table ``alert_state``): one row per rule, subject and
    window, so that every process and cron job agrees on what has fired."""

    __tablename__ = "alert_state"

    key: str = Field(primary_key=True, max_length=400, description="rule, subject, window")
    rule: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    subject: str = Field(default="", max_length=300, description="what the alert is about")
    window_start: datetime | None = Field(default=None, description="budget window, UTC")
    state: str = Field(max_length=16, description="firing or resolved")
    value: float | None = None
    threshold: float | None = None
    message: str | None = Field(default=None, sa_type=sa.Text)
    fired_at: datetime
    changed_at: datetime
    resolved_at: datetime | None = None


class AlertEvent(SQLModel, table=True):
    """Every notification sent or attempted (table ``alert_events``), append-only."""

    __tablename__ = "alert_events"
    __table_args__ = (sa.Index("ix_alert_events_at", "at"),)

    id: str = Field(primary_key=True, max_length=36)
    key: str = Field(max_length=400, index=True)
    rule: str = Field(max_length=100)
    kind: str = Field(max_length=32)
    subject: str = Field(default="", max_length=300)
    event: str = Field(max_length=16, description="fired or resolved")
    at: datetime
    value: float | None = None
    threshold: float | None = None
    message: str | None = Field(default=None, sa_type=sa.Text)
    delivered: list[str] | None = Field(default=None, sa_type=JSON, description="channels")
    failed: list[str] | None = Field(default=None, sa_type=JSON, description="channel: error")


BUDGET_LEASES = _table(BudgetLease)
ALERT_STATE = _table(AlertState)
ALERT_EVENTS = _table(AlertEvent)


class ApiKey(SQLModel, table=True):
    """A virtual key of ``llmops serve`` (table ``api_keys``, migration 0008). Only a hash of
    the key is kept: the key itself is shown once, when it is created."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=100, unique=True)
    prefix: str = Field(max_length=16, index=True, description="llx_ and 8 characters")
    secret_sha256: str = Field(max_length=64, description="SHA-256 of the whole key, hex")
    created_at: datetime
    revoked_at: datetime | None = None
    models: list[str] | None = Field(default=None, sa_type=JSON, description="None: any")
    rpm: int | None = Field(default=None, description="requests per minute")
    tpm: int | None = Field(default=None, description="tokens per minute")
    budget_usd_month: float | None = Field(default=None, description="blocking, per month")


API_KEYS = _table(ApiKey)


# Governance (migration 0009): the hash chains' heads and the audit events.


class AuditChain(SQLModel, table=True):
    """One writer's hash chain over the rows of one table (table ``audit_chains``): where it
    started and its head, updated in the transaction that stores each batch, so that rows
    cut from a chain's end are missed too (see :mod:`llmops.store.chain`)."""

    __tablename__ = "audit_chains"

    id: str = Field(primary_key=True, max_length=36)
    table_name: str = Field(max_length=32, description="llm_calls or feedback")
    holder: str = Field(max_length=200, description="host and pid of the writer")
    started_at: datetime
    updated_at: datetime
    last_seq: int = Field(default=0, sa_type=sa.BigInteger)
    last_hash: str = Field(max_length=64, description="row_hash of row last_seq")


class AuditEventRecord(SQLModel, table=True):
    """An append-only log of the legitimate changes to stored calls (table
    ``audit_events``): re-pricing, retention pruning, the start of the hash chains. Each
    event is chained to the one before (``prev_hash``, ``event_hash``)."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_at", "at"),)

    seq: int = Field(primary_key=True, sa_type=sa.BigInteger, description="1, 2, ...")
    id: str = Field(max_length=36, unique=True)
    at: datetime
    kind: str = Field(max_length=32, description="chain_start, recompute, prune")
    actor: str = Field(max_length=200, description="user@host of the command")
    command: str = Field(sa_type=sa.Text, description="the command line, credentials removed")
    rows: int = Field(default=0, description="rows changed or removed")
    details: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    prev_hash: str = Field(max_length=64)
    event_hash: str = Field(max_length=64)


AUDIT_CHAINS = _table(AuditChain)
AUDIT_EVENTS = _table(AuditEventRecord)
