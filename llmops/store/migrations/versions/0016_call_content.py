"""Content in a table of its own: ``llm_call_content`` holds each call's messages, prompt
variables and tool calls (its ``request`` without the parameters) and ``response_text``,
moved out of ``llm_calls``; the parameters become ``llm_calls.params`` (metadata, as the
hash chain and retention always treated them). The calls table then holds metadata only:
about half as wide with typical content, so that the dashboard's scans over a range (a
filtered page sorted by cost, percentiles over calls) read half the pages. A call with no
messages, variables, tool calls or response (content mode ``none``) has no content row.

``llm_call_content`` is keyed by ``call_id`` (``llm_calls.id``) and keeps the call's
``created_at``, so that content retention reads only this table. On PostgreSQL it is
partitioned by month of ``created_at`` like ``llm_calls`` (key (call_id, created_at)):
this migration creates a partition for every partition ``llm_calls`` has; the writer
creates later months for both tables together, and retention drops both tables' months
together. No foreign key: the writer stores a call and its content in one transaction, and
retention removes both.

The rows move in this migration's transaction, which holds ``llm_calls`` meanwhile
(writers keep their calls in the journal). On PostgreSQL ``llm_calls`` is rewritten once,
without its content, and its indexes rebuilt (``ALTER TABLE``: no trigger fires, no figure
changes; see benchmarks/README.md for the time at 10 million calls). On SQLite the
dropped columns' pages are free pages of the file (``VACUUM`` returns them to the file
system).

Downgrade puts the columns back and the content into them, and drops the table.

Revision ID: 0016
Revises: 0015
"""

# ruff: noqa: S608  (the SQL here is built from this file's constants and the catalog)

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# What moves where. The request's "params" go to llm_calls.params when they are a JSON
# object (as llmops writes them), and the rest of the request to llm_call_content (NULL
# when nothing but "messages": null is left). Anything else (a request that is not an
# object, parameters that are not one: only SQL written around llmops makes them) moves to
# llm_call_content as it is.
PG_MOVES = "jsonb_typeof(request -> 'params') = 'object'"
PG_REST = (
    f"CASE WHEN {PG_MOVES} THEN NULLIF(NULLIF(request - 'params', CAST('{{}}' AS jsonb)), "
    "CAST('{\"messages\": null}' AS jsonb)) ELSE request END"
)
PG_PARAMS = f"CASE WHEN {PG_MOVES} THEN request -> 'params' END"
SQLITE_MOVES = "CASE WHEN json_valid(request) THEN json_type(request, '$.params') END = 'object'"
SQLITE_REST = (
    f"CASE WHEN {SQLITE_MOVES} THEN NULLIF(NULLIF(json_remove(request, '$.params'), '{{}}'), "
    "json_object('messages', NULL)) ELSE request END"
)
SQLITE_PARAMS = f"CASE WHEN {SQLITE_MOVES} THEN json_extract(request, '$.params') END"


UPDATE_TRIGGERS = ("llm_calls_rollups_update", "llm_calls_timing_update")


def _month_partitions(connection: sa.Connection) -> list[tuple[str, str]]:
    """(name, bound) of each partition of llm_calls, as the catalog writes them."""
    connection.execute(sa.text("SELECT set_config('TimeZone', 'UTC', true)"))
    rows = connection.execute(
        sa.text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass('llm_calls') ORDER BY c.relname"
        )
    ).all()
    return [(str(name), str(bound)) for name, bound in rows]


def _partitioned(connection: sa.Connection) -> bool:
    kind = connection.execute(
        sa.text("SELECT relkind FROM pg_class WHERE oid = to_regclass('llm_calls')")
    ).scalar()
    return kind == "p"


def _update_triggers(action: str) -> None:
    """PostgreSQL: turn off (or on again) llmops' statement triggers on UPDATE of llm_calls
    (rollups, 0005; histograms, 0010), whose sums the moves here do not change; the other
    triggers (and any a user added) stay as they are."""
    for name in UPDATE_TRIGGERS:
        op.execute(f"ALTER TABLE llm_calls {action} TRIGGER {name}")


def upgrade() -> None:
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        partitioned = _partitioned(connection)
        op.execute(
            "CREATE TABLE llm_call_content ("
            "call_id VARCHAR(36) NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL, "
            "request JSONB, response_text TEXT)"
            + (" PARTITION BY RANGE (created_at)" if partitioned else "")
        )
        if partitioned:
            for name, bound in _month_partitions(connection):
                # llm_calls_2026_11 -> llm_call_content_2026_11 (the same bounds)
                suffix = name.removeprefix("llm_calls_") if name.startswith("llm_calls_") else name
                content = f"llm_call_content_{suffix}"
                op.execute(f'CREATE TABLE "{content}" PARTITION OF llm_call_content {bound}')
    else:
        op.execute(
            "CREATE TABLE llm_call_content ("
            "call_id VARCHAR(36) NOT NULL PRIMARY KEY, created_at DATETIME NOT NULL, "
            "request JSON, response_text TEXT)"
        )
    rest = PG_REST if postgres else SQLITE_REST
    op.execute(
        "INSERT INTO llm_call_content (call_id, created_at, request, response_text) "
        f"SELECT id, created_at, {rest}, response_text FROM llm_calls "
        f"WHERE {rest} IS NOT NULL OR response_text IS NOT NULL"
    )
    if postgres:  # the key's index built once the rows are in, in one pass
        op.execute("ALTER TABLE llm_call_content ADD PRIMARY KEY (call_id, created_at)")
    op.execute("CREATE INDEX ix_llm_call_content_created_at ON llm_call_content (created_at)")
    if postgres:
        # One rewrite of llm_calls (and a bulk rebuild of its indexes), not an UPDATE of
        # every row: the new column is computed from the request as the dropped columns go,
        # and the rewritten rows no longer hold them. No trigger fires for a rewrite.
        op.execute("ALTER TABLE llm_calls ADD COLUMN params JSONB")
        op.execute(
            "ALTER TABLE llm_calls "
            f"ALTER COLUMN params TYPE JSONB USING {PG_PARAMS}, "
            "DROP COLUMN request, DROP COLUMN response_text"
        )
    else:
        # the SQLite triggers fire on updates of the columns they sum, not this one
        op.execute("ALTER TABLE llm_calls ADD COLUMN params JSON")
        op.execute(f"UPDATE llm_calls SET params = {SQLITE_PARAMS} WHERE request IS NOT NULL")
        op.execute("ALTER TABLE llm_calls DROP COLUMN request")
        op.execute("ALTER TABLE llm_calls DROP COLUMN response_text")


def downgrade() -> None:
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    json = "JSONB" if postgres else "JSON"
    op.execute(f"ALTER TABLE llm_calls ADD COLUMN request {json}")
    op.execute("ALTER TABLE llm_calls ADD COLUMN response_text TEXT")
    same_call = "c.call_id = llm_calls.id AND c.created_at = llm_calls.created_at"
    if postgres:
        _update_triggers("DISABLE")
        op.execute(
            "UPDATE llm_calls SET response_text = c.response_text, "
            "request = CASE WHEN llm_calls.params IS NULL THEN c.request "
            "ELSE coalesce(c.request, CAST('{\"messages\": null}' AS jsonb)) "
            "|| jsonb_build_object('params', llm_calls.params) END "
            f"FROM llm_call_content c WHERE {same_call}"
        )
        op.execute(
            "UPDATE llm_calls SET request = jsonb_build_object('messages', NULL, "
            "'params', params) WHERE params IS NOT NULL AND request IS NULL"
        )
        _update_triggers("ENABLE")
    else:
        content = f"FROM llm_call_content c WHERE {same_call}"
        op.execute(
            f"UPDATE llm_calls SET response_text = (SELECT c.response_text {content}), "
            f"request = (SELECT c.request {content}) "
            f"WHERE EXISTS (SELECT 1 {content})"
        )
        op.execute(
            "UPDATE llm_calls SET request = CASE WHEN request IS NULL "
            "THEN json_object('messages', NULL, 'params', json(params)) "
            "ELSE json_set(request, '$.params', json(params)) END "
            "WHERE params IS NOT NULL"
        )
    op.execute("DROP TABLE llm_call_content")
    op.execute("ALTER TABLE llm_calls DROP COLUMN params")
