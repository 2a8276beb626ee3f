"""Recorded production calls for the from-calls and score tests: a registry prompt, real
calls through a real Gateway to the fake model server, real feedback."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import PromptRepo

PROMPT = """\
model: gpt-4o-mini
input_schema:
  type: object
  required: [question]
  properties:
    question: {type: string}
    plan: {type: string, default: free}
messages:
  - role: system
    content: You answer support questions for the {{ plan }} plan.
  - role: user
    content: "{{ question }}"
"""


@dataclass
class Production:
    """Makes calls of ``support/answer`` at chosen times, in a chosen content mode."""

    repo: PromptRepo
    server: Any
    make_gateway: Any
    database_url: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    _gateways: dict[str, Any] = field(default_factory=dict)
    _clock: dict[str, datetime] = field(default_factory=dict)

    def gateway(self, content: str = "full") -> Any:
        if content not in self._gateways:
            self._gateways[content] = self.make_gateway(
                prompts=self.repo.prompts,
                content=content,
                clock=lambda: self._clock["t"],
            )
        return self._gateways[content]

    def call(
        self,
        question: str,
        *,
        minutes_ago: float = 60,
        content: str = "full",
        model: str = "gpt-4o-mini",
        tags: list[str] | None = None,
        feedback: dict[str, float] | None = None,
        comment: str | None = None,
        **variables: Any,
    ) -> str:
        """One recorded call (the fake server echoes the question); returns its id."""
        self._clock["t"] = self.now - timedelta(minutes=minutes_ago)
        gw = self.gateway(content)
        result = gw.complete(
            "support/answer",
            {"question": question, **variables},
            model=model,
            tags=tags,
            api_base=self.server.base_url,
            api_key="sk-test",
            num_retries=0,
        )
        for name, score in (feedback or {}).items():
            gw.feedback(result.call_id, score, name=name, comment=comment)
        return str(result.call_id)

    def raw_call(self, text: str, *, minutes_ago: float = 60) -> str:
        """A call with raw messages, as if of the prompt (no variables stored)."""
        self._clock["t"] = self.now - timedelta(minutes=minutes_ago)
        result = self.gateway().complete(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": text}],
            api_base=self.server.base_url,
            api_key="sk-test",
            num_retries=0,
        )
        return str(result.call_id)

    def flush(self) -> None:
        for gw in self._gateways.values():
            assert gw.flush(timeout=30)


def production(repo: PromptRepo, server: Any, make_gateway: Any, database_url: str) -> Production:
    repo.write("support/answer.yaml", PROMPT)
    repo.commit("support/answer")
    return Production(repo, server, make_gateway, database_url)
