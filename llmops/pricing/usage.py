"""Token usage: what providers report (every billing dimension), and local counts when they
report nothing.

``prompt_tokens`` is always the whole input and ``completion_tokens`` the whole output;
every other count is a part of one of them. litellm normalises the providers' shapes into
its ``Usage`` object; where each dimension lands there (checked against the fake server's
OpenAI, Anthropic, Gemini and Bedrock shapes, see ``llmops.simulate.Reply``):

- cached input: ``prompt_tokens_details.cached_tokens`` (OpenAI, Gemini) or
  ``cache_read_input_tokens`` (Anthropic, Bedrock); its audio and image parts (Gemini):
  ``prompt_tokens_details.cached_tokens_details.audio_tokens`` / ``image_tokens``;
- cache writes: ``cache_creation_input_tokens`` (or ``prompt_tokens_details.
  cache_creation_tokens`` / ``cache_write_tokens``); the 1-hour and 12-hour parts:
  ``prompt_tokens_details.cache_creation_token_details.ephemeral_1h_input_tokens`` /
  ``ephemeral_12h_input_tokens``;
- audio, image and video input: ``prompt_tokens_details.audio_tokens`` / ``image_tokens``
  (cached ones included) / ``video_tokens`` (uncached: litellm leaves cached video out);
- reasoning, audio, image and video output: ``completion_tokens_details.reasoning_tokens``
  / ``audio_tokens`` / ``image_tokens`` / ``video_tokens``;
- pages Groq's browser tool opened: ``server_tool_use.browser_open_requests`` (no price in
  the map: the call is approximate);
- what some embeddings bill each rather than by token: images
  (``prompt_tokens_details.image_count``: Cohere, Bedrock Titan), characters
  (``character_count``: Vertex AI's text embeddings) and queries (``query_count``);
- searches a provider-side tool ran: ``server_tool_use.web_search_requests`` (Anthropic,
  OpenAI); Gemini's grounding with Google Search and with Google Maps:
  ``prompt_tokens_details.web_search_requests`` / ``google_maps_grounding_requests``
  (the distinct queries of the response's grounding metadata);
- Perplexity's: the searches of a call, ``num_search_queries`` (kept by litellm beside the
  standard fields; sometimes ``prompt_tokens_details.web_search_requests``), the search
  context size they were run at, ``search_context_size``, the tokens of the sources read,
  ``citation_tokens`` (beside ``prompt_tokens``, not in it), and deep research's
  ``reasoning_tokens``, reported beside ``completion_tokens`` (``total_tokens`` is prompt
  plus completion): litellm moves them into ``completion_tokens_details`` without adding
  them to ``completion_tokens``, so for Perplexity they are added here, and
  ``completion_tokens`` is the whole output again;
- Moonshot's cache reads: a top-level ``cached_tokens``; xAI's web and X searches:
  ``server_side_tool_usage_details`` (which litellm also copies to
  ``prompt_tokens_details.web_search_requests``), searches, not grounding queries;
- the bill itself, where a provider reports it (:func:`billed_cost`: OpenRouter, xAI,
  Perplexity): it is what the call cost, whatever the price map says;
- reads of an explicit cache (Alibaba's Qwen models): ``prompt_tokens_details.cache_type``
  ``"ephemeral"`` (then every cached token is one);
- the service tier that served the call: ``response.service_tier`` (OpenAI, Gemini,
  Bedrock) or ``usage.service_tier`` (Anthropic); the model: ``response.model``;
  Anthropic's ``usage.inference_geo`` (where the call ran) and ``usage.speed`` (fast mode).

Where a call was sent is the call's own (:func:`endpoint_of`): OpenAI's regional hosts
(``eu.api.openai.com``, ``us.``, ``gov.``) and a Vertex AI location, each of which some
models bill at a premium.

Local counts (:func:`estimate_usage`) follow OpenAI's published rules: 3 tokens per message
and 3 for the reply primer, tool definitions as in OpenAI's cookbook
(``num_tokens_for_tools``), images by the tile formula (or the patch formula of the models
that use it). They are exact for OpenAI text models and approximate for the rest.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import math
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any
from urllib.parse import urlparse

from llmops import litellm_loader


@dataclass(frozen=True)
class Usage:
    """Token counts of one call. ``prompt_tokens`` includes cached, cache-written, audio and
    image input tokens; ``completion_tokens`` includes reasoning, audio and image output."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False
    cache_write_1h_tokens: int = 0  # of cache_write_tokens: written to a 1-hour cache
    audio_input_tokens: int = 0
    image_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_output_tokens: int = 0
    web_search_requests: int = 0  # searches a provider-side tool ran (billed per search)
    cache_write_12h_tokens: int = 0  # of cache_write_tokens: written to a 12-hour cache
    cached_audio_tokens: int = 0  # of cached_tokens (and of audio_input_tokens)
    cached_image_tokens: int = 0  # of cached_tokens (and of image_input_tokens)
    video_input_tokens: int = 0  # uncached video input
    video_output_tokens: int = 0
    grounding_queries: int = 0  # Gemini: queries of grounding with Google Search
    maps_grounding_queries: int = 0  # Gemini: queries of grounding with Google Maps
    explicit_cached_tokens: int = 0  # of cached_tokens: read from an explicit cache (Qwen)
    citation_tokens: int = 0  # Perplexity: tokens of the sources read (beside prompt_tokens)
    browser_opens: int = 0  # Groq: pages its browser tool opened (billed per page)
    image_count: int = 0  # images billed each (Cohere's and Bedrock's embeddings)
    character_count: int = 0  # characters billed each (Vertex AI's text embeddings)
    query_count: int = 0  # queries billed each (TwelveLabs Marengo embeddings)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def used(self) -> bool:
        """Whether the call used anything billed: tokens, or images, characters or queries
        billed each (a multimodal embedding reports no tokens)."""
        return bool(self.total_tokens or self.image_count or self.character_count
                    or self.query_count)  # fmt: skip

    def clamped(self) -> Usage:
        """This usage with every negative count 0 (a count made by hand, not reported: what
        providers report is read as 0 when negative)."""
        if min(self.__dict__.values()) >= 0:  # every count (and estimated, a bool): most
            return self
        negative: dict[str, Any] = {name: 0 for name in _COUNTS if getattr(self, name) < 0}
        return replace(self, **negative)

    def filled(self, other: Usage) -> Usage:
        """This usage with the counts it has as 0 taken from ``other`` (what a provider
        sent, where litellm's own usage of a stream dropped some of it)."""
        missing = {
            name: getattr(other, name)
            for name in _COUNTS
            if not getattr(self, name) and getattr(other, name)
        }
        return replace(self, **missing) if missing else self

    def details(self) -> dict[str, int]:
        """The parts that have no column of their own, when not zero (the ``usage_details``
        column: what re-pricing needs besides the token columns)."""
        return {name: getattr(self, name) for name in _DETAIL_FIELDS if getattr(self, name)}

    @classmethod
    def from_columns(cls, row: Mapping[Any, Any], details: Mapping[str, Any] | None) -> Usage:
        """A stored call's usage: its token columns (``row`` may be a SQLAlchemy
        ``RowMapping``, whose keys are names or columns) and its ``usage_details``, where
        ``out_of_range`` keeps a count too large for its column (NULL there)."""
        extra = {k: _int(v) for k, v in (details or {}).items() if k in _DETAIL_FIELDS}
        reported = (details or {}).get("out_of_range")
        reported = reported if isinstance(reported, dict) else {}

        def count(name: str) -> int:
            value = row.get(name)
            if value is None and name in reported:
                with contextlib.suppress(TypeError, ValueError):
                    return int(reported[name])
            return _int(value)

        return cls(
            count("prompt_tokens"),
            count("completion_tokens"),
            count("cached_tokens"),
            count("cache_write_tokens"),
            count("reasoning_tokens"),
            bool(row.get("tokens_estimated")),
            **extra,
        )


_COLUMNS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
            "reasoning_tokens", "estimated")  # fmt: skip
_DETAIL_FIELDS = tuple(f.name for f in fields(Usage) if f.name not in _COLUMNS)
_COUNTS = tuple(f.name for f in fields(Usage) if f.name != "estimated")
_FIELDS = tuple(f.name for f in fields(Usage))


@dataclass(frozen=True)
class Served:
    """What answered a call and where: as the provider reports it (the model, the service
    tier, Anthropic's inference geo and speed) and as the call was sent (OpenAI's data
    residency, a Vertex AI location: :func:`endpoint_of`)."""

    model: str | None = None  # the model that answered (an Azure deployment's real model)
    service_tier: str | None = None  # flex, priority, default, ...
    inference_geo: str | None = None  # Anthropic: us, global, ...
    speed: str | None = None  # Anthropic: fast (fast mode)
    data_residency: str | None = None  # OpenAI: eu, us or fedramp (the regional hosts)
    vertex_location: str | None = None  # Vertex AI: us-central1, global, ...
    search_context_size: str | None = None  # web search asked for: low, medium or high
    asked_tier: str | None = None  # the tier the call asked for, when none was reported

    def merged(self, later: Served, *, asked: str | None = None) -> Served:
        """This, with what ``later`` (a later stream chunk, what the provider says) reports
        in its place; a model named as ``asked`` is not news. On the app's call path, per
        chunk: plain attribute reads, and no new object when nothing changes."""
        news = later._values()
        if later.model in (None, asked):
            if not any(news[1:]):  # most chunks: nothing new
                return self
            news = (None, *news[1:])
        olds = self._values()
        values = tuple(o if n is None else n for n, o in zip(news, olds, strict=True))
        return self if values == olds else Served(*values)

    def _values(self) -> tuple[str | None, ...]:
        return (self.model, self.service_tier, self.inference_geo, self.speed,
                self.data_residency, self.vertex_location, self.search_context_size,
                self.asked_tier)  # fmt: skip

    @property
    def where_unknown(self) -> bool:
        """Whether nothing is known of where the call ran (no multiplier applies)."""
        return (
            self.data_residency is None
            and self.vertex_location is None
            and self.inference_geo is None
            and self.speed is None
        )

    def details(self) -> dict[str, str]:
        """What ``usage_details`` keeps of where the call ran (what re-pricing needs)."""
        return {name: getattr(self, name) for name in _WHERE if getattr(self, name)}

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> Served:
        """A stored call's: its ``usage_details``' ``served_model``, ``service_tier`` and
        where it ran."""

        def text(name: str) -> str | None:
            value = details.get(name)
            return value if isinstance(value, str) and value else None

        return cls(text("served_model"), text("service_tier"), *(text(n) for n in _WHERE))


_WHERE = ("inference_geo", "speed", "data_residency", "vertex_location", "search_context_size",
          "asked_tier")  # fmt: skip
_UNKNOWN = Served()


_SEARCH_SIZES = ("low", "medium", "high")


_OPENAI_REGIONS = {"eu.api.openai.com": "eu", "us.api.openai.com": "us",
                   "gov.api.openai.com": "fedramp"}  # fmt: skip


def endpoint_of(provider: str | None, model: str, params: Mapping[str, Any]) -> Served:
    """Where a call is sent, as litellm resolves it: OpenAI's data residency from the host
    of the call's ``api_base`` (or ``base_url``, ``litellm.api_base``, ``OPENAI_BASE_URL``,
    ``OPENAI_API_BASE``); a Vertex AI call's location (``vertex_location`` or
    ``vertex_ai_location``, ``litellm.vertex_location``, ``VERTEXAI_LOCATION``,
    ``VERTEX_LOCATION``; a model the map lists with ``supported_regions`` is sent to the
    first of them when none or another is set; else ``us-central1``); and the search
    context size asked for (``web_search_options.search_context_size``), which web search
    fees depend on."""
    options = params.get("web_search_options")
    size = options.get("search_context_size") if isinstance(options, Mapping) else None
    size = size if size in _SEARCH_SIZES else None
    residency, location = _endpoint(provider, model, params)
    if residency is None and location is None and size is None:
        return _UNKNOWN
    return Served(data_residency=residency, vertex_location=location, search_context_size=size)


def _endpoint(
    provider: str | None, model: str, params: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    """(OpenAI's data residency, the Vertex AI location) of a call."""
    if provider == "openai":
        base = litellm_loader.openai_api_base(params)
        return (_residency(base) if base else None), None
    if provider is None or not provider.startswith("vertex_ai"):
        return None, None
    location = next(
        (
            value
            for value in (
                params.get("vertex_location"),
                params.get("vertex_ai_location"),
                getattr(litellm_loader.imported(), "vertex_location", None),
                os.environ.get("VERTEXAI_LOCATION"),
                os.environ.get("VERTEX_LOCATION"),
            )
            if isinstance(value, str) and value
        ),
        None,
    )
    regions = _vertex_regions(model.split("/", 1)[1] if model.startswith("vertex_ai/") else model)
    if regions and location not in regions:
        location = regions[0]
    return None, location or "us-central1"


@functools.lru_cache(maxsize=256)
def _residency(base: str) -> str | None:
    """OpenAI's data residency of an API base URL: its host's region, if it has one."""
    try:
        host = urlparse(base).hostname
    except ValueError:
        return None
    return _OPENAI_REGIONS.get(host.lower()) if host else None


@functools.lru_cache(maxsize=256)
def _vertex_regions(model: str) -> tuple[str, ...]:
    """The map's ``supported_regions`` of a Vertex AI model (most have none)."""
    entry = litellm_loader.model_cost().get(f"vertex_ai/{model}")
    regions = entry.get("supported_regions") if isinstance(entry, Mapping) else None
    return tuple(r for r in regions if isinstance(r, str)) if isinstance(regions, list) else ()


MAX_COUNT = 2**63 - 1  # the largest count a BIGINT column holds


def _int(value: Any) -> int:
    """A count as reported: a whole number up to :data:`MAX_COUNT`, 0 for anything that is
    not one (a negative count, NaN, infinity, a string)."""
    if type(value) is int and 0 <= value <= MAX_COUNT:  # what providers send: fast
        return value
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if isinstance(value, int):  # math.isfinite raises on an int too large for a float
        return min(max(value, 0), MAX_COUNT)
    return min(max(int(value), 0), MAX_COUNT) if math.isfinite(value) else 0


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _reader(obj: Any) -> Callable[[str], Any]:
    """A reader of ``obj``'s fields by name (a dict's keys, an object's attributes; nothing
    of None): on the app's call path, so a pydantic object's are read from its ``__dict__``."""
    if obj is None:
        return _nothing
    if isinstance(obj, dict):
        return obj.get
    own = getattr(obj, "__dict__", None)
    if not isinstance(own, dict):
        return lambda name: getattr(obj, name, None)
    extra = getattr(obj, "__pydantic_extra__", _NOT_PYDANTIC)
    if extra is _NOT_PYDANTIC:  # a plain object: its attributes, properties too
        return lambda name: own[name] if name in own else getattr(obj, name, None)
    more = extra if isinstance(extra, dict) else {}  # pydantic: its fields, then its extras
    return lambda name: own[name] if name in own else more.get(name)


_NOT_PYDANTIC = object()


def _nothing(name: str) -> None:
    return None


def usage_from_response(usage: Any, provider: str | None = None) -> Usage | None:
    """Normalise litellm's usage object (any provider's shape; ``provider``: litellm's name
    of the provider that answered); None when absent."""
    if usage is None:
        return None
    get = _reader(usage)
    prompt = _int(get("prompt_tokens"))
    completion = _int(get("completion_tokens"))
    asked = _reader(get("prompt_tokens_details"))
    units = (_int(asked("image_count")), _int(asked("character_count")),
             _int(asked("query_count")))  # fmt: skip
    if prompt == 0 and completion == 0 and not any(units):
        return None
    said = _reader(get("completion_tokens_details"))
    # litellm moves a top-level reasoning_tokens into the details; a provider's own JSON
    # (the direct route) has it where the provider put it
    reasoning = _int(said("reasoning_tokens")) or _int(get("reasoning_tokens"))
    if provider == "perplexity":  # reported beside the output, not in it
        completion = min(completion + reasoning, MAX_COUNT)
    cached = (
        _int(asked("cached_tokens"))
        or _int(get("cache_read_input_tokens"))
        or _int(get("cached_tokens"))  # Moonshot's, beside the standard fields
    )
    cache_write = (
        _int(get("cache_creation_input_tokens"))
        or _int(asked("cache_creation_tokens"))
        or _int(asked("cache_write_tokens"))
    )
    split = _reader(asked("cache_creation_token_details"))
    write_1h = min(_int(split("ephemeral_1h_input_tokens")), cache_write)
    audio_in, image_in = _int(asked("audio_tokens")), _int(asked("image_tokens"))
    cached_parts = _reader(asked("cached_tokens_details"))
    tool_use = get("server_tool_use")
    used_tools = _reader(tool_use) if tool_use is not None else _nothing
    searches = _int(used_tools("web_search_requests"))
    # Gemini's grounding queries; Perplexity's searches (billed per search, as these)
    grounding = _int(asked("web_search_requests")) or _int(get("num_search_queries"))
    if provider == "xai":  # its server-side tools' calls (litellm copies the web searches)
        tools = _reader(get("server_side_tool_usage_details"))
        calls = _int(tools("web_search_calls")) + _int(tools("x_search_calls"))
        searches, grounding = searches or calls or grounding, 0
    cached_audio = min(_int(cached_parts("audio_tokens")), cached, audio_in)
    return _made(
        prompt,
        completion,
        cached,
        cache_write,
        reasoning,
        False,
        write_1h,
        audio_in,
        image_in,
        _int(said("audio_tokens")),
        _int(said("image_tokens")),
        searches,
        min(_int(split("ephemeral_12h_input_tokens")), cache_write - write_1h),
        cached_audio,
        min(_int(cached_parts("image_tokens")), cached - cached_audio, image_in),
        _int(asked("video_tokens")),
        _int(said("video_tokens")),
        grounding,
        _int(asked("google_maps_grounding_requests")),
        cached if asked("cache_type") == "ephemeral" else 0,  # an explicit cache's reads
        _int(get("citation_tokens")),
        _int(used_tools("browser_open_requests")),
        *units,
    )


def _made(*values: Any) -> Usage:
    """A :class:`Usage` of every field's value, in order, made without the frozen
    dataclass's ``object.__setattr__`` per field: on the app's call path, that was a third
    of the time of reading a usage (5 of 16 us)."""
    usage = object.__new__(Usage)
    usage.__dict__.update(zip(_FIELDS, values, strict=True))
    return usage


def cites_urls(annotations: Any) -> bool:
    """Whether a message's (or a stream delta's) annotations hold a ``url_citation``: the
    answer of a search model (``gpt-4o-search-preview``), one web search call for OpenAI,
    which reports no count of them."""
    return isinstance(annotations, list) and any(
        _field(item, "type") == "url_citation" for item in annotations
    )


def response_cites_urls(response: Any) -> bool:
    """Whether a response's (first) message cites URLs (:func:`cites_urls`)."""
    try:
        message = response.choices[0].message
    except (AttributeError, IndexError, TypeError):
        return False
    return message_cites_urls(message)


def message_cites_urls(message: Any) -> bool:
    """Whether a message (or a stream chunk's delta) cites URLs (:func:`cites_urls`); on the
    stream's path, per chunk: read from its fields, without a failing ``getattr``."""
    return message is not None and cites_urls(_reader(message)("annotations"))


def with_cited_search(usage: Usage, cited: bool) -> Usage:
    """``usage`` with the one web search call a cited answer stands for, unless the
    provider reported its searches."""
    if not cited or usage.web_search_requests or usage.grounding_queries:
        return usage
    return replace(usage, web_search_requests=1)


_SEARCH_SIZES = ("low", "medium", "high")

# Gemini's and Vertex's usageMetadata.trafficType -> the service tier whose rates bill it
_TRAFFIC_TIERS = {
    "ON_DEMAND_PRIORITY": "priority",
    "ON_DEMAND_FLEX": "flex",
    "FLEX": "flex",
    "BATCH": "flex",
}


def served_by(response: Any, usage: Any = None) -> Served:
    """The model and service tier a response (or a stream chunk) says served the call: the
    tier the response or its usage reports, or else the one Gemini's ``trafficType`` (as
    litellm keeps it in the provider's fields) stands for."""
    hidden = getattr(response, "_hidden_params", None) or {}
    model = hidden.get("provider_response_model") or getattr(response, "model", None)
    tier = getattr(response, "service_tier", None) or _field(usage, "service_tier")
    if not tier:
        fields = hidden.get("provider_specific_fields")
        traffic = fields.get("traffic_type") if isinstance(fields, dict) else None
        tier = _TRAFFIC_TIERS.get(traffic.upper()) if isinstance(traffic, str) else None
    read = _reader(usage)  # Anthropic's; pydantic extras on litellm's Usage
    geo, speed = read("inference_geo"), read("speed")
    size = read("search_context_size")  # Perplexity: the size its searches were run at
    size = size if isinstance(size, str) and size.lower() in _SEARCH_SIZES else None
    return Served(
        model if isinstance(model, str) and model else None,
        tier if isinstance(tier, str) and tier else None,
        geo.lower() if isinstance(geo, str) and geo else None,
        speed.lower() if isinstance(speed, str) and speed else None,
        search_context_size=size.lower() if isinstance(size, str) and size else None,
    )


MAX_BILLED_USD = 1000.0  # a bill reported for one call above this is not read (see below)


def billed_cost(usage: Any, provider: str | None) -> float | None:
    """What the provider says the call cost, in USD, when it says: xAI's
    ``cost_in_usd_ticks`` (10^10 ticks a dollar), Perplexity's ``cost.total_cost``,
    OpenRouter's ``cost`` (with, for a call on your own provider key, ``is_byok``, the
    provider's ``cost_details.upstream_inference_cost``, without which the bill is not
    whole). Only these fields, of these providers: litellm puts a ``cost`` of its own
    reckoning on the usage of a stream. None when there is none, or when a part is not a
    finite number from 0 to :data:`MAX_BILLED_USD` (more than the dearest model's longest
    call costs: a figure above it is not a bill, and would block every budget it counts
    in), and then the price map prices the call."""
    if usage is None:
        return None
    get = _reader(usage)
    if provider == "xai":
        ticks = _usd(get("cost_in_usd_ticks"), MAX_BILLED_USD * 10**10)
        return None if ticks is None else ticks / 10**10
    cost = get("cost")
    if provider == "perplexity":  # the parts of the bill and its total
        return _usd(cost.get("total_cost")) if isinstance(cost, Mapping) else None
    if provider != "openrouter" or _usd(cost) is None:
        return None
    if get("is_byok") is not True:
        return _usd(cost)
    upstream = _usd(_reader(get("cost_details"))("upstream_inference_cost"))
    return None if upstream is None else _usd(cost + upstream)


def _usd(value: Any, most: float = MAX_BILLED_USD) -> float | None:
    """A number from 0 to ``most`` (an int too large for a float is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return float(value) if 0 <= value <= most else None
    return value if math.isfinite(value) and 0 <= value <= most else None


# -- local token counting -------------------------------------------------------------

_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


@functools.lru_cache(maxsize=8)
def _encoding(name: str) -> Any:
    litellm_loader.configure_environment()
    import tiktoken

    return tiktoken.get_encoding(name)


def _bare(model: str) -> str:
    return model.rsplit("/", 1)[-1].lower().removeprefix("ft:")


def encoding_for(model: str) -> str:
    """The tiktoken encoding to estimate ``model``'s tokens with (o200k or cl100k)."""
    return "o200k_base" if _bare(model).startswith(_O200K_PREFIXES) else "cl100k_base"


def decode_tokens(model: str, tokens: Sequence[int]) -> str | None:
    """The text of token ids in ``model``'s tiktoken encoding (as :func:`encoding_for`
    guesses it), or None when an id is not in it (another tokenizer's ids)."""
    try:
        return str(_encoding(encoding_for(model)).decode(list(tokens)))
    except (KeyError, OverflowError, ValueError):
        return None


def count_text_tokens(model: str, text: str) -> int:
    return len(_encoding(encoding_for(model)).encode(text, disallowed_special=()))


def count_message_tokens(
    model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None
) -> int:
    """Prompt tokens as OpenAI counts chat messages: 3 per message, 3 for the reply primer,
    the text of every string field (1 more for ``name``), each image by its size, the name
    and arguments of assistant tool calls, and the tool definitions."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            if key == "content":
                total += _content_tokens(model, value)
            elif key == "tool_calls" and isinstance(value, list):
                total += sum(_tool_call_tokens(model, call) for call in value)
            elif isinstance(value, str):
                total += count_text_tokens(model, value) + (1 if key == "name" else 0)
    if tools:
        total += count_tool_tokens(model, tools)
    return total


def _content_tokens(model: str, content: Any) -> int:
    if isinstance(content, str):
        return count_text_tokens(model, content)
    if not isinstance(content, list):
        return 0 if content is None else count_text_tokens(model, str(content))
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            total += count_text_tokens(model, part["text"])
        elif part.get("type") == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
            total += image_tokens(model, _image_size(url), detail)
    return total


def _tool_call_tokens(model: str, call: Any) -> int:
    function = _field(call, "function")
    name, arguments = _field(function, "name"), _field(function, "arguments")
    return (
        3
        + (count_text_tokens(model, name) if isinstance(name, str) else 0)
        + (count_text_tokens(model, arguments) if isinstance(arguments, str) else 0)
    )


def count_tool_tokens(model: str, tools: list[dict[str, Any]]) -> int:
    """Tokens of tool (function) definitions, by OpenAI's cookbook (``num_tokens_for_tools``:
    exact for gpt-4o and gpt-4o-mini, the constants of gpt-3.5/gpt-4 for cl100k models)."""
    o200k = encoding_for(model) == "o200k_base"
    func_init, prop_init, prop_key, enum_init, enum_item, func_end = (
        (7, 3, 3, -3, 3, 12) if o200k else (10, 3, 3, -3, 3, 12)
    )
    total = 0
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else {}
        if not isinstance(function, dict):
            continue
        total += func_init
        description = str(function.get("description") or "").removesuffix(".")
        total += count_text_tokens(model, f"{function.get('name', '')}:{description}")
        properties = (function.get("parameters") or {}).get("properties") or {}
        if isinstance(properties, dict) and properties:
            total += prop_init
            for key, spec in properties.items():
                spec = spec if isinstance(spec, dict) else {}
                total += prop_key
                enum = spec.get("enum")
                if isinstance(enum, list):
                    total += enum_init
                    for item in enum:
                        total += enum_item + count_text_tokens(model, str(item))
                p_description = str(spec.get("description") or "").removesuffix(".")
                total += count_text_tokens(model, f"{key}:{spec.get('type', '')}:{p_description}")
    return total + func_end if tools else 0


# Images: OpenAI's published rules. Tile models: fit in 2048x2048, shortest side to 768,
# base + per-512px-tile tokens ("low": base only). Patch models: 32px patches, at most
# 1536, times a multiplier.
_TILES = (  # (model prefix, base, per tile), the first match wins
    ("gpt-4o-mini", 2833, 5667),
    ("o1", 75, 150),
    ("o3", 75, 150),
    ("computer-use", 65, 129),
)
_PATCHES = (("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("o4-mini", 1.72))
DEFAULT_IMAGE_SIZE = (1024, 1024)  # assumed when the size cannot be read (a URL)


def image_tokens(model: str, size: tuple[int, int] | None, detail: str = "auto") -> int:
    """Input tokens of one image for ``model`` (OpenAI's rules; others are approximate)."""
    bare = _bare(model)
    width: float  # pixels, scaled below
    height: float
    width, height = size or DEFAULT_IMAGE_SIZE
    for prefix, multiplier in _PATCHES:
        if bare.startswith(prefix):
            patches = math.ceil(width / 32) * math.ceil(height / 32)
            if patches > 1536:
                scale = math.sqrt(32 * 32 * 1536 / (width * height))
                width, height = int(width * scale), int(height * scale)
                patches = min(1536, math.ceil(width / 32) * math.ceil(height / 32))
            return math.ceil(patches * multiplier)
    base, tile = next(((b, t) for p, b, t in _TILES if bare.startswith(p)), (85, 170))
    if detail == "low":
        return base
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    return base + tile * math.ceil(width / 512) * math.ceil(height / 512)


def _image_size(url: Any) -> tuple[int, int] | None:
    """Width and height of a ``data:`` URL's image (PNG, GIF, JPEG, WebP headers); None
    for a remote URL (nothing is downloaded)."""
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None
    try:
        head = base64.b64decode(url.split(",", 1)[1][:80_000] + "==", validate=False)
    except (binascii.Error, ValueError):
        return None
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return struct.unpack(">II", head[16:24])
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            if head[12:16] == b"VP8X":
                return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(
                    head[27:30], "little"
                )
            return None
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(head)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        length = struct.unpack(">H", data[index + 2 : index + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    return None


def estimate_usage(
    model: str,
    messages: list[dict[str, Any]],
    completion: str,
    *,
    tools: list[dict[str, Any]] | None = None,
    completion_tool_calls: str = "",
) -> Usage:
    """Usage counted locally with tiktoken, marked as estimated. ``completion_tool_calls``
    is the text of the tool calls the model made (names and arguments)."""
    output = completion + completion_tool_calls
    return Usage(
        prompt_tokens=count_message_tokens(model, messages, tools),
        completion_tokens=count_text_tokens(model, output) if output else 0,
        estimated=True,
    )


def tools_of(params: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The tool definitions of a call's parameters (``tools``, or legacy ``functions``)."""
    tools = params.get("tools")
    if isinstance(tools, list):
        return tools
    functions = params.get("functions")
    if isinstance(functions, list):
        return [{"type": "function", "function": f} for f in functions]
    return None


def tool_call_text(tool_calls: Any) -> str:
    """Names and arguments of a response's tool calls, for counting."""
    if not isinstance(tool_calls, list):
        return ""
    parts = []
    for call in tool_calls:
        function = _field(call, "function")
        for value in (_field(function, "name"), _field(function, "arguments")):
            if isinstance(value, str):
                parts.append(value)
            elif value is not None:
                parts.append(json.dumps(value))
    return "".join(parts)
