"""Pricing one call: what reading a provider's usage and pricing it cost on the call path.

Times, in one process, ``usage_from_response`` on litellm ``Usage`` objects (a plain
OpenAI answer, a Gemini answer with cached audio, video and grounding) and
``PriceBook().price`` for calls of several shapes (plain text, Claude's cache writes,
Gemini's cached audio with grounding, a tiered Qwen model above its first range, an OpenAI
call from the EU host). Each figure is the median of ``--rounds`` rounds of ``--calls``
calls. A shape the checkout's ``Usage`` cannot express (an older checkout, run for a
baseline) prints "n/a". Run it from two checkouts one after the other to compare.

Usage: python benchmarks/pricing.py [--calls N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import median

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmops.pricing.prices import PriceBook
from llmops.pricing.usage import Served, Usage, usage_from_response


def per_call(work: Callable[[], Any], calls: int, rounds: int) -> float:
    """Median over rounds of the time of one call, in microseconds."""
    work()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            work()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return median(times)


def litellm_usages() -> dict[str, Any]:
    from litellm.types.utils import CompletionTokensDetailsWrapper as Said
    from litellm.types.utils import PromptTokensDetailsWrapper as Asked
    from litellm.types.utils import Usage as LitellmUsage

    plain = LitellmUsage(
        prompt_tokens=30, completion_tokens=10, total_tokens=40,
        prompt_tokens_details=Asked(cached_tokens=0, audio_tokens=0),
        completion_tokens_details=Said(reasoning_tokens=0, audio_tokens=0),
    )  # fmt: skip
    asked = Asked(cached_tokens=800, audio_tokens=400, video_tokens=500, text_tokens=1100,
                  cached_tokens_details={"text_tokens": 500, "audio_tokens": 300})  # fmt: skip
    asked.web_search_requests = 3
    gemini = LitellmUsage(
        prompt_tokens=2000, completion_tokens=200, total_tokens=2200,
        prompt_tokens_details=asked, completion_tokens_details=Said(video_tokens=50),
    )  # fmt: skip
    return {"OpenAI, plain": plain, "Gemini, cached audio, video, grounding": gemini}


def price_shapes() -> dict[str, tuple[str, dict[str, int], dict[str, str]]]:
    """Each call priced: its model, its usage's parts, what ``Served`` says of it."""
    return {
        "gpt-4o-mini, text": ("gpt-4o-mini", {}, {"model": "gpt-4o-mini-2024-07-18"}),
        "claude-sonnet-4-5, cache reads and 1-hour writes": (
            "anthropic/claude-sonnet-4-5",
            {"cached_tokens": 10, "cache_write_tokens": 10, "cache_write_1h_tokens": 5},
            {},
        ),
        "gemini-2.5-flash, cached audio and grounding": (
            "gemini/gemini-2.5-flash",
            {
                "cached_tokens": 10,
                "audio_input_tokens": 10,
                "cached_audio_tokens": 5,
                "grounding_queries": 2,
            },
            {},
        ),
        "qwen3.7-plus above its first range": ("dashscope/qwen3.7-plus", {}, {}),
        "gpt-5.6 from the EU host": ("gpt-5.6", {}, {"data_residency": "eu"}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'microseconds per call (median of rounds)':<68}{'us':>8}")
    for name, usage in litellm_usages().items():
        took = per_call(lambda u=usage: usage_from_response(u), args.calls, args.rounds)
        print(f"usage_from_response: {name:<47}{took:>8.1f}")
    book = PriceBook()
    for name, (model, parts, where) in price_shapes().items():
        prompt = 300_000 if "range" in name else 30
        try:  # an older checkout's Usage or Served may lack a part
            usage, served = Usage(prompt, 10, **parts), Served(**where)
        except TypeError:
            print(f"PriceBook.price: {name:<51}{'n/a':>8}")
            continue
        took = per_call(
            lambda m=model, u=usage, s=served: book.price(m, u, served=s), args.calls, args.rounds
        )
        print(f"PriceBook.price: {name:<51}{took:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
