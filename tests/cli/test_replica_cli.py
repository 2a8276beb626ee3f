"""The commands on a hot standby (PostgreSQL streaming replication: read-only, every write
refused), as a team that points its reports at a read replica runs them."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.engine import make_url

READS = (
    ("spend", "--days", "7"),
    ("spend", "--days", "30", "--by", "user", "--format", "json"),
    ("calls", "--limit", "5", "--format", "json"),
    ("budgets",),
    ("db", "status", "--json"),
    ("db", "partitions"),
)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_reads_on_a_replica_match_the_primary_and_a_write_is_journaled(
    seeded: Any,
    cli: Any,
    tmp_path: Any,
    postgres_server: Any,
    postgres_standby: Any,
) -> None:
    url, ids, _ = seeded
    postgres_server.wait_replayed(postgres_standby)
    replica = postgres_standby.url_for(make_url(url).database)
    for args in READS:
        for _ in range(3):  # autovacuum may change the primary's statistics in between
            postgres_server.wait_replayed(postgres_standby)
            on_primary = cli(*args, "--database-url", url, cwd=tmp_path)
            on_replica = cli(*args, "--database-url", replica, cwd=tmp_path)
            if on_replica.stdout.replace(replica, url) == on_primary.stdout:
                break
        assert on_primary.code == on_replica.code == 0, (args, on_replica.stderr)
        assert on_replica.stdout.replace(replica, url) == on_primary.stdout, args
        assert on_replica.stderr == "", (args, on_replica.stderr)
    verified = cli("audit", "verify", "--database-url", replica, cwd=tmp_path)
    assert verified.code == 0 and "5 rows checked" in verified.stdout, verified.stdout

    # feedback given on the replica: the database refuses it; it waits in the journal,
    # and the command says so instead of "recorded"
    given = cli("feedback", ids[0], "1", "--database-url", replica, cwd=tmp_path)
    assert given.code == 0, given.stderr
    assert "recorded" not in given.stdout and "is in the journal" in given.stderr
    assert "read-only transaction" in given.stderr
    stored = cli("feedback", ids[1], "1", "--database-url", url, cwd=tmp_path)  # the primary
    assert (
        stored.code == 0 and stored.stdout.startswith("Feedback ") and "recorded" in stored.stdout
    )
