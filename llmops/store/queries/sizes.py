"""How much disk each table takes, its rows and its indexes apart, and so what a call costs
(``llmops db status --sizes``).

PostgreSQL: ``pg_table_size`` (the rows' pages, TOAST, free space and visibility maps) and
``pg_indexes_size`` of the table, and of its partitions (``pg_partition_tree``).
SQLite: the pages of each b-tree from the ``dbstat`` virtual table (every page of the file
is read), an index's under its table; a rowid table's primary key of text (``llm_calls``)
is an index of its own there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from llmops.store.tables import DAILY_ROLLUPS

_ROLLUP_NAMES = frozenset(table.name for table in DAILY_ROLLUPS)


@dataclass(frozen=True)
class TableSize:
    """One table's bytes on disk: its rows and its indexes."""

    table: str
    data: int
    indexes: int

    @property
    def total(self) -> int:
        return self.data + self.indexes


@dataclass(frozen=True)
class DatabaseSize:
    """The tables' sizes and the whole database's (PostgreSQL: the database with its
    catalogs; SQLite: the file's pages, free ones included)."""

    tables: dict[str, TableSize]
    database: int

    def per_call(self, calls: int) -> dict[str, float]:
        """Bytes per call: ``llm_calls`` (its rows, its indexes), its content, the rollups,
        everything else, and the whole database; empty without calls."""
        if calls <= 0:
            return {}
        calls_table = self.tables.get("llm_calls", TableSize("llm_calls", 0, 0))
        content = self.tables.get("llm_call_content", TableSize("llm_call_content", 0, 0))
        rollups = sum(t.total for t in self.tables.values() if t.table in _ROLLUP_NAMES)
        listed = sum(t.total for t in self.tables.values())
        parts = {
            "llm_calls": calls_table.total,
            "llm_calls_rows": calls_table.data,
            "llm_calls_indexes": calls_table.indexes,
            "content": content.total,
            "rollups": rollups,
            "other": listed - calls_table.total - content.total - rollups,
            "database": self.database,
        }
        return {name: value / calls for name, value in parts.items()}


def database_size(connection: sa.Connection, tables: Iterable[str]) -> DatabaseSize | None:
    """The sizes of ``tables`` that the database has, and its own; None on a SQLite built
    without ``dbstat`` (its tables' sizes are unknown)."""
    names = list(tables)
    if connection.dialect.name == "postgresql":
        rows = connection.execute(
            sa.text(
                # a partitioned table and its partitions (a plain table has no tree)
                "SELECT t.name, sum(pg_table_size(r.oid)), sum(pg_indexes_size(r.oid)) "
                "FROM unnest(CAST(:names AS text[])) AS t(name) "
                "JOIN pg_class AS c ON c.oid = to_regclass(t.name) "
                "CROSS JOIN LATERAL (SELECT c.oid UNION SELECT relid FROM "
                "pg_partition_tree(c.oid)) AS r(oid) GROUP BY t.name"
            ),
            {"names": names},
        ).all()
        total = connection.execute(sa.text("SELECT pg_database_size(current_database())"))
        sizes = {name: TableSize(name, int(data), int(indexes)) for name, data, indexes in rows}
        return DatabaseSize(_ordered(sizes, names), int(total.scalar_one()))
    try:
        pages = connection.execute(
            sa.text(
                "SELECT m.tbl_name, m.type = 'index', sum(d.pgsize) FROM dbstat AS d "
                "JOIN sqlite_master AS m ON m.name = d.name GROUP BY 1, 2"
            )
        ).all()
    except sa.exc.OperationalError:  # no such table: dbstat
        return None
    data: dict[str, int] = {}
    indexes: dict[str, int] = {}
    for table, is_index, size in pages:
        (indexes if is_index else data)[table] = int(size)
    sizes = {
        name: TableSize(name, data.get(name, 0), indexes.get(name, 0))
        for name in names
        if name in data
    }
    page_size = connection.exec_driver_sql("PRAGMA page_size").scalar_one()
    page_count = connection.exec_driver_sql("PRAGMA page_count").scalar_one()
    return DatabaseSize(_ordered(sizes, names), int(page_size) * int(page_count))


def _ordered(sizes: dict[str, TableSize], names: list[str]) -> dict[str, TableSize]:
    return {name: sizes[name] for name in names if name in sizes}
