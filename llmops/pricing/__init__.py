"""What a call costs: its usage (tokens by kind, from the response or counted locally),
the price map (litellm's, pinned and offline, with overrides from ``prices.yaml`` or
``price=``), the exact price of each billing dimension, and re-pricing of stored calls.

Imports litellm only to read its price map and count tokens, and only when asked.
"""

from __future__ import annotations

from llmops.pricing.prices import ModelPrice, Price, PriceBook
from llmops.pricing.usage import Served, Usage

__all__ = ["ModelPrice", "Price", "PriceBook", "Served", "Usage"]
