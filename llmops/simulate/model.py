"""A deterministic simulated model: answers from what the prompt says, not from a script.

:func:`simulate` turns a chat request body (OpenAI or Anthropic shape) into a
:class:`~llmops.simulate.Reply`, reading the rendered prompt like a (very literal) model would,
so that two versions of a prompt really give different answers::

    from llmops.simulate import FakeLLMServer, SimulatedModel, World

    with FakeLLMServer(responder=SimulatedModel(world=World(...), latency=0.02)) as server:
        litellm.completion(model="gpt-4o-mini", api_base=server.base_url, ...)

What the model knows about products (their names, a knowledge base of fixes, the features
it makes up) is not in this module: it comes from the :class:`~llmops.simulate.World` it is
given (``world=``). The default, ``World()``, knows nothing: support answers give a generic
fix (:data:`~llmops.simulate.world.GENERIC_FIX`) and name no product, tickets have
``"product": null``, and the model never makes a feature up. The demo's world, about the
Acme products, is :data:`llmops.demo.knowledge.ACME`; ``llmops demo`` and
``llmops eval run --offline`` use it.

What it recognises, in this order:

- **JSON extraction** (the prompt says "reply with JSON"): a ticket object with ``category``,
  ``priority``, ``summary`` and ``product`` taken from the last user message. Models whose
  name contains ``mini`` wrap it in a ```` ```json ```` fence for 1 request in 8.
- **Summaries** (the prompt says "summarise" and "bullet points"): three ``- `` bullets (what
  the customer wants, what was tried, what is still open) from the ``author: text`` lines.
- **Support answers** (the system prompt says "support agent"): the world's fix for the
  product the prompt names (else the world's first product) and the question's topic,
  obeying the instructions it finds: "numbered steps", "say how to tell it worked", "at
  most N sentences", the enterprise plan / account manager offer, a customer name ("Hi,
  I'm X."), and "never invent product features". Without that last instruction, 1 answer
  in 4 (by hash) adds one of the world's ``inventions``, a made-up feature (if it has any).
- **Grading** (the system prompt says "you are grading"): a JSON verdict on the output in
  the user message against its rubric, by rules; an output that names one of the world's
  ``invented_features`` always fails.
- Anything else: a short answer derived from the last user message.

Determinism: no randomness at all. Every per-request choice comes from a SHA-256 hash of
``(model, messages)`` (messages as ``(role, text)`` pairs, an Anthropic ``system`` first), so
the same request always gets the same answer, on either route. Wording choices that depend
on the model name alone make different models answer slightly differently.

Usage: ``prompt_tokens`` is the fake server's default word-count formula; ``completion_tokens``
is the number of words of the answer. Models named ``o`` + digit (``o3-mini``, ``o4-mini``)
also report ``reasoning_tokens`` = 2 x the answer's words, included in ``completion_tokens``
as OpenAI does. On the Anthropic route, a system prompt of 40 words or more is reported as
read from the prompt cache (``cached_tokens`` = its share of the prompt count) for requests
whose hash is even.

Standard library only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.simulate._reply import (
    RecordedRequest,
    Reply,
    content_text,
    conversation,
    count_words,
    default_prompt_tokens,
)
from llmops.simulate.world import GENERIC_TOPIC, World

__all__ = ["SimulatedModel", "count_sentences", "simulate"]

CACHE_MIN_SYSTEM_WORDS = 40

_VOICES = 3  # wording variants per table

_NO_WORLD = World()


# --- public API ----------------------------------------------------------------------------


def simulate(
    request_body: Mapping[str, Any],
    *,
    anthropic: bool | None = None,
    world: World | None = None,
) -> Reply:
    """The simulated model's answer to one chat request body, with its token counts.

    ``anthropic``: whether the body came to the Anthropic Messages endpoint; ``None`` guesses
    it from the body (a top-level ``system`` field means Anthropic). ``world``: what the
    model knows; ``None`` means ``World()``, which knows no product.
    """
    if not isinstance(request_body, Mapping):
        raise TypeError(f"request_body must be a mapping, got {type(request_body).__name__}")
    if anthropic is None:
        anthropic = "system" in request_body
    messages = conversation(request_body, anthropic=anthropic)
    model = str(request_body.get("model") or "")
    request = _Request.of(model, messages)

    text = _answer(request, world if world is not None else _NO_WORLD)

    words = max(1, count_words(text))
    reasoning = 2 * words if _is_reasoning_model(model) else 0
    cached = 0
    if anthropic:
        system_words = count_words(request.system)
        if system_words >= CACHE_MIN_SYSTEM_WORDS and request.seed % 2 == 0:
            cached = system_words + 3  # the system prompt's share of the prompt count
    prompt = max(default_prompt_tokens(messages), cached)
    return Reply(
        text=text,
        prompt_tokens=prompt,
        completion_tokens=words + reasoning,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


@dataclass(frozen=True)
class SimulatedModel:
    """:func:`simulate` as a :class:`~llmops.simulate.FakeLLMServer` responder.

    ``latency``: seconds before the response starts (``Reply.delay``); ``ttft``: for streams,
    extra seconds before the first chunk (``Reply.ttft``); ``chunk_delay``: seconds between
    stream chunks. ``world``: what the model knows (default ``World()``: no product). Call
    it with a :class:`~llmops.simulate.RecordedRequest` (as the server does) or with a request
    body.
    """

    latency: float = 0.0
    ttft: float = 0.0
    chunk_delay: float = 0.0
    world: World = field(default_factory=World)

    def __post_init__(self) -> None:
        for name in ("latency", "ttft", "chunk_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"SimulatedModel.{name} must not be negative")

    def __call__(self, request: RecordedRequest | Mapping[str, Any]) -> Reply | None:
        if isinstance(request, RecordedRequest):
            if not isinstance(request.body, Mapping):
                return None
            body: Mapping[str, Any] = request.body
            anthropic: bool | None = request.path.split("?", 1)[0].rstrip("/") == "/v1/messages"
        else:
            body, anthropic = request, None
        reply = simulate(body, anthropic=anthropic, world=self.world)
        return dataclasses.replace(
            reply, delay=self.latency, ttft=self.ttft, chunk_delay=self.chunk_delay
        )


_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s+")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")


def count_sentences(text: str) -> int:
    """How many sentences ``text`` has, a numbered or bulleted item counting as one.

    Per line: the list marker (``1.``, ``2)``, ``-``, ``*``) is dropped, then each run of
    ``.``, ``!`` or ``?`` followed by whitespace or the end ends a sentence; text after the
    last one (or a line without any) is one more sentence. Abbreviations like "e.g." are
    not special: the simulated model does not write them.
    """
    total = 0
    for line in text.splitlines():
        line = _LIST_MARKER.sub("", line).strip()
        if not line:
            continue
        ends = list(_SENTENCE_END.finditer(line))
        total += len(ends)
        if not ends or line[ends[-1].end() :].strip():
            total += 1
    return total


# --- request analysis -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    model: str  # without a provider prefix
    system: str
    user: str  # the last user message
    prompt: str  # every message's text
    seed: int

    @classmethod
    def of(cls, model: str, messages: Sequence[Mapping[str, Any]]) -> _Request:
        pairs = [
            (str(m.get("role") or ""), content_text(m.get("content")).strip()) for m in messages
        ]
        system = "\n".join(text for role, text in pairs if role in ("system", "developer"))
        user = next((text for role, text in reversed(pairs) if role == "user"), "")
        prompt = "\n".join(text for _, text in pairs)
        bare_model = model.rsplit("/", 1)[-1]
        key = json.dumps([bare_model, pairs], ensure_ascii=False, separators=(",", ":"))
        seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
        return cls(model=bare_model, system=system, user=user, prompt=prompt, seed=seed)

    def pick(self, salt: str, n: int) -> int:
        """A number in ``range(n)`` that depends on the request and ``salt``."""
        return _hash_int(f"{self.seed}:{salt}") % n

    @property
    def voice(self) -> int:
        """The model's wording style, 0, 1 or 2: it depends on the model name only.

        Every wording table has three variants and is indexed with it, so two models of
        different voices differ in every table (gpt-4o-mini, gpt-4o and claude-haiku-4-5 all
        have different voices).
        """
        return _hash_int(f"voice:{self.model}") % _VOICES


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def _is_reasoning_model(model: str) -> bool:
    return re.match(r"o\d", model.rsplit("/", 1)[-1].lower()) is not None


def _has(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None


def _answer(request: _Request, world: World) -> str:
    if _has(r"\byou are grading\b", request.system):
        return _grade(request, world)
    if _has(r"\b(?:reply|respond|answer|return|output)\b[^.\n]{0,30}\bJSON\b", request.prompt):
        return _extract_ticket(request, world)
    if _has(r"\bsummari[sz]e", request.prompt) and _has(
        r"\bbullet(?:\s+point)?s?\b", request.prompt
    ):
        return _summarise(request)
    support = r"\bsupport (?:agent|assistant|specialist|representative)\b"
    if _has(support, request.system or request.prompt):
        return _support_answer(request, world)
    return _other_answer(request)


def _grade(request: _Request, world: World) -> str:
    """A judge: grades the output in the user message against the rubric, by rules.

    It fails the world's invented product features always; a rubric that asks for steps wants
    numbered steps, one that asks for friendliness wants a greeting or an offer to help,
    one that asks for a way to check the fix wants "You'll know it worked".
    """
    rubric, _, output = request.user.partition("Output:")
    rubric = rubric.removeprefix("Rubric:").strip()
    problems = []
    if any(feature.lower() in output.lower() for feature in world.invented_features):
        problems.append("it mentions a product feature that does not exist")
    if _has(r"\bsteps?\b", rubric) and not re.search(r"^\s*1\.\s", output, re.M):
        problems.append("it gives no numbered steps")
    if _has(r"\b(?:friendly|polite|warm)\b", rubric) and not _has(
        r"\b(?:hi|hello|happy to|glad|sorry)\b", output
    ):
        problems.append("it does not greet the customer or offer help")
    if _has(r"\b(?:check|verify|tell)\b.{0,30}\bwork", rubric) and not _has(
        r"know it worked", output
    ):
        problems.append("it does not say how to tell the fix worked")
    if not output.strip():
        problems.append("the output is empty")
    score = max(0.0, 1.0 - 0.4 * len(problems))
    reason = "; ".join(problems) if problems else "meets the rubric"
    return json.dumps({"reason": reason, "pass": not problems, "score": round(score, 2)})


def _normalise(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def _first_sentence(text: str, limit: int = 200) -> str:
    """The first sentence of ``text`` (or its first line), at most ``limit`` characters."""
    text = text.strip()
    match = re.match(r"(.+?[.!?])(?=\s|$)", text, re.DOTALL)
    sentence = match.group(1) if match else text.split("\n", 1)[0]
    sentence = " ".join(sentence.split())
    if len(sentence) > limit:
        cut = sentence[: limit - 1].rsplit(" ", 1)[0] or sentence[: limit - 1]
        sentence = cut.rstrip(" ,;:") + "\u2026"
    return sentence


# --- JSON extraction ----------------------------------------------------------------------

_CATEGORIES = (
    ("billing", r"\b(?:bill\w*|charg\w*|refund\w*|invoic\w*)"),
    ("outage", r"\b(?:down|outage\w*|offline)\b|not working (?:anywhere|everywhere)"),
    ("bug", r"\b(?:error\w*|crash\w*|bug\w*)"),
    ("how-to", r"\bhow (?:do|can) (?:i|we)\b|\bwhere\b"),
)
_PRIORITIES = (
    ("urgent", r"\b(?:urgent\w*|asap|immediately|emergency)\b"),
    ("high", r"\b(?:down|outage\w*)\b|\bcan'?t work\b|\bcannot work\b"),
    ("low", r"\bwhen you have time\b|\bno rush\b"),
)
_SALUTATION = re.compile(
    r"^\s*(?:hi|hello|hey|dear|good (?:morning|afternoon|evening))\b[^\n]{0,40}?,\s*\n",
    re.IGNORECASE,
)


def _extract_ticket(request: _Request, world: World) -> str:
    email = _normalise(request.user)
    body = _SALUTATION.sub("", email, count=1)
    category = next((name for name, rx in _CATEGORIES if _has(rx, email)), "other")
    priority = next((name for name, rx in _PRIORITIES if _has(rx, email)), "normal")
    product = world.product_in(email)
    ticket = {
        "category": category,
        "priority": priority,
        "summary": _first_sentence(body, 200),
        "product": product,
    }
    if "claude" in request.model.lower():
        text = json.dumps(ticket, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(ticket, ensure_ascii=False)
    if "mini" in request.model.lower() and request.pick("fence", 8) == 0:
        text = f"```json\n{text}\n```"
    return text


# --- summaries ----------------------------------------------------------------------------

_LINE = re.compile(r"^\s*([A-Za-z][\w .'()-]{0,39}?)\s*:\s+(\S.*)$")
_CUSTOMER_NAMES = {"customer", "user", "client", "caller", "requester"}
_TRIED = re.compile(
    r"\b(?:tried|try|trying|restart\w*|reboot\w*|reset|reinstall\w*|updat\w*|changed|"
    r"checked|cleared|moved|unplugg\w*|replaced|switched)\b",
    re.IGNORECASE,
)
_RESOLVED = re.compile(
    r"\b(?:works now|working now|fixed|solved|resolved|all good|that did it)\b", re.IGNORECASE
)
_UNRESOLVED = re.compile(r"\b(?:still|again|not|n't|no longer)\b", re.IGNORECASE)
_SUMMARY_LABELS = (
    ("The customer wants", "Tried so far", "Still open"),
    ("What the customer wants", "What was tried", "What is still open"),
    ("Wants", "Tried", "Open"),
)


def _summarise(request: _Request) -> str:
    lines: list[tuple[str, str]] = []
    for raw in request.user.splitlines():
        match = _LINE.match(raw)
        if match and len(match.group(1).split()) <= 4:
            lines.append((match.group(1).strip(), match.group(2).strip()))
    if not lines:
        lines = [("customer", request.user)]
    customer = next(
        (author for author, _ in lines if author.lower() in _CUSTOMER_NAMES), lines[0][0]
    )
    said = [text for author, text in lines if author == customer]
    wants = _first_sentence(said[0] if said else lines[0][1], 160)

    attempts: list[str] = []
    for author, text in lines[1:]:
        sentence = next((s for s in _sentences(text) if _TRIED.search(s)), None)
        if sentence is None and author != customer and not attempts:
            sentence = _first_sentence(text, 120)
        if sentence is not None:
            verb = "said" if author == customer else "suggested"
            attempts.append(f"{author} {verb} \u201c{_first_sentence(sentence, 120)}\u201d")
    tried = "; ".join(attempts[:2]) if attempts else "nothing yet"

    last_author, last = lines[-1]
    if len(lines) == 1:
        still_open = "waiting for a first answer from support"
    elif last_author != customer:
        still_open = (
            f"waiting for the customer to reply to \u201c{_first_sentence(last, 120)}\u201d"
        )
    elif _RESOLVED.search(last) and not _UNRESOLVED.search(last):
        still_open = "nothing, the customer confirmed it is fixed"
    else:
        still_open = _first_sentence(
            next((s for s in _sentences(last) if _UNRESOLVED.search(s)), last), 160
        )

    want_label, tried_label, open_label = _SUMMARY_LABELS[request.voice]
    return "\n".join(
        [
            f"- {want_label}: {wants}",
            f"- {tried_label}: {tried}",
            f"- {open_label}: {still_open}",
        ]
    )


def _sentences(text: str) -> list[str]:
    return [part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part]


# --- support answers ----------------------------------------------------------------------


_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_INTROS = (
    "The most likely fix is to {action}.",
    "The quickest fix is usually to {action}.",
    "Most of the time it helps to {action}.",
)
_FIRST_STEPS = (
    "{action}.",
    "First, {action}.",
    "To start, {action}.",
)
_LEADS = (
    "Hi {name}, here's the most likely fix for your {product}.",
    "Hi {name}, sorry about the trouble with your {product}, here's what to try.",
    "Hi {name}, thanks for reaching out about your {product}.",
)
_ENTERPRISE = (
    "As you're on the enterprise plan, I'd be happy to set up a call with your account manager.",
    "Since you're on our enterprise plan, your account manager can also walk you through this "
    "on a call.",
    "Because you're an enterprise customer, I can book a call with your account manager if "
    "that helps.",
)
_NAME = re.compile(
    r"^\s*(?:hi|hello|hey)\b[\s,!]*(?:I'm|I am|this is|my name is)\s+([^.,!?\n]{1,40})[.,!]\s*",
    re.IGNORECASE,
)


def _support_answer(request: _Request, world: World) -> str:
    instructions = _normalise(request.system or request.prompt)
    question = _normalise(request.user)
    name_match = _NAME.match(question)
    name = name_match.group(1).strip() if name_match else None
    if name_match:
        question = question[name_match.end() :]

    default = world.products[0] if world.products else None
    product = world.product_in(instructions) or world.product_in(question) or default
    topic = _topic(question, world)
    fix = world.fix(product, topic)

    numbered = _has(r"\bnumbered\s+(?:steps|list)\b", instructions)
    verify = _has(r"\bhow to tell (?:if |whether )?it worked\b", instructions)
    enterprise = _has(r"\benterprise plan\b", instructions) and _has(
        r"\baccount manager\b", instructions
    )
    honest = _has(r"\bnever (?:invent|make up)\b", instructions)
    limit = _sentence_limit(instructions)

    extras: list[str] = []
    if verify:
        extras.append(f"You'll know it worked when {fix.check}.")
    if enterprise:
        extras.append(_ENTERPRISE[request.voice])
    if not honest and world.inventions and request.pick("invent", 4) == 0:
        invented = world.inventions[request.pick("feature", len(world.inventions))]
        extras.append(invented.format(product=product or "product"))

    lead: str | None = None
    if numbered:
        units = [_FIRST_STEPS[request.voice].format(action=fix.action), *fix.more]
        if name:
            lead = _LEADS[request.voice].format(name=name, product=product or "product")
    else:
        intro = _INTROS[request.voice]
        first = fix.opening or intro.format(action=fix.action)
        if name:
            first = f"Hi {name}, {first[0].lower()}{first[1:]}"
        units = [first, fix.followup]

    if limit is not None:
        room = limit - len(extras) - (1 if lead else 0)
        if room < 1 and lead:
            lead, room = None, room + 1
            if numbered and name:
                units[0] = f"Hi {name}, {units[0][:1].lower()}{units[0][1:]}"
        while room < 1 and extras:
            extras.pop()  # the least important extra goes first
            room += 1
        units = units[: max(1, room)]

    units = [_capitalise(unit) for unit in units]
    if numbered:
        steps = "\n".join(f"{i}. {unit}" for i, unit in enumerate(units, 1))
        parts = [lead, steps, " ".join(extras) if extras else None]
        return "\n\n".join(part for part in parts if part)
    return " ".join([*units, *extras])


def _topic(question: str, world: World) -> str:
    """The world's topic the question matches most often (the first on a tie), overridden."""
    best, best_hits = GENERIC_TOPIC, 0
    for topic, pattern in world.topics:
        hits = len(re.findall(pattern, question, re.IGNORECASE))
        if hits > best_hits:
            best, best_hits = topic, hits
    for topic, pattern, instead in world.topic_overrides:
        if best == topic and _has(pattern, question):
            best = instead
    return best


def _sentence_limit(text: str) -> int | None:
    match = re.search(
        r"\b(?:at most|no more than|maximum of|up to)\s+(\w+)\s+sentences?\b", text, re.IGNORECASE
    )
    if not match:
        return None
    word = match.group(1).lower()
    if word.isdigit():
        return max(1, int(word))
    return _NUMBERS.get(word)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- anything else --------------------------------------------------------------------------

_OTHER = (
    "Here's a short answer to \u201c{q}\u201d: it depends on the details, so start with the "
    "simplest option and check the result.",
    "About \u201c{q}\u201d: the short answer is that the usual approach works in most cases.",
    "You asked \u201c{q}\u201d, and in short, the standard answer applies here.",
)


def _other_answer(request: _Request) -> str:
    question = _first_sentence(request.user, 120) if request.user.strip() else "your message"
    template = _OTHER[(request.voice + request.pick("other", 2)) % _VOICES]
    return template.format(q=question)
