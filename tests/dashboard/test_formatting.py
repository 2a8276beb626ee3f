"""How the dashboard writes figures (no database)."""

from __future__ import annotations

import math

import pytest

from dashboard import _common as c


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1234.56, "$1,234.56"),
        (1234567.891, "$1,234,567.89"),
        (12.3, "$12.30"),
        (0.35, "$0.35"),
        (0.1, "$0.10"),
        (0.05, "$0.05"),
        (0.0042, "$0.0042"),
        (0.00021, "$0.00021"),
        (0.000123456, "$0.00012"),
        (0.0, "$0.00"),
        (None, "—"),
    ],
)
def test_usd(value: float | None, shown: str) -> None:
    assert c.usd(value) == shown


def test_cost_never_shows_an_unpriced_call_as_zero() -> None:
    assert c.cost(None, "unpriced") == "unpriced"
    assert c.cost(0.0, "unpriced") == "unpriced"
    assert c.cost(0.0, "priced") == "$0.00"
    assert c.cost(0.0042, "custom") == "$0.0042"


def test_percentages_latencies_and_counts() -> None:
    assert c.pct(0.123) == "12.3%"
    assert c.pct(1) == "100.0%"
    assert c.pct(None) == c.pct(math.nan) == "—"
    assert c.change(0.25) == "+25.0%"
    assert c.change(-0.196) == "-19.6%"
    assert c.change(None) is None
    assert c.ms(850) == "850 ms"
    assert c.ms(1234.4) == "1,234 ms"
    assert c.ms(5.44) == "5.4 ms"
    assert c.ms(None) == "—"
    assert c.num(1851000) == "1,851,000"
    assert c.num(476666.666, 1) == "476,666.7"
    assert c.score(0.5714) == "0.57"
    assert c.plural(1, "call") == "1 call"
    assert c.plural(2, "call") == "2 calls"
