"""The simulated model's World: what it knows, the default empty world, and the demo's."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from llmops.demo.knowledge import ACME, INVENTED_FEATURES, PRODUCTS
from llmops.simulate import GENERIC_FIX, Fix, SimulatedModel, World, simulate

SUPPORT = "You are a friendly support agent. Answer with numbered steps."
JUDGE = "You are grading an AI assistant's output against a rubric."


def body(system: str, user: str, model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }


def text_of(request: dict[str, Any], world: World | None = None) -> str:
    text = simulate(request, world=world).text
    assert text is not None
    return text


def test_the_default_world_knows_no_product() -> None:
    assert SimulatedModel().world == World()
    answer = text_of(body(SUPPORT, "My Acme Router keeps dropping the wifi."))
    assert answer.startswith(f"1. {GENERIC_FIX.action[:1].upper()}{GENERIC_FIX.action[1:]}.")
    assert "Acme" not in answer
    ticket = text_of(body("Reply with JSON only.", "Our Acme Cloud is down!"))
    assert json.loads(ticket.strip("`").removeprefix("json"))["product"] is None


def test_the_default_world_invents_nothing() -> None:
    prose = "You are a support agent."  # no "never invent": 1 answer in 4 would make one up
    answers = [text_of(body(prose, f"Question {i}: it is broken.")) for i in range(40)]
    for answer in answers:
        assert not any(feature in answer for feature in INVENTED_FEATURES)
    assert any(
        any(feature in text_of(body(prose, f"Question {i}: it is broken."), ACME)
            for feature in INVENTED_FEATURES)
        for i in range(40)
    )  # fmt: skip


def test_a_world_of_its_own() -> None:
    fix = Fix("turn the Zeta Lamp off and on", ("Wait 5 seconds.",), "it glows", "Then wait.")
    world = World(
        products=("Zeta Lamp", "Zeta Lamp Pro"),
        knowledge={"Zeta Lamp Pro": {"power": fix}},
        topics=(("power", r"\bpower\b"),),
        invented_features=("GlowMax",),
        inventions=("The {product} also has GlowMax.",),
    )
    assert world.product_in("my zeta   LAMP pro and my Zeta Lamp") == "Zeta Lamp Pro"
    assert world.product_in("my Zeta Lamp") == "Zeta Lamp"
    assert world.product_in("a lamp") is None
    answer = text_of(
        body(SUPPORT + " Never invent features.", "Zeta Lamp Pro has no power."), world
    )
    assert answer.splitlines()[0] == "1. Turn the Zeta Lamp off and on."
    assert world.fix("Zeta Lamp Pro", "other") is GENERIC_FIX  # no generic entry: the default
    assert world.fix("Zeta Lamp", "power") is GENERIC_FIX
    verdict = json.loads(text_of(body(JUDGE, "Rubric:\nBe right.\n\nOutput:\nUse GlowMax."), world))
    assert verdict["pass"] is False
    assert json.loads(text_of(body(JUDGE, "Rubric:\nBe right.\n\nOutput:\nUse GlowMax.")))["pass"]


def test_a_world_is_frozen_and_checked() -> None:
    with pytest.raises(FrozenInstanceError):
        ACME.products = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        ACME.knowledge["Acme Router"]["reset"] = GENERIC_FIX  # type: ignore[index]
    with pytest.raises(ValueError, match="invented_features"):
        World(invented_features=("GlowMax",), inventions=("It has TurboMode.",))
    with pytest.raises(TypeError):
        World(products="Acme Router")  # type: ignore[arg-type]
    assert hash(SimulatedModel(world=ACME)) == hash(SimulatedModel(world=ACME))


def test_the_demo_world() -> None:
    assert ACME.products == PRODUCTS
    assert ACME.invented_features == INVENTED_FEATURES
    assert set(ACME.knowledge) == set(PRODUCTS)
    topics = {topic for topic, _ in ACME.topics} | {"generic"}
    for fixes in ACME.knowledge.values():
        assert set(fixes) == topics
    # "reset my password" is about the password, not a factory reset
    answer = text_of(body(SUPPORT, "Reset, reset: I need to reset my password."), ACME)
    assert "Forgot password" in answer
