"""Cost and token accounting, against prices computed by hand from the price list."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from llmops import litellm_loader
from llmops.errors import ConfigFileError
from llmops.pricing.prices import (
    ModelPrice,
    PriceBook,
    cost_of,
    entry_from_map,
    is_off_peak,
    read_prices,
)
from llmops.pricing.usage import (
    Usage,
    count_message_tokens,
    count_text_tokens,
    estimate_usage,
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


def price_from_map(fields: dict, usage: Usage) -> float | None:
    entry = entry_from_map("test-model", fields, "test")
    return cost_of(entry, usage).cost_usd if entry is not None else None


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
        ("models:\n  m:\n    input_per_million: 1\n", 2, "output_per_million, or base_model"),
        ("models:\n  m:\n    input_per_million: -1\n    output_per_million: 1\n", 3, "greater"),
        ("models:\n  m:\n    input: 1\n    output_per_million: 1\n", 2, "unknown field 'input'"),
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
    litellm_loader.configure_environment()
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


# -- every billing dimension ------------------------------------------------------------


def test_a_tier_the_model_prices_only_in_part_is_approximate() -> None:
    fields = {
        "input_cost_per_token": 1e-6,
        "output_cost_per_token": 4e-6,
        "cache_read_input_token_cost": 0.1e-6,
        "input_cost_per_token_above_200k_tokens": 2e-6,
        "output_cost_per_token_above_200k_tokens": 8e-6,
    }
    entry = entry_from_map("some-model", fields, "test")
    assert entry is not None
    below = cost_of(entry, Usage(100_000, 1000, cached_tokens=50_000))
    assert below.status == "priced" and not below.notes
    assert below.cost_usd == pytest.approx((50_000 * 1 + 50_000 * 0.1 + 1000 * 4) / M)
    # above 200k the cache read has no tier rate: the base one is used, and flagged
    above = cost_of(entry, Usage(300_000, 1000, cached_tokens=100_000))
    assert above.status == "approximate"
    assert above.notes == ("no cache_read_input_token_cost_above_200k_tokens in the price map",)
    assert above.cost_usd == pytest.approx((200_000 * 2 + 100_000 * 0.1 + 1000 * 8) / M)
    # a prompt of exactly 200k is not above it
    assert cost_of(entry, Usage(200_000, 0)).cost_usd == pytest.approx(0.2)
    # reasoning above the tier: the tier's output rate (the map has no reasoning rate)
    thinking = cost_of(entry, Usage(250_000, 3000, reasoning_tokens=2000))
    assert thinking.cost_usd == pytest.approx((250_000 * 2 + 3000 * 8) / M)


def test_an_unknown_service_tier_is_priced_at_standard_rates_and_flagged(book) -> None:
    from llmops.pricing.usage import Served

    price = book.price("gpt-4o-mini", Usage(1000, 100), served=Served(service_tier="turbo"))
    assert price.status == "approximate"
    assert "no price for service tier 'turbo'" in price.notes[0]
    standard = book.price("gpt-4o-mini", Usage(1000, 100), served=Served(service_tier="default"))
    assert (standard.status, standard.notes) == ("priced", ())


def test_prices_file_adds_a_tier_the_map_lacks(tmp_path: Path) -> None:
    """Anthropic bills claude-sonnet-4-5 above 200k input at $6/$22.50 per 1M; the map's
    direct entry has no such tier: prices.yaml adds it, in the map's own field names."""
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n"
        "  anthropic/claude-sonnet-4-5:\n"
        "    base_model: claude-sonnet-4-5\n"
        "    input_cost_per_token_above_200k_tokens: 0.000006\n"
        "    output_cost_per_token_above_200k_tokens: 0.0000225\n"
        "    cache_read_input_token_cost_above_200k_tokens: 0.0000006\n"
    )
    book = PriceBook.from_file(prices)
    long = book.price("anthropic/claude-sonnet-4-5", Usage(250_000, 2000, cached_tokens=50_000))
    assert long.cost_usd == pytest.approx((200_000 * 6 + 50_000 * 0.6 + 2000 * 22.5) / M)
    assert (long.status, long.source) == ("custom", "custom:prices.yaml")
    short = book.price("anthropic/claude-sonnet-4-5", Usage(1000, 100))  # map rates below
    assert short.cost_usd == pytest.approx((1000 * 3 + 100 * 15) / M)


def test_a_deployment_priced_as_its_base_model(tmp_path: Path) -> None:
    book = PriceBook({"azure/prod-chat": ModelPrice(base_model="azure/gpt-4o-mini")})
    price = book.price("azure/prod-chat", Usage(1000, 100))
    assert price.status == "priced" and price.priced_as == "azure/gpt-4o-mini"
    assert price.cost_usd == pytest.approx((1000 * 0.165 + 100 * 0.66) / M, rel=0.2)
    missing = PriceBook({"azure/x": ModelPrice(base_model="acme/no-such-model")})
    assert missing.price("azure/x", Usage(10, 10)).status == "unpriced"


def test_custom_prices_cover_every_dimension() -> None:
    price = ModelPrice(
        input_per_million=2, output_per_million=8, cache_write_1h_per_million=4,
        audio_input_per_million=40, audio_output_per_million=80, web_search_per_request=0.01,
    )  # fmt: skip
    usage = Usage(
        prompt_tokens=1000, completion_tokens=500, cache_write_tokens=300,
        cache_write_1h_tokens=100, audio_input_tokens=200, audio_output_tokens=100,
        web_search_requests=3,
    )  # fmt: skip
    cost = PriceBook().price("m", usage, override=price)
    # text in 1000-300-200=500 at 2; 5m writes 200 at the input price (2); 1h writes 100 at
    # 4; audio in 200 at 40; text out 400 at 8; audio out 100 at 80; 3 searches at 0.01
    expected = (500 * 2 + 200 * 2 + 100 * 4 + 200 * 40 + 400 * 8 + 100 * 80) / M + 0.03
    assert cost.cost_usd == pytest.approx(expected) and cost.status == "custom"


def test_a_price_field_that_means_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown field 'inptu_per_million'"):
        ModelPrice.model_validate(
            {"inptu_per_million": 1, "input_per_million": 1, "output_per_million": 1}
        )
    with pytest.raises(ValueError, match="finite"):
        ModelPrice.model_validate({"base_model": "x", "input_cost_per_token": float("inf")})


# -- local counts: tools, images, tool calls ---------------------------------------------

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize(("model", "tokens"), [("gpt-4o-mini", 101), ("gpt-4o", 101),
                                               ("gpt-4", 105), ("gpt-3.5-turbo", 105)])  # fmt: skip
def test_tools_count_as_openai_bills_them(model: str, tokens: int) -> None:
    """The OpenAI cookbook's example ("How to count tokens with tiktoken"): the API
    reported 101 prompt tokens for gpt-4o(-mini) and 105 for gpt-4 and gpt-3.5-turbo."""
    assert count_message_tokens(model, WEATHER_MESSAGES, WEATHER_TOOLS) == tokens


def png(width: int, height: int) -> str:
    import base64
    import struct

    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR"
    header += struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return "data:image/png;base64," + base64.b64encode(header + b"\x00" * 32).decode()


@pytest.mark.parametrize(
    ("size", "detail", "model", "tokens"),
    [
        ((1024, 1024), "high", "gpt-4o", 765),  # 768x768: 4 tiles, 85 + 4 * 170
        ((2048, 4096), "high", "gpt-4o", 1105),  # 1024x2048 -> 768x1536: 6 tiles
        ((4096, 8192), "low", "gpt-4o", 85),
        ((1024, 1024), "high", "gpt-4o-mini", 2833 + 4 * 5667),
        ((1024, 1024), "high", "gpt-4.1-mini", 1659),  # 1024 patches x 1.62
    ],
)
def test_images_count_by_openai_rules(size, detail, model, tokens) -> None:
    from llmops.pricing.usage import image_tokens

    assert image_tokens(model, size, detail) == tokens


def test_an_image_in_a_message_is_counted_from_its_header() -> None:
    """The issue's case: one 1024x1024 high-detail image was counted as no tokens at all."""
    text = [{"type": "text", "text": "What's in this image?"}]
    image = {"type": "image_url", "image_url": {"url": png(1024, 1024), "detail": "high"}}
    without = count_message_tokens("gpt-4o", [{"role": "user", "content": text}])
    with_image = count_message_tokens("gpt-4o", [{"role": "user", "content": [*text, image]}])
    assert with_image - without == 765


def test_image_headers() -> None:
    import base64

    from llmops.pricing.usage import _image_size

    gif = (
        "data:image/gif;base64," + base64.b64encode(b"GIF89a\x20\x03\x58\x02" + bytes(20)).decode()
    )
    jpeg_bytes = b"\xff\xd8\xff\xe0\x00\x10" + bytes(14) + b"\xff\xc0\x00\x11\x08\x02\x58\x03\x20"
    jpeg = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes + bytes(20)).decode()
    assert _image_size(png(640, 480)) == (640, 480)
    assert _image_size(gif) == (800, 600)
    assert _image_size(jpeg) == (800, 600)
    assert _image_size("https://example.com/cat.png") is None
    assert _image_size("data:image/png;base64,!!!not base64") is None


def test_tool_calls_in_the_conversation_and_the_answer_are_counted() -> None:
    function = {"name": "get_current_weather", "arguments": '{"location": "Paris"}'}
    call = {"id": "c1", "type": "function", "function": function}
    history = [*WEATHER_MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]}]
    assert count_message_tokens("gpt-4o", history) > count_message_tokens(
        "gpt-4o", WEATHER_MESSAGES
    ) + count_text_tokens("gpt-4o", '{"location": "Paris"}')
    usage = estimate_usage("gpt-4o", WEATHER_MESSAGES, "", completion_tool_calls='{"a": 1}')
    assert usage.completion_tokens == count_text_tokens("gpt-4o", '{"a": 1}') and usage.estimated


# deepseek-v4-flash's off-peak block in litellm 1.110.2's map: weekdays 00-01, 04-06 and
# 10-24 UTC, weekends all day; 0.15 / 0.60 per M (cache reads 0.003) against 0.30 / 1.20
DEEPSEEK = "deepseek/deepseek-v4-flash"
SUNDAY = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "off_peak"),
    [
        (SUNDAY, True),
        (MONDAY, True),  # 00:00, a window's start: in
        (MONDAY + timedelta(hours=1), False),  # 01:00, its end: out
        (MONDAY + timedelta(hours=2), False),
        (MONDAY + timedelta(hours=5, minutes=59), True),
        (MONDAY + timedelta(hours=9, minutes=59), False),
        (MONDAY + timedelta(hours=23, minutes=59), True),  # 10:00-00:00: to midnight
        (MONDAY.astimezone(timezone(timedelta(hours=-5))), True),  # Sunday 19:00 in New York
    ],
)
def test_off_peak_windows_are_read_as_the_map_writes_them(at: datetime, off_peak: bool) -> None:
    raw = litellm_loader.model_cost()[DEEPSEEK]
    assert is_off_peak(raw["off_peak_pricing"], at) is off_peak


def test_deepseek_calls_are_billed_at_the_rates_of_when_they_ended(book: PriceBook) -> None:
    """The map prices deepseek-v4 lower off-peak (most of a week): every call was billed
    at the standard rates, twice what DeepSeek charges then, and stored as priced."""
    usage = Usage(prompt_tokens=M, completion_tokens=M, cached_tokens=M // 2)
    off = book.price(DEEPSEEK, usage, at=SUNDAY)
    peak = book.price(DEEPSEEK, usage, at=MONDAY + timedelta(hours=2))
    assert (off.status, peak.status) == ("priced", "priced")
    assert off.cost_usd == pytest.approx(M / 2 * 0.15 / M + M / 2 * 0.003 / M + 0.60)
    assert peak.cost_usd == pytest.approx(M / 2 * 0.30 / M + M / 2 * 0.006 / M + 1.20)
    assert book.price(DEEPSEEK, usage).cost_usd == peak.cost_usd  # no time: standard rates
    # a window that ends where it starts is the whole day; a malformed one is none
    assert is_off_peak({"hours_utc": "00:00-00:00"}, MONDAY + timedelta(hours=2))
    assert not is_off_peak({"hours_utc": ["25:00-01:00", "x"]}, MONDAY)
    assert is_off_peak({"hours_utc": "22:00-02:00"}, MONDAY + timedelta(hours=1))
    assert is_off_peak({"windows": [{"weekdays": ["mon"], "hours_utc": "00:00-00:00"}]}, MONDAY)
    assert not is_off_peak({"windows": [{"weekdays": ["tue"], "hours_utc": "00:00-00:00"}]},
                           MONDAY)  # fmt: skip


# -- tiered pricing, 12-hour writes, cached audio and images, video, grounding -----------

QWEN_TIERS = {  # dashscope/qwen-flash's shape: ranges only, no flat rates
    "tiered_pricing": [
        {"range": [0, 256_000.0], "input_cost_per_token": 5e-08, "output_cost_per_token": 4e-07},
        {"range": [256_000.0, 1_000_000.0], "input_cost_per_token": 2.5e-07,
         "output_cost_per_token": 2e-06},
    ]
}  # fmt: skip


@pytest.mark.parametrize(
    ("prompt", "rates"),
    [
        (1, (0.05, 0.4)),
        (256_000, (0.05, 0.4)),  # the end of a range is in it
        (256_001, (0.25, 2.0)),
        (1_000_000, (0.25, 2.0)),
        (3_000_000, (0.25, 2.0)),  # above every range: the last
    ],
)
def test_a_tiered_model_bills_every_token_at_its_prompts_range(prompt, rates) -> None:
    price = price_from_map(QWEN_TIERS, Usage(prompt, 1000))
    assert price == pytest.approx((prompt * rates[0] + 1000 * rates[1]) / M, rel=1e-12)


def test_the_map_s_tiered_models_are_priced_by_range(book: PriceBook) -> None:
    # opencode_go/grok-4.7: flat rates (the first range) and a range above 200k at 2x
    above = book.price("opencode_go/grok-4.7", Usage(300_000, 1000, cached_tokens=100_000))
    assert above.cost_usd == pytest.approx((200_000 * 4 + 100_000 * 1 + 1000 * 12) / M)
    assert above.status == "priced"
    below = book.price("opencode_go/grok-4.7", Usage(100_000, 1000))
    assert below.cost_usd == pytest.approx((100_000 * 2 + 1000 * 6) / M)
    # ranges only: priced (unpriced before), with reasoning at the range's own rate
    qwen = book.price("dashscope/qwen-flash", Usage(1000, 1000))
    assert (qwen.status, qwen.cost_usd) == ("priced", pytest.approx((1000 * 0.05 + 1000 * 0.4) / M))


def test_a_range_without_a_cache_price_does_not_borrow_another_ranges() -> None:
    fields = {
        "tiered_pricing": [
            {"range": [0, 1000], "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
             "cache_read_input_token_cost": 1e-7},
            {"range": [1000, 9000], "input_cost_per_token": 3e-6, "output_cost_per_token": 4e-6},
        ]
    }  # fmt: skip
    entry = entry_from_map("tiered", fields, "test")
    assert entry is not None
    small = cost_of(entry, Usage(1000, 0, cached_tokens=500))
    assert (small.status, small.cost_usd) == ("priced", pytest.approx((500 * 1 + 500 * 0.1) / M))
    large = cost_of(entry, Usage(2000, 0, cached_tokens=500))
    assert large.status == "approximate" and "no cache-read price" in large.notes[0]
    assert large.cost_usd == pytest.approx(2000 * 3 / M)  # the range's input rate


def test_your_rates_win_over_a_tiered_base_models_ranges() -> None:
    book = PriceBook({"my-qwen": ModelPrice(base_model="dashscope/qwen-flash",
                                            output_per_million=1.0)})  # fmt: skip
    price = book.price("my-qwen", Usage(300_000, 1000))
    assert price.status == "custom"
    assert price.cost_usd == pytest.approx((300_000 * 0.25 + 1000 * 1.0) / M)


def test_12_hour_cache_writes_at_their_own_rate(book: PriceBook) -> None:
    # gpt-6-astra: input $10, 5-minute writes $12.50, 12-hour writes $25, output $50 per 1M
    usage = Usage(10_000, 100, cache_write_tokens=8000, cache_write_12h_tokens=6000)
    price = book.price("gpt-6-astra", usage)
    expected = (2000 * 10 + 2000 * 12.5 + 6000 * 25 + 100 * 50) / M
    assert (price.status, price.cost_usd) == ("priced", pytest.approx(expected, rel=1e-12))
    no_rate = price_from_map(
        {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
         "cache_creation_input_token_cost": 1.25e-6}, usage)  # fmt: skip
    assert no_rate == pytest.approx((2000 * 1 + 8000 * 1.25 + 100 * 2) / M)
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                 "cache_creation_input_token_cost": 1.25e-6}, "t")  # fmt: skip
    assert entry is not None
    assert cost_of(entry, usage).notes == ("no 12-hour cache-write price (the 5-minute price)",)


def test_cached_audio_and_images_at_their_cache_rates() -> None:
    fields = {
        "input_cost_per_token": 1e-7, "output_cost_per_token": 4e-7,
        "cache_read_input_token_cost": 1e-8, "input_cost_per_audio_token": 3e-7,
        "cache_read_input_audio_token_cost": 3e-8, "input_cost_per_image_token": 2e-7,
        "cache_read_input_image_token_cost": 2e-8,
    }  # fmt: skip
    usage = Usage(10_000, 100, cached_tokens=5000, audio_input_tokens=4000,
                  cached_audio_tokens=3000, image_input_tokens=1000,
                  cached_image_tokens=500)  # fmt: skip
    entry = entry_from_map("m", fields, "t")
    assert entry is not None
    price = cost_of(entry, usage)
    # text 10000-5000-1000-500 = 3500; cached text 1500; audio 1000 + cached 3000; image 500
    # + cached 500
    expected = (3500 * 0.1 + 1500 * 0.01 + 1000 * 0.3 + 3000 * 0.03 + 500 * 0.2 + 500 * 0.02
                + 100 * 0.4) / M  # fmt: skip
    assert (price.status, price.cost_usd) == ("priced", pytest.approx(expected, rel=1e-12))
    del fields["cache_read_input_audio_token_cost"]
    without = cost_of(entry_from_map("m", fields, "t"), usage)  # type: ignore[arg-type]
    assert without.status == "approximate"
    assert without.notes == ("no price of cached audio (the cache-read price)",)
    assert without.cost_usd == pytest.approx(expected - 3000 * (0.03 - 0.01) / M, rel=1e-12)


def test_cached_audio_beyond_the_audio_or_the_cache_is_not_billed_twice() -> None:
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6,
                                 "cache_read_input_token_cost": 1e-7,
                                 "cache_read_input_audio_token_cost": 2e-7}, "t")  # fmt: skip
    assert entry is not None
    claimed = Usage(1000, 0, cached_tokens=100, audio_input_tokens=50, cached_audio_tokens=900)
    # at most the 50 audio tokens are cached audio; 50 cached text; 900 text
    assert cost_of(entry, claimed).cost_usd == pytest.approx((900 * 1 + 50 * 0.1 + 50 * 0.2) / M)


def test_video_input_and_output_at_their_rates() -> None:
    fields = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
              "input_cost_per_video_token": 3e-6, "output_cost_per_video_token": 4e-6}  # fmt: skip
    usage = Usage(1000, 300, video_input_tokens=600, video_output_tokens=200)
    assert price_from_map(fields, usage) == pytest.approx((400 + 600 * 3 + 100 * 2 + 200 * 4) / M)
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}, "t")
    assert entry is not None
    text = cost_of(entry, usage)
    assert text.status == "approximate" and text.cost_usd == pytest.approx((1000 + 300 * 2) / M)
    assert text.notes == ("no video input price (text price)", "no video output price (text price)")


@pytest.mark.parametrize(
    ("model", "queries", "fee"),
    [
        ("gemini/gemini-2.5-flash", 3, 0.035),  # Gemini 2: once per grounded prompt
        ("gemini-3.1-pro-preview", 3, 3 * 0.014),  # web_search_billing_unit: per_query
    ],
)
def test_gemini_grounding_per_prompt_or_per_query(book, model, queries, fee) -> None:
    plain = book.price(model, Usage(1000, 100)).cost_usd
    grounded = book.price(model, Usage(1000, 100, grounding_queries=queries))
    assert grounded.status == "priced"
    assert grounded.cost_usd == pytest.approx(plain + fee, rel=1e-12)
    maps = book.price(model, Usage(1000, 100, maps_grounding_queries=queries))
    maps_fee = {"gemini/gemini-2.5-flash": 0.025, "gemini-3.1-pro-preview": 3 * 0.014}[model]
    assert maps.cost_usd == pytest.approx(plain + maps_fee, rel=1e-12)


def test_grounding_without_a_fee_in_the_map_is_approximate(book: PriceBook) -> None:
    # gemini/gemini-omni-flash-preview: no search_context_cost_per_query, no Maps fee
    model = "gemini/gemini-omni-flash-preview"
    price = book.price(model, Usage(1000, 100, grounding_queries=2))
    assert price.status == "approximate"
    assert price.notes == ("no search_context_cost_per_query price: grounding not billed",)
    assert price.cost_usd == book.price(model, Usage(1000, 100)).cost_usd
    maps = book.price(model, Usage(1000, 100, maps_grounding_queries=1))
    assert maps.notes == (
        "no google_maps_grounding_cost_per_query price: Maps grounding not billed",
    )


def test_usage_reads_every_new_dimension_from_litellms_shape() -> None:
    gemini = {
        "prompt_tokens": 10_000,
        "completion_tokens": 300,
        "prompt_tokens_details": {
            "cached_tokens": 5000, "audio_tokens": 4000, "image_tokens": 800, "video_tokens": 500,
            "cached_tokens_details": {"text_tokens": 1500, "audio_tokens": 3000,
                                      "image_tokens": 500},
            "web_search_requests": 3, "google_maps_grounding_requests": 1,
        },
        "completion_tokens_details": {"video_tokens": 50},
    }  # fmt: skip
    usage = usage_from_response(gemini)
    assert usage is not None
    assert (usage.cached_audio_tokens, usage.cached_image_tokens) == (3000, 500)
    assert (usage.video_input_tokens, usage.video_output_tokens) == (500, 50)
    assert (usage.grounding_queries, usage.maps_grounding_queries) == (3, 1)
    openai = {
        "prompt_tokens": 10_000,
        "completion_tokens": 10,
        "prompt_tokens_details": {
            "cache_write_tokens": 8000,
            "cache_creation_token_details": {"ephemeral_12h_input_tokens": 6000},
        },
    }
    written = usage_from_response(openai)
    assert written is not None
    assert (written.cache_write_tokens, written.cache_write_12h_tokens) == (8000, 6000)
    # what re-pricing reads back from usage_details is what was priced
    row = {"prompt_tokens": 10_000, "completion_tokens": 300, "cached_tokens": 5000}
    assert Usage.from_columns(row, usage.details()) == usage


def test_custom_prices_of_the_newer_dimensions() -> None:
    price = ModelPrice(
        input_per_million=1, output_per_million=2, cache_write_per_million=3,
        cache_write_12h_per_million=5, cached_input_per_million=0.5,
        cached_audio_input_per_million=0.7, audio_input_per_million=7,
        video_input_per_million=11, video_output_per_million=13,
        web_search_per_request=0.01, maps_grounding_per_request=0.02,
    )  # fmt: skip
    usage = Usage(
        prompt_tokens=10_000, completion_tokens=1000, cached_tokens=3000,
        cache_write_tokens=2000, cache_write_12h_tokens=1500, audio_input_tokens=1000,
        cached_audio_tokens=400, video_input_tokens=500, video_output_tokens=300,
        grounding_queries=2, maps_grounding_queries=3,
    )  # fmt: skip
    cost = PriceBook().price("m", usage, override=price)
    # text in 10000-3000-2000-600-500 = 3900; cached text 2600 at 0.5, audio 400 at 0.7;
    # writes 500 at 3, 1500 at 5; audio 600 at 7; video 500 at 11; text out 700 at 2,
    # video out 300 at 13; your own prices bill grounding per query
    expected = (3900 * 1 + 2600 * 0.5 + 400 * 0.7 + 500 * 3 + 1500 * 5 + 600 * 7 + 500 * 11
                + 700 * 2 + 300 * 13) / M + 2 * 0.01 + 3 * 0.02  # fmt: skip
    assert cost.status == "custom" and cost.cost_usd == pytest.approx(expected, rel=1e-12)


# -- where the call ran: regional hosts and locations, inference geo, fast mode ------------


@pytest.mark.parametrize(
    ("served", "factor"),
    [
        ({}, 1.0),
        ({"data_residency": "eu"}, 1.1),  # eu.api.openai.com
        ({"data_residency": "us"}, 1.1),
        ({"data_residency": "fedramp"}, 1.1),  # gov.api.openai.com
        ({"data_residency": "mars"}, 1.0),
    ],
)
def test_openai_regional_hosts_multiply_the_token_cost(book, served, factor) -> None:
    from llmops.pricing.usage import Served

    usage = Usage(1000, 100, web_search_requests=2)  # the searches' fee is not multiplied
    price = book.price("gpt-6-astra", usage, served=Served(**served))
    assert price.cost_usd == pytest.approx((1000 * 10 + 100 * 50) / M * factor + 2 * 0.01)
    assert price.status == "priced"


def test_vertex_regions_and_anthropic_geo_and_speed(book: PriceBook) -> None:
    from llmops.pricing.usage import Served

    base = (1000 * 1.5 + 100 * 9) / M  # vertex_ai/gemini-3.5-flash: x1.1 outside "global"
    for location, factor in (("global", 1.0), ("GLOBAL", 1.0), ("us-east5", 1.1), ("eu", 1.1)):
        served = Served(vertex_location=location)
        price = book.price("vertex_ai/gemini-3.5-flash", Usage(1000, 100), served=served)
        assert price.cost_usd == pytest.approx(base * factor), location
    opus = (1000 * 5 + 100 * 25) / M  # claude-opus-4-8: us x1.1, fast x2
    for geo, speed, factor in (("us", None, 1.1), ("global", "fast", 2.0), ("us", "fast", 2.2),
                               ("not_available", None, 1.0)):  # fmt: skip
        served = Served(inference_geo=geo, speed=speed)
        assert book.price("claude-opus-4-8", Usage(1000, 100), served=served).cost_usd == (
            pytest.approx(opus * factor)
        )
    # a blocking budget reserves at the dearest of them, for the dearest token
    upper = book.upper_rates("claude-opus-4-8")
    assert upper is not None and upper.input_usd == pytest.approx(10 / M * 2.2)  # 1-hour writes


def test_where_a_call_is_sent_as_litellm_resolves_it(monkeypatch) -> None:
    from llmops.pricing.usage import Served, endpoint_of

    for name in ("OPENAI_BASE_URL", "OPENAI_API_BASE", "VERTEXAI_LOCATION", "VERTEX_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    eu = {"api_base": "https://EU.api.openai.com/v1"}
    assert endpoint_of("openai", "gpt-6-sol", eu) == Served(data_residency="eu")
    assert endpoint_of("openai", "gpt-6-sol", {"base_url": "https://gov.api.openai.com/v1"}) == (
        Served(data_residency="fedramp")
    )
    assert endpoint_of("openai", "gpt-6-sol", {"api_base": "http://127.0.0.1:1/v1"}) == Served()
    assert endpoint_of("openai", "gpt-6-sol", {"api_base": "http://[::1"}) == Served()
    assert endpoint_of("azure", "gpt-6-sol", eu) == Served()  # OpenAI's hosts only
    monkeypatch.setenv("OPENAI_BASE_URL", "https://us.api.openai.com/v1")
    assert endpoint_of("openai", "gpt-6-sol", {}) == Served(data_residency="us")
    vertex = "vertex_ai/gemini-3.5-flash"
    assert endpoint_of("vertex_ai", vertex, {}) == Served(vertex_location="us-central1")
    assert endpoint_of("vertex_ai", vertex, {"vertex_location": "global"}) == Served(
        vertex_location="global"
    )
    monkeypatch.setenv("VERTEXAI_LOCATION", "europe-west4")
    assert endpoint_of("vertex_ai", vertex, {}).vertex_location == "europe-west4"
    assert endpoint_of("vertex_ai", vertex, {"vertex_ai_location": "asia-east1"}) == Served(
        vertex_location="asia-east1"
    )
    # what usage_details keeps, and reads back
    served = Served("m", "flex", "us", "fast", "eu", "global")
    assert Served.from_details(
        {"served_model": "m", "service_tier": "flex", **served.details()}
    ) == (served)
    assert Served.from_details({"inference_geo": 7, "speed": ""}) == Served()


def test_xai_bills_a_prompt_of_exactly_the_threshold_above_it(book: PriceBook) -> None:
    # litellm reads xAI's thresholds as inclusive: 200,000 tokens is "above 200k"
    model = "xai/grok-4.20-0309-reasoning"
    at = book.price(model, Usage(200_000, 1000)).cost_usd
    assert at == pytest.approx((200_000 * 2.5 + 1000 * 5) / M)
    below = book.price(model, Usage(199_999, 1000)).cost_usd
    assert below == pytest.approx((199_999 * 1.25 + 1000 * 2.5) / M)
    # other providers' thresholds stay exclusive (gemini-2.5-pro: 200k)
    gemini = book.price("gemini/gemini-2.5-pro", Usage(200_000, 0)).cost_usd
    assert gemini == pytest.approx(200_000 * 1.25 / M)


def test_search_fees_at_the_context_size_the_call_asked_for(book: PriceBook) -> None:
    from llmops.pricing.usage import Served, endpoint_of

    # perplexity/sonar-pro: low 0.006, medium 0.010, high 0.014 per search
    usage = Usage(1000, 100, grounding_queries=2)  # litellm: num_search_queries
    tokens = (1000 * 3 + 100 * 15) / M
    by_size = {None: 0.006, "low": 0.006, "medium": 0.010, "high": 0.014}  # default: low
    for size, fee in by_size.items():
        asked = {"web_search_options": {"search_context_size": size}} if size else {}
        served = endpoint_of("perplexity", "perplexity/sonar-pro", asked)
        assert served == Served(search_context_size=size)
        price = book.price("perplexity/sonar-pro", usage, served=served)
        assert price.cost_usd == pytest.approx(tokens + 2 * fee), size
    odd = endpoint_of("openai", "gpt-4o", {"web_search_options": {"search_context_size": "xl"}})
    assert odd == Served()


def test_a_cited_answer_is_one_search_call_unless_searches_were_reported() -> None:
    from llmops.pricing.usage import cites_urls, with_cited_search

    cited = [{"type": "url_citation", "url_citation": {"url": "https://a.example"}}]
    assert cites_urls(cited) and not cites_urls([{"type": "file_citation"}])
    assert not cites_urls(None) and not cites_urls("url_citation")
    assert with_cited_search(Usage(10, 10), True).web_search_requests == 1
    assert with_cited_search(Usage(10, 10), False).web_search_requests == 0
    reported = Usage(10, 10, web_search_requests=3)
    assert with_cited_search(reported, True) == reported
    grounded = Usage(10, 10, grounding_queries=2)
    assert with_cited_search(grounded, True) == grounded


def test_absurd_counts_from_a_provider_are_not_billed() -> None:
    shape = {
        "prompt_tokens": 1000,
        "completion_tokens": 100,
        "prompt_tokens_details": {"video_tokens": -5000, "audio_tokens": float("nan"),
                                  "cached_tokens": float("inf"), "web_search_requests": "3"},
        "completion_tokens_details": {"video_tokens": -50, "reasoning_tokens": True},
    }  # fmt: skip
    usage = usage_from_response(shape)
    assert usage == Usage(1000, 100)  # every absurd part is 0: the call is billed as text
    # a negative part never adds tokens to the others
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6}, "t")
    assert entry is not None
    assert cost_of(entry, usage).cost_usd == pytest.approx(1100 / M)


def test_explicit_cache_reads_are_read_from_the_cache_type() -> None:
    details = {"cached_tokens": 40, "cache_type": "ephemeral"}
    explicit = {"prompt_tokens": 100, "completion_tokens": 1, "prompt_tokens_details": details}
    usage = usage_from_response(explicit)
    assert usage is not None and usage.explicit_cached_tokens == 40
    implicit = {**explicit, "prompt_tokens_details": {"cached_tokens": 40, "cache_type": "x"}}
    assert usage_from_response(implicit) == Usage(100, 1, 40)
    # without an explicit price, explicit reads cost what the others do, exactly
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 1e-6,
                                 "cache_read_input_token_cost": 1e-7}, "t")  # fmt: skip
    assert entry is not None
    price = cost_of(entry, usage)
    assert (price.status, price.cost_usd) == ("priced", pytest.approx((60 + 4 + 1) / M))


def test_a_price_of_absurd_counts_is_a_number_not_an_error(book: PriceBook) -> None:
    # a total of $1e13 overflowed the rounding to femto-dollars (decimal.InvalidOperation):
    # the gateway recorded the call unpriced and `llmops costs recompute` stopped
    huge = book.price("gpt-5.6", Usage(2_500_000_000_000_000_000, 1))
    assert huge.status == "priced" and huge.cost_usd == pytest.approx(2.5e18 * 8e-6)
    stored = Usage.from_columns({"prompt_tokens": 1, "completion_tokens": 1},
                                {"grounding_queries": 10**40})  # fmt: skip
    assert stored.grounding_queries == 2**63 - 1  # at most what a BIGINT holds
    price = book.price("gemini/gemini-3.1-pro-preview", stored)
    assert price.cost_usd is not None and math.isfinite(price.cost_usd)


def test_your_rates_over_a_base_model_keep_its_ranges_hours_and_rules() -> None:
    # a cache price of your own over a tiered model holds in every range
    book = PriceBook()
    mine = ModelPrice(base_model="dashscope/qwen3.7-plus", cached_input_per_million=0.01)
    price = book.price("dashscope/qwen3.7-plus", Usage(300_000, 1000, cached_tokens=100_000),
                       override=mine)  # fmt: skip
    assert price.status == "custom"
    assert price.cost_usd == pytest.approx((200_000 * 1.2 + 100_000 * 0.01 + 1000 * 4.8) / M)
    # xAI's inclusive threshold, Perplexity's low search size, DeepSeek's off-peak hours
    xai = ModelPrice(base_model="xai/grok-4.20-0309-reasoning", reasoning_per_million=5)
    at = book.price("m", Usage(200_000, 0), override=xai)
    assert at.cost_usd == pytest.approx(200_000 * 2.5 / M)
    sonar = ModelPrice(base_model="perplexity/sonar", output_per_million=1)
    searched = book.price("m", Usage(1000, 0, grounding_queries=3), override=sonar)
    assert searched.cost_usd == pytest.approx(1000 * 1 / M + 3 * 0.005)
    deepseek = ModelPrice(base_model="deepseek/deepseek-v4-flash", reasoning_per_million=9)
    saturday = datetime(2026, 12, 5, 12, tzinfo=UTC)
    off_peak = book.price("m", Usage(1_000_000, 0), override=deepseek, at=saturday)
    assert off_peak.cost_usd == pytest.approx(0.15)  # the off-peak input rate, not 0.30


@pytest.mark.parametrize(
    ("model", "dearest_in", "dearest_out"),
    [
        ("gpt-5.6", 20 * 1.1, 30 * 1.1),  # 12-hour writes ($20/M), eu or us host (x1.1)
        ("claude-opus-5-5", 8 * 2.2, 20 * 2.2),  # 1-hour writes, US inference in fast mode
        ("gemini/gemini-2.5-flash", 1.0, 2.5),  # audio input
        ("gemini/gemini-omni-1.2-flash", 1.5, 12.0),  # video output
    ],
)
def test_a_budget_reserves_at_the_dearest_token_a_call_can_use(
    book, model, dearest_in, dearest_out
) -> None:
    upper = book.upper_rates(model)
    assert upper is not None
    assert upper.input_usd == pytest.approx(dearest_in / M)
    assert upper.output_usd == pytest.approx(dearest_out / M)


def test_negative_counts_made_by_hand_are_not_billed() -> None:
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6,
                                 "cache_read_input_token_cost": 1e-7}, "t")  # fmt: skip
    assert entry is not None
    for usage in (Usage(1000, 100, cached_tokens=-500), Usage(1000, 100, reasoning_tokens=-500),
                  Usage(1000, 100, video_input_tokens=-9)):  # fmt: skip
        price = cost_of(entry, usage)
        assert (price.status, price.cost_usd) == ("priced", pytest.approx((1000 + 200) / M))


def test_a_budget_reserves_for_where_the_call_is_sent(book: PriceBook) -> None:
    from llmops.pricing.usage import Served

    # gpt-4o-mini costs 10% more from gov.api.openai.com only: the default host reserves
    # the plain rate, an unknown destination the dearest
    plain = book.upper_rates("gpt-4o-mini", where=Served)
    gov = book.upper_rates("gpt-4o-mini", where=lambda: Served(data_residency="fedramp"))
    unknown = book.upper_rates("gpt-4o-mini")
    assert plain is not None and gov is not None and unknown is not None
    assert plain.input_usd == pytest.approx(0.15 / M)
    assert gov.input_usd == unknown.input_usd == pytest.approx(0.15 * 1.1 / M)
    # where Anthropic runs a call is known only after it: its dearest geo and speed
    opus = book.upper_rates("claude-opus-5-5", where=Served)
    assert opus is not None and opus.input_usd == pytest.approx(8 * 2.2 / M)


# -- Perplexity: citation tokens, searches, reasoning beside the output, a fee per call ---


def test_perplexitys_own_usage_shape_is_read_whole() -> None:
    """Perplexity's JSON as it sends it (the direct route's dict, no details objects):
    reasoning beside completion_tokens, citations beside prompt_tokens, its searches and
    the size they ran at."""
    from llmops.pricing.usage import served_by

    raw = {"prompt_tokens": 108, "completion_tokens": 3256, "total_tokens": 3364,
           "citation_tokens": 7299, "num_search_queries": 74, "reasoning_tokens": 73248,
           "search_context_size": "High"}  # fmt: skip
    usage = usage_from_response(raw, "perplexity")
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (
        108, 3256 + 73248, 73248)  # fmt: skip
    assert (usage.citation_tokens, usage.grounding_queries) == (7299, 74)
    assert served_by(None, raw).search_context_size == "high"
    for size in ("HUGE", "", 3, None):  # a size Perplexity has no price for is not read
        assert served_by(None, {**raw, "search_context_size": size}).search_context_size is None
    # litellm's shape of the same call: reasoning moved into the details, not added
    litellm_shape = {**raw, "reasoning_tokens": None,
                     "completion_tokens_details": {"reasoning_tokens": 73248}}  # fmt: skip
    assert usage_from_response(litellm_shape, "perplexity") == usage
    # another provider's reasoning is part of its output, as OpenAI reports it, whether
    # litellm moved it (the litellm route) or not (the direct route's own JSON)
    for shape in (litellm_shape, raw):
        openai = usage_from_response(shape, "openai")
        assert openai is not None and (openai.completion_tokens, openai.reasoning_tokens) == (
            3256, 73248)  # fmt: skip
    # what re-pricing reads back from usage_details is what was priced
    row = {"prompt_tokens": 108, "completion_tokens": 76504, "reasoning_tokens": 73248}
    assert Usage.from_columns(row, usage.details()) == usage


def test_perplexity_deep_research_bills_every_part(book: PriceBook) -> None:
    from llmops.pricing.usage import Served

    usage = Usage(108, 3256 + 73248, reasoning_tokens=73248, citation_tokens=7299,
                  grounding_queries=74)  # fmt: skip
    price = book.price("perplexity/sonar-deep-research", usage, provider="perplexity",
                       served=Served(search_context_size="low"))  # fmt: skip
    expected = (108 * 2 + 7299 * 2 + 3256 * 8 + 73248 * 3) / M + 74 * 0.005
    assert price.status == "priced" and price.cost_usd == pytest.approx(expected, rel=1e-12)
    # citation tokens of a model the map prices none for are not billed, and not a guess
    sonar = book.price("perplexity/sonar", Usage(100, 10, citation_tokens=5000))
    assert (sonar.status, sonar.cost_usd) == ("priced", pytest.approx(110 / M))


def test_a_fee_per_call_is_billed_once_and_reserved(book: PriceBook) -> None:
    price = book.price("perplexity/pplx-7b-online", Usage(50, 100))
    assert price.cost_usd == pytest.approx(100 * 0.28 / M + 0.005, rel=1e-12)
    upper = book.upper_rates("perplexity/pplx-7b-online")
    assert upper is not None
    assert (upper.input_usd, upper.per_call_usd) == (0.0, pytest.approx(0.005))
    assert upper.output_usd == pytest.approx(0.28 / M)
    plain = book.upper_rates("gpt-4o-mini")
    assert plain is not None and plain.per_call_usd == 0.0


def test_your_prices_of_citations_and_of_a_call() -> None:
    price = ModelPrice(input_per_million=1, output_per_million=2, citation_per_million=3,
                       request_fee=0.004)  # fmt: skip
    cost = PriceBook().price("m", Usage(1000, 100, citation_tokens=500), override=price)
    assert cost.status == "custom"
    assert cost.cost_usd == pytest.approx((1000 * 1 + 100 * 2 + 500 * 3) / M + 0.004)
    with pytest.raises(ValueError, match="request_fee"):
        ModelPrice(input_per_million=1, output_per_million=2, request_fee=-1)


def test_a_streams_usage_is_completed_by_what_the_provider_sent() -> None:
    processed = Usage(108, 76504, reasoning_tokens=73248)
    sent = Usage(108, 76504, reasoning_tokens=73248, citation_tokens=7299, grounding_queries=74)
    assert processed.filled(sent) == sent
    assert sent.filled(processed) == sent  # nothing is taken away
    assert Usage(10, 5).filled(Usage(99, 99)) == Usage(10, 5)  # counts it has are kept


# -- the bill a provider reports ------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "provider", "billed"),
    [
        ({"cost_in_usd_ticks": 237_500_000}, "xai", 0.02375),
        ({"cost": {"total_cost": 0.01056, "request_cost": 0.006}}, "perplexity", 0.01056),
        ({"cost": 0.02124}, "openrouter", 0.02124),
        ({"cost": 0.5, "is_byok": True, "cost_details": {"upstream_inference_cost": 1.5}},
         "openrouter", 2.0),
        ({"cost": 0.5, "is_byok": False, "cost_details": {"upstream_inference_cost": 1.5}},
         "openrouter", 0.5),
        ({"cost": 0.21996}, "perplexity", None),  # litellm's own reckoning on a stream
        ({"cost": 0.02}, "openai", None),  # no provider's field: litellm's
        ({"cost": 0.02}, None, None),
        ({"cost": -1}, "openrouter", None),
        ({"cost": float("nan")}, "openrouter", None),
        ({"cost": float("inf")}, "openrouter", None),
        ({"cost": True}, "openrouter", None),
        ({"cost": "0.02"}, "openrouter", None),
        ({"cost": 2e6}, "openrouter", None),  # over a million dollars a call: not a bill
        ({"cost_in_usd_ticks": -10}, "xai", None),
        ({"cost_in_usd_ticks": 10**40}, "xai", None),
        ({"cost_in_usd_ticks": 10**400}, "xai", None),  # too large for a float: no crash
        ({"cost": 10**400}, "openrouter", None),
        ({"cost": 999_999.0}, "openrouter", None),  # a call costs less than $1,000
        ({"cost_in_usd_ticks": 5 * 10**9}, "openai", None),  # xAI's field, from xAI only
        ({"cost": {"total_cost": 0.5}}, "openrouter", None),
        ({"cost": 0.5, "is_byok": True}, "openrouter", None),  # half a bill is not one
        ({"cost": 0.5, "is_byok": True, "cost_details": {"upstream_inference_cost": -0.4}},
         "openrouter", None),
        ({"cost": -0.5, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.6}},
         "openrouter", None),
        ({"cost": {"total_cost": "lots"}}, "perplexity", None),
        (None, "openrouter", None),
    ],
)  # fmt: skip
def test_the_bill_a_provider_reports(usage, provider, billed) -> None:
    from llmops.pricing.usage import billed_cost

    found = billed_cost(usage, provider)
    assert found == (pytest.approx(billed) if billed is not None else None)


def test_your_prices_win_over_the_bill_reported_and_the_bill_over_the_map(tmp_path: Path) -> None:
    usage = Usage(3000, 400)
    book = PriceBook()
    billed = book.price("openrouter/deepseek/deepseek-chat", usage, provider="openrouter",
                        billed=0.02124)  # fmt: skip
    assert (billed.cost_usd, billed.status, billed.source) == (
        0.02124,
        "priced",
        "billed:openrouter",
    )
    assert billed.priced_as is None  # no entry of the map priced it
    unknown = book.price("openrouter/nobody/knows", usage, provider="openrouter", billed=0.0)
    assert (unknown.cost_usd, unknown.status) == (0.0, "priced")  # a free model: its bill, 0
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  openrouter/deepseek/deepseek-chat:\n"
                      "    input_per_million: 1\n    output_per_million: 2\n")  # fmt: skip
    mine = PriceBook.from_file(prices).price(
        "openrouter/deepseek/deepseek-chat", usage, provider="openrouter", billed=0.02124
    )
    assert (mine.cost_usd, mine.status) == (pytest.approx((3000 + 800) / M), "custom")
    override = ModelPrice(input_per_million=1, output_per_million=1)
    given = book.price("x", usage, override=override, billed=9.0)
    assert given.cost_usd == pytest.approx(3400 / M)


def test_pages_groqs_browser_opened_are_not_billed_silently(book: PriceBook) -> None:
    """Groq bills each page its browser tool opens ($1 a thousand); the map has no price
    for it, so such a call is approximate, not priced."""
    tools = {"web_search_requests": 2, "browser_open_requests": 10}
    shape = {"prompt_tokens": 5000, "completion_tokens": 500, "server_tool_use": tools}
    usage = usage_from_response(shape, "groq")
    assert usage is not None and (usage.web_search_requests, usage.browser_opens) == (2, 10)
    price = book.price("groq/openai/gpt-oss-120b", usage, provider="groq")
    assert price.status == "approximate" and "browser visit" in price.notes[0]
    assert price.cost_usd == pytest.approx((5000 * 0.15 + 500 * 0.6) / M + 2 * 0.005)
    plain = book.price("groq/openai/gpt-oss-120b", replace(usage, browser_opens=0))
    assert plain.status == "priced"
    mine = ModelPrice(base_model="groq/openai/gpt-oss-120b", browser_open_per_request=0.001)
    priced = book.price("groq/openai/gpt-oss-120b", usage, provider="groq", override=mine)
    assert priced.status == "custom"
    assert priced.cost_usd == pytest.approx((5000 * 0.15 + 500 * 0.6) / M + 2 * 0.005 + 0.01)


def test_embeddings_billed_by_the_image_the_character_or_the_query(book: PriceBook) -> None:
    """What litellm 1.110.2 makes of Cohere's ``billed_units.images``, of Bedrock Titan's
    image requests (no tokens at all: the call was estimated from the base64 text) and of
    Vertex AI's ``billableCharacterCount``: billed each, at the map's per-unit price, not
    as tokens (1,000x under for Cohere's images)."""
    cohere = usage_from_response(
        {
            "prompt_tokens": 3,
            "completion_tokens": 0,
            "prompt_tokens_details": {"image_tokens": 3, "image_count": 3},
        }
    )
    assert cohere is not None and cohere.image_count == 3
    price = book.price("embed-english-v3.0", cohere, provider="cohere")
    assert (price.status, price.cost_usd) == ("priced", pytest.approx(3 * 0.0001))
    titan = usage_from_response(
        {"prompt_tokens": 0, "completion_tokens": 0, "prompt_tokens_details": {"image_count": 2}}
    )
    assert titan is not None and titan.used and titan.total_tokens == 0
    price = book.price("amazon.titan-embed-image-v1", titan, provider="bedrock")
    assert (price.status, price.cost_usd) == ("priced", pytest.approx(2 * 6e-05))
    vertex = usage_from_response(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 0,
            "prompt_tokens_details": {"character_count": 1300},
        }
    )
    assert vertex is not None
    price = book.price("text-embedding-005", vertex, provider="vertex_ai")
    assert price.cost_usd == pytest.approx(1300 * 2.5e-08)  # the characters, not the tokens
    entry = entry_from_map("m", {"input_cost_per_token": 1e-6, "output_cost_per_token": 0,
                                 "input_cost_per_query": 7e-05}, "t")  # fmt: skip
    assert entry is not None
    assert cost_of(entry, Usage(10, query_count=4)).cost_usd == pytest.approx(10e-6 + 4 * 7e-05)
    # a model priced by the query, image and second only (TwelveLabs Marengo): seconds of
    # video are not read, so it stays unpriced rather than billed for its queries alone
    marengo = book.price("twelvelabs.marengo-embed-2-7-v1:0", Usage(query_count=4))
    assert (marengo.status, marengo.cost_usd) == ("unpriced", None)
    # a model without a per-image price bills the images' tokens, as before
    plain = book.price("text-embedding-3-small", replace(cohere, image_count=3))
    assert plain.cost_usd == pytest.approx(3 * 0.02 / M)
    # what re-pricing reads back is what was priced
    row = {"prompt_tokens": 1000, "completion_tokens": 0}
    assert Usage.from_columns(row, vertex.details()) == vertex


def test_the_tier_asked_for_stands_in_only_for_a_tier_not_reported(book: PriceBook) -> None:
    from llmops.pricing.usage import Served

    usage = Usage(100_000, 10_000)
    nova = "amazon.nova-pro-v1:0"
    asked = book.price(nova, usage, served=Served(asked_tier="flex"))
    assert (asked.status, asked.cost_usd) == ("approximate", pytest.approx(0.056))
    assert "as asked" in asked.notes[0]
    reported = book.price(nova, usage, served=Served(service_tier="priority", asked_tier="flex"))
    assert (reported.status, reported.cost_usd) == ("priced", pytest.approx(0.196))
    for tier in ("auto", "standard_only", "flex"):  # no such rates for gpt-4o-mini: ignored
        plain = book.price("gpt-4o-mini", Usage(1000, 100), served=Served(asked_tier=tier))
        assert (plain.status, plain.notes) == ("priced", ()), tier
    served = Served(asked_tier="flex", data_residency="eu")
    assert Served.from_details(served.details()) == served  # re-pricing reads it back
