"""PostgreSQL: ``llm_calls`` partitioned by month of ``created_at``.

On PostgreSQL ``llm_calls`` becomes a table partitioned BY RANGE (created_at): one
partition per UTC month (``llm_calls_2026_11``: from 2026-11-01 00:00 UTC to 2026-12-01),
created here for every month that has rows and for the current and next months, plus a
DEFAULT partition (``llm_calls_default``) for rows no month covers, so that an insert never
fails for lack of a partition. Later months are created ahead of time by
:func:`llmops.store.partitions.ensure_partitions` (the writer runs it when it starts and
once a day). Queries over a time range read only the partitions of its months; retention
(``llmops db prune``) drops the partitions of whole months instead of deleting their rows.

What is kept: the rows are moved (in this migration's transaction), and every column,
default, NOT NULL and CHECK constraint (``LIKE ... INCLUDING ALL``), every index and every
trigger ``llm_calls`` has, read from the catalog before the move (so indexes and triggers
added by hand come along too) and created again on the new parent: indexes on a
partitioned table are inherited by every partition, present and future; the statement
triggers of the rollups (0005) and histograms (0010), whose transition tables PostgreSQL
fills with the rows routed to any partition (including an UPDATE that moves a row to
another month's partition), stay on the parent; row triggers are cloned to the partitions
by PostgreSQL. The privileges granted on the table are granted again.

What changes:

- The primary key is (id, created_at): a partitioned table's unique keys must hold the
  partition key. The writer still stores a call once: it asks which ids of a batch are
  stored (now within the batch's time range, so only their months' partitions are read)
  and a replayed row comes with the created_at it had, so ``ON CONFLICT DO NOTHING`` still
  meets the stored row.
- ``feedback.call_id`` loses its FOREIGN KEY to ``llm_calls.id``: PostgreSQL can only
  reference a partitioned table's whole unique key (id, created_at), which feedback does
  not hold. Integrity stays where feedback is written: ``Gateway.feedback`` (and so the
  server's ``/v1/feedback`` and ``llmops feedback``) refuse an unknown call id, and the
  writer, on PostgreSQL, checks that every feedback row's call is stored in the transaction
  that inserts it (``SELECT ... FOR KEY SHARE``, the lock the foreign key took), handling
  a missing call as it handled the foreign key's error (the feedback waits for its call,
  then goes to rejected.log); retention deletes the feedback of the calls it removes.
  SQLite keeps its foreign key.
- Views or foreign keys of other tables on ``llm_calls`` made by hand make this migration
  fail (nothing is changed then): drop them first, create them again after.

Downgrade turns ``llm_calls`` back into a plain table with the 0011 shape (primary key
``id``, the foreign key of ``feedback.call_id``, the same indexes and triggers); it fails
(changing nothing) when feedback rows whose call is gone were stored meanwhile.

On SQLite nothing changes.

Revision ID: 0012
Revises: 0011
"""

# ruff: noqa: S608  (the SQL here is built from this file's constants and the catalog)

import re
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

PARENT = "llm_calls"
DEFAULT_PARTITION = "llm_calls_default"
FEEDBACK_FK = "feedback_call_id_fkey"  # the name PostgreSQL gave it in 0001
Month = tuple[int, int]


def next_month(month: Month) -> Month:
    return (month[0] + 1, 1) if month[1] == 12 else (month[0], month[1] + 1)


def month_bounds(month: Month) -> tuple[str, str]:
    """A frozen copy of llmops.store.partitions.month_bounds."""
    end = next_month(month)
    return (
        f"{month[0]:04d}-{month[1]:02d}-01 00:00:00+00",
        f"{end[0]:04d}-{end[1]:02d}-01 00:00:00+00",
    )


def partition_name(month: Month) -> str:
    return f"{PARENT}_{month[0]:04d}_{month[1]:02d}"


def fetch(statement: str) -> list[tuple]:  # type: ignore[type-arg]
    return [tuple(r) for r in op.get_bind().execute(sa.text(statement))]


def definitions(table: str) -> tuple[list[str], list[str]]:
    """The CREATE statements of ``table``'s indexes (its primary key's excepted) and of its
    own triggers (not those PostgreSQL makes for constraints or clones), as in the catalog,
    for ``table`` named ``llm_calls``."""
    indexes = [
        re.sub(r" ON (ONLY )?", " ON ", definition, count=1)
        for (definition,) in fetch(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            f"WHERE i.indrelid = '{table}'::regclass AND NOT i.indisprimary "
            "ORDER BY i.indexrelid::regclass::text"
        )
    ]
    triggers = [
        definition
        for (definition,) in fetch(
            "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t "
            f"WHERE t.tgrelid = '{table}'::regclass AND NOT t.tgisinternal "
            "AND t.tgparentid = 0 ORDER BY t.tgname"
        )
    ]
    return indexes, triggers


def grants(table: str) -> list[str]:
    """GRANT statements giving back the privileges others hold on ``table``."""
    statements = []
    for grantee, privilege, grantable in fetch(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END, "
        "a.privilege_type, a.is_grantable FROM pg_class c, aclexplode(c.relacl) a "
        "LEFT JOIN pg_roles r ON r.oid = a.grantee "
        f"WHERE c.oid = '{table}'::regclass AND a.grantee <> c.relowner"
    ):
        option = " WITH GRANT OPTION" if grantable else ""
        statements.append(f"GRANT {privilege} ON {PARENT} TO {grantee}{option}")
    return statements


def rebuild(partitioned: bool) -> None:
    """Move ``llm_calls`` into a new table of the other kind, with the same columns,
    constraints, indexes, triggers and privileges."""
    old = f"{PARENT}_unpartitioned" if partitioned else f"{PARENT}_partitioned"
    # Nothing may write (or read half-moved rows) until this transaction ends.
    op.execute(f"LOCK TABLE {PARENT}, feedback IN ACCESS EXCLUSIVE MODE")
    views = fetch(
        "SELECT DISTINCT v.oid::regclass::text FROM pg_depend d JOIN pg_rewrite r "
        "ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class "
        f"WHERE d.refobjid = '{PARENT}'::regclass AND v.oid <> '{PARENT}'::regclass ORDER BY 1"
    )
    if views:
        from llmops.errors import DatabaseError  # shown as a message, not a traceback

        raise DatabaseError(
            f"views on {PARENT} ({', '.join(v for (v,) in views)}) stop migration {revision}: "
            "drop them, upgrade, and create them again"
        )
    indexes, triggers = definitions(PARENT)
    granted = grants(PARENT)
    for (name,) in fetch(  # feedback's foreign key, whatever its name
        "SELECT quote_ident(conname) FROM pg_constraint WHERE contype = 'f' "
        f"AND conrelid = 'feedback'::regclass AND confrelid = '{PARENT}'::regclass"
    ):
        op.execute(f"ALTER TABLE feedback DROP CONSTRAINT {name}")
    op.execute(f"ALTER TABLE {PARENT} RENAME TO {old}")
    like = f"(LIKE {old} INCLUDING ALL EXCLUDING INDEXES)"
    if partitioned:
        op.execute(f"CREATE TABLE {PARENT} {like} PARTITION BY RANGE (created_at)")
        months = fetch(
            "SELECT DISTINCT extract(year FROM created_at AT TIME ZONE 'UTC')::int, "
            f"extract(month FROM created_at AT TIME ZONE 'UTC')::int FROM {old}"
        )
        now = datetime.now(UTC)
        current = (now.year, now.month)
        wanted = {(int(y), int(m)) for y, m in months if 1 <= y <= 9999}
        wanted |= {current, next_month(current)}
        for month in sorted(wanted):
            low, high = month_bounds(month)
            op.execute(
                f"CREATE TABLE {partition_name(month)} PARTITION OF {PARENT} "
                f"FOR VALUES FROM ('{low}') TO ('{high}')"
            )
        op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF {PARENT} DEFAULT")
    else:
        op.execute(f"CREATE TABLE {PARENT} {like}")
    # Rows first, then the indexes (built once, not row by row) and the triggers (the
    # rollups and histograms already count these rows).
    op.execute(f"INSERT INTO {PARENT} SELECT * FROM {old}")
    op.execute(f"DROP TABLE {old}")  # with its partitions, indexes and triggers
    key = "id, created_at" if partitioned else "id"
    op.execute(f"ALTER TABLE {PARENT} ADD CONSTRAINT {PARENT}_pkey PRIMARY KEY ({key})")
    for statement in indexes + triggers + granted:
        op.execute(statement)
    if not partitioned:
        op.execute(
            f"ALTER TABLE feedback ADD CONSTRAINT {FEEDBACK_FK} "
            f"FOREIGN KEY (call_id) REFERENCES {PARENT} (id)"
        )
    op.execute(f"ANALYZE {PARENT}")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    rebuild(partitioned=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    rebuild(partitioned=False)
