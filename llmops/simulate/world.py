"""What the simulated model knows: the products, their support knowledge base, its inventions.

The simulated model (:mod:`llmops.simulate.model`) has no knowledge of its own; everything
product-specific comes from the :class:`World` it is given. ``World()``, the default, knows
nothing: it names no product, answers every support question with :data:`GENERIC_FIX`, and
never makes up a feature. The demo's world, about the Acme products, is
:data:`llmops.demo.knowledge.ACME`.

Standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

__all__ = ["GENERIC_FIX", "GENERIC_TOPIC", "Fix", "World"]

#: The topic of a support question that matches none of the world's topics; a product's
#: knowledge base entry under it is the product's fallback answer.
GENERIC_TOPIC = "generic"


@dataclass(frozen=True)
class Fix:
    """The answer to one kind of support question, in the pieces the model assembles.

    ``action``: a verb phrase, the first fix ("restart the router by unplugging it ..."); it
    becomes the first numbered step, or completes "The most likely fix is to ...".
    ``more``: further steps, full sentences (numbered answers). ``check``: completes
    "You'll know it worked when ...". ``followup``: the second sentence of a prose answer.
    ``opening``: a fixed first sentence of a prose answer, used instead of the
    "most likely fix" sentence (a product's generic answer has one).
    """

    action: str
    more: tuple[str, ...]
    check: str
    followup: str
    opening: str | None = None


#: The answer to a support question about no known product or topic.
GENERIC_FIX = Fix(
    "restart the app or device and try again",
    (
        "Check that it is on the latest version.",
        "If it still happens, send us what you see, and let me look into it.",
    ),
    "it works again as expected",
    "If it still happens, send us what you see and I'll look into it.",
)


@dataclass(frozen=True)
class World:
    """What the simulated model knows. Every field is optional: ``World()`` knows nothing.

    ``products``
        Product names, e.g. ``("Acme Router", "Acme Mesh")``. A prompt or a message names
        one when it contains the name as whole words, in any case, with any whitespace
        between the words (the leftmost name wins). A support question that names none is
        about the first product; ticket extraction reports the named product or ``None``.
    ``knowledge``
        The knowledge base: product name -> topic -> :class:`Fix`. A support answer uses
        the entry for its product and topic, else the product's :data:`GENERIC_TOPIC`
        entry, else :data:`GENERIC_FIX`.
    ``topics``
        ``(topic, regex)`` pairs: a support question is about the topic whose regex matches
        it most often (case-insensitive); on a tie the topic listed first wins; with no match
        it is about :data:`GENERIC_TOPIC`.
    ``topic_overrides``
        ``(topic, regex, instead)`` triples applied after that count: when the question is
        about ``topic`` and also matches ``regex``, it is about ``instead`` ("reset my
        password" is about the password, not a factory reset).
    ``invented_features``
        Names of product features that do not exist. The model's grader fails every output
        that contains one of them (case-insensitive).
    ``inventions``
        Sentences the model adds to 1 support answer in 4 when the prompt does not say
        "never invent": a hallucination. ``{product}`` is replaced by the product's name;
        each must contain one of ``invented_features``, so the grader can catch it.
    """

    products: tuple[str, ...] = ()
    knowledge: Mapping[str, Mapping[str, Fix]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    topics: tuple[tuple[str, str], ...] = ()
    topic_overrides: tuple[tuple[str, str, str], ...] = ()
    invented_features: tuple[str, ...] = ()
    inventions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Read-only copies of the caller's tables: a World does not change after it is made.
        knowledge = MappingProxyType(
            {product: MappingProxyType(dict(fixes)) for product, fixes in self.knowledge.items()}
        )
        object.__setattr__(self, "knowledge", knowledge)
        for name in ("products", "invented_features", "inventions"):
            values = getattr(self, name)
            if isinstance(values, str) or not all(isinstance(v, str) and v.strip() for v in values):
                raise TypeError(f"World.{name} must be a tuple of non-empty strings")
        for product, fixes in knowledge.items():
            for topic, fix in fixes.items():
                if not isinstance(fix, Fix):
                    raise TypeError(f"World.knowledge[{product!r}][{topic!r}] must be a Fix")
        for _, pattern in self.topics:
            re.compile(pattern)
        for _, pattern, _ in self.topic_overrides:
            re.compile(pattern)
        for sentence in self.inventions:
            if not any(f.lower() in sentence.lower() for f in self.invented_features):
                raise ValueError(
                    f"World.inventions: {sentence!r} names none of the invented_features, "
                    "so the grader would not catch it"
                )

    @cached_property
    def _product_matcher(self) -> tuple[re.Pattern[str], tuple[str, ...]] | None:
        """One regex for all product names, a group each, and the names in group order.

        The longest names come first, so "Acme Router Pro" wins over "Acme Router".
        """
        if not self.products:
            return None
        names = tuple(sorted(self.products, key=len, reverse=True))
        groups = "|".join(
            "(" + r"\s+".join(re.escape(word) for word in name.split()) + ")" for name in names
        )
        return re.compile(rf"\b(?:{groups})\b", re.IGNORECASE), names

    def product_in(self, text: str) -> str | None:
        """The product ``text`` names, or ``None``: the leftmost name, the longest one there."""
        if self._product_matcher is None:
            return None
        pattern, names = self._product_matcher
        match = pattern.search(text)
        if match is None or match.lastindex is None:
            return None
        return names[match.lastindex - 1]

    def fix(self, product: str | None, topic: str) -> Fix:
        """The knowledge base's answer for ``product`` and ``topic``, with the fallbacks."""
        fixes = self.knowledge.get(product, {}) if product is not None else {}
        return fixes.get(topic) or fixes.get(GENERIC_TOPIC) or GENERIC_FIX
