"""A simulated LLM provider: a deterministic model behind a local, provider-compatible server.

:class:`FakeLLMServer` listens on ``127.0.0.1`` (a free port) and speaks the OpenAI,
Anthropic, Gemini and Bedrock wire formats, streamed or not, over real HTTP; it answers with
scripted :class:`Reply` objects and records every request as a :class:`RecordedRequest`.
:class:`SimulatedModel` (:func:`simulate` as a responder) answers from what the prompt says,
deterministically, so two versions of a prompt really answer differently, with realistic
token counts. What it knows about products comes from a :class:`World`; ``World()``, the
default, knows no product (see :mod:`llmops.simulate.model`)::

    from llmops.simulate import FakeLLMServer, SimulatedModel

    with FakeLLMServer(responder=SimulatedModel(latency=0.02)) as server:
        litellm.completion(model="gpt-4o-mini", api_base=server.base_url, ...)

``llmops demo`` and ``llmops eval run --offline`` answer through it with the demo's world
(:data:`llmops.demo.knowledge.ACME`). The test-helper package (``testing``, next to this one)
re-exports the server and the model for tests.

Standard library only: this package imports nothing else from llmops, nor litellm.
"""

from __future__ import annotations

from llmops.simulate._reply import RecordedRequest, Reply
from llmops.simulate._server import FakeLLMServer, Responder
from llmops.simulate.model import SimulatedModel, count_sentences, simulate
from llmops.simulate.world import GENERIC_FIX, GENERIC_TOPIC, Fix, World

__all__ = [
    "GENERIC_FIX",
    "GENERIC_TOPIC",
    "FakeLLMServer",
    "Fix",
    "RecordedRequest",
    "Reply",
    "Responder",
    "SimulatedModel",
    "World",
    "count_sentences",
    "simulate",
]
