"""``is-sql``: the output is SQL that parses (with sqlglot), optionally touching only the
tables and columns a whitelist allows, as promptfoo's ``is-sql`` reads its value.

Whitelist entries are node-sql-parser's: ``kind::database::table`` for tables
(``select::null::users``) and ``kind::table::column`` for columns (``select::null::name``
when the column is not qualified, ``update::null::id``); each is a regular expression
matched whole and case-insensitively against every table and column the statement uses
(``(select|update)::null::orders``). ``kind`` is ``select`` for what is read (the
``WHERE`` of an ``UPDATE`` included), else ``insert``, ``update``, ``delete``,
``create``, ``drop`` or ``alter``; a ``*`` is the column ``(.*)``. Names of common table
expressions (``WITH x AS ...``) are not tables.
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

# promptfoo's (node-sql-parser's) database names -> sqlglot dialects; others are refused
DATABASES = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgres",
    "bigquery": "bigquery",
    "hive": "hive",
    "redshift": "redshift",
    "snowflake": "snowflake",
    "sqlite": "sqlite",
    "transactsql": "tsql",
    "athena": "athena",
    "trino": "trino",
}
OPTIONS = ("databaseType", "allowedTables", "allowedColumns")
MAX_CHARS = 100_000  # sqlglot parses about 130 KB a second

_STATEMENTS: tuple[type[exp.Expr], ...] = (
    exp.Query, exp.DML, exp.DDL, exp.Drop, exp.Alter, exp.Show, exp.Use, exp.Set,
    exp.Describe, exp.Transaction, exp.Commit, exp.Rollback, exp.Grant, exp.TruncateTable,
)  # fmt: skip
_WRITES: tuple[tuple[type[exp.Expr], str], ...] = (
    (exp.Insert, "insert"), (exp.Update, "update"), (exp.Delete, "delete"),
    (exp.Create, "create"), (exp.Drop, "drop"), (exp.Alter, "alter"),
)  # fmt: skip


def options_problem(value: Any) -> str | None:
    """Why an ``is-sql`` value cannot be honoured, or None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return "is-sql: value must be a mapping of databaseType, allowedTables, allowedColumns"
    unknown = sorted(set(value) - set(OPTIONS))
    if unknown:
        return f"is-sql: unknown option {unknown[0]!r} (known: {', '.join(OPTIONS)})"
    database = value.get("databaseType")
    if database is not None and (not isinstance(database, str) or dialect(database) is None):
        known = "MySQL, MariaDB, PostgresQL, BigQuery, Hive, Redshift, Snowflake, SQLite, "
        known += "TransactSQL, Athena, Trino"
        return f"is-sql: databaseType {database!r} is not supported (supported: {known})"
    for name in ("allowedTables", "allowedColumns"):
        entries = value.get(name)
        if entries is None:
            continue
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            return f"is-sql: {name} must be a list of strings such as 'select::null::users'"
        for entry in entries:
            try:
                re.compile(f"^{entry}$")
            except re.error as exc:
                return f"is-sql: {name} entry {entry!r} is not a valid pattern: {exc}"
    return None


def dialect(database: str) -> str | None:
    """The sqlglot dialect of a promptfoo database name (any case), or None."""
    return DATABASES.get(database.strip().lower())


def sql_problem(text: str, options: dict[str, Any] | None = None) -> str | None:
    """Why ``text`` is not valid SQL within the whitelists, or None."""
    options = options or {}
    database = options.get("databaseType") or "MySQL"
    statements = parse(text, dialect(database) or "mysql")
    if statements is None:
        return f"not valid {database} SQL"
    if isinstance(statements, str):
        return f"not valid {database} SQL: {statements}"
    for name, kind in (("allowedTables", "table"), ("allowedColumns", "column")):
        allowed = options.get(name)
        if allowed is None:
            continue
        if kind == "column":
            allowed = _with_unqualified(allowed)
        used = [a for s in statements for a in (tables(s) if kind == "table" else columns(s))]
        patterns = [re.compile(f"^{entry}$", re.IGNORECASE) for entry in allowed]
        denied = [a for a in dict.fromkeys(used) if not any(p.match(a) for p in patterns)]
        if denied:
            shown = ", ".join(options[name])
            return f"uses {kind}(s) not allowed: {', '.join(denied)} (allowed: {shown})"
    return None


def parse(text: str, read: str) -> list[exp.Expr] | str | None:
    """The statements of ``text``, or why it is not SQL (None: nothing to say)."""
    if not text.strip():
        return "empty"
    if len(text) > MAX_CHARS:
        return f"longer than {MAX_CHARS:,} characters"
    try:
        parsed = sqlglot.parse(text, read=read, error_level=sqlglot.ErrorLevel.RAISE)
    except (ParseError, TokenError) as exc:
        return str(exc).splitlines()[0][:200]
    except RecursionError:
        return "nested too deeply"
    statements = [s for s in parsed if s is not None]
    if not statements:
        return "empty"
    for statement in statements:
        if not isinstance(statement, _STATEMENTS):
            return f"{statement.sql()[:60]!r} is not a statement"
    return statements


def tables(statement: exp.Expr) -> list[str]:
    """``kind::database::table`` of every table the statement uses."""
    ctes = {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}
    found = []
    for table in statement.find_all(exp.Table):
        if not table.name or (not table.db and table.name.lower() in ctes):
            continue
        found.append(f"{_kind(table)}::{table.db or 'null'}::{table.name}")
    return found


def columns(statement: exp.Expr) -> list[str]:
    """``kind::table::column`` of every column the statement reads or writes."""
    aliases = {t.alias_or_name: t.name for t in statement.find_all(exp.Table) if t.name}
    found = []
    for write, kind in _WRITES[:3]:
        for node in statement.find_all(write):
            target = node.this
            if isinstance(target, exp.Schema) and isinstance(target.this, exp.Table):
                found += [f"{kind}::{target.this.name}::{c.name}" for c in target.expressions]
            elif isinstance(target, exp.Table) and kind != "update":
                found.append(f"{kind}::{target.name}::(.*)")
    for column in statement.find_all(exp.Column):
        table = aliases.get(column.table, column.table) if column.table else "null"
        name = "(.*)" if isinstance(column.this, exp.Star) else column.name
        found.append(f"{_column_kind(column)}::{table}::{name}")
    for star in statement.find_all(exp.Star):
        if not isinstance(star.parent, exp.Column) and isinstance(star.parent, exp.Select):
            found.append("select::null::(.*)")
    return found


def _kind(table: exp.Table) -> str:
    """How the statement uses a table: written (its target) or read."""
    node: exp.Expr = table
    while node.parent is not None:
        parent = node.parent
        for write, kind in _WRITES:
            if isinstance(parent, write) and node is parent.this:
                return kind
        if isinstance(parent, exp.Schema) and node is parent.this and parent.parent is not None:
            node = parent
            continue
        if isinstance(parent, exp.Query):
            return "select"
        node = parent
    return "select"


def _column_kind(column: exp.Column) -> str:
    """``update`` for the left side of an UPDATE's SET, else ``select`` (read)."""
    parent = column.parent
    if isinstance(parent, exp.EQ) and parent.this is column:
        update = parent.parent
        if isinstance(update, exp.Update) and parent in update.expressions:
            return "update"
    return "select"


def _with_unqualified(allowed: list[str]) -> list[str]:
    """promptfoo allows ``kind::null::column`` wherever it allows ``kind::table::column``."""
    extra = []
    for entry in allowed:
        parts = entry.split("::")
        if len(parts) == 3 and parts[1] != "null":
            extra.append(f"{parts[0]}::null::{parts[2]}")
    return list(dict.fromkeys([*allowed, *extra]))
