"""Exact cost: every billing dimension litellm's price map knows, or your own prices.

A price is an *entry* shaped like litellm's price map (per-token USD under the map's field
names). The cost of a call, with every part billed once at its own rate:

    text input          (prompt - cached - cache writes - audio - image - video)
                        * input_cost_per_token
    cached input        (cached - cached audio - cached image) * cache_read_input_token_cost
                        (reads of an explicit cache: explicit_cache_read_input_token_cost)
                        cached audio, image * cache_read_input_audio_token_cost,
                        cache_read_input_image_token_cost
    cache writes        5-minute part * cache_creation_input_token_cost
                        1-hour part * cache_creation_input_token_cost_above_1hr
                        12-hour part * cache_creation_input_token_cost_above_12hr
    audio, image input  (uncached) * input_cost_per_audio_token, input_cost_per_image_token
    video input         * input_cost_per_video_token
    text output         (completion - reasoning - audio - image - video) * output_cost_per_token
    reasoning           reasoning * output_cost_per_reasoning_token (else the output rate)
    audio, image, video * output_cost_per_audio_token, output_cost_per_image_token,
    output                output_cost_per_video_token
    citations           citation_tokens * citation_cost_per_token (Perplexity's sources, beside
                        the prompt; not billed by a model whose entry has no such price)
    web searches        searches * search_context_cost_per_query (the size the provider
                        reports, else the size asked for, else medium; Perplexity low)
    Gemini grounding    with Google Search: search_context_cost_per_query, with Google Maps:
                        google_maps_grounding_cost_per_query; per query when the entry's
                        web_search_billing_unit is per_query, else once per grounded prompt
    a call's fee        input_cost_per_request, once per call (Perplexity's online models)
    browser visits      pages Groq's browser tool opened * browser_open_cost_per_request
                        (a field the map does not have yet: your prices; else approximate)
    billed each         image_count * input_cost_per_image (instead of the images' tokens),
                        character_count * input_cost_per_character (instead of the text
                        tokens), query_count * input_cost_per_query: where the entry has
                        the price and the provider reports the count

A model priced by ``tiered_pricing`` (ranges of input tokens; Alibaba's Qwen models) bills
every token of a call at the rates of the one range its prompt falls in (above its start, up
to and including its end; the last range above them all), as litellm reads these tables.

Each rate takes its most specific variant in the entry: the long-context tier when the whole
prompt (cached tokens included) is above N thousand tokens (``*_above_<N>k_tokens``, the
largest N exceeded, for every rate, output and reasoning included), and the service tier
the provider reports it served (``*_flex``, ``*_priority``, ... after the context tier:
``input_cost_per_token_above_272k_tokens_priority``).

Where the map lacks a rate the call used, the cost is still computed but ``approximate``
and the reason is noted: a missing cache price (Claude models: Anthropic's multipliers of
the input price, 0.1x reads, 1.25x 5-minute and 2x 1-hour writes; Fireworks: reads at half
the input price, as Fireworks bills them; others: the input price),
a missing 1-hour or 12-hour write price (the 5-minute price), a missing price of cached audio or
images (the cache-read price), audio, image or video priced as text, a grounding fee the
map lacks (not billed), a service or context tier the model prices but not for that part.
Image input without its own price is billed as text input, which is how OpenAI bills it,
and reasoning as output: both exact.

A model with no price at all, or a 0/0 placeholder in the map, is ``unpriced``: cost None,
never a silent 0. Your prices (``prices.yaml`` or ``price=``) are ``custom``; a
``base_model`` maps a deployment to a map entry (and may add or change rates).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from llmops import litellm_loader
from llmops.errors import ConfigError, ConfigFileError
from llmops.pricing.usage import Served, Usage

if TYPE_CHECKING:
    from llmops.store.records import CostStatus

PER_MILLION = Decimal(1_000_000)
MAX_PRICE_PER_MILLION = 1_000_000.0  # USD per million tokens: a dollar a token

# Fields of the price map, and the per-million shorthand of prices.yaml for them.
INPUT, OUTPUT = "input_cost_per_token", "output_cost_per_token"
BILLED = "billed"  # the price source of a cost the provider reported: billed:openrouter
CACHE_READ, CACHE_WRITE = "cache_read_input_token_cost", "cache_creation_input_token_cost"
CACHE_WRITE_1H = "cache_creation_input_token_cost_above_1hr"
CACHE_WRITE_12H = "cache_creation_input_token_cost_above_12hr"
CACHE_READ_AUDIO = "cache_read_input_audio_token_cost"
CACHE_READ_IMAGE = "cache_read_input_image_token_cost"
CACHE_READ_EXPLICIT = "explicit_cache_read_input_token_cost"
VIDEO_IN, VIDEO_OUT = "input_cost_per_video_token", "output_cost_per_video_token"
MAPS_GROUNDING = "google_maps_grounding_cost_per_query"  # USD per Maps-grounded query
REASONING = "output_cost_per_reasoning_token"
AUDIO_IN, AUDIO_OUT = "input_cost_per_audio_token", "output_cost_per_audio_token"
IMAGE_IN, IMAGE_OUT = "input_cost_per_image_token", "output_cost_per_image_token"
WEB_SEARCH = "search_context_cost_per_query"  # USD per search, by search context size
CITATION = "citation_cost_per_token"  # Perplexity: the tokens of the sources it read
REQUEST = "input_cost_per_request"  # USD per call
BROWSER_OPEN = "browser_open_cost_per_request"  # USD per page a browser tool opened (Groq)
PER_IMAGE = "input_cost_per_image"  # USD per input image (embeddings billed by the image)
PER_CHARACTER = "input_cost_per_character"  # USD per input character (Vertex embeddings)
PER_QUERY = "input_cost_per_query"  # USD per query
SEARCH_SIZE = "search_context_size_medium"  # the size priced when a call does not say
SHORTHAND = {
    "input_per_million": INPUT,
    "output_per_million": OUTPUT,
    "cached_input_per_million": CACHE_READ,
    "cache_write_per_million": CACHE_WRITE,
    "cache_write_1h_per_million": CACHE_WRITE_1H,
    "cache_write_12h_per_million": CACHE_WRITE_12H,
    "reasoning_per_million": REASONING,
    "audio_input_per_million": AUDIO_IN,
    "cached_audio_input_per_million": CACHE_READ_AUDIO,
    "audio_output_per_million": AUDIO_OUT,
    "image_input_per_million": IMAGE_IN,
    "cached_image_input_per_million": CACHE_READ_IMAGE,
    "image_output_per_million": IMAGE_OUT,
    "video_input_per_million": VIDEO_IN,
    "video_output_per_million": VIDEO_OUT,
    "citation_per_million": CITATION,
}
SHORTHAND_PER_ITEM = {
    "web_search_per_request": f"{WEB_SEARCH}.{SEARCH_SIZE}",
    "maps_grounding_per_request": MAPS_GROUNDING,
    "request_fee": REQUEST,
    "browser_open_per_request": BROWSER_OPEN,
}
_CONTEXT_TIER = re.compile(r"_above_(\d+)k_tokens")
_MAP_FIELD = re.compile(r"[a-z][a-z0-9_.]*cost[a-z0-9_.]*")
_DEFAULT_TIERS = {"default", "standard", "auto", "on_demand"}
_TIER_SUFFIX = {"batch": "batches", "fast": "priority"}  # a tier's name -> its map suffix


# -- your prices ----------------------------------------------------------------------


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
    """Your price for one model (or deployment), in USD per million tokens: finite numbers
    from 0 to :data:`MAX_PRICE_PER_MILLION`, refused when given, not when a call is recorded.

    Either a complete price (``input_per_million`` and ``output_per_million``; a missing
    cache, reasoning, audio or image price falls back to the input or output price), or
    ``base_model``: price as that entry of litellm's map, with any rate given here replacing
    the map's. Rates the shorthand does not name (long-context or service tiers) use the
    map's own field names and units (USD per token), e.g.
    ``input_cost_per_token_above_200k_tokens: 0.000006``.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    base_model: str | None = None
    input_per_million: PerMillion | None = None
    output_per_million: PerMillion | None = None
    cached_input_per_million: PerMillion | None = None
    cache_write_per_million: PerMillion | None = None
    cache_write_1h_per_million: PerMillion | None = None
    cache_write_12h_per_million: PerMillion | None = None
    reasoning_per_million: PerMillion | None = None
    audio_input_per_million: PerMillion | None = None
    cached_audio_input_per_million: PerMillion | None = None
    audio_output_per_million: PerMillion | None = None
    image_input_per_million: PerMillion | None = None
    cached_image_input_per_million: PerMillion | None = None
    image_output_per_million: PerMillion | None = None
    video_input_per_million: PerMillion | None = None
    video_output_per_million: PerMillion | None = None
    web_search_per_request: PerMillion | None = None  # USD per search (not per million)
    maps_grounding_per_request: PerMillion | None = None  # USD per Maps-grounded query
    citation_per_million: PerMillion | None = None  # Perplexity's citation tokens
    request_fee: PerMillion | None = None  # USD per call (not per million)
    browser_open_per_request: PerMillion | None = None  # USD per page Groq's browser opens

    @model_validator(mode="after")
    def _complete(self) -> ModelPrice:
        for key, value in (self.model_extra or {}).items():
            if not _MAP_FIELD.fullmatch(key):
                raise ValueError(
                    f"unknown field '{key}': use the *_per_million fields, base_model, or a "
                    "price-map field name (such as input_cost_per_token_above_200k_tokens)"
                )
            _sane_price(float(_not_a_bool(value)) * 1_000_000)
        if self.base_model is None and (
            self.input_per_million is None or self.output_per_million is None
        ):
            raise ValueError("give input_per_million and output_per_million, or base_model")
        return self

    def rates(self) -> dict[str, Decimal]:
        """The price as map-shaped fields, per token."""
        out = {
            SHORTHAND[name]: Decimal(repr(value)) / PER_MILLION
            for name, value in self.model_dump(exclude={"base_model"}).items()
            if name in SHORTHAND and value is not None
        }
        for name, field in SHORTHAND_PER_ITEM.items():
            value = getattr(self, name)
            if value is not None:
                out[field] = Decimal(repr(value))
        for key, value in (self.model_extra or {}).items():
            out[key] = Decimal(repr(float(value)))
        return out


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


# -- the cost of one call -------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """The priced result of one call. ``status``: ``priced`` (litellm's map), ``custom``
    (your prices), ``approximate`` (the map lacked a rate the call used: see ``notes``) or
    ``unpriced`` (cost None)."""

    cost_usd: float | None
    status: CostStatus
    source: str | None
    notes: tuple[str, ...] = ()
    priced_as: str | None = None  # the price entry used (a map key, or your model name)


UNPRICED = Price(None, "unpriced", None)


def price_details(model: str, price: Price) -> dict[str, Any]:
    """What ``usage_details`` keeps of a price: the entry used when it is not the model's
    own name, and why a price is approximate."""
    details: dict[str, Any] = {}
    if price.priced_as and price.priced_as != model:
        details["priced_as"] = price.priced_as
    if price.notes:
        details["approximations"] = list(price.notes)
    return details


@dataclass(frozen=True)
class Entry:
    """A price entry: map-shaped fields (USD per token), where it came from, and whether
    missing rates fall back silently (your prices) or are approximations (the map)."""

    name: str
    fields: Mapping[str, Decimal]
    status: Literal["priced", "custom"]
    source: str | None
    custom: bool = False
    off_peak: Mapping[str, Any] | None = None  # the map's off_peak_pricing (DeepSeek)
    tiers: tuple[Tier, ...] = ()  # the map's tiered_pricing, by range
    per_query: bool = True  # Gemini grounding billed per query (else per grounded prompt)
    search_size: str = "medium"  # the search context size priced when a call asks none
    inclusive: bool = False  # a prompt of exactly N thousand tokens is "above N k" (xAI)
    uplifts: Mapping[str, Decimal] | None = None  # where the call ran -> x its token cost
    own: frozenset[str] = frozenset()  # your rates over a base model's: kept at all times

    @functools.cached_property
    def thresholds(self) -> tuple[int, ...]:
        """The long-context thresholds of the entry's rates (thousands), largest first."""
        return _thresholds(self.fields)

    def uplift(self, served: Served | None) -> Decimal:
        """What the token cost of a call served as ``served`` is multiplied by: OpenAI's
        regional hosts (``regional_processing_uplift_multiplier_eu``/``_us``, and
        ``fedramp_uplift_multiplier`` for gov.api.openai.com), a Vertex AI location other
        than ``global`` (``regional_endpoint_uplift_multiplier``), Anthropic's inference geo
        and fast mode (``provider_specific_entry``: ``us``, ``fast``), as litellm bills them."""
        if not self.uplifts or served is None or served.where_unknown:
            return Decimal(1)
        location = (served.vertex_location or "global").lower()
        keys = [
            f"residency:{served.data_residency.lower()}" if served.data_residency else "",
            "vertex" if location != "global" else "",
            f"geo:{served.inference_geo.lower()}" if served.inference_geo else "",
            "speed:fast" if (served.speed or "").lower() == "fast" else "",
        ]
        return math.prod((self.uplifts.get(key, Decimal(1)) for key in keys), start=Decimal(1))

    def dearest_uplift(self, sent: Served | None = None) -> Decimal:
        """The largest :meth:`uplift` a call sent as ``sent`` can get: where it is sent is
        known before it is made (OpenAI's host, a Vertex location); where Anthropic runs it
        and at which speed are not: their dearest (with no ``sent``: every kind's dearest)."""
        if sent is not None:
            known = self.uplift(replace(sent, inference_geo=None, speed=None))
            later = {
                k: v for k, v in (self.uplifts or {}).items() if k.startswith(("geo", "speed"))
            }
        else:
            known, later = Decimal(1), dict(self.uplifts or {})
        dearest: dict[str, Decimal] = {}
        for key, value in later.items():
            kind = key.split(":")[0]
            dearest[kind] = max(dearest.get(kind, Decimal(1)), value)
        return math.prod(dearest.values(), start=known)

    @property
    def placeholder(self) -> bool:
        """A 0/0 price in the map: not a free model, an unknown one."""
        return not self.custom and not self.fields.get(INPUT) and not self.fields.get(OUTPUT)


@dataclass(frozen=True)
class Tier:
    """One range of a ``tiered_pricing`` table: prompts of more than ``start`` and at most
    ``end`` input tokens are billed at ``fields`` (the rates it gives)."""

    start: float
    end: float
    fields: Mapping[str, Decimal]


def _cost_fields(raw: Mapping[str, Any]) -> dict[str, Decimal]:
    """The finite, non-negative prices of a map entry (or of one of its tiers)."""
    fields = {}
    for key, value in raw.items():
        if key == WEB_SEARCH and isinstance(value, dict):  # per search, by context size
            fields.update({f"{key}.{size}": value[size] for size in value})
            continue
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if "cost" in key and number and math.isfinite(value) and value >= 0:
            fields[key] = Decimal(repr(float(value)))
    return {
        key: value if isinstance(value, Decimal) else Decimal(repr(float(value)))
        for key, value in fields.items()
        if isinstance(value, Decimal | int | float) and not isinstance(value, bool)
        and math.isfinite(value) and value >= 0
    }  # fmt: skip


def _tiers(table: object) -> tuple[Tier, ...]:
    """The ranges of a ``tiered_pricing`` table that price input tokens, by start."""
    tiers = []
    for item in table if isinstance(table, list) else []:
        bounds = item.get("range") if isinstance(item, Mapping) else None
        if not (isinstance(bounds, list | tuple) and len(bounds) == 2):
            continue
        if not all(isinstance(b, int | float) and not isinstance(b, bool) for b in bounds):
            continue
        fields = _cost_fields(item)
        if INPUT in fields:
            tiers.append(Tier(float(bounds[0]), float(bounds[1]), fields))
    return tuple(sorted(tiers, key=lambda tier: tier.start))


def entry_from_map(name: str, raw: Mapping[str, Any], source: str | None) -> Entry | None:
    """A price-map entry's cost fields; None when it has no input or output price (in its
    own fields or, for a tiered entry, in its first range)."""
    fields = _cost_fields(raw)
    tiers = _tiers(raw.get("tiered_pricing"))
    if tiers:  # the first range's rates stand in for rates the entry does not give
        fields = {**tiers[0].fields, **fields}
    if INPUT not in fields or OUTPUT not in fields:
        return None
    off_peak = raw.get("off_peak_pricing")
    perplexity = raw.get("litellm_provider") == "perplexity"
    return Entry(
        name,
        fields,
        "priced",
        source,
        off_peak=off_peak if isinstance(off_peak, Mapping) else None,
        tiers=tiers,
        per_query=raw.get("web_search_billing_unit", "per_prompt") == "per_query"
        or perplexity,  # litellm: Perplexity's searches at the low size, per search
        search_size="low" if perplexity else "medium",
        inclusive=raw.get("litellm_provider") == "xai",  # litellm: xAI's thresholds
        uplifts=_uplifts(raw),
    )


def _uplifts(raw: Mapping[str, Any]) -> dict[str, Decimal] | None:
    """The multipliers of a map entry, by what selects them (:meth:`Entry.uplift`)."""
    found: dict[str, Any] = {
        "residency:eu": raw.get("regional_processing_uplift_multiplier_eu"),
        "residency:us": raw.get("regional_processing_uplift_multiplier_us"),
        "residency:fedramp": raw.get("fedramp_uplift_multiplier"),
        "vertex": raw.get("regional_endpoint_uplift_multiplier"),
    }
    specific = raw.get("provider_specific_entry")
    if isinstance(specific, Mapping):
        found["speed:fast"] = specific.get("fast")
        found.update({f"geo:{key.lower()}": value for key, value in specific.items()
                      if isinstance(key, str) and key != "fast"})  # fmt: skip
    uplifts = {
        key: Decimal(repr(float(value)))
        for key, value in found.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value) and value > 0
    }  # fmt: skip
    return uplifts or None


def _tier_fields(
    entry: Entry, fields: Mapping[str, Decimal], prompt_tokens: int
) -> Mapping[str, Decimal]:
    """The rates of the range of ``entry.tiers`` a prompt falls in (above its start, at most
    its end; above every range, the last), over the entry's own. Cache prices a range of
    the map does not give are not taken from another range: its cache tokens are
    approximate (your own prices of a tiered base model are kept)."""
    if not entry.tiers or prompt_tokens <= 0:
        return fields
    tier = next((t for t in entry.tiers if t.start < prompt_tokens <= t.end), entry.tiers[-1])
    if tier is entry.tiers[0]:
        return {**fields, **tier.fields}
    kept = {
        k: v
        for k, v in fields.items()
        if k in entry.own or not k.startswith((CACHE_READ, CACHE_WRITE))
    }
    return {**kept, **tier.fields}


# -- off-peak rates (DeepSeek: cheaper at night and on weekends) -------------------------

_WEEKDAYS = {name: n for n, names in enumerate(
    [("mon", "monday"), ("tue", "tues", "tuesday"), ("wed", "wednesday"),
     ("thu", "thur", "thurs", "thursday"), ("fri", "friday"), ("sat", "saturday"),
     ("sun", "sunday")], start=1) for name in names}  # fmt: skip
_OFF_PEAK_RATES = (INPUT, OUTPUT, CACHE_READ, CACHE_WRITE, REASONING)


def _hours(windows: object) -> list[str]:
    if isinstance(windows, str):
        return [windows]
    return [w for w in windows if isinstance(w, str)] if isinstance(windows, list) else []


def _within(windows: list[str], moment: datetime) -> bool:
    """Whether ``moment``'s UTC time of day is in one of ``"HH:MM-HH:MM"`` windows: start
    included, end not; a window may run past midnight, and one that ends where it starts
    is the whole day. A malformed window is no window."""
    now = moment.time()
    for window in windows:
        try:
            start, end = (time.fromisoformat(part.strip()) for part in window.split("-"))
        except ValueError:
            continue
        if (start <= now < end) if start < end else (now >= start or now < end):
            return True
    return False


def is_off_peak(block: Mapping[str, Any], at: datetime) -> bool:
    """Whether a call at ``at`` is billed at the off-peak rates of a price-map
    ``off_peak_pricing`` block: its ``hours_utc`` (every day), or a ``windows`` entry's
    ``hours_utc`` on that entry's ``weekdays`` (1 = Monday ... 7 = Sunday, or their names),
    read on the ``weekday_timezone`` calendar (UTC by default), as litellm reads them."""
    moment = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    if _within(_hours(block.get("hours_utc")), moment):
        return True
    calendar: tzinfo = UTC
    zone = block.get("weekday_timezone")
    if isinstance(zone, str) and zone.strip():
        try:
            calendar = ZoneInfo(zone.strip())
        except (ValueError, ZoneInfoNotFoundError):
            calendar = UTC
    weekday = moment.astimezone(calendar).isoweekday()
    rules = block.get("windows")
    for rule in rules if isinstance(rules, list) else []:
        if not isinstance(rule, Mapping):
            continue
        days = rule.get("weekdays")
        if days is not None:
            allowed = {
                _WEEKDAYS.get(d.strip().lower()) if isinstance(d, str)
                else d if type(d) is int else None
                for d in (days if isinstance(days, list) else [])
            }  # fmt: skip
            if weekday not in allowed:
                continue
        if _within(_hours(rule.get("hours_utc")), moment):
            return True
    return False


def _off_peak_fields(entry: Entry, at: datetime | None) -> Mapping[str, Decimal]:
    """The entry's rates at ``at``: an open off-peak block's rates replace the standard
    ones (those of a context or service tier too, as litellm bills them), each rate the
    block leaves out stays; reasoning without a rate of its own follows the output rate."""
    block = entry.off_peak
    if block is None or at is None or not is_off_peak(block, at):
        return entry.fields
    rates = {}
    for key in _OFF_PEAK_RATES:
        value = block.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            rates[key] = Decimal(repr(float(value)))
    if REASONING not in rates and REASONING not in entry.fields and OUTPUT in rates:
        rates[REASONING] = rates[OUTPUT]
    fields = dict(entry.fields)
    for key, value in rates.items():  # every variant of the rate: tiers do not apply off-peak
        names = [key, *(k for k in fields if k.startswith(f"{key}_"))]
        for name in names:  # no off-peak 1-hour or 12-hour writes; your own rates stay
            if not name.startswith((CACHE_WRITE_1H, CACHE_WRITE_12H)) and name not in entry.own:
                fields[name] = value
    return fields


@dataclass(frozen=True)
class _Rates:
    """The rates of one call's parts, and the notes that apply if that part is used."""

    rates: dict[str, Decimal]
    notes: dict[str, str]


def _thresholds(fields: Mapping[str, Decimal]) -> tuple[int, ...]:
    """The long-context thresholds (thousands of tokens) of some rates, largest first."""
    found = {int(m.group(1)) for key in fields for m in [_CONTEXT_TIER.search(key)] if m}
    return tuple(sorted(found, reverse=True))


# the parts whose rate another part's falls back to
_NEEDS = {"write_1h": "write_5m", "write_12h": "write_5m", "cached_audio": "cached",
          "cached_image": "cached", "cached_explicit": "cached"}  # fmt: skip


def _resolve(
    entry: Entry,
    prompt_tokens: int,
    tier: str | None,
    at: datetime | None = None,
    used: Collection[str] | None = None,
) -> _Rates:
    """The rates of a call's parts: those in ``used`` (and those they fall back to), or
    every part's."""
    fields = _tier_fields(entry, _off_peak_fields(entry, at), prompt_tokens)
    thresholds = entry.thresholds if fields is entry.fields else _thresholds(fields)
    wanted = None if used is None else {*used, *(_NEEDS[k] for k in used if k in _NEEDS)}
    above = next(
        (n for n in thresholds
         if prompt_tokens > n * 1000 or (entry.inclusive and prompt_tokens == n * 1000)),
        None,
    )  # fmt: skip
    context = f"_above_{above}k_tokens" if above is not None else ""
    suffix = _tier_suffix(fields, tier)
    notes: dict[str, str] = {}
    if tier and suffix is None and tier.lower() not in _DEFAULT_TIERS:
        notes["*"] = f"no price for service tier '{tier}': standard rates"

    tier_part = f"_{suffix}" if suffix else ""

    def rate(base: str) -> Decimal | None:
        """The most specific variant of ``base`` present. Not the one for this call's
        context and service tier, while the model prices them (for its input): a note."""
        ideal = f"{base}{context}{tier_part}"
        for name in (ideal, f"{base}{context}", f"{base}{tier_part}", base):
            if name in fields:
                priced = base == INPUT or f"{INPUT}{context}{tier_part}" in fields
                if name != ideal and not entry.custom and priced:
                    notes.setdefault(base, f"no {ideal} in the price map")
                return fields[name]
        return None

    text_in, text_out = rate(INPUT) or Decimal(0), rate(OUTPUT) or Decimal(0)  # always there
    claude = "claude" in entry.name.lower()
    rates = {"text_in": text_in, "text_out": text_out}
    if wanted is None or "image_in" in wanted:
        rates["image_in"] = rate(IMAGE_IN) or text_in
    if wanted is None or "reasoning" in wanted:
        rates["reasoning"] = rate(REASONING) or text_out
    if wanted is None or "citation" in wanted:  # billed only by the models that price them
        rates["citation"] = rate(CITATION) or Decimal(0)

    def part(key: str, base: str, fallback: Decimal, why: str) -> None:
        if wanted is not None and key not in wanted:
            return
        value = rate(base)
        if value is None:
            value = fallback
            if not entry.custom:
                notes[key] = why
        rates[key] = value

    read_factor, write_factor, hour_factor = (
        (Decimal("0.1"), Decimal("1.25"), Decimal(2)) if claude else (1, 1, 1)
    )
    multiples = " (Anthropic's multiple of the input price)" if claude else ""
    read_why = f"no cache-read price{multiples}"
    if entry.name.startswith("fireworks_ai/"):  # Fireworks bills cached input at half price
        read_factor, read_why = Decimal("0.5"), "no cache-read price (Fireworks' half price)"
    part("cached", CACHE_READ, text_in * read_factor, read_why)
    part("write_5m", CACHE_WRITE, text_in * write_factor, f"no cache-write price{multiples}")
    part(
        "write_1h",
        CACHE_WRITE_1H,
        text_in * hour_factor if claude else rates.get("write_5m", text_in),
        f"no 1-hour cache-write price{multiples or ' (the 5-minute price)'}",
    )
    write_5m, cached = rates.get("write_5m", text_in), rates.get("cached", text_in)
    part("write_12h", CACHE_WRITE_12H, write_5m,
         "no 12-hour cache-write price (the 5-minute price)")  # fmt: skip
    part("cached_audio", CACHE_READ_AUDIO, cached,
         "no price of cached audio (the cache-read price)")  # fmt: skip
    part("cached_image", CACHE_READ_IMAGE, cached,
         "no price of cached images (the cache-read price)")  # fmt: skip
    if wanted is None or "cached_explicit" in wanted:  # without its own price: the others'
        explicit = rate(CACHE_READ_EXPLICIT)
        rates["cached_explicit"] = cached if explicit is None else explicit
    part("audio_in", AUDIO_IN, text_in, "no audio input price (text price)")
    part("video_in", VIDEO_IN, text_in, "no video input price (text price)")
    part("audio_out", AUDIO_OUT, text_out, "no audio output price (text price)")
    part("image_out", IMAGE_OUT, text_out, "no image output price (text price)")
    part("video_out", VIDEO_OUT, text_out, "no video output price (text price)")
    return _Rates(rates, notes)


def _tier_suffix(fields: Mapping[str, Decimal], tier: str | None) -> str | None:
    if not tier or tier.lower() in _DEFAULT_TIERS:
        return None
    name = _TIER_SUFFIX.get(tier.lower(), tier.lower())
    return (
        name
        if f"{INPUT}_{name}" in fields or any(key.endswith(f"_{name}") for key in fields)
        else None
    )


def cost_of(
    entry: Entry, usage: Usage, served: Served | None = None, at: datetime | None = None
) -> Price:
    """Price one call's usage with one entry; ``served``: its service tier and where it ran
    (:meth:`Entry.uplift`); ``at``: when the call was billed (its end), for off-peak rates
    (none without it)."""
    if entry.placeholder and usage.used:
        return UNPRICED
    tier = served.service_tier if served else None
    asked = served.asked_tier if served and not tier else None
    if asked and _tier_suffix(entry.fields, asked) is not None:  # no tier reported
        tier = asked
    else:
        asked = None
    u = usage.clamped()
    write_1h = min(u.cache_write_1h_tokens, u.cache_write_tokens)
    write_12h = min(u.cache_write_12h_tokens, u.cache_write_tokens - write_1h)
    cached_audio = min(u.cached_audio_tokens, u.cached_tokens, u.audio_input_tokens)
    cached_image = min(u.cached_image_tokens, u.cached_tokens - cached_audio, u.image_input_tokens)
    explicit = min(u.explicit_cached_tokens, u.cached_tokens - cached_audio - cached_image)
    parts = {
        "text_in": u.prompt_tokens
        - u.cached_tokens
        - u.cache_write_tokens
        - (u.audio_input_tokens - cached_audio)
        - (u.image_input_tokens - cached_image)
        - u.video_input_tokens,
        "cached": u.cached_tokens - cached_audio - cached_image - explicit,
        "cached_explicit": explicit,
        "cached_audio": cached_audio,
        "cached_image": cached_image,
        "write_5m": u.cache_write_tokens - write_1h - write_12h,
        "write_1h": write_1h,
        "write_12h": write_12h,
        "audio_in": u.audio_input_tokens - cached_audio,
        "image_in": u.image_input_tokens - cached_image,
        "video_in": u.video_input_tokens,
        "text_out": u.completion_tokens
        - u.reasoning_tokens
        - u.audio_output_tokens
        - u.image_output_tokens
        - u.video_output_tokens,
        "reasoning": u.reasoning_tokens,
        "audio_out": u.audio_output_tokens,
        "image_out": u.image_output_tokens,
        "video_out": u.video_output_tokens,
        "citation": u.citation_tokens,
    }
    billed_each: dict[str, int] = {}
    if u.image_count or u.character_count or u.query_count:  # most calls: none
        each = {PER_IMAGE: u.image_count, PER_CHARACTER: u.character_count,
                PER_QUERY: u.query_count}  # fmt: skip
        billed_each = {field: n for field, n in each.items() if n > 0 and field in entry.fields}
    if PER_CHARACTER in billed_each:  # the text is billed by its characters, not its tokens
        parts["text_in"] = 0
    if PER_IMAGE in billed_each:  # the images are billed each, not by their tokens
        parts["image_in"] = 0
    used = [key for key, tokens in parts.items() if tokens > 0]
    resolved = _resolve(entry, u.prompt_tokens, tier, at, used)
    if asked:
        resolved.notes["*"] = (
            f"service tier '{asked}' as asked: the provider did not say which tier served it"
        )
    r = resolved.rates
    total = sum((parts[key] * r[key] for key in used), Decimal(0))
    total *= entry.uplift(served)  # the tokens', not the tools' fees (litellm's reading)
    asked = (served.search_context_size if served else None) or entry.search_size
    search = f"{WEB_SEARCH}.search_context_size_{asked}"  # the size asked for, else medium
    search = search if search in entry.fields else f"{WEB_SEARCH}.{SEARCH_SIZE}"
    fees = (  # (part, count, price field, what is not billed without it)
        ("web_search", u.web_search_requests, search, "searches"),
        ("grounding", u.grounding_queries, search, "grounding"),
        ("maps_grounding", u.maps_grounding_queries, MAPS_GROUNDING, "Maps grounding"),
        ("browser", u.browser_opens, BROWSER_OPEN, "browser visits"),
    )
    for key, count, field, what in fees:
        if count <= 0:
            continue
        per_prompt = key in ("grounding", "maps_grounding") and not entry.per_query
        billed = 1 if per_prompt else count  # Gemini 2: once per grounded prompt
        fee = entry.fields.get(field)
        if fee is not None:
            total += billed * fee
        elif not entry.custom:
            resolved.notes[key] = f"no {field.split('.')[0]} price: {what} not billed"
            parts[key] = count
    if REQUEST in entry.fields:  # a fee per call
        total += entry.fields[REQUEST]
    for field, n in billed_each.items():
        total += n * entry.fields[field]
    notes = tuple(
        note
        for key, note in resolved.notes.items()
        if key in ("*", INPUT) or parts.get(key, 0) > 0 or _part_of(key, parts)
    )
    status: CostStatus = "approximate" if notes and not entry.custom else entry.status
    # to the femto-dollar, as far as a float holds it (a total of a trillion dollars or more:
    # its own digits; rounding it would overflow Decimal's precision)
    cost = float(total) if total.adjusted() >= 12 else float(round(total, 15))
    return Price(cost, status, entry.source, notes, entry.name)


def _part_of(field: str, parts: Mapping[str, int]) -> bool:
    """Whether a note about a map field concerns a part this call used."""
    used = {
        OUTPUT: "text_out",
        CACHE_READ: "cached",
        CACHE_WRITE: "write_5m",
        CACHE_WRITE_1H: "write_1h",
        CACHE_WRITE_12H: "write_12h",
        CACHE_READ_AUDIO: "cached_audio",
        CACHE_READ_IMAGE: "cached_image",
        CACHE_READ_EXPLICIT: "cached_explicit",
        REASONING: "reasoning",
        AUDIO_IN: "audio_in",
        AUDIO_OUT: "audio_out",
        IMAGE_IN: "image_in",
        IMAGE_OUT: "image_out",
        VIDEO_IN: "video_in",
        VIDEO_OUT: "video_out",
        CITATION: "citation",
    }.get(field)
    return used is not None and parts.get(used, 0) > 0


# -- the price book -------------------------------------------------------------------


class PriceBook:
    """Prices calls: your prices first, then litellm's price map.

    Which entry prices a call, first found wins: your price for the requested name; your
    price for the model that answered (``Served.model``); the map's entry for the model
    that answered (so an Azure deployment named ``gpt-4o`` that served gpt-4o-mini is billed
    as gpt-4o-mini); the map's entry for the requested name (with and without the provider
    prefix; a fine-tune ``ft:BASE:org::id`` as ``ft:BASE``).
    """

    def __init__(
        self,
        custom: Mapping[str, ModelPrice] | None = None,
        *,
        custom_source: str = "custom",
        remote_price_map: bool = False,
    ) -> None:
        self.custom = dict(custom or {})
        self.custom_source = custom_source
        self.remote_price_map = remote_price_map
        self._entries: dict[tuple[str, str | None, str | None], Entry | None] = {}
        self._upper: dict[tuple[str, str | None, Served | None], UpperRates | None] = {}

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
        served: Served | None = None,
        override: ModelPrice | None = None,
        at: datetime | None = None,
        billed: float | None = None,
    ) -> Price:
        """Price one call; ``override`` (a call argument) wins over everything, then your
        prices, then ``billed``, what the provider reported the call cost
        (:func:`~llmops.pricing.usage.billed_cost`; source ``billed:PROVIDER``), then the
        map. ``at``: when the call ended, for a model the map prices lower off-peak
        (DeepSeek); without it the standard rates apply."""
        if override is not None:
            entry = self._custom_entry(model, override, "custom:argument")
            return cost_of(entry, usage, served, at) if entry is not None else UNPRICED
        entry = self.entry(model, provider, served.model if served else None)
        if billed is not None and (entry is None or not entry.custom):
            source = f"{BILLED}:{provider or 'provider'}"
            return Price(billed, "priced", source)
        return cost_of(entry, usage, served, at) if entry is not None else UNPRICED

    def upper_rates(
        self,
        model: str,
        *,
        override: ModelPrice | None = None,
        tier: str | None = None,
        where: Callable[[], Served] | None = None,
    ) -> UpperRates | None:
        """The most an input and an output token of ``model`` can cost (the dearest context
        tier, kind of token and multiplier: :meth:`Entry.dearest_uplift` of where the call
        is sent, which ``where`` says, asked only of a model whose price depends on it) and
        its output cap: what a blocking budget reserves for a call before it is made. None
        when the model has no price."""
        if override is not None:  # a call's own price: not cached
            entry = self._custom_entry(model, override, "custom:argument")
            sent = where() if where is not None and entry is not None and entry.uplifts else None
            return None if entry is None else _upper_rates(entry, tier, sent)
        entry = self.entry(model, None, None)
        sent = where() if where is not None and entry is not None and entry.uplifts else None
        key = (model, tier, sent)
        if key not in self._upper:
            if len(self._upper) >= 10_000:  # model names may come from a server's clients
                self._upper.clear()
            self._upper[key] = None if entry is None else _upper_rates(entry, tier, sent)
        return self._upper[key]

    def entry(self, model: str, provider: str | None, served_model: str | None) -> Entry | None:
        """The entry that prices calls of ``model`` (cached)."""
        key = (model, provider, served_model)
        if key not in self._entries:
            self._entries[key] = self._find(model, provider, served_model)
        return self._entries[key]

    def _find(self, model: str, provider: str | None, served: str | None) -> Entry | None:
        requested = _names(model, provider)
        answered = _names(served, provider) if served and served != model else []
        for name in requested + answered:
            if name in self.custom:
                return self._custom_entry(name, self.custom[name], self.custom_source)
        for name in answered + requested:
            entry = self._map_entry(name)
            if entry is not None and not entry.placeholder:
                return entry
        return None

    def _custom_entry(self, name: str, price: ModelPrice, source: str) -> Entry | None:
        own = price.rates()
        if price.base_model is None:
            return Entry(name, own, "custom", source, custom=True)
        base = None
        for candidate in _names(price.base_model, None):
            base = self._map_entry(candidate)
            if base is not None:
                break
        if base is None:
            return None  # the base model has no price: unpriced, never a guess
        if not own:
            return base
        tiers = tuple(  # your rates win over every range's
            Tier(t.start, t.end, {k: v for k, v in t.fields.items() if k not in own})
            for t in base.tiers
        )
        return replace(  # the base's ranges, off-peak hours and multipliers, under yours
            base, name=name, fields={**base.fields, **own}, status="custom", source=source,
            tiers=tiers, own=frozenset(own),
        )  # fmt: skip

    def _map_entry(self, name: str) -> Entry | None:
        remote = self.remote_price_map
        raw = litellm_loader.model_cost(remote_price_map=remote).get(name)
        if not isinstance(raw, Mapping):
            return None
        return entry_from_map(name, raw, litellm_loader.price_map_source(remote_price_map=remote))


@dataclass(frozen=True)
class UpperRates:
    """USD per token at the dearest rates of a model, its output cap (if known), and its
    fee per call (USD)."""

    input_usd: float
    output_usd: float
    max_output_tokens: int | None
    per_call_usd: float = 0.0


def _upper_rates(entry: Entry, tier: str | None, sent: Served | None) -> UpperRates | None:
    """The dearest rate of an input and of an output token: every kind of token (cache
    writes, audio, images, video in; reasoning, audio, images, video out) priced below and
    above every context tier and range, at :meth:`Entry.dearest_uplift` of ``sent``."""
    served = Served(service_tier=tier)
    media_in = ("audio_input_tokens", "image_input_tokens", "video_input_tokens")
    writes = ((), ("cache_write_1h_tokens",), ("cache_write_12h_tokens",))
    parts_out = (None, "reasoning_tokens", "audio_output_tokens", "image_output_tokens",
                 "video_output_tokens")  # fmt: skip
    per_input: list[float] = []
    per_output: list[float] = []
    fee = float(entry.fields.get(REQUEST, 0))
    for prompt in (1000, 10_000_000):
        plain = Usage(prompt_tokens=prompt)
        kinds: list[dict[str, Any]] = [{}, *({name: prompt} for name in media_in)]
        kinds += [{"cache_write_tokens": prompt, **dict.fromkeys(w, prompt)} for w in writes]
        shapes = [replace(plain, **kind) for kind in kinds]
        for usage in shapes:
            price = cost_of(entry, usage, served).cost_usd
            if price is None:
                return None
            per_input.append((price - fee) / prompt)
        base = cost_of(entry, plain, served).cost_usd or 0.0
        for part in parts_out:
            extra: dict[str, Any] = {part: 1000} if part else {}
            usage = replace(plain, completion_tokens=1000, **extra)
            per_output.append(((cost_of(entry, usage, served).cost_usd or 0.0) - base) / 1000)
    factor = float(entry.dearest_uplift(sent))
    return UpperRates(
        input_usd=max(per_input) * factor,
        output_usd=max(per_output) * factor,
        max_output_tokens=_max_output(entry.name) if not entry.custom else None,
        per_call_usd=fee,
    )


def _max_output(name: str) -> int | None:
    raw = litellm_loader.model_cost().get(name)
    if not isinstance(raw, Mapping):
        return None
    for field in ("max_output_tokens", "max_tokens"):
        value = raw.get(field)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _names(model: str, provider: str | None) -> list[str]:
    """The names a model may have in the price map, most specific first: a provider's own
    entry before the bare name (Azure bills some models apart from OpenAI: a dated
    ``gpt-4-turbo-2024-04-09`` answering an Azure deployment is Azure's)."""
    names = [model]
    bare = model.split("/", 1)[1] if "/" in model else model
    if "/" in model:
        names.append(bare)
    elif provider:
        names.insert(0, f"{provider}/{model}")
    if bare.startswith("ft:") and bare.count(":") >= 2:  # ft:BASE:org:suffix:id
        names.append(":".join(bare.split(":")[:2]))
    return list(dict.fromkeys(names))
