"""Records made storable on the call path: whatever an app passes, the row can be stored."""

from __future__ import annotations

import json
import math

from llmops.store.records import (
    MAX_METADATA_BYTES,
    fit,
    fitted,
    json_safe,
    repaired,
    storable,
    stored_tags,
)
from tests.store.test_writer import call_row, poison_rows


def test_every_poison_row_becomes_plain_json() -> None:
    for row in poison_rows():
        stored, line = storable("call", row)
        data = json.loads(line)  # strict JSON: no NaN, no cycles
        assert data["kind"] == "call"
        assert "\\u0000" not in line.decode()
        columns = fitted("call", dict(stored))  # what the writer stores
        assert len(columns["user_id"] or "") <= 200 and len(columns["model"]) <= 200
        assert all(len(tag) <= 200 for tag in columns["tags"] or [])


def test_plain_rows_are_not_copied_or_changed() -> None:
    row = call_row()
    stored, line = storable("call", dict(row))
    assert stored == row
    assert json.loads(line)["row"]["metadata"] == {"k": 1}


def test_json_safe() -> None:
    circular: list = []
    circular.append(circular)
    assert json_safe({"a": circular}) == {"a": ["[circular]"]}
    assert json_safe({(1, 2): float("nan"), 3: b"ab"}) == {"1,2": None, "3": "<2 bytes>"}
    assert json_safe({"x": {1, 2}}) == {"x": [1, 2]}
    assert json_safe("a\x00b") == "a\ufffdb"


def test_fit_keeps_distinct_long_ids_distinct() -> None:
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(fit(a, 200)) == 200 and fit(a, 200) != fit(b, 200)
    assert fit("short", 200) == "short"
    assert fit("abcdefghijklmnopqrstuvwxyz", 16) == "abcdefghijklmno…"


def test_a_call_has_each_tag_once() -> None:
    """A call counts once under each of its tags (the tag rollup's trigger and the partial
    days' reads count a stored list's every element): repeated tags are stored once, an
    empty tag or list as no tags."""
    assert fitted("call", call_row(tags=["vip", "eu", "vip", ""]))["tags"] == ["vip", "eu"]
    assert fitted("call", call_row(tags=[]))["tags"] is None
    assert fitted("call", call_row(tags=[""]))["tags"] is None
    long = "t" * 500
    assert stored_tags([long, long + "x", long, 7]) == [fit(long, 200), fit(long + "x", 200), "7"]


def test_huge_metadata_is_replaced_by_a_preview() -> None:
    stored, line = storable("call", call_row(metadata={"big": "x" * (MAX_METADATA_BYTES * 2)}))
    assert stored["metadata"]["llmops_truncated"] is True
    assert len(line) < MAX_METADATA_BYTES


def test_repaired_replaces_what_a_database_refuses() -> None:
    row = call_row(
        response_text="a\x00\ud800", metadata={"n": math.inf}, user_id="u" * 999, cost_usd=1.5
    )
    fixed = repaired("call", row)
    assert fixed["response_text"] == "a" + "\ufffd" * 4  # the NUL, and the surrogate's 3 bytes
    assert fixed["metadata"] == {"n": None}
    assert len(fixed["user_id"]) == 200
    assert fixed["created_at"] == row["created_at"] and fixed["cost_usd"] == 1.5
