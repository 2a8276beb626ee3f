"""Every scenario of ``pricing_cases.yaml`` as a real call: the fake server answers in the
provider's wire format, litellm parses it, the gateway prices and records the call, and
the stored row must hold the cost written out by hand in the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.pricing.usage import Usage
from llmops.testing import FakeLLMServer, Reply
from tests.gateway.test_gateway import rows

TABLE = yaml.safe_load((Path(__file__).parent / "pricing_cases.yaml").read_text())
CASES = TABLE["cases"]
AWS = {
    "aws_access_key_id": "AKIATEST",
    "aws_secret_access_key": "x",
    "aws_region_name": "us-east-1",
}


def route_kwargs(route: str, model: str, server: FakeLLMServer) -> dict[str, Any]:
    """How litellm reaches the fake server for a case's wire format."""
    if route == "anthropic":
        return {"api_base": server.anthropic_base_url, "api_key": "sk-test"}
    if route == "gemini":
        return {"api_base": server.gemini_base_url, "api_key": "test-key"}
    if route == "bedrock":
        return {"api_base": server.bedrock_base_url, **AWS}
    if model.startswith("azure/"):
        return {"api_base": server.url, "api_key": "sk-test"}
    return {"api_base": server.base_url, "api_key": "sk-test"}


def usage_of(reply: dict[str, Any]) -> Usage:
    """The usage a provider reports for a scripted reply (for cases priced without a call)."""
    return Usage(
        prompt_tokens=reply["prompt_tokens"],
        completion_tokens=reply["completion_tokens"],
        cached_tokens=reply.get("cached_tokens", 0),
        cache_write_tokens=reply.get("cache_write_tokens", 0),
        reasoning_tokens=reply.get("reasoning_tokens", 0),
        cache_write_1h_tokens=reply.get("cache_write_1h_tokens") or 0,
        audio_input_tokens=reply.get("audio_input_tokens", 0),
        image_input_tokens=reply.get("image_input_tokens", 0),
        audio_output_tokens=reply.get("audio_output_tokens", 0),
        image_output_tokens=reply.get("image_output_tokens", 0),
    )


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_the_stored_cost_is_the_bill(case: dict[str, Any], server, tmp_path: Path) -> None:
    from llmops import Gateway

    prices = None
    if case.get("prices"):
        prices = tmp_path / "prices.yaml"
        prices.write_text(yaml.safe_dump(case["prices"]))
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    gw = Gateway(database_url=url, home=tmp_path / "home", prompts=tmp_path / "none",
                 prices=prices)  # fmt: skip
    expected = case["expected"]
    try:
        if case.get("via_server") is False:
            from llmops import litellm_loader

            provider = litellm_loader.load().get_llm_provider(case["model"])[1]
            price = gw.prices.price(case["model"], usage_of(case["reply"]), provider=provider)
            stored = {"cost_usd": price.cost_usd, "cost_status": price.status}
        else:
            stored = dict(call_through_gateway(gw, case, server))
    finally:
        gw.close()
    if expected["cost_usd"] is None:
        assert stored["cost_usd"] is None, case.get("formula")
    else:
        assert stored["cost_usd"] == pytest.approx(float(expected["cost_usd"]), rel=1e-9, abs=1e-15)
    assert stored["cost_status"] == expected["cost_status"]
    columns = ("tokens_estimated", "prompt_tokens", "completion_tokens", "price_source",
               "provider")  # fmt: skip
    for column in columns:
        if column in expected:
            assert stored[column] == expected[column], column


def call_through_gateway(gw: Any, case: dict[str, Any], server: FakeLLMServer) -> Any:
    server.enqueue(Reply(**case["reply"]))
    params = {"num_retries": 0, **(case.get("params") or {})}
    stream = params.pop("stream", False)
    params.pop("stream_options", None)
    call = {
        "model": case["model"],
        "messages": case.get("messages") or TABLE["default_messages"],
        **route_kwargs(case["route"], case["model"], server),
        **params,
    }
    if case["reply"].get("status", 200) >= 400:
        with pytest.raises(Exception):  # noqa: B017 - the provider's error, re-raised
            gw.complete(**call)
    elif stream:
        with gw.stream(**call) as chunks:
            for _ in chunks:
                pass
    else:
        gw.complete(**call)
    assert gw.flush(10)
    (row,) = rows(gw.database_url)
    return row
