"""Money as people read it, and as JSON carries it (no database)."""

from __future__ import annotations

import pytest

from llmops.money import amount, axis_format, usd


def test_amount_drops_float_noise_and_keeps_every_real_digit() -> None:
    assert amount(0.0009251000000000001) == 0.0009251  # as a sum of costs may come out
    assert amount(0.1 + 0.2) == 0.3
    assert amount(1.5e-7) == 1.5e-7  # 150 tokens at $1/M: far above the rounding
    assert amount(12_345.6789) == 12_345.6789 and amount(None) is None


def test_a_residue_of_summing_floats_is_zero_without_a_sign() -> None:
    """A rollup re-priced to 0 can sum to -2.8e-17 (each change is added as -old + new):
    it read "-$0.00", and -0.0 in JSON."""
    assert usd(-2.78e-17) == usd(1.7e-18) == "$0.00"
    assert str(amount(-2.78e-17)) == "0.0"
    assert usd(-0.0042) == "-$0.0042" and usd(-1e-9) == "-$0.000000001"


@pytest.mark.parametrize(
    ("largest", "fmt"),
    [
        (1234.5, "$,.2f"),  # dollars: cents
        (1.0, "$,.2f"),
        (0.5, "$,.2f"),
        (0.3, "$,.3f"),  # ticks 0.02 or 0.05 apart: cents could merge two of them
        (0.04, "$,.4f"),
        (0.0009, "$,.5f"),  # daily spend under a cent: never every tick $0.00
        (0.0, "$,.2f"),
        (None, "$,.2f"),
        (float("nan"), "$,.2f"),
    ],
)
def test_axis_format_tells_ticks_apart(largest: float | None, fmt: str) -> None:
    assert axis_format(largest) == fmt
