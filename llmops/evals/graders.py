"""Model-graded assertions with promptfoo's names and semantics: ``factuality``,
``model-graded-closedqa``, ``g-eval``, ``answer-relevance``, ``context-faithfulness``,
``context-recall``, ``context-relevance``, ``similar`` (``:cosine``, ``:dot``,
``:euclidean``) and ``select-best``: the judges' prompts, reading their answers, the scores.

Pure: a grader is a generator that yields what it needs, an :class:`Ask` of the judge model
or an :class:`Embed` of texts, is sent the answer (the judge's text, the vectors) and
returns a :class:`Verdict`. The runner sends the requests through the gateway (cached,
recorded, priced). An answer that cannot be read raises :class:`JudgeProblem`: the
assertion errors, it never silently fails.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmops.evals.suite import MODEL_GRADED_TYPES, SIMILAR_TYPES, Assertion
from llmops.evals.suite import SELECT_BEST as SELECT_BEST

if TYPE_CHECKING:
    from llmops.evals.assertions import Context

SIMILAR, MODEL_GRADED = SIMILAR_TYPES, MODEL_GRADED_TYPES
DEFAULT_EMBEDDER = "text-embedding-3-small"

#: promptfoo's minimum scores when an assertion gives no ``threshold`` (``similar:euclidean``:
#: the largest distance)
DEFAULT_THRESHOLDS = {
    "g-eval": 0.7,
    "answer-relevance": 0.0,
    "context-faithfulness": 0.0,
    "context-recall": 0.0,
    "context-relevance": 0.0,
    **{kind: 0.75 for kind in SIMILAR},
}

#: factuality's categories (promptfoo's letters), their ``config`` names and default scores
FACTUALITY = {
    "A": ("subset", 1.0, "a subset of the reference, consistent with it"),
    "B": ("superset", 1.0, "a superset of the reference, consistent with it"),
    "C": ("agree", 1.0, "the same details as the reference"),
    "D": ("disagree", 0.0, "disagrees with the reference"),
    "E": ("differButFactual", 1.0, "differs from the reference in ways that do not matter"),
}
GEVAL_MAX = 10


@dataclass(frozen=True)
class Ask:
    """Messages for the judge model (sent at temperature 0); the answer is its text."""

    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Embed:
    """Texts to embed; the answer is one vector per text, in order."""

    texts: list[str]


@dataclass(frozen=True)
class Verdict:
    score: float  # in [0, 1]
    passed: bool
    reason: str


Grading = Generator[Ask | Embed, Any, Verdict]


class JudgeProblem(Exception):
    """The judge's answer cannot be read, or the case lacks what the grader needs."""


def embedder(assertion: Assertion, suite_embedder: str | None) -> str:
    """The embedding model: a ``similar`` assertion's ``provider``, else the suite's
    ``embedder``, else :data:`DEFAULT_EMBEDDER`."""
    if assertion.base_type in SIMILAR and assertion.provider:
        return assertion.provider
    return suite_embedder or DEFAULT_EMBEDDER


def threshold(assertion: Assertion) -> float:
    if assertion.threshold is not None:
        return assertion.threshold
    return DEFAULT_THRESHOLDS.get(assertion.base_type, 0.5)


def grading(assertion: Assertion, output: str, context: Context) -> Grading:
    """The grader of a :data:`MODEL_GRADED` assertion (its value rendered already)."""
    kind = assertion.base_type
    if kind in SIMILAR:
        return similar(assertion, output)
    return GRADERS[kind](assertion, output, context)


def judge_calls(assertion: Assertion) -> int:
    """How many judge calls grading one output takes at most (``--dry-run`` counts them)."""
    kind = assertion.base_type
    if kind == "g-eval":
        return 2 * (len(assertion.value) if isinstance(assertion.value, list) else 1)
    if kind == "context-faithfulness":
        return 2
    if kind in SIMILAR or kind not in (*MODEL_GRADED, SELECT_BEST):
        return 0  # embeddings only, or no model at all
    return 1


def static_problem(assertion: Assertion) -> str | None:
    """Why a model-graded assertion can never be graded (checked when the suite loads)."""
    kind, value = assertion.base_type, assertion.value
    if kind in SIMILAR:
        texts = value if isinstance(value, list) else [value]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            return f"{kind}: value must be the expected text or a list of them"
        if assertion.threshold is not None:
            if kind == "similar:euclidean":
                if assertion.threshold < 0:
                    return f"{kind}: threshold (the largest distance) must be at least 0"
            elif kind != "similar:dot" and not 0 <= assertion.threshold <= 1:
                return f"{kind}: threshold must be a similarity from 0 to 1"
        return None
    if assertion.threshold is not None and not 0 <= assertion.threshold <= 1:
        return f"{kind}: threshold must be a score from 0 to 1"
    if kind == "g-eval":
        criteria = value if isinstance(value, list) else [value]
        if not criteria or not all(isinstance(c, str) and c.strip() for c in criteria):
            return "g-eval: value must be the criteria (a text, or a list of texts)"
    elif kind in ("factuality", "model-graded-factuality"):
        if not isinstance(value, str) or not value.strip():
            return f"{kind}: value must be the reference answer"
        return _factuality_config_problem(kind, assertion.config)
    elif kind in ("model-graded-closedqa", SELECT_BEST):
        if not isinstance(value, str) or not value.strip():
            return f"{kind}: value must be the criterion"
    elif kind == "context-recall":
        if not isinstance(value, str) or not value.strip():
            return "context-recall: value must be the ground truth"
    elif value is not None and kind in (
        "answer-relevance",
        "context-faithfulness",
        "context-relevance",
    ):
        return f"{kind}: takes no value (it reads the case's variables)"
    return None


def _factuality_config_problem(kind: str, config: dict[str, Any] | None) -> str | None:
    if config is None:
        return None
    names = [name for name, _, _ in FACTUALITY.values()]
    for key, score in config.items():
        if key not in names:
            return f"{kind}: config may set {', '.join(names)}; not {key!r}"
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            return f"{kind}: config {key} must be a score from 0 to 1"
    return None


# -- the judge's plumbing ---------------------------------------------------------------


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (in a sentence or a code fence), or None."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _short(text: str) -> str:
    return repr(text[:120])


def _context(context: Context, kind: str) -> str | list[str]:
    """The case's ``context`` variable (a text, or a list of texts), as promptfoo reads it."""
    value = context.vars.get("context")
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return value
    raise JudgeProblem(f"{kind} needs the case's `context` variable (a text or a list of texts)")


def _query(context: Context, kind: str) -> str:
    value = context.vars.get("query")
    if not isinstance(value, str) or not value:
        raise JudgeProblem(f"{kind} needs the case's `query` variable (the user's question)")
    return value


def joined(context: str | list[str]) -> str:
    """A context of several chunks as one text (chunks apart by a blank line)."""
    return "\n\n".join(context) if isinstance(context, list) else context


# -- factuality --------------------------------------------------------------------------

FACTUALITY_SYSTEM = """\
Compare the facts of a submitted answer with those of a reference (expert) answer to the \
same question. Style, wording, grammar and punctuation do not matter; only the facts do. \
Choose exactly one category:
(A) the submission is a subset of the reference and consistent with it;
(B) the submission is a superset of the reference and consistent with it;
(C) the submission has the same details as the reference;
(D) the submission and the reference disagree;
(E) they differ, but not in a way that matters for factuality.
Answer with JSON only: {"category": "<A|B|C|D|E>", "reason": "<why, briefly>"}"""


def factuality_messages(question: str, reference: str, output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": FACTUALITY_SYSTEM},
        {
            "role": "user",
            "content": f"Question:\n{question}\n\nReference answer:\n{reference}\n\n"
            f"Submitted answer:\n{output}",
        },
    ]


def parse_factuality(text: str) -> tuple[str, str]:
    """``(category letter, reason)`` from the judge's JSON, or from promptfoo's older
    ``(B) reason`` form."""
    data = _json_object(text)
    if data is not None and isinstance(data.get("category"), str):
        letter = data["category"].strip().strip("()").upper()
        if letter not in FACTUALITY:
            raise JudgeProblem(f"judge chose no category A-E: {data['category']!r}")
        reason = str(data.get("reason") or "").strip()
        return letter, reason or FACTUALITY[letter][2]
    match = re.search(r"\(\s*([A-Ea-e])\s*\)", text)
    if match is None:
        raise JudgeProblem(f"judge chose no category A-E: {_short(text)}")
    letter = match.group(1).upper()
    reason = text[match.end() :].strip()
    return letter, reason or FACTUALITY[letter][2]


def factuality_scores(config: dict[str, Any] | None) -> dict[str, float]:
    """The score of each category: promptfoo's defaults (D scores 0, the others 1), or as
    ``config`` sets them (``{subset: 0.5, disagree: 0}``)."""
    given = config or {}
    return {
        letter: float(given.get(name, score)) for letter, (name, score, _) in FACTUALITY.items()
    }


def factuality(assertion: Assertion, output: str, context: Context) -> Grading:
    text = yield Ask(factuality_messages(context.prompt, _text(assertion.value), output))
    letter, reason = parse_factuality(text)
    score = factuality_scores(assertion.config)[letter]
    return Verdict(score, score > 0, f"({letter}) {reason}")


# -- model-graded-closedqa ---------------------------------------------------------------

CLOSEDQA_SYSTEM = """\
You check whether a submission meets a criterion. Reason step by step about the criterion \
first; do not give the conclusion up front. Then end with one line holding only the letter \
Y (the criterion is met) or N (it is not)."""


def closedqa_messages(task: str, criterion: str, output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": CLOSEDQA_SYSTEM},
        {
            "role": "user",
            "content": f"Task:\n{task}\n\nSubmission:\n{output}\n\nCriterion:\n{criterion}",
        },
    ]


def parse_yes_no(text: str) -> bool:
    """The letter on the judge's last line: ``Y`` is True, ``N`` False."""
    lines = _lines(text)
    last = lines[-1].strip("*.`'\" ") if lines else ""
    if last in ("Y", "N"):
        return last == "Y"
    raise JudgeProblem(f"judge did not end with Y or N: {_short(text[-120:])}")


def closedqa(assertion: Assertion, output: str, context: Context) -> Grading:
    text = yield Ask(closedqa_messages(context.prompt, _text(assertion.value), output))
    met = parse_yes_no(text)
    reasoning = " ".join(_lines(text)[:-1])[:300]
    verdict = "meets the criterion" if met else "does not meet the criterion"
    return Verdict(float(met), met, f"{verdict}: {reasoning}" if reasoning else verdict)


# -- g-eval ------------------------------------------------------------------------------

GEVAL_STEPS_SYSTEM = """\
Turn evaluation criteria into 3 or 4 short evaluation steps that check, for any text, \
whether it satisfies the criteria. Answer with minified JSON only: \
{"steps": ["<step>", "<step>", "<step>"]}"""

GEVAL_SYSTEM = f"""\
Rate a reply to a prompt on one metric, following the evaluation steps. Answer with \
minified JSON only: {{"score": <integer from 0 to {GEVAL_MAX}>, "reason": "<short reason>"}}. \
{GEVAL_MAX} means the criteria are fully and clearly met by the reply, 0 that they are not \
met at all. Do not repeat the score in the reason; name what in the prompt and the reply \
led to it."""


def geval_steps_messages(criteria: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": GEVAL_STEPS_SYSTEM},
        {"role": "user", "content": f"Criteria:\n{criteria}"},
    ]


def geval_messages(
    criteria: str, steps: list[str], prompt: str, output: str
) -> list[dict[str, str]]:
    listed = "\n".join(f"- {step}" for step in steps)
    return [
        {"role": "system", "content": GEVAL_SYSTEM},
        {
            "role": "user",
            "content": f"Criteria:\n{criteria}\n\nEvaluation steps:\n{listed}\n\n"
            f"Prompt:\n{prompt}\n\nReply:\n{output}",
        },
    ]


def parse_geval_steps(text: str) -> list[str]:
    data = _json_object(text)
    steps = data.get("steps") if data is not None else None
    if not isinstance(steps, list) or not steps:
        raise JudgeProblem(f"judge proposed no evaluation steps: {_short(text)}")
    if not all(isinstance(step, str) and step.strip() for step in steps):
        raise JudgeProblem(f"judge proposed evaluation steps that are not texts: {_short(text)}")
    return [step.strip() for step in steps]


def parse_geval_score(text: str) -> tuple[float, str]:
    """``(score in [0, 1], reason)``: the judge's 0-10 score divided by 10."""
    data = _json_object(text)
    if data is None:
        raise JudgeProblem(f"judge gave no JSON score: {_short(text)}")
    raw = data.get("score")
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            raw = None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise JudgeProblem(f"judge gave no score: {_short(text)}")
    if not 0 <= raw <= GEVAL_MAX:
        raise JudgeProblem(f"judge's score {raw:g} is outside 0-{GEVAL_MAX}")
    return raw / GEVAL_MAX, str(data.get("reason") or "").strip()


def geval(assertion: Assertion, output: str, context: Context) -> Grading:
    criteria = assertion.value if isinstance(assertion.value, list) else [assertion.value]
    scores, reasons = [], []
    for criterion in map(_text, criteria):
        steps = parse_geval_steps((yield Ask(geval_steps_messages(criterion))))
        text = yield Ask(geval_messages(criterion, steps, context.prompt, output))
        score, reason = parse_geval_score(text)
        scores.append(score)
        reasons.append(reason)
    mean = sum(scores) / len(scores)
    return Verdict(mean, mean >= threshold(assertion), "; ".join(r for r in reasons if r))


# -- answer-relevance --------------------------------------------------------------------

QUESTIONS = 3
QUESTIONS_SYSTEM = f"""\
Write {QUESTIONS} different questions that the given answer answers, one question per \
line, with nothing else: no numbering, no commentary."""


def questions_messages(output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": QUESTIONS_SYSTEM},
        {"role": "user", "content": f"Answer:\n{output}"},
    ]


def parse_questions(text: str) -> list[str]:
    """Up to :data:`QUESTIONS` questions, one a line (list markers dropped)."""
    found = [re.sub(r"^(?:[-*•]|\d+[.)]|Q\d*:)\s*", "", line) for line in _lines(text)]
    questions = [q for q in found if q][:QUESTIONS]
    if not questions:
        raise JudgeProblem(f"judge wrote no questions: {_short(text)}")
    return questions


def answer_relevance(assertion: Assertion, output: str, context: Context) -> Grading:
    """The mean cosine similarity between the query (the case's ``query`` variable, else
    the rendered prompt) and questions the judge says the output answers."""
    query = context.vars.get("query")
    query = query if isinstance(query, str) and query else context.prompt
    questions = parse_questions((yield Ask(questions_messages(output))))
    vectors = yield Embed([query, *questions])
    similarities = [cosine(vectors[0], vector) for vector in vectors[1:]]
    mean = sum(similarities) / len(similarities)
    limit = threshold(assertion)
    return Verdict(_clamp(mean), mean >= limit, f"relevance {mean:.2f} (at least {limit:g})")


# -- context-faithfulness, context-recall, context-relevance (after RAGAS) ----------------

STATEMENTS_SYSTEM = """\
Break the answer to the question into short standalone statements: one or more for each \
of its sentences, each understandable without the others. Write one statement per line, \
with nothing else."""

NLI_SYSTEM = """\
Decide, for each numbered statement, whether the context supports it (what the context \
says or directly implies). For each statement, explain briefly, then write \
"Verdict: Yes." or "Verdict: No.". End with one line: "Final verdict for each statement \
in order:" followed by Yes. or No. for each statement, in order."""

RECALL_SYSTEM = """\
For each sentence of the answer, decide whether the context supports it (it can be \
attributed to the context). Write one line per sentence: the number, the sentence, a short \
reason, then [Attributed] or [Not Attributed]."""

INSUFFICIENT = "Insufficient Information"
RELEVANCE_SYSTEM = f"""\
Copy, unchanged, the sentences of the context that are needed to answer the query, one \
per line, and nothing else. If none are, or the query cannot be answered from the context, \
answer exactly: {INSUFFICIENT}"""
_FINAL = "final verdict for each statement in order:"


def statements_messages(question: str, output: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": STATEMENTS_SYSTEM},
        {"role": "user", "content": f"Question:\n{question}\n\nAnswer:\n{output}"},
    ]


def nli_messages(context: str, statements: list[str]) -> list[dict[str, str]]:
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(statements, start=1))
    return [
        {"role": "system", "content": NLI_SYSTEM},
        {"role": "user", "content": f"Context:\n{context}\n\nStatements:\n{numbered}"},
    ]


def faithfulness_score(text: str, statements: int) -> float:
    """The share of statements supported, from the judge's verdicts (promptfoo's reading:
    the final line's verdicts, else every ``Verdict: yes/no``); a statement without a
    verdict counts as unsupported."""
    lowered = text.lower().strip()
    if _FINAL in lowered:
        tail = lowered[lowered.index(_FINAL) + len(_FINAL) :]
        verdicts = [part for part in tail.split(".") if part.strip()]
        if verdicts:
            unsupported = sum("yes" not in v for v in verdicts)
            missing = max(0, statements - len(verdicts))
            return _clamp(1 - (unsupported + missing) / statements)
    no, yes = lowered.count("verdict: no"), lowered.count("verdict: yes")
    if no + yes == 0:
        raise JudgeProblem(f"judge gave no verdicts: {_short(text)}")
    return _clamp(1 - (no + max(0, statements - no - yes)) / statements)


def context_faithfulness(assertion: Assertion, output: str, context: Context) -> Grading:
    """Supported statements of the output / its statements."""
    query = _query(context, "context-faithfulness")
    chunks = _context(context, "context-faithfulness")
    statements = _lines((yield Ask(statements_messages(query, output))))
    if not statements:
        raise JudgeProblem("judge found no statements in the output")
    score = faithfulness_score(
        (yield Ask(nli_messages(joined(chunks), statements))), len(statements)
    )
    limit = threshold(assertion)
    return Verdict(score, score >= limit, f"faithfulness {score:.2f} (at least {limit:g})")


def recall_messages(context: str, ground_truth: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": RECALL_SYSTEM},
        {"role": "user", "content": f"Context:\n{context}\n\nAnswer:\n{ground_truth}"},
    ]


def recall_score(text: str) -> tuple[float, int, int]:
    """``(score, attributed, classified)`` from the judge's lines marked ``[Attributed]``
    or ``[Not Attributed]``."""
    marked = [
        line.lower()
        for line in _lines(text)
        if "[attributed]" in line.lower() or "[not attributed]" in line.lower()
    ]
    if not marked:
        raise JudgeProblem(f"judge marked no sentence [Attributed]: {_short(text)}")
    attributed = sum("[not attributed]" not in line for line in marked)
    return attributed / len(marked), attributed, len(marked)


def context_recall(assertion: Assertion, output: str, context: Context) -> Grading:
    """Sentences of the ground truth (the value) supported by the context (the case's
    ``context`` variable, else the rendered prompt) / its sentences."""
    try:
        chunks: str | list[str] = _context(context, "context-recall")
    except JudgeProblem:
        chunks = context.prompt
    text = yield Ask(recall_messages(joined(chunks), _text(assertion.value)))
    score, attributed, total = recall_score(text)
    limit = threshold(assertion)
    return Verdict(
        score,
        score >= limit,
        f"recall {score:.2f}: {attributed} of {total} sentences "
        f"in the context (at least {limit:g})",
    )


def relevance_messages(query: str, context: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": RELEVANCE_SYSTEM},
        {"role": "user", "content": f"Query:\n{query}\n\nContext:\n{context}"},
    ]


def sentences(text: str) -> list[str]:
    """Units of a context, as promptfoo counts them: its lines when it has two or more,
    else its sentences (split after ``.``, ``!``, ``?``); bare list markers dropped."""
    lines = _lines(text)
    parts = lines if len(lines) > 1 else re.split(r"(?<=[.!?])\s+", text)
    return [p.strip() for p in parts if p.strip() and not re.fullmatch(r"\d+[.)]", p.strip())]


def relevance_score(text: str, context: str | list[str]) -> tuple[float, int, int]:
    """``(score, relevant, units)``: the sentences the judge extracted (distinct; none
    when it says "Insufficient Information") over the context's units."""
    units = [c for c in context if c.strip()] if isinstance(context, list) else sentences(context)
    if INSUFFICIENT.lower() in text.lower():
        extracted: list[str] = []
    else:
        segmented = isinstance(context, list) or len(_lines(context)) > 1
        extracted = list(dict.fromkeys(_lines(text) if segmented else sentences(text)))
    relevant = min(len(extracted), len(units))
    return (relevant / len(units) if units else 0.0), relevant, len(units)


def context_relevance(assertion: Assertion, output: str, context: Context) -> Grading:
    """Sentences of the context needed to answer the query / the context's sentences."""
    query = _query(context, "context-relevance")
    chunks = _context(context, "context-relevance")
    text = yield Ask(relevance_messages(query, joined(chunks)))
    score, relevant, units = relevance_score(text, chunks)
    limit = threshold(assertion)
    return Verdict(
        score,
        score >= limit,
        f"context relevance {score:.2f}: {relevant} of {units} "
        f"sentences needed (at least {limit:g})",
    )


# -- similar -----------------------------------------------------------------------------


def _check_sizes(a: list[float], b: list[float]) -> None:
    if len(a) != len(b):
        raise JudgeProblem(f"embeddings of different sizes ({len(a)} and {len(b)})")


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity (0 when a vector is all zeros)."""
    _check_sizes(a, b)
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norms if norms else 0.0


def dot(a: list[float], b: list[float]) -> float:
    _check_sizes(a, b)
    return sum(x * y for x, y in zip(a, b, strict=True))


def euclidean(a: list[float], b: list[float]) -> float:
    _check_sizes(a, b)
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def _clamp(number: float) -> float:
    return min(max(number, 0.0), 1.0)


def similarity(
    kind: str, a: list[float], b: list[float], limit: float
) -> tuple[float, bool, str, float]:
    """``(score, passed, reason, closeness)`` of one comparison: cosine and dot pass at a
    similarity of at least ``limit`` (the score is the similarity, kept within [0, 1]);
    euclidean passes at a distance of at most ``limit`` and scores ``1 / (1 + distance)``.
    ``closeness`` orders comparisons unclamped: the similarity, or minus the distance."""
    if kind == "similar:euclidean":
        distance = euclidean(a, b)
        reason = f"distance {distance:.3f} (at most {limit:g})"
        return 1 / (1 + distance), distance <= limit, reason, -distance
    value = dot(a, b) if kind == "similar:dot" else cosine(a, b)
    name = "dot product" if kind == "similar:dot" else "similarity"
    return _clamp(value), value >= limit, f"{name} {value:.3f} (at least {limit:g})", value


def similar(assertion: Assertion, output: str) -> Grading:
    """The output against the expected text, or the closest of a list of them (by the
    measure itself: dot products above 1 all score 1)."""
    references = assertion.value if isinstance(assertion.value, list) else [assertion.value]
    vectors = yield Embed([output, *map(_text, references)])
    limit = threshold(assertion)
    results = [similarity(assertion.base_type, vectors[0], v, limit) for v in vectors[1:]]
    score, passed, reason, _ = max(results, key=lambda r: r[3])
    if len(results) > 1:
        reason = f"closest of {len(results)} references: {reason}"
    return Verdict(score, passed, reason)


# -- select-best -------------------------------------------------------------------------

SELECT_BEST_SYSTEM = """\
Several texts are given, numbered from 0. Decide which one best fits the criterion. \
Answer with that number only."""


def select_best_messages(criterion: str, outputs: list[str]) -> list[dict[str, str]]:
    texts = "\n\n".join(f'<text index="{i}">\n{o}\n</text>' for i, o in enumerate(outputs))
    return [
        {"role": "system", "content": SELECT_BEST_SYSTEM},
        {"role": "user", "content": f"Criterion:\n{criterion}\n\n{texts}"},
    ]


def parse_choice(text: str, count: int) -> int:
    """The index the judge picked (its first whole number), within ``0..count - 1``."""
    match = re.search(r"\d+", text)
    if match is None:
        raise JudgeProblem(f"judge picked no text: {_short(text)}")
    index = int(match.group(0))
    if not 0 <= index < count:
        raise JudgeProblem(f"judge picked text {index}, not one of 0-{count - 1}")
    return index


GRADERS: dict[str, Callable[[Assertion, str, Context], Grading]] = {
    "factuality": factuality,
    "model-graded-factuality": factuality,
    "model-graded-closedqa": closedqa,
    "g-eval": geval,
    "answer-relevance": answer_relevance,
    "context-faithfulness": context_faithfulness,
    "context-recall": context_recall,
    "context-relevance": context_relevance,
}
