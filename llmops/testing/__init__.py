"""Test helpers: a fake model server, OpenAI- and Anthropic-compatible, over real HTTP.

:class:`FakeLLMServer` listens on ``127.0.0.1`` (a free port) and answers
``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic), streamed or
not, with scripted :class:`Reply` objects; it records every request as a
:class:`RecordedRequest`. Point litellm at it with ``api_base=server.base_url`` (OpenAI-style
models) or ``api_base=server.anthropic_base_url`` (``anthropic/`` models)::

    from llmops.testing import FakeLLMServer, Reply

    with FakeLLMServer() as server:
        server.enqueue(Reply(text="Paris", prompt_tokens=20, completion_tokens=1))
        response = litellm.completion(
            model="openai/gpt-4o-mini",
            api_base=server.base_url,
            api_key="sk-test",
            messages=[{"role": "user", "content": "Capital of France?"}],
        )

With nothing scripted the server echoes the last user message. For answers that depend
on what the prompt says (two prompt versions really answer differently), give it the
deterministic simulated model of :mod:`llmops.simulate.model` as its responder::

    from llmops.testing import FakeLLMServer, SimulatedModel

    with FakeLLMServer(responder=SimulatedModel(latency=0.02)) as server:
        ...

These are the objects of :mod:`llmops.simulate` (where they live, with ``World``, what the
simulated model knows about products), re-exported here as the API for tests. The package
uses only the standard library; it does not import litellm. Code outside tests imports
:mod:`llmops.simulate`, not this module.
"""

from __future__ import annotations

from llmops.simulate import FakeLLMServer, RecordedRequest, Reply, SimulatedModel, simulate

__all__ = ["FakeLLMServer", "RecordedRequest", "Reply", "SimulatedModel", "simulate"]
