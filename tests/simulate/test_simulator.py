"""The simulated model behind FakeLLMServer, through real HTTP with litellm and the real prompts.

The model knows the demo's world (``llmops.demo.knowledge.ACME``), which the prompts are about.

``support/answer@production`` is the older prompt version (prose, at most three sentences,
nothing against invented features); ``support/answer`` in the working tree is the newer one
(numbered steps, "how to tell it worked", at most five sentences, never invent features,
an account-manager offer for enterprise customers).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

from llmops.demo.knowledge import ACME, INVENTED_FEATURES
from llmops.prompts import Prompt, PromptRegistry
from llmops.simulate import (
    FakeLLMServer,
    RecordedRequest,
    Reply,
    SimulatedModel,
    count_sentences,
    simulate,
)
from llmops.simulate._reply import conversation, default_prompt_tokens

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
MODEL = "gpt-4o-mini"

SUBJECTS = [
    "My wifi keeps dropping every evening.",
    "How do I reset it to factory settings?",
    "I forgot my password and can't get in.",
    "I was charged twice this month.",
    "The firmware update failed halfway.",
    "How do I install it?",
    "It makes a strange clicking noise.",
    "Everything is really slow since yesterday.",
    "I can't login on my new phone.",
    "Where can I find my latest invoice?",
]
PRODUCTS = ["Acme Router", "Acme Mesh", "Acme Cloud", "Acme Router"]
NAMES = ["", "Dana", "", "Lee", "Sam"]
# 40 varied questions: every subject for every product, some with a customer name.
QUESTIONS = [
    (subject, product, NAMES[(i + j) % len(NAMES)])
    for i, subject in enumerate(SUBJECTS)
    for j, product in enumerate(PRODUCTS)
]
NUMBERED_LINE = re.compile(r"^\d+\. ", re.MULTILINE)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(responder=SimulatedModel(world=ACME)) as server:
        yield server


@pytest.fixture(scope="module")
def registry() -> PromptRegistry:
    return PromptRegistry(PROMPTS)


@pytest.fixture(scope="module")
def old(registry: PromptRegistry) -> Prompt:
    return registry.load("support/answer@production")


@pytest.fixture(scope="module")
def new(registry: PromptRegistry) -> Prompt:
    return registry.load("support/answer")


def call(
    litellm: ModuleType,
    server: FakeLLMServer,
    messages: list[dict[str, str]],
    model: str = MODEL,
    **kwargs: Any,
) -> Any:
    return litellm.completion(
        model=model, api_base=server.base_url, api_key="sk-test", messages=messages, **kwargs
    )


def ask(
    litellm: ModuleType,
    server: FakeLLMServer,
    messages: list[dict[str, str]],
    model: str = MODEL,
) -> str:
    return call(litellm, server, messages, model).choices[0].message.content


def has_invented_feature(text: str) -> bool:
    return any(feature in text for feature in INVENTED_FEATURES)


# --- support answers: the two prompt versions -----------------------------------------------


def test_the_two_versions_answer_differently(
    litellm: ModuleType, server: FakeLLMServer, old: Prompt, new: Prompt
) -> None:
    assert old.version != new.version
    for question, product in [
        ("My wifi keeps dropping every evening.", "Acme Router"),
        ("How do I reset it to factory settings?", "Acme Mesh"),
        ("Syncing is very slow.", "Acme Cloud"),
    ]:
        before = ask(litellm, server, old.render(question=question, product=product))
        after = ask(litellm, server, new.render(question=question, product=product))
        assert before != after
        assert product in before
        assert product in after
        # Only the newer version asks for numbered steps and for how to tell it worked.
        assert NUMBERED_LINE.search(before) is None
        assert [m.group() for m in NUMBERED_LINE.finditer(after)] == ["1. ", "2. ", "3. "]
        assert "You'll know it worked when" in after
        assert "You'll know it worked when" not in before


def test_enterprise_offer_only_with_the_newer_version_for_enterprise_customers(
    litellm: ModuleType, server: FakeLLMServer, old: Prompt, new: Prompt
) -> None:
    question = {"question": "Internet is slow in the meeting rooms.", "product": "Acme Mesh"}
    enterprise_new = ask(litellm, server, new.render(question, tier="enterprise"))
    assert "account manager" in enterprise_new
    assert "enterprise" in enterprise_new
    for answer in [
        ask(litellm, server, new.render(question, tier="pro")),
        ask(litellm, server, new.render(question)),
        ask(litellm, server, old.render(question, tier="enterprise")),
    ]:
        assert "account manager" not in answer
    assert count_sentences(enterprise_new) <= 5


def test_topics_products_and_customer_name(
    litellm: ModuleType, server: FakeLLMServer, old: Prompt, new: Prompt
) -> None:
    cases = [
        ("I was charged twice, can I get a refund?", "Acme Cloud", "Request a refund"),
        ("I need to reset my password.", "Acme Router", "Forgot password"),
        ("How do I set up the second node?", "Acme Mesh", "Add device"),
        ("The firmware update is stuck.", "Acme Router", "Firmware"),
        ("It makes a strange clicking noise.", "Acme Router", "let me look into it"),
    ]
    for prompt in (old, new):
        for question, product, expected in cases:
            answer = ask(
                litellm,
                server,
                prompt.render(question=question, product=product, customer_name="Dana"),
            )
            assert expected in answer, (prompt.version, question, answer)
            assert product in answer
            assert answer.startswith("Hi Dana, ")


def test_sentence_limits_are_respected(
    litellm: ModuleType, server: FakeLLMServer, old: Prompt, new: Prompt
) -> None:
    counts: dict[str, list[int]] = {old.version: [], new.version: []}
    for question, product, name in QUESTIONS[::3]:
        for prompt in (old, new):
            messages = prompt.render(
                question=question, product=product, customer_name=name, tier="enterprise"
            )
            counts[prompt.version].append(count_sentences(ask(litellm, server, messages)))
    assert max(counts[old.version]) <= 3  # "Answer in at most three sentences."
    assert max(counts[new.version]) <= 5  # "Answer in at most five sentences ..."
    assert max(counts[new.version]) == 5  # the limit is reached, so it really is enforced

    # A tighter limit than the content: the fix is cut, the requested extras stay.
    system = (
        "You are a support agent for Acme Router. Give the fix as numbered steps, say how to "
        "tell it worked, and answer in at most 2 sentences."
    )
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": "My wifi drops."},
    ]
    answer = ask(litellm, server, messages)
    assert count_sentences(answer) == 2
    assert answer.startswith("1. ")
    assert "2. " not in answer
    assert "You'll know it worked when" in answer


def test_invented_features_only_without_the_never_invent_instruction(
    litellm: ModuleType, server: FakeLLMServer, old: Prompt, new: Prompt
) -> None:
    assert len(QUESTIONS) == 40
    invented = {old.version: 0, new.version: 0}
    for question, product, name in QUESTIONS:
        for prompt in (old, new):
            messages = prompt.render(question=question, product=product, customer_name=name)
            invented[prompt.version] += has_invented_feature(ask(litellm, server, messages))
    assert 4 <= invented[old.version] <= 16  # about 1 in 4
    assert invented[new.version] == 0


# --- determinism and models ----------------------------------------------------------------


def test_same_request_same_answer_and_models_differ_slightly(
    litellm: ModuleType, server: FakeLLMServer, new: Prompt
) -> None:
    messages = new.render(question="My wifi keeps dropping.", product="Acme Router")
    first = call(litellm, server, messages)
    second = call(litellm, server, messages)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage.model_dump() == second.usage.model_dump()
    with FakeLLMServer(responder=SimulatedModel(world=ACME)) as other:  # no state between servers
        assert ask(litellm, other, messages) == first.choices[0].message.content

    answers = {model: ask(litellm, server, messages, model) for model in ("gpt-4o-mini", "gpt-4o")}
    assert answers["gpt-4o-mini"] != answers["gpt-4o"]
    for answer in answers.values():  # slightly: the same fix, worded differently
        assert "5 GHz channel to Auto" in answer
        assert "You'll know it worked when" in answer


def test_same_answer_on_both_routes(
    litellm: ModuleType, server: FakeLLMServer, new: Prompt
) -> None:
    messages = new.render(question="How do I install it?", product="Acme Cloud")
    anthropic = litellm.completion(
        model="anthropic/claude-haiku-4-5",
        api_base=server.anthropic_base_url,
        api_key="sk-ant-test",
        messages=messages,
    )
    openai = ask(litellm, server, messages, "openai/claude-haiku-4-5")
    assert anthropic.choices[0].message.content == openai
    assert server.requests[-2].path == "/v1/messages"
    assert "system" in server.requests[-2].body  # Anthropic's top-level system prompt


# --- JSON extraction -----------------------------------------------------------------------

EMAILS = [
    (
        "Hi team,\nOur Acme Router is down across the whole office! Nobody can work. "
        "Please help asap.",
        "outage",
        "urgent",
        "Acme Router",
    ),
    (
        "I was charged twice for my Acme Cloud subscription this month. Please refund one of "
        "them when you have time.",
        "billing",
        "low",
        "Acme Cloud",
    ),
    (
        "The Acme Mesh app shows an error and crashes every time I open the Nodes page.",
        "bug",
        "normal",
        "Acme Mesh",
    ),
    ("How do I add a second admin to our account? No rush.", "how-to", "low", None),
    ("Everything is down since this morning and we can't work.", "outage", "high", None),
    (
        "Our Acme Cloud is offline for all users, this is an emergency.",
        "outage",
        "urgent",
        "Acme Cloud",
    ),
    (
        "Just wanted to say the new Acme Mesh looks great in our living room.",
        "other",
        "normal",
        "Acme Mesh",
    ),
    ("Where can I download last year's invoices?", "billing", "normal", None),
]


def test_extraction_is_valid_json_matching_the_output_schema(
    litellm: ModuleType, server: FakeLLMServer, registry: PromptRegistry
) -> None:
    prompt = registry.load("extract/ticket")
    schema = prompt.output_schema
    assert schema is not None
    for email, category, priority, product in EMAILS:
        text = ask(litellm, server, prompt.render(email=email), "gpt-4o")
        ticket = json.loads(text)
        jsonschema.validate(ticket, schema)
        assert (ticket["category"], ticket["priority"], ticket["product"]) == (
            category,
            priority,
            product,
        ), email
        assert ticket["summary"]
        assert ticket["summary"] in " ".join(email.split())  # the first sentence of the email
        assert not ticket["summary"].startswith("Hi team")

    long_email = "My router " + "really " * 60 + "needs help. Second sentence."
    ticket = json.loads(ask(litellm, server, prompt.render(email=long_email), "gpt-4o"))
    assert len(ticket["summary"]) <= 200
    jsonschema.validate(ticket, schema)


def test_mini_models_sometimes_wrap_the_json_in_a_code_fence(
    litellm: ModuleType, server: FakeLLMServer, registry: PromptRegistry
) -> None:
    prompt = registry.load("extract/ticket")
    emails = [f"Ticket {i}: my Acme Router shows an error." for i in range(32)]
    fenced = 0
    for email in emails:
        text = ask(litellm, server, prompt.render(email=email), "gpt-4o-mini")
        if text.startswith("```"):
            fenced += 1
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
            text = text.removeprefix("```json\n").removesuffix("\n```")
        assert json.loads(text)["category"] == "bug"
    assert 1 <= fenced <= 10  # about 1 in 8
    for email in emails[:8]:
        assert not ask(litellm, server, prompt.render(email=email), "gpt-4o").startswith("```")


# --- summaries and everything else ---------------------------------------------------------


def test_summary_has_three_bullets(
    litellm: ModuleType, server: FakeLLMServer, registry: PromptRegistry
) -> None:
    prompt = registry.load("summarize/thread")
    thread = [
        {"author": "customer", "text": "My Acme Mesh drops the connection in the bedroom."},
        {"author": "agent", "text": "Sorry! Could you try moving the node one room closer?"},
        {"author": "customer", "text": "I moved it. It still drops every night."},
    ]
    summary = ask(litellm, server, prompt.render(messages=thread), "openai/claude-haiku-4-5")
    lines = summary.split("\n")
    assert len(lines) == 3
    assert all(line.startswith("- ") for line in lines)
    assert "drops the connection in the bedroom" in lines[0]
    assert "moving the node one room closer" in lines[1]
    assert "It still drops every night." in lines[2]

    resolved = [*thread[:2], {"author": "customer", "text": "That did it, works now. Thanks!"}]
    summary = ask(litellm, server, prompt.render(messages=resolved), "openai/claude-haiku-4-5")
    assert summary.count("\n- ") == 2
    assert "fixed" in summary.split("\n")[2]


def test_anything_else_is_a_short_answer_from_the_last_user_message(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Asking for a quiz."},
    ]
    answer = ask(litellm, server, messages)
    assert "What is the capital of France?" in answer
    assert not answer.startswith("Echo:")
    assert ask(litellm, server, messages) == answer
    assert len(answer.split()) < 40


# --- usage ----------------------------------------------------------------------------------


def test_usage_uses_the_servers_word_count(
    litellm: ModuleType, server: FakeLLMServer, new: Prompt
) -> None:
    messages = new.render(question="I was charged twice.", product="Acme Cloud")
    response = call(litellm, server, messages)
    text = response.choices[0].message.content
    usage = response.usage
    assert usage.prompt_tokens == default_prompt_tokens(messages)
    assert usage.completion_tokens == len(text.split())
    assert usage.completion_tokens_details.reasoning_tokens == 0
    with FakeLLMServer() as echo:  # the echo default counts the prompt the same way
        assert call(litellm, echo, messages).usage.prompt_tokens == usage.prompt_tokens


def test_reasoning_models_report_reasoning_tokens(
    litellm: ModuleType, server: FakeLLMServer, new: Prompt
) -> None:
    messages = new.render(question="I was charged twice.", product="Acme Cloud")
    for model in ("o3-mini", "o4-mini"):
        response = call(litellm, server, messages, model)
        words = len(response.choices[0].message.content.split())
        assert response.usage.completion_tokens_details.reasoning_tokens == 2 * words
        assert response.usage.completion_tokens == 3 * words  # reasoning included, as OpenAI


def test_anthropic_long_system_prompts_are_sometimes_cached(
    litellm: ModuleType, server: FakeLLMServer, old: Prompt, new: Prompt
) -> None:
    cached: list[int] = []
    for question, product, _ in QUESTIONS[:10]:
        long_system = new.render(question=question, product=product, tier="enterprise")
        system_words = len(long_system[0]["content"].split())
        assert system_words >= 40
        response = litellm.completion(
            model="anthropic/claude-haiku-4-5",
            api_base=server.anthropic_base_url,
            api_key="sk-ant-test",
            messages=long_system,
        )
        usage = response.usage
        assert usage.prompt_tokens == default_prompt_tokens(long_system)  # the total
        cached.append(usage.prompt_tokens_details.cached_tokens)
        assert cached[-1] in (0, system_words + 3)

        short_system = old.render(question=question, product=product)
        assert len(short_system[0]["content"].split()) < 40
        response = litellm.completion(
            model="anthropic/claude-haiku-4-5",
            api_base=server.anthropic_base_url,
            api_key="sk-ant-test",
            messages=short_system,
        )
        assert not response.usage.prompt_tokens_details.cached_tokens
    assert 0 < cached.count(0) < len(cached)  # some requests hit the cache, some do not

    # OpenAI-route requests never report a cache read.
    response = call(litellm, server, new.render(question=QUESTIONS[0][0], product="Acme Router"))
    assert response.usage.prompt_tokens_details.cached_tokens == 0


# --- SimulatedModel and simulate() directly ------------------------------------------------


def test_simulated_model_latency_and_ttft(litellm: ModuleType, new: Prompt) -> None:
    messages = new.render(question="My wifi keeps dropping.", product="Acme Router")
    with FakeLLMServer(responder=SimulatedModel(latency=0.05, ttft=0.05, world=ACME)) as slow:
        start = time.perf_counter()
        ask(litellm, slow, messages)
        assert time.perf_counter() - start >= 0.05
        start = time.perf_counter()
        stream = call(litellm, slow, messages, stream=True)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert time.perf_counter() - start >= 0.1
        assert text == simulate({"model": MODEL, "messages": messages}, world=ACME).text


def test_simulate_and_simulated_model_without_http() -> None:
    body = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a support agent for Acme Mesh."},
            {"role": "user", "content": "Hi, I'm Ada. My wifi is slow."},
        ],
    }
    reply = simulate(body, world=ACME)
    assert isinstance(reply, Reply)
    assert reply.text is not None
    assert reply.text.startswith("Hi Ada, ")
    assert "Acme Mesh" in reply.text
    assert reply.prompt_tokens == default_prompt_tokens(conversation(body, anthropic=False))
    assert simulate(body, world=ACME) == reply

    # The Anthropic shape of the same conversation gets the same text.
    anthropic_body = {
        "model": "gpt-4o-mini",
        "system": [{"type": "text", "text": body["messages"][0]["content"]}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hi, I'm Ada. My wifi is slow."}]}
        ],
    }
    assert simulate(anthropic_body, world=ACME).text == reply.text

    model = SimulatedModel(latency=0.25, ttft=0.5, world=ACME)
    recorded = RecordedRequest(path="/v1/chat/completions", headers={}, body=body, received_at=0)
    answer = model(recorded)
    assert answer is not None
    assert (answer.text, answer.delay, answer.ttft) == (reply.text, 0.25, 0.5)
    assert model(body) == answer
    not_json = RecordedRequest(path="/v1/chat/completions", headers={}, body=None, received_at=0)
    assert model(not_json) is None
    with pytest.raises(ValueError):
        SimulatedModel(latency=-1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three?", 3),
        (
            "1. Restart it.\n2. Wait.\n3. Check the light.\n\nYou'll know it worked when it works.",
            4,
        ),
        ("Open Settings > Wi-Fi and set 5 GHz to Auto. Version 1.2.3 is fine.", 2),
        ("Hi Dana, here's the fix:\n- Restart it.", 2),
        ("no punctuation", 1),
        ("", 0),
    ],
)
def test_count_sentences(text: str, expected: int) -> None:
    assert count_sentences(text) == expected
