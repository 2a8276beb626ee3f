"""Production calls as eval cases: ``llmops eval cases from-calls``.

Recorded calls of a registry prompt stored their variables (``request["variables"]``, as
the content mode allowed: as given, or redacted). Each picked call becomes one case of the
JSONL cases format (``cases_file:``) with its variables, and what happened in production
in its ``metadata``: the call, the version and model that answered, the feedback it got
and the answer itself as ``reference``. Redacted variables and answers stay redacted.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from llmops.errors import ConfigError
from llmops.evals.sampling import SampleSize, sample
from llmops.store.queries.recorded import (
    FEEDBACK_OPERATORS,
    CallSelection,
    FeedbackCondition,
    StoredCall,
    read_calls,
    stream_candidates,
)

#: ``--assert``: which assertion on the production answer each case gets (none: a
#: reviewer adds them).
REFERENCE_ASSERTIONS = ("none", "equals", "rouge-n", "llm-rubric")

RUBRIC = (
    "The output gives the same answer as this reference answer from production (it may be "
    "worded differently, but it must not contradict it or leave out what it says):\n\n"
)

_CONDITION = re.compile(r"\s*(.+?)\s*(<=|>=|<|>|=)\s*(\S+)\s*")
MAX_FEEDBACK_NAME = 100


def parse_feedback_condition(text: str, option: str = "--feedback") -> FeedbackCondition:
    """``thumbs<1``, ``stars<=2``, ``score:helpful>=0.5``, ``rating=0``."""
    match = _CONDITION.fullmatch(text)
    if match is None or match[1].endswith(("<", ">", "=")):
        forms = ", ".join(f"NAME{op}SCORE" for op in FEEDBACK_OPERATORS)
        raise ConfigError(f"{option} {text!r}: expected {forms} (e.g. thumbs<1)")
    name, op, value = match.groups()
    if len(name) > MAX_FEEDBACK_NAME:
        raise ConfigError(f"{option} {text!r}: a feedback name has at most 100 characters")
    try:
        score = float(value)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: {value!r} is not a number") from None
    if score != score or score in (float("inf"), float("-inf")):
        raise ConfigError(f"{option} {text!r}: the score must be a finite number")
    return FeedbackCondition(name, op, score)


@dataclass
class Export:
    """The cases written and what was left out, for the summary."""

    lines: list[str]
    matched: int = 0  # calls the filters matched
    without_variables: int = 0  # of them, with no stored variables: skipped
    duplicates: int = 0  # of them, an older call with the same variables: skipped
    without_reference: int = 0  # cases whose call has no stored answer (a failed call)
    redacted: int = 0  # cases whose variables or answer hold redaction placeholders

    @property
    def cases(self) -> int:
        return len(self.lines)


def export_cases(
    engine: Engine,
    selection: CallSelection,
    *,
    size: SampleSize | None = None,
    seed: int = 0,
    reference_assert: str = "none",
) -> Export:
    """The picked calls as JSONL lines, newest first. Calls are deduplicated by their
    variables (the newest of identical inputs is kept) before sampling."""
    if reference_assert not in REFERENCE_ASSERTIONS:
        raise ConfigError(
            f"--assert {reference_assert!r}: expected one of {', '.join(REFERENCE_ASSERTIONS)}"
        )
    export = Export(lines=[])
    same_input: dict[bytes, int] = {}  # digest of the variables -> calls with them

    def distinct() -> Iterator[tuple[str, tuple[int, bytes]]]:
        for candidate in stream_candidates(engine, selection):
            export.matched += 1
            if not isinstance(candidate.variables, dict):
                export.without_variables += 1
                continue
            digest = _digest(candidate.variables)
            if digest in same_input:
                same_input[digest] += 1
                export.duplicates += 1
                continue
            same_input[digest] = 1
            yield candidate.id, (export.matched, digest)

    picked = sorted(sample(distinct(), size, seed), key=lambda item: item[1][0])  # newest first
    digests = {call_id: digest for call_id, (_, digest) in picked}
    for call in read_calls(engine, [call_id for call_id, _ in picked]):
        if call.variables is None:  # changed since it was picked (pruned): skip it
            export.without_variables += 1
            continue
        case = case_of(call, same_input.get(digests[call.id], 1), reference_assert)
        if call.response_text is None:
            export.without_reference += 1
        if _has_placeholder(call):
            export.redacted += 1
        export.lines.append(jsonl_line(case))
    return export


def case_of(call: StoredCall, same_input: int, reference_assert: str) -> dict[str, Any]:
    """One call as a case: id ``call-<call id>``, its variables, and what happened in
    production (``metadata``), with an assertion on the answer when asked for."""
    metadata: dict[str, Any] = {
        "call_id": call.id,
        "created_at": call.created_at.isoformat(),
        "prompt": call.prompt_name,
        "prompt_version": call.prompt_version,
        "model": call.model,
        "status": call.status,
        "cost_usd": call.cost_usd,
        "latency_ms": call.latency_ms,
    }
    if call.tags:
        metadata["tags"] = call.tags
    if call.feedback:
        metadata["feedback"] = [
            {"name": f.name, "score": f.score, **({"comment": f.comment} if f.comment else {})}
            for f in call.feedback
        ]
    if same_input > 1:
        metadata["calls_with_these_vars"] = same_input
    case: dict[str, Any] = {"id": f"call-{call.id}", "vars": call.variables or {}}
    reference = call.response_text
    if reference is not None:
        metadata["reference"] = reference
        if reference_assert != "none":
            case["assert"] = [reference_assertion(reference_assert, reference)]
    case["metadata"] = metadata
    return case


def reference_assertion(kind: str, reference: str) -> dict[str, Any]:
    """An assertion comparing the new output with the production answer, the answer's
    text escaped so that the case's variables never render into it."""
    value = escape_template(reference)
    if kind == "llm-rubric":
        value = RUBRIC + value
    return {"type": kind, "value": value, "metric": "reference"}


def escape_template(text: str) -> str:
    """``text`` as an assertion value that renders to itself: assertion values are
    templates (``{{ city }}``), so a ``{`` of an answer that holds template syntax is
    written as the expression ``{{ "{" }}``."""
    if "{{" not in text and "{%" not in text:
        return text  # not rendered at all
    return text.replace("{", '{{ "{" }}')


def jsonl_line(case: dict[str, Any]) -> str:
    """One case as one JSONL line: the line separators JSON leaves raw (U+2028, U+2029,
    U+0085, which ``str.splitlines`` splits on) are written as escapes."""
    line = json.dumps(case, ensure_ascii=False, default=str)
    for raw, escaped in (("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\x85", "\\u0085")):
        line = line.replace(raw, escaped)
    return line


def _digest(variables: dict[str, Any]) -> bytes:
    text = json.dumps(variables, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


_PLACEHOLDER = re.compile(
    r"\[(?:REDACTED|API_KEY|AWS_ACCESS_KEY|AWS_SECRET|TOKEN|JWT|PASSWORD|SECRET|PRIVATE_KEY|"
    r"EMAIL|PHONE|CARD_NUMBER|IBAN|SSN|IP_ADDRESS)\]"
)


def _has_placeholder(call: StoredCall) -> bool:
    text = json.dumps(call.variables, ensure_ascii=False, default=str) + (call.response_text or "")
    return _PLACEHOLDER.search(text) is not None
