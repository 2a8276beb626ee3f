"""Database engines (SQLite by default, Postgres) and the schema check on first use."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from llmops.credentials import scrub_url
from llmops.errors import ConfigError, DatabaseError, SchemaOutdatedError
from llmops.files import private_dir, private_file
from llmops.store.records import json_text

VERSION_TABLE = "llmops_schema_version"
HEAD_REVISION = "0021"  # the newest migration in llmops/store/migrations/versions
# every migration, oldest first (the head last): a database at one of them is outdated
REVISIONS = (
    "0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011",
    "0012", "0013", "0014", "0015", "0016", "0017", "0018", "0019", "0020", "0021",
)  # fmt: skip
SQLITE_PAGE_SIZE = 16384  # bytes; benchmarks/README.md "Storage per call"
_PG_LOCK_KEY = 727274  # pg_advisory_lock key that serialises migrations


def normalize_url(url: str) -> sa.URL:
    """Parse a database URL; plain ``postgresql://`` means the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        # The URL may hold a password: show it with any user:password@ masked.
        shown = scrub_url(url)
        raise ConfigError(f"bad database URL {shown!r}: {str(exc).replace(url, shown)}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername == "postgresql+psycopg" and importlib.util.find_spec("psycopg") is None:
        raise ConfigError(
            "PostgreSQL needs the psycopg driver, which is not installed: "
            'pip install "llmops[postgres]"'
        )
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"unsupported database {parsed.get_backend_name()!r} in "
            f"{parsed.render_as_string(hide_password=True)}: use sqlite:/// or postgresql://"
        )
    return parsed


def display_url(url: str | sa.URL) -> str:
    """The URL without its password, for messages."""
    return (url if isinstance(url, sa.URL) else normalize_url(url)).render_as_string(
        hide_password=True
    )


def sqlite_file(url: sa.URL) -> Path | None:
    """The file of a SQLite URL: ``sqlite:///path``, or a URI (``sqlite:///file:path?
    mode=ro&uri=true``, whose path is not ``file:path``); None for a database in memory."""
    database = url.database or ""
    if database.startswith("file:"):
        database = unquote(urlsplit(database).path)
        if url.query.get("mode") == "memory":
            return None
    return Path(database) if database not in ("", ":memory:") else None


def create_engine(url: str, *, busy_timeout_ms: int = 5000) -> Engine:
    """An engine with the settings llmops relies on (WAL and a busy timeout on SQLite)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        file = sqlite_file(parsed)
        if file is not None and parsed.query.get("mode") != "ro":
            # Calls hold prompts and answers: the file (and SQLite's -wal and -shm, which
            # take its mode) is readable by its owner only.
            private_dir(file.parent)
            private_file(file)
        engine = sa.create_engine(
            parsed,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            json_serializer=json_text,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            # 16 KB pages for a new file (ignored by an existing one): a call with its
            # content is about 2 KB, so 4 KB pages held one and left half empty
            cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return _typed_errors(engine)
    engine = sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
        json_serializer=json_text,  # NaN as null: PostgreSQL refuses NaN in JSON
    )

    @sa.event.listens_for(engine, "connect")
    def _session(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        # JIT compilation costs a few hundred ms per query that scans many rows (0.9 s of a
        # 2.2 s calls page at 10M calls), more than it saves on the sub-second queries here
        dbapi_connection.execute("SET jit = off")
        # Times come back in UTC whatever the server's zone (Debian's initdb takes the
        # host's): in New York a call stamped 0001-01-01 UTC reads as a year 0, which Python
        # cannot hold (verify and prune failed on it); in Berlin 9999-12-31 23:00 UTC too.
        dbapi_connection.execute("SET TimeZone = 'UTC'")
        dbapi_connection.autocommit = autocommit

    return _typed_errors(engine)


def _typed_errors(engine: Engine) -> Engine:
    """Make every failure of ``engine`` (connecting, executing) a :class:`DatabaseError`."""

    @sa.event.listens_for(engine, "handle_error")
    def _raise_typed(context: sa.engine.ExceptionContext) -> None:
        if context.is_pre_ping:  # the pool's liveness check handles its own failures
            return
        raise database_error(context.sqlalchemy_exception or context.original_exception)

    return engine


def database_error(exc: BaseException) -> DatabaseError:
    """``exc`` (a SQLAlchemy or driver error) as a :class:`DatabaseError`: its first line, the
    SQLSTATE the database gave, and the original kept as ``original``."""
    if isinstance(exc, DatabaseError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    lines = str(orig).strip().splitlines()
    reason = lines[0] if lines else type(orig).__name__
    error = DatabaseError(
        f"database: {reason}",
        original=exc,
        sqlstate=state if isinstance(state, str) else None,
    )
    error.__cause__ = exc
    return error


def current_revision(connection: Connection) -> str | None:
    """The schema revision of the database, or None when llmops never created it."""
    inspector = sa.inspect(connection)
    if not inspector.has_table(VERSION_TABLE):
        if inspector.has_table("llm_calls"):
            raise SchemaOutdatedError(
                "the database has an llm_calls table that llmops did not create "
                f"(no {VERSION_TABLE} table); point llmops at another database"
            )
        return None
    versions = sa.table(VERSION_TABLE, sa.column("version_num"))
    row = connection.execute(sa.select(versions.c.version_num)).first()
    return row[0] if row else None


def check_schema(engine: Engine, *, create: bool = True) -> str:
    """Make sure the schema is current: create it on a new database, refuse an old one.

    Returns the revision. Raises SchemaOutdatedError when the database needs
    ``llmops db upgrade`` (or a newer llmops).
    """
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except SchemaOutdatedError:
        if not create:
            raise
        revision = None  # perhaps another process is creating it right now: look again below
    if revision == HEAD_REVISION:
        return revision
    if revision is None and create:
        with _migration_lock(engine) as connection:
            revision = current_revision(connection)  # another process may have won the race
            if revision is None:
                return _upgrade(connection, "head")
        if revision == HEAD_REVISION:
            return revision
    where = display_url(engine.url)
    if revision is None:
        raise SchemaOutdatedError(f"{where} has no llmops schema; run `llmops db upgrade`")
    if revision in REVISIONS:
        raise SchemaOutdatedError(
            f"{where} is at schema {revision}, this llmops needs {HEAD_REVISION}: "
            "run `llmops db upgrade`"
        )
    raise SchemaOutdatedError(
        f"{where} is at schema {revision}, newer than this llmops knows ({HEAD_REVISION}): "
        "upgrade llmops"
    )


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Run the Alembic migrations up to ``revision``; safe to run from several processes."""
    with _migration_lock(engine) as connection:
        return _upgrade(connection, revision)


def _upgrade(connection: Connection, revision: str) -> str:
    from alembic import command
    from alembic.config import Config

    if revision in ("head", HEAD_REVISION) and current_revision(connection) == HEAD_REVISION:
        return HEAD_REVISION  # nothing to do: no write lock (a read-only file stays fine)
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    config.attributes["connection"] = connection
    with _all_or_nothing(connection):
        command.upgrade(config, revision)
    return current_revision(connection) or ""


@contextlib.contextmanager
def _all_or_nothing(connection: Connection) -> Iterator[None]:
    """One transaction for the migrations, committed at the end: a process killed midway
    leaves the database as it was. PostgreSQL runs DDL in transactions by itself; Python's
    sqlite3 driver does not open one before DDL (CREATE, DROP, ALTER commit one by one), so
    a kill left half a migration behind that the next ``llmops db upgrade`` tripped over
    ("index ... already exists"). On SQLite the driver's own transactions are switched off
    for the migrations and one ``BEGIN IMMEDIATE`` holds them all (writers wait, or keep
    their calls in the journal)."""
    if connection.dialect.name != "sqlite":
        yield
        connection.commit()
        return
    if connection.in_transaction():
        connection.commit()  # SQLAlchemy's, around the revision's SELECT: nothing to commit
    driver = connection.connection.driver_connection
    level = driver.isolation_level  # type: ignore[union-attr]
    driver.isolation_level = None  # type: ignore[union-attr]
    try:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        driver.isolation_level = level  # type: ignore[union-attr]


def sqlite_write_lock(connection: Connection) -> None:
    """SQLite: take the database's write lock now (``BEGIN IMMEDIATE``), unless the
    driver's transaction is open already. Python's sqlite3 driver opens its transaction at
    the first INSERT, UPDATE or DELETE: a SELECT before it reads outside any transaction, so
    what it found may have changed by the time the write runs (another process stored the
    same rows, or more). Nothing on other databases."""
    if connection.dialect.name != "sqlite":
        return
    if not connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def snapshot(engine: Engine, tables: Sequence[str] = ()) -> Iterator[Connection]:
    """A connection whose reads all see the database as it was at the first of them (what
    others commit meanwhile is not seen), for a check that compares several tables: the
    chains' heads with their rows (``llmops audit verify``). PostgreSQL: a read-only
    REPEATABLE READ transaction, ``tables`` locked (ACCESS SHARE) before its first read:
    a partition dropped (by a prune) is gone from every snapshot, so the drop waits for
    this one, or this one for the drop's commit; SQLite: one read transaction (WAL readers
    keep theirs while a writer commits)."""
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
                if tables:  # a LOCK takes no snapshot: the first read after it does
                    connection.exec_driver_sql(
                        f"LOCK TABLE {', '.join(tables)} IN ACCESS SHARE MODE"
                    )
                yield connection
            return
        driver = connection.connection.driver_connection
        level = driver.isolation_level  # type: ignore[union-attr]
        driver.isolation_level = None  # type: ignore[union-attr]  # the BEGIN below is ours
        try:
            connection.exec_driver_sql("BEGIN")
            yield connection
        finally:
            connection.rollback()
            driver.isolation_level = level  # type: ignore[union-attr]


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """One migrating process at a time: a file lock for SQLite, an advisory lock on Postgres."""
    if engine.dialect.name == "sqlite":
        file = sqlite_file(engine.url)
        lock_path = file.with_name(file.name + ".migrate-lock") if file is not None else None
        with contextlib.ExitStack() as stack:
            if lock_path is not None:
                private_file(lock_path)
                handle = stack.enter_context(open(lock_path, "a+"))
                fcntl.flock(handle, fcntl.LOCK_EX)
            with engine.connect() as connection:
                yield connection
        return
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        connection.commit()
        try:
            yield connection
        finally:
            connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            connection.commit()
