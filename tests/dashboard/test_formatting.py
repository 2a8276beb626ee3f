"""How the dashboard writes figures (no database)."""

from __future__ import annotations

import math
from typing import Any

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
    # an amount that leaves calls out says so (a bar of unpriced calls is not "$0.00")
    assert c.spend_text(0.35, 0) == "$0.35"
    assert c.spend_text(0.0, 1) == "$0.00 + 1 unpriced call"
    assert c.spend_text(1.5, 3) == "$1.50 + 3 unpriced calls"


@pytest.mark.parametrize(
    ("value", "amount", "count"),
    [
        (0.0042, "$0.0042", "0"),
        (987.654, "$987.65", "988"),
        (999.996, "$1,000", "1,000"),
        (21_004.78, "$21,005", "21,005"),
        (99_999.4, "$99,999", "99,999"),
        (99_999.6, "$100.0k", "100,000"),
        (611_594.72, "$611.6k", "611,595"),
        (999_949, "$999.9k", "999,949"),
        (999_960, "$1.00M", "999,960"),
        (999_999.6, "$1.00M", "1.00M"),
        (1_234_567.8, "$1.23M", "1.23M"),
        (30_543_458_521, "$30.5B", "30.5B"),
        (300_087_679_127, "$300.1B", "300.1B"),
        (999_960_000, "$1.00B", "1.00B"),
        (-21_004.78, "-$21,005", "-21,005"),
        (None, "—", "—"),
        (math.nan, "—", "—"),
    ],
)
def test_tiles_show_at_most_seven_characters(value: float | None, amount: str, count: str) -> None:
    """A metric tile cuts its value with an ellipsis past about nine characters (six tiles
    a row in a 1,440 px window; tests/browser checks it): a lead's $21,004.78 a day read
    "$21,00…" and 300 billion tokens "300,08…"."""
    assert c.short_usd(value) == amount and len(amount) <= 8  # with a minus sign
    assert c.short_num(value) == count and len(count) <= 7


def test_short_latencies_and_the_exact_figure_in_the_help() -> None:
    assert c.short_ms(850) == "850 ms" and c.short_ms(9_999) == "9,999 ms"
    assert c.short_ms(12_345) == "12.3 s" and c.short_ms(None) == "—"

    class Column:
        def metric(self, label: str, value: str, **kw: Any) -> None:
            self.shown = (label, value, kw)

    column = Column()
    c.usd_tile(column, "Cost", 21_004.78, help="Priced calls only.", delta="+1.0%")
    assert column.shown == (
        "Cost",
        "$21,005",
        {"help": "Exactly $21,004.78. Priced calls only.", "delta": "+1.0%"},
    )
    c.usd_tile(column, "Cost", 12.5, help="Priced calls only.")
    assert column.shown == ("Cost", "$12.50", {"help": "Priced calls only."})
    c.num_tile(column, "Input tokens", 300_087_679_127)
    assert column.shown == ("Input tokens", "300.1B", {"help": "Exactly 300,087,679,127."})
    c.ms_tile(column, "Latency p99", 123_456)
    assert column.shown == ("Latency p99", "123.5 s", {"help": "Exactly 123,456 ms."})


def test_a_key_keeps_its_colour_whatever_else_is_shown() -> None:
    models = ["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5", "o3-mini"]

    def colours(keys: list[str]) -> dict[str, str]:
        scale = c.key_colours(keys, known=models).to_dict()  # the database's models
        return dict(zip(scale["domain"], scale["range"], strict=True))

    every = colours(models)
    assert len(set(every.values())) == len(models)  # told apart
    for i in range(len(models)):  # a filter that shows one model, or all but one
        assert colours([models[i]])[models[i]] == every[models[i]]
    assert set(every.values()) <= set(c.PALETTE[: c.STRONG])  # no pale bar while few keys
    assert c.ALERT_RED not in every.values()  # red means over budget
    assert colours(["gpt-4o", "(other)"])["(other)"] == c.OTHER_GREY
    many = dict(zip(*[c.key_colours([f"user-{i}" for i in range(16)]).to_dict()[k]
                      for k in ("domain", "range")], strict=True))  # fmt: skip
    assert len(set(many.values())) == 16  # the palette is used up before a colour repeats


def test_plain_leaves_no_markup_in_a_value() -> None:
    assert c.plain("[x](https://evil.example/a)") == (
        "\\[x\\]\\(https\\:\u2060//evil\\.example/a\\)"
    )  # escaped, and the word joiner keeps Streamlit from linking the bare URL
    assert c.plain("![t](u) :red[c] $x$ `c` <b> #h | ~s~ a_b") == (
        "\\!\\[t\\]\\(u\\) \\:red\\[c\\] \\$x\\$ \\`c\\` \\<b\\> \\#h \\| \\~s\\~ a\\_b"
    )
    assert c.plain("visit www.evil.example") == "visit w\u2060ww\\.evil\\.example"
    assert c.plain("ad\u200bmin \u202eyan\n\n## big") == "admin yan \\#\\# big"
    assert c.plain("gpt-4o-mini") == "gpt-4o-mini"  # a plain name stays as it was
    # a character reference is text; marks, separators and tag characters are left out
    assert c.plain("a&rlm;b\u061cc\u180ed\U000e0041") == "a\\&rlm;bcd"
    assert c.visible("u\u061c\U000e0041") == "u\\u061c\\U000e0041"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.000289, "<$0.001"), (-0.0004, "-<$0.001"), (0.0042, "$0.0042"), (0.0, "$0.00")],
)
def test_a_tiny_amount_fits_its_tile(value: float, shown: str) -> None:
    assert c.short_usd(value) == shown and len(shown) <= 8
