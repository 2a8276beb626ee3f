"""A simulated support app: what `llmops demo` runs to fill a database with realistic calls.

It is an ordinary llmops user: it renders the example prompts, calls models through a
Gateway (pointed at the local simulated model), streams some answers, and sends end-user
feedback that depends on the answers. Only the clock is simulated, so the calls spread
over the last 30 days. Nothing is written to the tables directly.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from llmops.demo.knowledge import ACME, INVENTED_FEATURES, PRODUCTS
from llmops.errors import ConfigError
from llmops.gateway import Gateway
from llmops.simulate import FakeLLMServer, RecordedRequest, Reply, World, simulate

QUESTIONS = (
    "How do I reset my {p} to factory settings?",
    "My wifi keeps dropping every evening.",
    "Internet is really slow upstairs, what can I do?",
    "I forgot my admin password, how do I log in?",
    "I was charged twice this month.",
    "Where can I download my invoice?",
    "How do I update the firmware on my {p}?",
    "How do I set up my new {p}?",
    "The connection drops when I use the microwave.",
    "Is there a firmware update for my {p}?",
    "I moved house, should I reset the {p}?",
    "I can't log in, it says wrong password.",
)
EMAILS = (
    "Hi, I was charged twice for my {p} subscription this month. Please refund one.",
    "Our {p} is down across the whole office! Nobody can work. Please help asap.",
    "The {p} app crashes every time I open the settings page. Error 500.",
    "How do I set up port forwarding on the {p}?",
    "Could you send me a copy of last month's invoice? No rush.",
    "All my {p} nodes went offline after the storm.",
)
COMPLAINTS = (
    "It told me about a feature my {p} doesn't have.",
    "Too vague, I needed actual steps.",
    "Didn't answer my question.",
)
PRAISE = ("Clear steps, fixed it!", "Quick and helpful.", "Worked first time, thanks.")
NAMES = ("Dana", "Lee", "Sam", "Priya", "Jonas", "Ana", "Kofi", "Mei")


@dataclass
class DemoStats:
    calls: int = 0
    errors: int = 0
    streamed: int = 0
    feedback: int = 0


class SimulatedClock:
    """The time calls are recorded at: set before each call, read by the Gateway."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def latency_responder(
    base: Callable[[dict[str, Any]], Reply],
) -> Callable[[RecordedRequest], Reply]:
    """The simulated model, with a per-model latency that varies by request (deterministic)."""
    ranges = {"gpt-4o-mini": (0.004, 0.030), "gpt-4o": (0.010, 0.060), "o4-mini": (0.020, 0.080)}

    def respond(request: RecordedRequest) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        reply = base(body)
        model = str(body.get("model", ""))
        low, high = ranges.get(model, (0.006, 0.040))
        digest = hashlib.sha256(repr(body.get("messages")).encode()).digest()
        fraction = int.from_bytes(digest[:4], "big") / 2**32
        delay = low + (high - low) * fraction**2
        return replace(reply, delay=delay, ttft=delay / 3 if body.get("stream") else 0.0)

    return respond


def run_support_app(
    gateway: Gateway,
    server: FakeLLMServer,
    clock: SimulatedClock,
    *,
    calls: int = 300,
    days: int = 30,
    now: datetime | None = None,
    seed: int = 7,
    progress: Callable[[int, int], None] | None = None,
) -> DemoStats:
    """Answer ``calls`` simulated requests spread over the last ``days`` days.

    The first 60% of the period runs ``support/answer@production``; then the working-tree
    version rolls out. Enterprise customers get gpt-4o, everyone else gpt-4o-mini; ticket
    extraction runs on gpt-4o-mini and o4-mini, summaries on claude-haiku-4-5.
    """
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not security
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    stats = DemoStats()
    # litellm keyword arguments for each route (Gateway.complete passes them on)
    openai: dict[str, Any] = {"api_base": server.base_url, "api_key": "sk-demo", "num_retries": 0}
    anthropic: dict[str, Any] = {
        "api_base": server.anthropic_base_url,
        "api_key": "sk-demo",
        "num_retries": 0,
    }
    for index in range(calls):
        offset = (index + rng.random()) / calls * days * 86_400
        clock.now = start + timedelta(seconds=offset)
        rollout = index >= calls * 0.6
        user = f"user-{rng.randrange(1, 41):03d}"
        product = rng.choice(PRODUCTS)
        kind = rng.random()
        if index % 47 == 13:
            server.enqueue(Reply(status=rng.choice((429, 500))))
        try:
            if kind < 0.7:
                _support(gateway, rng, product, user, rollout, openai, stats)
            elif kind < 0.9:
                model = "o4-mini" if rng.random() < 0.3 else "gpt-4o-mini"
                email = rng.choice(EMAILS).format(p=product)
                result = gateway.complete(
                    "extract/ticket", {"email": email}, model=model, user=user,
                    tags=["tickets"], drop_params=True, **openai,
                )  # fmt: skip
                stats.calls += 1
                if rng.random() < 0.3:
                    gateway.feedback(result.call_id, 1 if result.text.startswith("{") else 0,
                                     name="parsed")  # fmt: skip
                    stats.feedback += 1
            else:
                conversation = [
                    {"author": "customer", "text": rng.choice(QUESTIONS).format(p=product)},
                    {"author": "agent", "text": "Could you try restarting it?"},
                    {"author": "customer", "text": "I did, it still happens."},
                ]
                gateway.complete(
                    "summarize/thread", {"messages": conversation}, user="agent-bot",
                    tags=["internal"], **anthropic,
                )  # fmt: skip
                stats.calls += 1
        except ConfigError:  # a prompt that cannot load is not a provider error: stop
            raise
        except Exception:  # the model failed (a simulated 429/500): the app moves on
            stats.errors += 1
        if progress:
            progress(index + 1, calls)
    return stats


def _support(
    gateway: Gateway,
    rng: random.Random,
    product: str,
    user: str,
    rollout: bool,
    call: dict[str, Any],
    stats: DemoStats,
) -> None:
    tier = rng.choices(("free", "pro", "enterprise"), weights=(6, 3, 1))[0]
    variables = {
        "question": rng.choice(QUESTIONS).format(p=product),
        "product": product,
        "tier": tier,
    }
    if rng.random() < 0.4:
        variables["customer_name"] = rng.choice(NAMES)
    prompt = "support/answer" if rollout else "support/answer@production"
    model = "gpt-4o" if tier == "enterprise" else "gpt-4o-mini"
    session = f"s-{rng.randrange(10**6):06d}"
    tags = ["support", "web" if rng.random() < 0.7 else "mobile"]
    if rng.random() < 0.3:
        with gateway.stream(prompt, variables, model=model, user=user, session=session,
                            tags=tags, **call) as stream:  # fmt: skip
            text = "".join(stream)
            call_id = stream.call_id
        stats.streamed += 1
    else:
        result = gateway.complete(
            prompt, variables, model=model, user=user, session=session, tags=tags,
            metadata={"tier": tier}, **call,
        )  # fmt: skip
        text, call_id = result.text, result.call_id
    stats.calls += 1
    if rng.random() < 0.45:  # about half the users rate the answer
        invented = any(feature in text for feature in INVENTED_FEATURES)
        steps = "1. " in text
        good = not invented and (steps or rng.random() < 0.55)
        comment = None
        if rng.random() < 0.35:
            comment = (rng.choice(PRAISE) if good else rng.choice(COMPLAINTS)).format(p=product)
        gateway.feedback(call_id, 1 if good else 0, name="thumbs", comment=comment, user=user)
        stats.feedback += 1
        if rng.random() < 0.3:
            stars = rng.choice((4, 5)) if good else rng.choice((1, 2, 3))
            gateway.feedback(call_id, stars, name="stars", user=user)
            stats.feedback += 1


def simulated_model(world: World = ACME) -> Callable[[RecordedRequest], Reply]:
    """The demo's model: llmops.simulate.simulate in ``world``, with per-model latency."""

    def answer(body: dict[str, Any]) -> Reply:
        return simulate(body, world=world)

    return latency_responder(answer)
