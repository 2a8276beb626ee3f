"""Grading one output with one assertion: checks, sets, and the calls to judge and
embedding models (through the gateway, cached, their cost counted).

The eval runner grades every case with a :class:`Grader`; ``llmops score`` grades recorded
production calls with one too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from llmops.evals import graders
from llmops.evals.assertions import (
    Context,
    Outcome,
    RenderProblem,
    broken,
    check,
    combine_set,
    finish,
    transformed,
    with_vars,
)
from llmops.evals.cache import CachedResponse, ResponseCache, cache_key
from llmops.evals.protocols import EvalGateway
from llmops.evals.suite import Assertion

JUDGE_SYSTEM = (
    "You are grading an AI assistant's output against a rubric. Read the rubric and the "
    "output, then answer with JSON only: "
    '{"reason": "<one sentence>", "pass": true|false, "score": <number from 0 to 1>}.'
)


class Grader:
    """Grades outputs; judge and embedding calls go through ``gateway`` with ``judge_tags``
    and the response cache."""

    def __init__(
        self,
        gateway: EvalGateway,
        *,
        cache: ResponseCache | None = None,
        call_kwargs: Callable[[str], dict[str, Any]] | None = None,
        cache_scope: str = "live",
        judge_tags: tuple[str, ...] = ("eval", "judge"),
    ) -> None:
        self.gateway = gateway
        self.cache = cache
        self.call_kwargs = call_kwargs or (lambda model: {})
        self.cache_scope = cache_scope
        self.judge_tags = judge_tags  # on the judge's recorded calls

    async def grade(
        self,
        assertion: Assertion,
        output: str,
        context: Context,
        judge: str,
        metadata: dict[str, Any],
        *,
        embedder: str | None = None,
    ) -> tuple[Outcome, float]:
        """One assertion's outcome and what its judge calls cost: an ``llm-rubric`` and the
        model-graded assertions go to the judge model (and ``embedder``), their calls
        recorded with ``metadata``; an ``assert-set`` grades its assertions, the rest are
        checks. ``llmops score`` grades recorded calls with it."""
        prepared = transformed(assertion, output, context)  # its own transform first
        if isinstance(prepared, Outcome):
            return prepared, 0.0
        assertion, output = prepared
        if assertion.base_type == "assert-set":
            children, cost = [], 0.0
            for child in assertion.assert_ or []:
                outcome, spent = await self.grade(
                    child, output, context, judge, metadata, embedder=embedder
                )
                children.append(outcome)
                cost += spent
            return combine_set(assertion, children), cost
        if assertion.base_type == graders.SELECT_BEST:  # once every target ran
            return Outcome(
                assertion.type,
                False,
                0.0,
                "select-best: not graded yet",
                assertion.weight,
                assertion.metric,
            ), 0.0
        if assertion.base_type in graders.MODEL_GRADED:
            return await self._model_graded(assertion, output, context, judge, metadata, embedder)
        if assertion.base_type != "llm-rubric":
            return check(assertion, output, context), 0.0
        try:  # the rubric may name the case's variables ({{ expected }})
            rubric = with_vars(assertion, context.vars)
        except RenderProblem as exc:
            return broken(assertion, f"llm-rubric: {exc}"), 0.0
        return await self._judge(rubric, output, assertion.provider or judge, metadata)

    async def _judge(
        self, assertion: Assertion, output: str, judge: str, metadata: dict[str, Any]
    ) -> tuple[Outcome, float]:
        """Grade with a judge model at temperature 0, through the gateway, cached."""
        messages = [
            {"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": f"Rubric:\n{assertion.value}\n\nOutput:\n{output}"},
        ]
        try:
            text, cost = await self.ask(messages, judge, metadata)
        except JudgeCallFailed as exc:
            return broken(assertion, str(exc)), 0.0
        verdict = parse_verdict(text)
        if verdict is None:
            return broken(assertion, f"judge gave no verdict: {text[:120]!r}"), cost
        score, judged_pass, reason = verdict
        threshold = assertion.threshold if assertion.threshold is not None else 0.5
        return finish(
            assertion, score, f"judge: {reason}", passed=judged_pass and score >= threshold
        ), cost

    async def ask(
        self, messages: list[dict[str, Any]], judge: str, metadata: dict[str, Any]
    ) -> tuple[str, float]:
        """Send judge messages at temperature 0 through the gateway, cached: the answer and
        what it cost (0 from the cache). Raises :class:`JudgeCallFailed`."""
        params: dict[str, Any] = {"temperature": 0}
        key = cache_key(judge, messages, params, 0, self.cache_scope)
        params["drop_params"] = True  # reasoning models take no temperature
        hit = self.cache.get(key) if self.cache else None
        if hit is not None:
            return hit.text, 0.0
        try:
            completion = await self.gateway.acomplete(
                model=judge,
                messages=messages,
                tags=list(self.judge_tags),
                metadata=metadata,
                **params,
                **self.call_kwargs(judge),
            )
        except Exception as exc:
            raise JudgeCallFailed(f"judge call failed: {type(exc).__name__}: {exc}") from None
        text, cost = completion.text, completion.cost_usd or 0.0
        if self.cache:
            self.cache.put(key, CachedResponse(text, cost, completion.latency_ms, None, None, None))
        return text, cost

    async def _embed(
        self, texts: list[str], model: str, metadata: dict[str, Any]
    ) -> tuple[list[list[float]], float]:
        """One vector per text, through the gateway's embeddings (one call for the texts
        not in the cache; each vector is cached as JSON with its share of the cost): the
        vectors and what they cost. Raises :class:`JudgeCallFailed`."""
        keys = {text: embedding_key(model, text, self.cache_scope) for text in texts}
        vectors: dict[str, list[float]] = {}
        for text, key in keys.items():
            hit = self.cache.get(key) if self.cache else None
            if hit is not None:
                vectors[text] = json.loads(hit.text)
        missing = [text for text in keys if text not in vectors]
        if not missing:
            return [vectors[text] for text in texts], 0.0
        try:
            result = await self.gateway.aembed(
                missing,
                model=model,
                tags=list(self.judge_tags),
                metadata=metadata,
                **self.call_kwargs(model),
            )
        except Exception as exc:
            raise JudgeCallFailed(f"embedding call failed: {type(exc).__name__}: {exc}") from None
        if len(result.vectors) != len(missing):
            raise JudgeCallFailed(
                f"embedding call gave {len(result.vectors)} vectors for {len(missing)} texts"
            )
        cost = result.cost_usd or 0.0
        for text, vector in zip(missing, result.vectors, strict=True):
            vectors[text] = vector
            if self.cache:
                self.cache.put(
                    keys[text],
                    CachedResponse(
                        json.dumps(vector),
                        cost / len(missing),
                        result.latency_ms,
                        None,
                        None,
                        result.call_id,
                    ),
                )
        return [vectors[text] for text in texts], cost

    async def _model_graded(
        self,
        assertion: Assertion,
        output: str,
        context: Context,
        judge: str,
        metadata: dict[str, Any],
        embedder: str | None,
    ) -> tuple[Outcome, float]:
        """A model-graded assertion (:mod:`llmops.evals.graders`): its grader's requests go
        to the judge model and the embedding model; what they cost adds up."""
        try:
            assertion = with_vars(assertion, context.vars)
        except RenderProblem as exc:
            return broken(assertion, f"{assertion.type}: {exc}"), 0.0
        judge = assertion.provider or judge
        embedding_model = graders.embedder(assertion, embedder)
        steps = graders.grading(assertion, output, context)
        answer: Any = None
        cost = 0.0
        try:
            while True:
                request = steps.send(answer)
                if isinstance(request, graders.Ask):
                    answer, spent = await self.ask(request.messages, judge, metadata)
                else:
                    answer, spent = await self._embed(request.texts, embedding_model, metadata)
                cost += spent
        except StopIteration as done:
            verdict: graders.Verdict = done.value
        except (JudgeCallFailed, graders.JudgeProblem) as exc:
            steps.close()
            return broken(assertion, f"{assertion.base_type}: {exc}"), cost
        outcome = finish(assertion, verdict.score, verdict.reason, passed=verdict.passed)
        return outcome, cost


class JudgeCallFailed(Exception):
    """A judge or embedding call failed: the assertion errors."""


def embedding_key(model: str, text: str, scope: str) -> str:
    """The cache key of one text's embedding."""
    return cache_key(model, [{"role": "embedding", "content": text}], {}, 0, scope)


def parse_verdict(text: str) -> tuple[float, bool, str] | None:
    """``(score, pass, reason)`` from a judge's JSON answer (code fences and chatter allowed)."""
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("pass"), bool):
        return None
    score = data.get("score", 1.0 if data["pass"] else 0.0)
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        return None  # NaN and Infinity are JSON to Python: an answer that cannot be read
    return min(max(float(score), 0.0), 1.0), data["pass"], str(data.get("reason", ""))
