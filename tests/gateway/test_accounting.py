"""Cost and token accounting, against prices computed by hand from the price list."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmops.errors import ConfigFileError
from llmops.gateway import _litellm
from llmops.gateway.accounting import (
    ModelPrice,
    PriceBook,
    Usage,
    count_message_tokens,
    count_text_tokens,
    estimate_usage,
    price_from_map,
    read_prices,
    usage_from_response,
)

M = 1_000_000


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook()


def test_gpt_4o_mini_plain(book: PriceBook) -> None:
    # $0.15 / M input, $0.60 / M output
    price = book.price("gpt-4o-mini", Usage(prompt_tokens=1200, completion_tokens=300))
    assert price.status == "priced"
    assert price.cost_usd == pytest.approx(1200 * 0.15 / M + 300 * 0.60 / M, rel=1e-12)
    assert price.source is not None and price.source.startswith("litellm-")


def test_gpt_4o_mini_with_cached_input(book: PriceBook) -> None:
    # 1000 input of which 600 cached: cached tokens at $0.075 / M, the rest at $0.15 / M
    price = book.price("openai/gpt-4o-mini", Usage(1000, 200, cached_tokens=600))
    expected = 400 * 0.15 / M + 600 * 0.075 / M + 200 * 0.60 / M
    assert price.cost_usd == pytest.approx(expected, rel=1e-12)
    assert price.cost_usd < book.price("gpt-4o-mini", Usage(1000, 200)).cost_usd


def test_o_series_reasoning_tokens_are_billed_as_output(book: PriceBook) -> None:
    # o3-mini: $1.10 / M input, $4.40 / M output; 700 of 900 completion tokens are reasoning
    price = book.price("o3-mini", Usage(500, 900, reasoning_tokens=700))
    assert price.cost_usd == pytest.approx(500 * 1.10 / M + 900 * 4.40 / M, rel=1e-12)


def test_claude_cache_reads_and_writes(book: PriceBook) -> None:
    # claude-haiku-4-5: input $1 / M, output $5 / M, cache read $0.10 / M, cache write $1.25 / M
    usage = Usage(
        prompt_tokens=3000, completion_tokens=400, cached_tokens=2000, cache_write_tokens=500
    )
    price = book.price("anthropic/claude-haiku-4-5", usage)
    expected = 500 * 1.0 / M + 2000 * 0.10 / M + 500 * 1.25 / M + 400 * 5.0 / M
    assert price.cost_usd == pytest.approx(expected, rel=1e-12)


def test_unknown_model_is_unpriced_never_zero(book: PriceBook) -> None:
    price = book.price("acme/mystery-model-9000", Usage(100, 100))
    assert (price.cost_usd, price.status, price.source) == (None, "unpriced", None)


def test_zero_placeholder_price_is_not_a_free_model() -> None:
    entry = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}
    assert price_from_map(entry, Usage(10, 10)) is None
    assert price_from_map({"output_cost_per_token": 1e-6}, Usage(10, 10)) is None


def test_long_context_tier() -> None:
    entry = {
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 2e-6,
        "input_cost_per_token_above_200k_tokens": 3e-6,
        "output_cost_per_token_above_200k_tokens": 4e-6,
    }
    assert price_from_map(entry, Usage(1000, 10)) == pytest.approx(1000e-6 + 20e-6)
    assert price_from_map(entry, Usage(300_000, 10)) == pytest.approx(0.9 + 40e-6)


def test_custom_prices_win_and_are_marked(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n  gpt-4o-mini:\n    input_per_million: 1\n    output_per_million: 2\n"
        "    cached_input_per_million: 0.5\n  my-finetune:\n    input_per_million: 3\n"
        "    output_per_million: 12\n"
    )
    book = PriceBook.from_file(prices)
    mini = book.price("gpt-4o-mini", Usage(1000, 100, cached_tokens=400))
    assert (mini.status, mini.source) == ("custom", "custom:prices.yaml")
    assert mini.cost_usd == pytest.approx(600 / M + 400 * 0.5 / M + 200 / M)
    tuned = book.price("my-finetune", Usage(1000, 100, reasoning_tokens=50))
    assert tuned.cost_usd == pytest.approx(3000 / M + 1200 / M)
    override = ModelPrice(input_per_million=10, output_per_million=10)
    arg = book.price("gpt-4o-mini", Usage(1000, 1000), override=override)
    assert (arg.cost_usd, arg.status, arg.source) == (
        pytest.approx(0.02),
        "custom",
        "custom:argument",
    )


def test_custom_zero_price_is_allowed(tmp_path: Path) -> None:
    book = PriceBook({"local/llama": ModelPrice(input_per_million=0, output_per_million=0)})
    assert book.price("local/llama", Usage(10, 10)).cost_usd == 0.0


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("models:\n  m:\n    input_per_million: 1\n", 2, "output_per_million"),
        ("models:\n  m:\n    input_per_million: -1\n    output_per_million: 1\n", 3, "greater"),
        ("models:\n  m:\n    input: 1\n    output_per_million: 1\n", 3, "m.input: Extra"),
        ("modles: {}\n", 1, "modles"),
    ],
)
def test_bad_prices_file_names_file_and_line(tmp_path: Path, text, line, message) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError, match=message) as info:
        read_prices(path)
    assert info.value.file == str(path) and info.value.line == line


def test_usage_from_openai_and_anthropic_shapes() -> None:
    openai = {
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 40},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    assert usage_from_response(openai) == Usage(100, 50, 40, 0, 30)
    anthropic = {
        "prompt_tokens": 1000,
        "completion_tokens": 10,
        "cache_read_input_tokens": 600,
        "cache_creation_input_tokens": 200,
    }
    assert usage_from_response(anthropic) == Usage(1000, 10, 600, 200, 0)
    assert usage_from_response(None) is None
    assert usage_from_response({"prompt_tokens": 0, "completion_tokens": 0}) is None


def test_local_token_counts_match_tiktoken() -> None:
    _litellm.configure_environment()
    import tiktoken

    o200k = tiktoken.get_encoding("o200k_base")
    cl100k = tiktoken.get_encoding("cl100k_base")
    text = "Where is my order #1234? It was due on Monday."
    assert count_text_tokens("gpt-4o-mini", text) == len(o200k.encode(text))
    assert count_text_tokens("gpt-4", text) == len(cl100k.encode(text))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    expected = 3 + sum(
        3 + len(o200k.encode(m["role"])) + len(o200k.encode(m["content"])) for m in messages
    )
    assert count_message_tokens("openai/gpt-4o-mini", messages) == expected
    estimated = estimate_usage("gpt-4o-mini", messages, "Tomorrow.")
    assert estimated.estimated and estimated.completion_tokens == len(o200k.encode("Tomorrow."))
