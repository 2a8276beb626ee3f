"""What the eval runner needs from a gateway: an async call and an async embedding, and a
few fields of their results.

:class:`llmops.gateway.Gateway` satisfies :class:`EvalGateway` (mypy checks it where the
CLI hands a Gateway to the :class:`~llmops.evals.runner.Runner`); so can a test double.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from llmops.prompts import Prompt


class EvalUsage(Protocol):
    """The token counts of a call (stored with a cached answer)."""

    @property
    def prompt_tokens(self) -> int: ...

    @property
    def completion_tokens(self) -> int: ...


class EvalCompletion(Protocol):
    """The fields of a call's result that the runner reads."""

    @property
    def text(self) -> str: ...

    @property
    def call_id(self) -> str: ...

    @property
    def cost_usd(self) -> float | None: ...

    @property
    def latency_ms(self) -> float: ...

    @property
    def usage(self) -> EvalUsage: ...

    @property
    def tool_calls(self) -> list[dict[str, Any]]: ...

    @property
    def finish_reason(self) -> str | None: ...

    @property
    def logprobs(self) -> list[float] | None: ...


class EvalEmbedding(Protocol):
    """The fields of an embeddings call's result that the runner reads."""

    @property
    def vectors(self) -> list[list[float]]: ...

    @property
    def call_id(self) -> str: ...

    @property
    def cost_usd(self) -> float | None: ...

    @property
    def latency_ms(self) -> float: ...


class EvalGateway(Protocol):
    """A recorded model call: a prompt version and its variables (a case), or ``model`` and
    ``messages`` (a judge), and embeddings (``similar``, ``answer-relevance``); other
    keyword arguments go to the provider call."""

    async def acomplete(
        self,
        prompt: Prompt | None = None,
        variables: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **litellm_kwargs: Any,
    ) -> EvalCompletion: ...

    async def aembed(
        self,
        input: str | list[str],
        *,
        model: str,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **litellm_kwargs: Any,
    ) -> EvalEmbedding: ...
