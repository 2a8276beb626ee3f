"""Accounting: token usage (counted locally when a provider sends none) and exact cost.

Prices come from litellm's price map, unless the user supplies their own (a ``prices.yaml``
or a call argument). A model without a known price is ``unpriced`` with cost None, never a
silent 0. Cost formula, with ``prompt_tokens`` always the total input:

    (prompt - cached - cache_write) * input + cached * cache_read
    + cache_write * cache_write_rate + (completion - reasoning) * output
    + reasoning * reasoning_rate

Reasoning tokens are part of ``completion_tokens`` and billed at the output rate unless
the price map gives a separate rate; cached input is billed at the cache-read rate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from llmops.errors import ConfigError, ConfigFileError
from llmops.gateway import _litellm

PER_MILLION = Decimal(1_000_000)
_LONG_CONTEXT = 200_000  # litellm's "*_above_200k_tokens" tier


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. ``prompt_tokens`` includes cached and cache-write tokens;
    ``completion_tokens`` includes reasoning tokens."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_from_response(usage: Any) -> Usage | None:
    """Normalise litellm's usage object (OpenAI or Anthropic shaped); None when absent."""
    if usage is None:
        return None
    if isinstance(usage, dict):
        get = usage.get
    else:
        fields = getattr(usage, "__dict__", None)  # pydantic models keep fields here: fast
        get = fields.get if isinstance(fields, dict) else functools.partial(getattr, usage)
    prompt = _int(get("prompt_tokens", None))
    completion = _int(get("completion_tokens", None))
    if prompt == 0 and completion == 0:
        return None
    prompt_details = get("prompt_tokens_details", None)
    completion_details = get("completion_tokens_details", None)
    cached = _int(_field(prompt_details, "cached_tokens")) or _int(
        get("cache_read_input_tokens", None)
    )
    cache_write = _int(get("cache_creation_input_tokens", None)) or _int(
        _field(prompt_details, "cache_creation_tokens")
    )
    reasoning = _int(_field(completion_details, "reasoning_tokens"))
    return Usage(prompt, completion, cached, cache_write, reasoning)


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


# -- local token counting -------------------------------------------------------------

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


@functools.lru_cache(maxsize=8)
def _encoding(name: str) -> Any:
    _litellm.configure_environment()
    import tiktoken

    return tiktoken.get_encoding(name)


def encoding_for(model: str) -> str:
    """The tiktoken encoding to estimate ``model``'s tokens with (o200k or cl100k)."""
    bare = model.rsplit("/", 1)[-1].lower()
    return "o200k_base" if bare.startswith(_O200K_PREFIXES) else "cl100k_base"


def count_text_tokens(model: str, text: str) -> int:
    return len(_encoding(encoding_for(model)).encode(text, disallowed_special=()))


def count_message_tokens(model: str, messages: list[dict[str, Any]]) -> int:
    """Prompt tokens as OpenAI counts chat messages: 3 per message, 3 for the reply primer."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if key == "content":
                total += count_text_tokens(model, _content_text(value))
            elif isinstance(value, str):
                total += count_text_tokens(model, value) + (1 if key == "name" else 0)
    return total


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def estimate_usage(model: str, messages: list[dict[str, Any]], completion: str) -> Usage:
    """Usage counted locally with tiktoken, marked as estimated."""
    return Usage(
        prompt_tokens=count_message_tokens(model, messages),
        completion_tokens=count_text_tokens(model, completion) if completion else 0,
        estimated=True,
    )


# -- prices ---------------------------------------------------------------------------


MAX_PRICE_PER_MILLION = 1_000_000.0  # USD per million tokens: a dollar a token


def _not_a_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a price in USD per million tokens, not true/false")
    return value


def _sane_price(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number of USD per million tokens, got {value}")
    if value < 0:
        raise ValueError(f"must be greater than or equal to 0, got {value:g}")
    if value > MAX_PRICE_PER_MILLION:
        raise ValueError(
            f"must be at most {MAX_PRICE_PER_MILLION:,.0f} USD per million tokens, got {value:g}"
        )
    return value


PerMillion = Annotated[float, BeforeValidator(_not_a_bool), AfterValidator(_sane_price)]


class ModelPrice(BaseModel):
    """A user's price for one model, in USD per million tokens: a finite number from 0 to
    :data:`MAX_PRICE_PER_MILLION` (an infinite, NaN or negative price is refused here, when
    the price is given, not when a call is recorded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: PerMillion
    output_per_million: PerMillion
    cached_input_per_million: PerMillion | None = None
    cache_write_per_million: PerMillion | None = None
    reasoning_per_million: PerMillion | None = None


def model_price(value: ModelPrice | dict[str, Any], where: str) -> ModelPrice:
    """A price given in Python (``price=`` or ``Gateway(prices=...)``), checked; a bad one
    is a ConfigError naming ``where`` and the field."""
    if isinstance(value, ModelPrice):
        return value
    try:
        return ModelPrice.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"] if not str(p).startswith("function-"))
        reason = error["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {field or 'price'}: {reason}") from None


class PricesFile(BaseModel):
    """``prices.yaml``: ``models: {model name: ModelPrice}``."""

    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelPrice] = Field(default_factory=dict)


def read_prices(path: Path) -> dict[str, ModelPrice]:
    """Read a prices file; errors name the file and line."""
    from llmops.files import MAX_YAML_BYTES, line_of, parse_yaml, read_text

    text = read_text(path, what="prices file", max_bytes=MAX_YAML_BYTES)
    data, lines = parse_yaml(text, path)
    if data is not None and not isinstance(data, dict):
        got = type(data).__name__
        raise ConfigFileError(
            f"expected 'models: {{name: prices}}', got a {got}", file=path, line=1
        )
    try:
        return PricesFile.model_validate(data or {}).models
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        loc = tuple(str(p) for p in errors[0]["loc"] if not str(p).startswith("function-"))
        field = ".".join(loc)
        reason = errors[0]["msg"].removeprefix("Value error, ")
        message = f"{field}: {reason}"
        raise ConfigFileError(message, file=path, line=line_of(lines, loc)) from None


@dataclass(frozen=True)
class Price:
    """The priced result of one call."""

    cost_usd: float | None
    status: str  # priced | custom | unpriced
    source: str | None


def _rate(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return Decimal(repr(number)) if math.isfinite(number) else None


@dataclass(frozen=True)
class Rates:
    """Per-token prices of one model, resolved once and reused for every call."""

    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    reasoning: Decimal
    long_context: Rates | None = None  # rates above 200k prompt tokens, when they differ
    placeholder: bool = False  # a 0/0 price in the map: not a free model, an unknown one

    def cost(self, usage: Usage) -> float | None:
        if self.placeholder and usage.total_tokens > 0:
            return None
        rates = (
            self.long_context if self.long_context and usage.prompt_tokens > _LONG_CONTEXT else self
        )
        uncached = max(usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
        visible_output = max(usage.completion_tokens - usage.reasoning_tokens, 0)
        total = (
            uncached * rates.input
            + usage.cached_tokens * rates.cache_read
            + usage.cache_write_tokens * rates.cache_write
            + visible_output * rates.output
            + usage.reasoning_tokens * rates.reasoning
        )
        return float(round(total, 15))


def rates_from_custom(price: ModelPrice) -> Rates:
    """Rates from a user's price (USD per million tokens)."""
    rate = {k: _rate(v) for k, v in price.model_dump().items()}
    inp = rate["input_per_million"] / PER_MILLION  # type: ignore[operator]
    out = rate["output_per_million"] / PER_MILLION  # type: ignore[operator]

    def per_token(key: str, default: Decimal) -> Decimal:
        value = rate[key]
        return value / PER_MILLION if value is not None else default

    return Rates(
        inp,
        out,
        per_token("cached_input_per_million", inp),
        per_token("cache_write_per_million", inp),
        per_token("reasoning_per_million", out),
    )


def rates_from_map(entry: dict[str, Any]) -> Rates | None:
    """Rates from a litellm price-map entry; None when it has no usable token price."""
    inp, out = _rate(entry.get("input_cost_per_token")), _rate(entry.get("output_cost_per_token"))
    if inp is None or out is None:
        return None
    cache_read = _rate(entry.get("cache_read_input_token_cost"))
    cache_write = _rate(entry.get("cache_creation_input_token_cost"))
    reasoning = _rate(entry.get("output_cost_per_reasoning_token"))
    base = Rates(
        inp,
        out,
        cache_read if cache_read is not None else inp,
        cache_write if cache_write is not None else inp,
        reasoning if reasoning is not None else out,
        placeholder=inp == 0 and out == 0,
    )
    long_in = _rate(entry.get("input_cost_per_token_above_200k_tokens"))
    long_out = _rate(entry.get("output_cost_per_token_above_200k_tokens"))
    if long_in is None and long_out is None:
        return base
    long_read = _rate(entry.get("cache_read_input_token_cost_above_200k_tokens"))
    long_write = _rate(entry.get("cache_creation_input_token_cost_above_200k_tokens"))
    long_context = Rates(
        long_in or inp,
        long_out or out,
        long_read or base.cache_read,
        long_write or base.cache_write,
        base.reasoning,
    )
    return Rates(**{**base.__dict__, "long_context": long_context})


def price_custom(price: ModelPrice, usage: Usage) -> float:
    """Cost with a user-supplied price."""
    return rates_from_custom(price).cost(usage) or 0.0


def price_from_map(entry: dict[str, Any], usage: Usage) -> float | None:
    """Cost from a litellm price-map entry; None when it has no usable token price."""
    rates = rates_from_map(entry)
    return rates.cost(usage) if rates is not None else None


class PriceBook:
    """Prices calls: the user's prices first, then litellm's price map."""

    def __init__(
        self,
        custom: dict[str, ModelPrice] | None = None,
        *,
        custom_source: str = "custom",
        remote_price_map: bool = False,
    ) -> None:
        self.custom = dict(custom or {})
        self.custom_source = custom_source
        self.remote_price_map = remote_price_map
        self._resolved: dict[
            tuple[str, str | None, str | None], tuple[Rates | None, str, str | None]
        ] = {}

    @classmethod
    def from_file(cls, path: Path | None, **kwargs: Any) -> PriceBook:
        if path is None:
            return cls(**kwargs)
        return cls(read_prices(path), custom_source=f"custom:{path.name}", **kwargs)

    def price(
        self,
        model: str,
        usage: Usage,
        *,
        provider: str | None = None,
        response_model: str | None = None,
        override: ModelPrice | None = None,
    ) -> Price:
        """Price one call; ``override`` (a call argument) wins over everything."""
        if override is not None:
            return Price(price_custom(override, usage), "custom", "custom:argument")
        key = (model, provider, response_model)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = self._resolve(model, provider, response_model)
        rates, status, source = resolved
        cost = rates.cost(usage) if rates is not None else None
        if cost is None:
            return Price(None, "unpriced", None)
        return Price(cost, status, source)

    def _resolve(
        self, model: str, provider: str | None, response_model: str | None
    ) -> tuple[Rates | None, str, str | None]:
        """The rates for a model: the user's price, else the first price-map entry."""
        names = _candidates(model, provider, response_model)
        for name in names:
            if name in self.custom:
                return rates_from_custom(self.custom[name]), "custom", self.custom_source
        litellm = _litellm.load(remote_price_map=self.remote_price_map)
        for name in names:
            entry = litellm.model_cost.get(name)
            rates = rates_from_map(entry) if entry is not None else None
            if rates is not None and not rates.placeholder:
                return rates, "priced", _litellm.price_map_source()
        return None, "unpriced", None


def _candidates(model: str, provider: str | None, response_model: str | None) -> list[str]:
    names = [model]
    if "/" in model:
        names.append(model.split("/", 1)[1])
    elif provider:
        names.append(f"{provider}/{model}")
    if response_model and response_model not in names:
        names.append(response_model)
        if "/" in response_model:
            names.append(response_model.split("/", 1)[1])
    return list(dict.fromkeys(names))
