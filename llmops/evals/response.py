"""What a response says besides its text: why it stopped, how sure the model was, and the
tool calls it made (promptfoo's finish-reason, perplexity, perplexity-score,
is-valid-openai-tools-call and tool-call-f1)."""

from __future__ import annotations

import json
import math
from typing import Any

from llmops import jsonschemas

# promptfoo's normalization of providers' stop reasons to OpenAI's names
FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "pause_turn",
}


def normalize_finish_reason(reason: str | None) -> str | None:
    """OpenAI's name for a provider's finish reason (``end_turn`` is ``stop``,
    ``max_tokens`` is ``length``, ``tool_use`` is ``tool_calls``); unknown ones lower-cased."""
    if not isinstance(reason, str) or not reason.strip():
        return None
    key = reason.strip().lower()
    return FINISH_REASONS.get(key, key)


def perplexity(logprobs: list[float]) -> float:
    """``exp(-mean log-probability)`` of the output tokens (1 is certain; higher is less)."""
    return math.exp(-sum(logprobs) / len(logprobs))


def perplexity_score(logprobs: list[float]) -> float:
    """promptfoo's normalized score: the logistic function of the mean log-probability
    (0.5 for certain tokens, towards 0 as the model grows unsure)."""
    return 1 / (1 + math.exp(-sum(logprobs) / len(logprobs)))


def offered_tools(params: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The functions a request offered: its ``tools`` (OpenAI's ``{type: function,
    function: {...}}``), else the legacy ``functions``, each as the function's mapping."""
    tools = params.get("tools")
    if isinstance(tools, list):
        return [
            t["function"]
            for t in tools
            if isinstance(t, dict)
            and t.get("type") == "function"
            and isinstance(t.get("function"), dict)
        ]
    functions = params.get("functions")
    if isinstance(functions, list):
        return [f for f in functions if isinstance(f, dict)]
    return None


def tool_call_problem(calls: list[dict[str, Any]], functions: list[dict[str, Any]]) -> str | None:
    """Why the tool calls are not valid calls of the offered functions, or None: each names
    an offered function, and its arguments are a JSON object matching the function's
    ``parameters`` schema."""
    by_name = {f.get("name"): f for f in functions}
    for index, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            return f"tool call {index + 1} has no function name"
        name = function["name"]
        if name not in by_name:
            offered = ", ".join(sorted(str(n) for n in by_name)) or "none"
            return f"called {name!r}, which the request did not offer (offered: {offered})"
        text = function.get("arguments")
        if not isinstance(text, str):
            return f"{name}: arguments are not JSON text"
        try:
            arguments = json.loads(text) if text.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            return f"{name}: arguments are not valid JSON: {text[:80]!r}"
        schema = by_name[name].get("parameters")
        if schema is None:
            continue
        if not isinstance(schema, dict):
            raise ValueError(f"tool {name!r}: parameters must be a JSON Schema (a mapping)")
        problem = jsonschemas.schema_problem(schema)
        if problem is not None:
            raise ValueError(f"tool {name!r}: parameters are not a valid JSON Schema: {problem}")
        try:  # no $ref is fetched; a pattern that backtracks stops at 1 s
            found = jsonschemas.errors(schema, arguments, seconds=1.0)
        except jsonschemas.Unresolvable as exc:
            problem = f"tool {name!r}: parameters: cannot resolve $ref {exc.ref!r}"
            raise ValueError(problem) from None
        error = found[0] if found else None
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            return f"{name}: arguments do not match its parameters: {where}: {error.message}"
    return None


def called_names(calls: list[dict[str, Any]]) -> set[str]:
    """The names of the functions the tool calls call."""
    names = set()
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return names


def f1(expected: set[str], called: set[str]) -> tuple[float, float, float]:
    """``(F1, precision, recall)`` of the called names against the expected ones, as sets."""
    hits = len(expected & called)
    precision = hits / len(called) if called else 0.0
    recall = hits / len(expected) if expected else 0.0
    total = precision + recall
    return (2 * precision * recall / total if total else 0.0), precision, recall
