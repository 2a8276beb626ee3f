"""Scoring production calls: ``llmops score``.

An assertions file (a YAML list of assertions in the suite format, or ``{assert: [...]}``
with an optional ``judge:``) is checked as a suite's assertions are. Each assertion grades
the stored answer of a sample of recorded calls (their variables as the case's, their cost
and latency from the row) with the eval runner's grading (a Grader), so ``llm-rubric`` asks
a judge model through the gateway (recorded, tagged ``score``). Each result is stored as feedback
on the call, named ``score:METRIC`` (or ``score:TYPE``), with the score in [0, 1] and the
reason as its comment. A call that already has that feedback is not graded again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from llmops.errors import ConfigFileError
from llmops.evals.assertions import Context, Outcome, static_problem
from llmops.evals.grading import Grader
from llmops.evals.runner import prompt_text
from llmops.evals.sampling import SampleSize, sample
from llmops.evals.suite import ASSERTION_TYPES, Assertion
from llmops.files import MAX_YAML_BYTES, line_of, parse_yaml, read_text, validation_message
from llmops.store.queries.recorded import (
    READ_BATCH,
    CallSelection,
    StoredCall,
    count_calls,
    read_calls,
    scored,
    stream_candidates,
)

DEFAULT_PREFIX = "score:"
MAX_NAME = 100  # characters of a feedback name (the column's size)
MAX_COMMENT = 2000  # characters of the reason stored as the comment
SCORER = "llmops score"  # the feedback's user: who gave it
_FILE_KEYS = ("assert", "judge", "description")


@dataclass(frozen=True)
class NamedAssertion:
    """An assertion and the feedback name its results are stored under."""

    name: str
    assertion: Assertion

    @property
    def judged(self) -> bool:
        return _judged(self.assertion)


def _judged(assertion: Assertion) -> bool:
    if assertion.base_type == "llm-rubric":
        return True
    return any(_judged(child) for child in assertion.assert_ or [])


@dataclass(frozen=True)
class AssertionsFile:
    file: str
    assertions: list[NamedAssertion]
    judge: str | None = None


def load_assertions(path: Path, prefix: str = DEFAULT_PREFIX) -> AssertionsFile:
    """Read and check an assertions file; every problem names the file and line."""
    file = str(path)
    text = read_text(path, what="assertions file", max_bytes=MAX_YAML_BYTES)
    data, lines = parse_yaml(text, file)
    judge: str | None = None
    base: tuple[Any, ...] = ()
    if isinstance(data, dict):
        for key in data:
            if key not in _FILE_KEYS:
                raise ConfigFileError(
                    f"unknown field {key!r}: an assertions file has {', '.join(_FILE_KEYS)}",
                    file=file,
                    line=line_of(lines, (key,)),
                )
        judge = data.get("judge")
        if judge is not None and (not isinstance(judge, str) or not judge.strip()):
            raise ConfigFileError(
                "judge: expected a model name", file=file, line=line_of(lines, ("judge",))
            )
        items, base = data.get("assert"), ("assert",)
    else:
        items = data
    if not isinstance(items, list) or not items:
        raise ConfigFileError(
            "expected a list of assertions, or a mapping with `assert:` (a list of them)",
            file=file,
            line=line_of(lines, base) or 1,
        )
    named: list[NamedAssertion] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        at = (*base, index)
        where = f"{'assert' if base else ''}[{index}]"
        line = line_of(lines, at)
        if not isinstance(item, dict):
            raise ConfigFileError(f"{where}: expected a mapping (type: ...)", file=file, line=line)
        kind = item.get("type")
        if isinstance(kind, str) and kind.removeprefix("not-") not in ASSERTION_TYPES:
            raise ConfigFileError(
                f"{where}.type: unknown assertion type {kind!r}",
                file=file,
                line=line_of(lines, (*at, "type")),
            )
        try:
            assertion = Assertion.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            message = validation_message(error, default="assertion")
            raise ConfigFileError(
                f"{where}.{message}", file=file, line=line_of(lines, (*at, *error["loc"]))
            ) from None
        problem = static_problem(assertion, path.parent) or _unscorable(assertion)
        if problem:
            raise ConfigFileError(f"{where}: {problem}", file=file, line=line)
        name = prefix + (assertion.metric or assertion.type)
        if not 0 < len(name) <= MAX_NAME:
            raise ConfigFileError(
                f"{where}: the feedback name {name[:40]!r}... is longer than {MAX_NAME} "
                "characters: give a shorter metric or --name-prefix",
                file=file,
                line=line,
            )
        if name in seen:
            raise ConfigFileError(
                f"{where}: assertions {seen[name] + 1} and {index + 1} would both be stored as "
                f"feedback {name!r}: give one of them another metric",
                file=file,
                line=line,
            )
        seen[name] = index
        named.append(NamedAssertion(name, assertion))
    return AssertionsFile(file, named, judge)


def _unscorable(assertion: Assertion) -> str | None:
    """What a recorded call cannot give an assertion: the prompt's ``output_schema``."""
    if assertion.base_type == "json-schema" and assertion.value in (None, "output_schema"):
        return "json-schema: give the schema as value (a recorded call has no output_schema)"
    for child in assertion.assert_ or []:
        problem = _unscorable(child)
        if problem:
            return problem
    return None


@dataclass
class Tally:
    """One assertion's results over the run."""

    name: str
    to_score: int = 0  # calls it grades (dry run: would grade)
    already: int = 0  # calls that had its feedback already
    scored: int = 0
    passed: int = 0
    errors: int = 0
    score_sum: float = 0.0
    judge_cost: float = 0.0
    first_error: str | None = None

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None


@dataclass
class ScoreRun:
    """What ``score`` did (or, in a dry run, would do)."""

    matched: int = 0  # calls the filters match
    fully_scored: int = 0  # of them, with every assertion's feedback already: not sampled
    sampled: int = 0
    without_content: int = 0  # sampled calls with no stored answer: skipped
    tallies: dict[str, Tally] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(t.errors for t in self.tallies.values())


def score_calls(
    engine: Engine,
    selection: CallSelection,
    assertions: AssertionsFile,
    *,
    size: SampleSize | None = None,
    seed: int = 0,
    grader: Grader | None = None,
    feedback: Callable[[str, float, str, str], object] | None = None,
    judge: str | None = None,
    concurrency: int = 8,
) -> ScoreRun:
    """Grade a sample of the selected calls and store each result with ``feedback(call_id,
    score, name, comment)``. Without a ``grader`` nothing is graded (a dry run): the
    figures say what would be. Calls that have every assertion's feedback already are not
    sampled; a call with some of them is graded by the others only."""
    names = [a.name for a in assertions.assertions]
    run = ScoreRun(tallies={name: Tally(name) for name in names})
    everything = CallSelection(
        selection.filters, selection.tags, selection.min_cost, selection.feedback
    )
    run.matched = count_calls(engine, everything)
    pending = CallSelection(
        selection.filters, selection.tags, selection.min_cost, selection.feedback, tuple(names)
    )
    candidates = ((c.id, c.id) for c in stream_candidates(engine, pending, variables=False))
    picked = [call_id for call_id, _ in sample(candidates, size, seed)]
    run.sampled = len(picked)
    run.fully_scored = run.matched - count_calls(engine, pending)
    base_dir = Path(assertions.file).parent
    for start in range(0, len(picked), READ_BATCH):
        batch = picked[start : start + READ_BATCH]
        done = scored(engine, batch, names)
        jobs: list[tuple[StoredCall, NamedAssertion]] = []
        for call in read_calls(engine, batch):
            if call.response_text is None:
                run.without_content += 1
                continue
            for named in assertions.assertions:
                tally = run.tallies[named.name]
                if (call.id, named.name) in done:
                    tally.already += 1
                else:
                    tally.to_score += 1
                    jobs.append((call, named))
        if grader is not None and jobs:
            asyncio.run(
                _grade_all(
                    grader, jobs, run, base_dir, judge or assertions.judge, feedback, concurrency
                )
            )
    return run


async def _grade_all(
    grader: Grader,
    jobs: list[tuple[StoredCall, NamedAssertion]],
    run: ScoreRun,
    base_dir: Path,
    judge: str | None,
    feedback: Callable[[str, float, str, str], object] | None,
    concurrency: int,
) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(call: StoredCall, named: NamedAssertion) -> None:
        async with semaphore:
            outcome, cost = await grader.grade(
                named.assertion,
                call.response_text or "",
                _context(call, base_dir),
                judge or call.model,
                {"scored_call_id": call.id, "score": named.name},
            )
        tally = run.tallies[named.name]
        tally.judge_cost += cost
        if outcome.error is not None:
            tally.errors += 1
            tally.first_error = tally.first_error or outcome.error
            return
        if feedback is not None:
            feedback(call.id, outcome.score, named.name, _comment(outcome))
        tally.scored += 1
        tally.passed += outcome.passed
        tally.score_sum += outcome.score

    await asyncio.gather(*(one(call, named) for call, named in jobs))


def _context(call: StoredCall, base_dir: Path) -> Context:
    """What the assertions see of a recorded call, as the runner shows them a case."""
    variables = call.variables or {}
    return Context(
        vars=variables,
        cost_usd=call.cost_usd,
        latency_ms=call.latency_ms,
        base_dir=base_dir,
        prompt=prompt_text(call.messages) if call.messages else "",
        test={"vars": variables, "metadata": {"call_id": call.id, "model": call.model}},
        tool_calls=call.tool_calls,
    )


def _comment(outcome: Outcome) -> str:
    text = f"{'pass' if outcome.passed else 'fail'}: {outcome.reason}"
    return text if len(text) <= MAX_COMMENT else text[: MAX_COMMENT - 1] + "\u2026"
