"""What the fake server answers (:class:`Reply`), what it saw (:class:`RecordedRequest`).

Also the deterministic defaults: the echo answer and the token-count formula.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer of :class:`~llmops.simulate.FakeLLMServer`.

    Every field has a default, so ``Reply()`` is a valid, deterministic answer. The fields
    added for billing (modalities, cached modalities, the 1-hour and 12-hour cache splits, the
    service tier, traffic type, web searches and grounding) default to "not sent": with their
    defaults the wire format is what it was.

    The same ``Reply`` answers on every route: OpenAI Chat Completions, Anthropic Messages,
    Gemini ``generateContent`` and Bedrock Converse. What each field becomes on each route,
    and where litellm 1.110.2 puts it on its ``ModelResponse`` (``response``; ``usage`` is
    ``response.usage``), is written below; the tests of ``tests/simulate/test_server.py``
    check every one of those paths through a real ``litellm.completion``.

    Content
        ``text``: the answer. ``None`` means the default answer, a deterministic function of
        the request: ``"Echo: " + <content of the last user message>`` (a content given as a
        list of parts contributes its ``text`` parts, joined by a space; Gemini ``contents``
        and Bedrock ``messages`` are read the same way, a Gemini ``model`` turn being an
        assistant message). For an error ``status``, ``text`` is the error message.

    Usage (token counts)
        ``prompt_tokens`` is always the **total** input, cached and cache-written tokens
        included, audio, image and video tokens included. ``None`` means computed from the
        request::

            prompt_tokens = sum(words(message.content) + 3 for message in messages) + 3

        where ``words`` counts whitespace-separated words of the text (text parts only when
        the content is a list of parts; 0 for no content). On the Anthropic route a
        ``system`` prompt counts as one more message, and so do Gemini's
        ``systemInstruction`` and Bedrock's ``system``, so the same conversation gets the
        same count on every route.

        ``completion_tokens`` is the total output, reasoning, audio, image and video tokens
        included. ``None`` means ``max(1, words(text))``.

        A computed count is raised when needed so that it is never smaller than the parts it
        includes: ``cached_tokens + cache_write_tokens`` and ``audio_input_tokens +
        image_input_tokens + video_input_tokens`` for the prompt, ``reasoning_tokens +
        audio_output_tokens + image_output_tokens + video_output_tokens`` for the completion.
        Given counts are checked the same way.

        ``cached_tokens``: prompt tokens read from a cache. OpenAI route:
        ``usage.prompt_tokens_details.cached_tokens`` (part of ``prompt_tokens``, as OpenAI
        reports it). Anthropic route: ``usage.cache_read_input_tokens``. Gemini route:
        ``usageMetadata.cachedContentTokenCount`` plus ``cacheTokensDetails: [{"modality":
        "TEXT", "tokenCount": n}]`` (only when not 0; with ``AUDIO`` / ``IMAGE`` entries when
        ``cached_audio_tokens`` / ``cached_image_tokens`` are scripted). Bedrock route:
        ``usage.cacheReadInputTokens``. litellm: ``usage.prompt_tokens_details.cached_tokens``
        on every route, and also ``usage.cache_read_input_tokens`` on the Anthropic, Gemini
        and Bedrock routes; on the Gemini route also
        ``usage.prompt_tokens_details.cached_tokens_details.text_tokens``.

        ``cache_write_tokens``: prompt tokens written to a cache. Anthropic route:
        ``usage.cache_creation_input_tokens``; Bedrock route: ``usage.cacheWriteInputTokens``.
        Gemini has no such field: there they are simply part of the prompt, and so on the
        OpenAI route unless ``cache_write_12h_tokens`` is given (see below).
        litellm (Anthropic, Bedrock): ``usage.cache_creation_input_tokens`` and
        ``usage.prompt_tokens_details.cache_creation_tokens`` (= ``.cache_write_tokens``).

        ``cache_write_1h_tokens``: the part of ``cache_write_tokens`` written with the 1-hour
        TTL; the rest was written with the 5-minute TTL. ``None`` (default): no split is
        sent. A number (0 included) sends the split: Anthropic route ``usage.cache_creation =
        {"ephemeral_5m_input_tokens": cache_write_tokens - n, "ephemeral_1h_input_tokens":
        n}`` (in ``message_start`` when streamed); Bedrock route ``usage.cacheDetails = [{"ttl":
        "5m", "inputTokens": ...}, {"ttl": "1h", "inputTokens": n}]`` (entries of 0 left out).
        litellm (both routes, streamed or not):
        ``usage.prompt_tokens_details.cache_creation_token_details.ephemeral_5m_input_tokens``
        and ``.ephemeral_1h_input_tokens``. Without a split, Anthropic leaves
        ``cache_creation_token_details`` unset (``None``) and so does Bedrock.

        ``cache_write_12h_tokens``: OpenAI route only: the part of ``cache_write_tokens``
        written to OpenAI's 12-hour (extended) cache; the rest was written with the 30-minute
        TTL. ``cache_write_1h_tokens + cache_write_12h_tokens`` must not exceed
        ``cache_write_tokens``; each route sends its own split only (the 1-hour part is not
        sent on the OpenAI route, the 12-hour part not on the others). ``None`` (default):
        nothing sent, and the OpenAI route reports no cache writes at all. A number (0
        included) sends ``usage.prompt_tokens_details.cache_write_tokens = cache_write_tokens``
        and ``.cache_creation_token_details = {"ephemeral_30m_input_tokens": cache_write_tokens
        - n, "ephemeral_12h_input_tokens": n}`` (litellm's own names: its chat route does not
        read the Responses API's ``cache_write_tokens_details: {"ttl_30m_tokens",
        "ttl_12h_tokens"}``, which stays an unparsed dict). litellm (streamed or not, and
        through ``litellm.stream_chunk_builder``):
        ``usage.prompt_tokens_details.cache_write_tokens`` (= ``.cache_creation_tokens``) and
        ``.cache_creation_token_details.ephemeral_30m_input_tokens`` /
        ``.ephemeral_12h_input_tokens``; ``usage.cache_creation_input_tokens`` stays unset on
        this route.

        On the Anthropic and Bedrock routes ``input_tokens`` (``inputTokens``) excludes both
        cache reads and writes, as those providers report it: ``input_tokens =
        prompt_tokens - cached_tokens - cache_write_tokens``. litellm adds them back:
        ``usage.prompt_tokens`` is the total again, and
        ``usage.prompt_tokens_details.text_tokens`` is ``input_tokens``.

        ``reasoning_tokens``: OpenAI route: ``usage.completion_tokens_details.reasoning_tokens``
        (part of ``completion_tokens``). Gemini route: ``usageMetadata.thoughtsTokenCount``
        (only when not 0), and ``candidatesTokenCount`` is then ``completion_tokens -
        reasoning_tokens`` while ``totalTokenCount`` is prompt + completion, as Gemini
        reports thoughts; litellm adds them back: ``usage.completion_tokens`` is the total
        and ``usage.completion_tokens_details.reasoning_tokens`` the thoughts. Not reported on
        the Anthropic and Bedrock routes (litellm says ``reasoning_tokens=0`` there).

        ``audio_input_tokens`` / ``image_input_tokens``: prompt tokens that were audio /
        image (part of ``prompt_tokens``). OpenAI route:
        ``usage.prompt_tokens_details.audio_tokens`` (always sent, 0 by default) and
        ``usage.prompt_tokens_details.image_tokens`` (only when not 0). Gemini route:
        ``usageMetadata.promptTokensDetails``, a list of ``{"modality", "tokenCount"}``:
        ``TEXT`` (always: the rest of the prompt, cached tokens included), ``AUDIO`` and
        ``IMAGE`` (when not 0). litellm: ``usage.prompt_tokens_details.audio_tokens`` and
        ``.image_tokens`` on both routes (``None``, not 0, when Gemini sent no entry); on the
        Gemini route also ``.text_tokens`` = the ``TEXT`` entry (cached text tokens included,
        because ``cacheTokensDetails`` is sent). Not sent on the Anthropic and Bedrock routes.

        ``cached_audio_tokens`` / ``cached_image_tokens``: the audio / image part of
        ``cached_tokens`` (together at most ``cached_tokens``; each at most
        ``audio_input_tokens`` / ``image_input_tokens``). OpenAI route:
        ``usage.prompt_tokens_details.cached_tokens_details = {"text_tokens": cached -
        audio - image, "audio_tokens", "image_tokens"}`` (only when one of them is not 0).
        Gemini route: ``usageMetadata.cacheTokensDetails`` = ``TEXT`` (cached - audio - image)
        plus ``AUDIO`` / ``IMAGE`` (when not 0). litellm (both routes, streamed or not):
        ``usage.prompt_tokens_details.cached_tokens_details.audio_tokens`` / ``.image_tokens``
        / ``.text_tokens`` (on Gemini ``None``, not 0, for a modality without an entry);
        ``usage.prompt_tokens_details.audio_tokens`` / ``.image_tokens`` stay the whole audio
        / image input, cached included. Not sent on the Anthropic and Bedrock routes.

        ``video_input_tokens``: prompt tokens that were video (part of ``prompt_tokens``).
        OpenAI route: ``usage.prompt_tokens_details.video_tokens`` (only when not 0). Gemini
        route: a ``{"modality": "VIDEO", "tokenCount": n}`` entry of ``promptTokensDetails``
        (when not 0; ``TEXT`` is then prompt - audio - image - video). litellm (both routes,
        streamed or not): ``usage.prompt_tokens_details.video_tokens``. litellm subtracts
        cached video from it only when ``cacheTokensDetails`` has a ``VIDEO`` entry, which is
        never sent: video input is never cached here, and this is all of it. Not sent on the
        Anthropic and Bedrock routes.

        ``audio_output_tokens`` / ``image_output_tokens``: completion tokens that were audio /
        image. OpenAI route: ``usage.completion_tokens_details.audio_tokens`` (always sent)
        and ``.image_tokens`` (only when not 0). Gemini route:
        ``usageMetadata.candidatesTokensDetails`` (sent only when one of them is not 0:
        ``TEXT`` = completion - reasoning - audio - image, plus ``AUDIO`` / ``IMAGE``).
        litellm: ``usage.completion_tokens_details.audio_tokens`` / ``.image_tokens`` on both
        routes (Gemini also sets ``.text_tokens``). Not sent on the Anthropic and Bedrock
        routes.

        ``video_output_tokens``: completion tokens that were video. OpenAI route:
        ``usage.completion_tokens_details.video_tokens`` (only when not 0). Gemini route: a
        ``VIDEO`` entry of ``candidatesTokensDetails`` (sent when one of audio, image or video
        output is not 0; ``TEXT`` = completion - reasoning - audio - image - video). litellm
        (both routes, streamed or not): ``usage.completion_tokens_details.video_tokens``. Not
        sent on the Anthropic and Bedrock routes.

        ``include_usage=False`` sends no usage at all: no ``usage`` object in a response, no
        usage chunk in an OpenAI stream, no ``usage`` in Anthropic stream events, no
        ``usageMetadata`` on the Gemini route, no ``usage`` (nor ``metadata`` stream event) on
        the Bedrock route. How litellm 1.110 takes it: an OpenAI response gets a usage of
        zeros; a stream (any route) asked with ``stream_options.include_usage`` gets a usage
        that litellm estimates with its own tokenizer; a non-streaming Anthropic, Gemini or
        Bedrock response fails (``APIConnectionError: 'usage'`` for Anthropic and Bedrock,
        ``BadRequestError: ... usageMetadata not found`` for Gemini), since those providers
        always send usage.

    Service tier and billing extras
        ``service_tier``: the tier that served the call, sent as it is. OpenAI route: the
        response's top-level ``service_tier`` (and every stream chunk's), e.g. ``"default"``,
        ``"flex"``, ``"priority"``; litellm: ``response.service_tier`` (and each stream
        chunk's ``.service_tier``; ``litellm.stream_chunk_builder`` keeps it). Anthropic
        route: ``usage.service_tier`` (``"standard"``, ``"priority"``, ``"batch"``; also in
        ``message_start`` when streamed); litellm: ``usage.service_tier`` of a non-streaming
        response only (``response.service_tier`` is not set); in a stream litellm 1.110.2 keeps
        it only in ``chunk._hidden_params["usage"].service_tier`` of the chunk made from
        ``message_delta``, and the usage of the final chunk drops it. Gemini route: the
        ``x-gemini-service-tier`` response header; litellm: ``response.service_tier``
        lower-cased, ``"standard"`` becoming ``"default"`` (streamed: on the chunks from the
        last content chunk on). Bedrock route: the Converse ``serviceTier: {"type": tier}``
        (and in the stream's ``metadata`` event); litellm: ``response.service_tier`` of a
        non-streaming response; ignored in a stream by litellm 1.110.2.

        ``cache_type``: OpenAI route only: ``usage.prompt_tokens_details.cache_type``, as
        Alibaba's Qwen models report the kind of cache read (``"ephemeral"``: an explicit
        cache). litellm: ``usage.prompt_tokens_details.cache_type``. ``None``: not sent.

        ``url_citations``: OpenAI route only: the URLs a search model (``gpt-4o-search-preview``)
        cites, as the message's ``annotations`` (``{"type": "url_citation", "url_citation":
        {"url", "title", "start_index", "end_index"}}``; streamed: in the first content
        chunk's ``delta.annotations``). litellm: ``message.annotations`` (streamed:
        ``delta.annotations``). Such an answer is one web search call for OpenAI's bill.
        ``None``: not sent.

        ``usage_fields``: OpenAI route only: more fields of ``usage``, sent as they are after
        the standard ones (a provider's own: Perplexity's ``citation_tokens``,
        ``num_search_queries``, ``search_context_size``, a ``reasoning_tokens`` reported
        beside ``completion_tokens`` rather than in it, a ``cost`` breakdown); a name of a
        standard field replaces it, and ``None`` leaves it out (Perplexity sends no
        ``prompt_tokens_details`` nor ``completion_tokens_details``). litellm 1.110.2 keeps
        unknown ones as extras of ``usage`` (``usage.citation_tokens``; in a stream, on the
        provider's chunk in ``CustomStreamWrapper.chunks`` only), and moves a top-level
        ``reasoning_tokens`` into ``usage.completion_tokens_details.reasoning_tokens``
        without adding them to ``completion_tokens``.
        ``None``: nothing more is sent. ``usage_unasked``: a stream ends with its usage
        chunk even when the request did not ask for it, as Perplexity streams (litellm does
        not pass ``stream_options`` on to it).

        ``inference_geo`` / ``speed``: Anthropic route only: ``usage.inference_geo`` (where
        the call ran: ``"us"``, ``"global"``) and ``usage.speed`` (``"fast"``: fast mode),
        sent as they are (in ``message_start`` and ``message_delta`` when streamed). litellm:
        ``usage.inference_geo`` / ``usage.speed``. ``None``: not sent.

        ``traffic_type``: Gemini route only: ``usageMetadata.trafficType`` (Vertex-style
        ``"ON_DEMAND"``, ``"ON_DEMAND_PRIORITY"``, ``"ON_DEMAND_FLEX"``, ``"FLEX"``,
        ``"BATCH"``). litellm: ``response._hidden_params["provider_specific_fields"]
        ["traffic_type"]`` (streamed: on the last content chunk).

        ``web_search_requests``: Anthropic route only: ``usage.server_tool_use =
        {"web_search_requests": n}`` (in ``message_delta`` when streamed). litellm:
        ``usage.server_tool_use.web_search_requests``, streamed or not. ``None``: not sent.

        ``grounding_queries``: Gemini route only: the web search queries that Grounding with
        Google Search ran. Sent as the candidate's ``groundingMetadata = {"webSearchQueries":
        [...], "groundingChunks": [{"web": {"uri": "https://example.com/1", "title":
        "example"}}]}``, with the usage (in the last chunk when streamed; not sent with
        ``include_usage=False``). litellm (streamed or not, and through
        ``litellm.stream_chunk_builder``): ``usage.prompt_tokens_details.web_search_requests``
        = the number of distinct non-empty queries (unset when there are none). ``None``: not
        sent.

        ``maps_grounding_queries``: Gemini route only: the queries of Grounding with Google
        Maps. Sent like ``grounding_queries`` but with ``"groundingChunks": [{"maps": {"uri":
        "https://maps.example/1", "title": "place"}}]`` (queries beside maps chunks and no web
        chunk are Maps queries for litellm). litellm (streamed or not):
        ``usage.prompt_tokens_details.google_maps_grounding_requests`` = the number of
        distinct non-empty queries, at least 1 (``[]`` gives 1). A Gemini candidate has one
        ``groundingMetadata``, and litellm counts every query of one holding both web and maps
        chunks as a web search (and Maps as 1): giving both fields is refused.

    Errors
        ``status``: an HTTP status of 400 or more sends an error body instead of an answer,
        OpenAI style ``{"error": {"message", "type", "code"}}``; on the Anthropic route
        ``{"type": "error", "error": {"type", "message"}}``; on the Gemini route ``{"error":
        {"code", "message", "status"}}``; on the Bedrock route ``{"message"}`` with an
        ``x-amzn-ErrorType`` header. A 429 also sends ``Retry-After: 0``. ``error_body``: a
        JSON object sent as the error's body instead, as it is (a provider's own shape,
        fields that echo the request).

        **A scripted error reaches your code only with retries off.** litellm (through the
        OpenAI and Anthropic SDKs) retries a 408, 409, 429 or 5xx answer by itself, once
        more by default: the retry takes the next reply (with an empty queue, the echo
        answer), so the call succeeds, ``server.requests`` shows two requests and the
        Gateway records the call as ``ok``. Pass ``num_retries=0`` (or ``max_retries=0``)
        with the call to see the error (litellm 1.110.2: ``litellm.RateLimitError`` for a
        429, ``litellm.InternalServerError`` for a 500)::

            server.enqueue(Reply(status=429))
            with pytest.raises(litellm.RateLimitError):
                gateway.complete(model="gpt-4o-mini", messages=messages,
                                 api_base=server.base_url, api_key="sk-test", num_retries=0)
            assert len(server.requests) == 1

        Or enqueue one error reply per attempt to test a retry itself. A 400 is not retried.

    Timing
        ``delay``: seconds before anything is sent (the status line included).
        ``ttft``: for a stream, extra seconds after the response headers and before the
        first chunk (the role chunk is sent together with the first content chunk).
        ``chunk_delay``: seconds between two content chunks of a stream.
        ``chunks``: how many content chunks a stream splits ``text`` into. ``None``: one per
        word, each word keeping the whitespace that follows it, so that the chunks joined
        give ``text`` exactly. A number: that many chunks, cut at word boundaries when there
        are enough words and inside words otherwise (never more chunks than characters).
        A Gemini stream sends ``finishReason`` and ``usageMetadata`` with its last chunk
        only.

    Other
        ``model``: the model name reported in the response (default: the requested one):
        OpenAI and Anthropic ``model``, Gemini ``modelVersion``; litellm:
        ``response.model``. Bedrock Converse reports no model: there litellm's
        ``response.model`` is always the requested model id and ``model`` is not sent.
        ``finish_reason``: OpenAI ``finish_reason``. On the Anthropic route it becomes
        ``stop_reason``: ``stop`` -> ``end_turn``, ``length`` -> ``max_tokens``,
        ``tool_calls`` -> ``tool_use``, ``content_filter`` -> ``refusal``; on the Gemini
        route ``finishReason``: ``stop`` -> ``STOP``, ``length`` -> ``MAX_TOKENS``,
        ``content_filter`` -> ``SAFETY``; on the Bedrock route ``stopReason``: ``stop`` ->
        ``end_turn``, ``length`` -> ``max_tokens``, ``tool_calls`` -> ``tool_use``,
        ``content_filter`` -> ``content_filtered``. Any other value is sent as it is.
        ``tool_calls`` (OpenAI route): the tool calls of the answer, each ``{"name": ...,
        "arguments": {...} or a JSON text}`` (an ``id`` is made up when none is given);
        with them ``finish_reason`` defaults to ``tool_calls``. Streamed as OpenAI streams
        them: a chunk with the id and name, then the arguments in two pieces.
        ``logprobs`` (OpenAI route, not streamed): one log-probability per output token,
        sent as ``choices[0].logprobs.content`` with a made-up token each.
    """

    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    include_usage: bool = True
    status: int = 200
    delay: float = 0.0
    ttft: float = 0.0
    chunk_delay: float = 0.0
    chunks: int | None = None
    model: str | None = None
    finish_reason: str = "stop"
    audio_input_tokens: int = 0
    image_input_tokens: int = 0
    audio_output_tokens: int = 0
    image_output_tokens: int = 0
    cache_write_1h_tokens: int | None = None
    service_tier: str | None = None
    traffic_type: str | None = None
    inference_geo: str | None = None
    speed: str | None = None
    url_citations: list[str] | None = None
    cache_type: str | None = None
    web_search_requests: int | None = None
    cached_audio_tokens: int = 0
    cached_image_tokens: int = 0
    video_input_tokens: int = 0
    video_output_tokens: int = 0
    grounding_queries: list[str] | None = None
    maps_grounding_queries: list[str] | None = None
    cache_write_12h_tokens: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    logprobs: list[float] | None = None
    error_body: dict[str, Any] | None = None
    usage_fields: dict[str, Any] | None = None
    usage_unasked: bool = False

    def __post_init__(self) -> None:
        for name in (
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "audio_input_tokens",
            "image_input_tokens",
            "audio_output_tokens",
            "image_output_tokens",
            "cached_audio_tokens",
            "cached_image_tokens",
            "video_input_tokens",
            "video_output_tokens",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"Reply.{name} must not be negative")
        for name in ("cache_write_1h_tokens", "cache_write_12h_tokens", "web_search_requests"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Reply.{name} must not be negative")
        if self.cache_write_1h_tokens is not None and (
            self.cache_write_1h_tokens > self.cache_write_tokens
        ):
            raise ValueError(
                "Reply.cache_write_1h_tokens is the 1-hour part of cache_write_tokens and "
                "must not exceed it"
            )
        if self.cache_write_12h_tokens is not None and (
            (self.cache_write_1h_tokens or 0) + self.cache_write_12h_tokens
            > self.cache_write_tokens
        ):
            raise ValueError(
                "Reply.cache_write_12h_tokens is the 12-hour part of cache_write_tokens and, "
                "with cache_write_1h_tokens, must not exceed it"
            )
        if self.cached_audio_tokens + self.cached_image_tokens > self.cached_tokens:
            raise ValueError(
                "Reply.cached_audio_tokens + cached_image_tokens are parts of cached_tokens and "
                "must not exceed it"
            )
        if self.cached_audio_tokens > self.audio_input_tokens:
            raise ValueError(
                "Reply.cached_audio_tokens is the cached part of audio_input_tokens and must "
                "not exceed it"
            )
        if self.cached_image_tokens > self.image_input_tokens:
            raise ValueError(
                "Reply.cached_image_tokens is the cached part of image_input_tokens and must "
                "not exceed it"
            )
        for name in ("grounding_queries", "maps_grounding_queries"):
            queries = getattr(self, name)
            if queries is not None and (
                isinstance(queries, str)
                or not isinstance(queries, Sequence)
                or not all(isinstance(query, str) for query in queries)
            ):
                raise ValueError(f"Reply.{name} must be a list of strings")
        if self.grounding_queries is not None and self.maps_grounding_queries is not None:
            raise ValueError(
                "Reply.grounding_queries and maps_grounding_queries cannot both be given: "
                "Gemini sends one groundingMetadata per candidate"
            )
        for name in ("delay", "ttft", "chunk_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"Reply.{name} must not be negative")
        if self.prompt_tokens is not None and (
            self.prompt_tokens < self.cached_tokens + self.cache_write_tokens
        ):
            raise ValueError(
                "Reply.prompt_tokens is the total input and must include "
                "cached_tokens + cache_write_tokens"
            )
        if self.prompt_tokens is not None and self.prompt_tokens < (
            self.audio_input_tokens + self.image_input_tokens + self.video_input_tokens
        ):
            raise ValueError(
                "Reply.prompt_tokens is the total input and must include "
                "audio_input_tokens + image_input_tokens + video_input_tokens"
            )
        if self.completion_tokens is not None and self.completion_tokens < (
            self.reasoning_tokens
            + self.audio_output_tokens
            + self.image_output_tokens
            + self.video_output_tokens
        ):
            raise ValueError(
                "Reply.completion_tokens is the total output and must include reasoning_tokens "
                "+ audio_output_tokens + image_output_tokens + video_output_tokens"
            )
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("Reply.chunks must be at least 1")
        if self.usage_fields is not None and (
            not isinstance(self.usage_fields, Mapping)
            or not all(isinstance(name, str) for name in self.usage_fields)
        ):
            raise ValueError("Reply.usage_fields must be a mapping of field names to values")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status {self.status} is not an HTTP status")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake server received.

    ``path``: the request path (query string included); ``headers``: the request headers
    with lower-case names; ``body``: the parsed JSON body (``None`` when the body was empty
    or not JSON); ``received_at``: ``time.time()`` when the request arrived; ``method``: the
    HTTP method.
    """

    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    method: str = "POST"


@dataclass(frozen=True)
class Usage:
    """Resolved token counts of one answer (internal). ``prompt``/``completion`` are totals."""

    prompt: int
    completion: int
    cached: int
    cache_write: int
    reasoning: int
    audio_input: int = 0
    image_input: int = 0
    audio_output: int = 0
    image_output: int = 0
    cache_write_1h: int | None = None
    service_tier: str | None = None
    traffic_type: str | None = None
    inference_geo: str | None = None
    speed: str | None = None
    cache_type: str | None = None
    web_search_requests: int | None = None
    cached_audio: int = 0
    cached_image: int = 0
    video_input: int = 0
    video_output: int = 0
    grounding_queries: tuple[str, ...] | None = None
    maps_grounding_queries: tuple[str, ...] | None = None
    cache_write_12h: int | None = None
    fields: tuple[tuple[str, Any], ...] = ()  # Reply.usage_fields, sent as they are

    @property
    def anthropic_input(self) -> int:
        """Anthropic ``input_tokens``: the prompt without cache reads and writes."""
        return self.prompt - self.cached - self.cache_write

    @property
    def cache_write_5m(self) -> int:
        """The 5-minute part of the cache writes (all of them when no split is scripted)."""
        return self.cache_write - (self.cache_write_1h or 0)

    @property
    def cache_write_30m(self) -> int:
        """OpenAI's 30-minute part of the cache writes: all but the 12-hour part."""
        return self.cache_write - (self.cache_write_12h or 0)

    @property
    def text_input(self) -> int:
        """Prompt tokens that are neither audio, image nor video."""
        return self.prompt - self.audio_input - self.image_input - self.video_input

    @property
    def cached_text(self) -> int:
        """Cached prompt tokens that are neither audio nor image."""
        return self.cached - self.cached_audio - self.cached_image

    @property
    def text_output(self) -> int:
        """Completion tokens that are neither reasoning, audio, image nor video."""
        return (
            self.completion
            - self.reasoning
            - self.audio_output
            - self.image_output
            - self.video_output
        )


def count_words(text: str) -> int:
    """The number of whitespace-separated words of ``text``."""
    return len(text.split())


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of parts (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def conversation(body: Any, *, anthropic: bool = False) -> list[Mapping[str, Any]]:
    """The messages of a request body; Anthropic's ``system`` comes first as a message."""
    if not isinstance(body, Mapping):
        return []
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    system = body.get("system") if anthropic else None
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def gemini_conversation(body: Any) -> list[Mapping[str, Any]]:
    """The messages of a Gemini ``generateContent`` body, as chat messages.

    ``systemInstruction`` comes first as a system message; each of ``contents`` becomes a
    message (role ``model`` -> ``assistant``) whose content is its list of ``parts``.
    """
    if not isinstance(body, Mapping):
        return []
    messages: list[Mapping[str, Any]] = []
    system = body.get("systemInstruction") or body.get("system_instruction")
    if isinstance(system, Mapping):
        messages.append({"role": "system", "content": system.get("parts") or []})
    for item in body.get("contents") or []:
        if isinstance(item, Mapping):
            role = "assistant" if item.get("role") == "model" else str(item.get("role") or "user")
            messages.append({"role": role, "content": item.get("parts") or []})
    return messages


def bedrock_conversation(body: Any) -> list[Mapping[str, Any]]:
    """The messages of a Bedrock Converse body; its ``system`` blocks come first as one."""
    if not isinstance(body, Mapping):
        return []
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    system = body.get("system")
    if isinstance(system, list) and system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def default_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """``"Echo: "`` + the content of the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return "Echo: " + content_text(message.get("content"))
    return "Echo: "


def default_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """``sum(words(content) + 3 for each message) + 3``."""
    return sum(count_words(content_text(m.get("content"))) + 3 for m in messages) + 3


def resolve(
    reply: Reply,
    body: Any,
    *,
    anthropic: bool = False,
    messages: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[str, Usage]:
    """The answer text and token counts that ``reply`` gives to the request ``body``.

    ``messages``: the conversation when it is not OpenAI- or Anthropic-shaped (Gemini,
    Bedrock); by default it is read from ``body``.
    """
    if messages is None:
        messages = conversation(body, anthropic=anthropic)
    if reply.text is not None:
        text = reply.text
    else:  # an answer of tool calls alone has no text
        text = "" if reply.tool_calls else default_text(messages)
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = max(
            default_prompt_tokens(messages),
            reply.cached_tokens + reply.cache_write_tokens,
            reply.audio_input_tokens + reply.image_input_tokens + reply.video_input_tokens,
        )
    completion = reply.completion_tokens
    if completion is None:
        completion = max(
            1,
            count_words(text),
            reply.reasoning_tokens
            + reply.audio_output_tokens
            + reply.image_output_tokens
            + reply.video_output_tokens,
        )
    usage = Usage(
        prompt=prompt,
        completion=completion,
        cached=reply.cached_tokens,
        cache_write=reply.cache_write_tokens,
        reasoning=reply.reasoning_tokens,
        audio_input=reply.audio_input_tokens,
        image_input=reply.image_input_tokens,
        audio_output=reply.audio_output_tokens,
        image_output=reply.image_output_tokens,
        cache_write_1h=reply.cache_write_1h_tokens,
        service_tier=reply.service_tier,
        traffic_type=reply.traffic_type,
        inference_geo=reply.inference_geo,
        speed=reply.speed,
        cache_type=reply.cache_type,
        web_search_requests=reply.web_search_requests,
        cached_audio=reply.cached_audio_tokens,
        cached_image=reply.cached_image_tokens,
        video_input=reply.video_input_tokens,
        video_output=reply.video_output_tokens,
        grounding_queries=None
        if reply.grounding_queries is None
        else tuple(reply.grounding_queries),
        maps_grounding_queries=None
        if reply.maps_grounding_queries is None
        else tuple(reply.maps_grounding_queries),
        cache_write_12h=reply.cache_write_12h_tokens,
        fields=tuple((reply.usage_fields or {}).items()),
    )
    return text, usage


_WORD = re.compile(r"\s*\S+\s*")


def split_chunks(text: str, chunks: int | None) -> list[str]:
    """Cut ``text`` into stream pieces whose concatenation is exactly ``text``.

    ``None``: one piece per word (with the whitespace after it; leading whitespace goes with
    the first word). A number ``n``: ``n`` pieces, cut between words when there are at least
    ``n`` words, else cut evenly by characters (at most ``len(text)`` pieces).
    """
    if not text:
        return []
    words = _WORD.findall(text) or [text]
    if chunks is None:
        return words
    if chunks <= len(words):
        return [
            "".join(words[len(words) * i // chunks : len(words) * (i + 1) // chunks])
            for i in range(chunks)
        ]
    n = min(chunks, len(text))
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]
