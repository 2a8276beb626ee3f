"""The demo's help center: one article per product and topic, and a small retriever.

The simulated support app retrieves a few of these articles for each question and puts
them in the prompt, as a retrieval-augmented app does, so that its prompts carry one to
three thousand tokens. Each article is written from the knowledge base of
:mod:`llmops.demo.knowledge` (the fix, its steps, how to check it worked) plus paragraphs
about the topic and the product, about 400 tokens each.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache

from llmops.demo.knowledge import ACME, KNOWLEDGE, PRODUCTS

__all__ = ["ARTICLES", "Article", "context_text", "retrieve", "topic_of"]

TITLES = {
    "reset": "Restore the {product} to its factory settings",
    "wifi": "Fix slow or dropping connections on the {product}",
    "password": "Reset a forgotten {product} password",
    "billing": "Check, correct and refund {product} charges",
    "firmware": "Update the {product} software",
    "setup": "Set up a new {product}",
    "generic": "Troubleshoot the {product} and send us diagnostics",
}

BEFORE = {
    "reset": (
        "A factory reset erases every setting you changed since you first set the device up: "
        "network names, passwords, port forwarding rules, parental controls and schedules. "
        "Write them down first, or export a backup from the Acme app under Settings > Backup "
        "if your version has it. Keep the label on the device at hand, because after the "
        "reset the device goes back to the network name and password printed on it. Do not "
        "unplug it while it restarts, and allow up to ten minutes before you assume "
        "something went wrong."
    ),
    "wifi": (
        "Connection problems usually come from where the device sits, from interference or "
        "from a crowded channel, much more rarely from a fault. Thick walls, mirrors, "
        "aquariums, metal shelves and appliances such as microwave ovens and baby monitors "
        "all weaken the signal. Before you change any setting, run the speed test in the "
        "Acme app twice, once next to the device and once where the problem happens, and "
        "note both results: they tell us whether the problem is the coverage or the line "
        "from your internet provider."
    ),
    "password": (
        "For your security our support team can never see or send your password. Resetting "
        "it signs out every phone and computer that uses the account, so have them at hand "
        "to sign in again. The reset link goes to the email address of the account owner; "
        "if you no longer have access to it, the account owner can add you as an admin "
        "under Account > Members, or you can prove ownership with the serial number and the "
        "last four digits of the payment card on file."
    ),
    "billing": (
        "Charges appear on your statement as ACME* followed by the product name, a few days "
        "after the invoice date. A pending authorisation from your bank can look like a "
        "second charge for up to five business days and then disappears on its own. Plan "
        "changes in the middle of a billing period are prorated: the first invoice after "
        "an upgrade is higher, the next ones are back to normal. Invoices stay available "
        "for seven years on the Billing page and can be downloaded as PDF."
    ),
    "firmware": (
        "Updates bring security fixes, better coverage and new settings, and we recommend "
        "turning on automatic updates so that they install at night. An update needs a "
        "working internet connection and about 200 MB of free space on computers. Never "
        "unplug a device or close the app while an update installs; if the power goes out "
        "in the middle of an update, the device keeps its previous version and tries again "
        "the next night."
    ),
    "setup": (
        "Setup takes about fifteen minutes. You need the Acme app on a phone with Bluetooth "
        "turned on, your Acme account, and the device's label or the QR code on it. Keep "
        "the phone within a few metres of the device during setup. If you are replacing "
        "another router, use the same network name and password as before, so that your "
        "devices reconnect without any change on their side."
    ),
    "generic": (
        "Most problems go away after a restart, so try that first, then look at the status "
        "light: solid white means everything is fine, blinking blue means it is starting "
        "or waiting for setup, amber means there is no internet connection, and red means "
        "a fault. A diagnostics report contains the device's logs and settings but none of "
        "your traffic or passwords, and it lets the support team see what happened."
    ),
}

IF_NOT_FIXED = {
    "reset": (
        "If the status light never turns white after a reset, hold the Reset button again "
        "for 30 seconds while you plug the power cable in, then wait ten minutes. If it is "
        "still not back, contact support with the serial number from the label."
    ),
    "wifi": (
        "If the connection still drops, turn off band steering under Wi-Fi settings for a "
        "day and see whether one band behaves better, and check the status page for an "
        "outage in your area. Send us both speed test results if nothing helps."
    ),
    "password": (
        "If the reset email does not arrive within 15 minutes, check the spam folder and "
        "make sure the address is the one on the account. After five failed attempts the "
        "account is locked for 30 minutes to protect it."
    ),
    "billing": (
        "If a refund does not show up after seven business days, reply to the confirmation "
        "email with the invoice number and we will trace it with the payment provider. "
        "Billing questions are answered within one business day."
    ),
    "firmware": (
        "If an update fails twice, restart the device and try again from the app. If the "
        "version does not change after a successful update, sign out of the app and in "
        "again, because the app may show a cached version."
    ),
    "setup": (
        "If the app does not find the device, turn Bluetooth off and on, move closer and "
        "make sure the status light blinks blue. A device that was set up before must be "
        "reset first before it can be added to another account."
    ),
    "generic": (
        "If the problem comes back, note when it happens and what you were doing, because "
        "patterns such as every evening or only on one device help us find the cause much "
        "faster. Enterprise customers can call their account manager at any time."
    ),
}

GOOD_TO_KNOW = {
    "Acme Router": (
        "The Acme Router covers a flat or a small house on its own. For larger homes, add "
        "Acme Mesh nodes: the router then acts as the main node. The router keeps a log of "
        "the last seven days under Settings > Logs, which support may ask for."
    ),
    "Acme Mesh": (
        "Acme Mesh nodes talk to each other on a dedicated band, so every node should be no "
        "more than two rooms from the next one. The main node is the one plugged into your "
        "modem; the others only need power. Nodes update one by one, the main node last."
    ),
    "Acme Cloud": (
        "Acme Cloud keeps previous versions of every file for 30 days, or 180 days on the "
        "Pro and Enterprise plans, and deleted files stay in the Trash for 30 days. The "
        "desktop app runs on Windows, macOS and Linux, and the status page at "
        "status.acme.example shows incidents as they happen."
    ),
}


@dataclass(frozen=True)
class Article:
    """One help-center article: its id (``KB-1042``), product, topic, title and body."""

    id: str
    product: str
    topic: str
    title: str
    body: str

    @property
    def text(self) -> str:
        """The article as the retriever hands it to a prompt: ``[id] title``, then the body."""
        return f"[{self.id}] {self.title}\n{self.body}"


def _article(number: int, product: str, topic: str) -> Article:
    fix = KNOWLEDGE[product][topic]
    steps = [f"{fix.action[:1].upper()}{fix.action[1:]}.", *fix.more]
    body = "\n".join(
        [
            f"Applies to: {product}. Updated for the current release.",
            "",
            f"Before you start: {BEFORE[topic]}",
            "",
            "Steps:",
            *(f"{index}. {step}" for index, step in enumerate(steps, 1)),
            "",
            f"How to check it worked: {fix.check[:1].upper()}{fix.check[1:]}.",
            "",
            f"If it still doesn't work: {IF_NOT_FIXED[topic]}",
            "",
            f"Good to know: {GOOD_TO_KNOW[product]}",
        ]
    )
    return Article(f"KB-{number}", product, topic, TITLES[topic].format(product=product), body)


def _articles() -> tuple[Article, ...]:
    found = []
    for p, product in enumerate(PRODUCTS):
        for t, topic in enumerate(TITLES):
            found.append(_article(1000 + 100 * p + 7 * t + 3, product, topic))
    return tuple(found)


#: Every article: one per product and topic (21).
ARTICLES: tuple[Article, ...] = _articles()


@cache
def _compiled() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((topic, re.compile(pattern, re.IGNORECASE)) for topic, pattern in ACME.topics)


def topic_of(question: str) -> str:
    """The knowledge base topic of a question, as the simulated model finds it (the topic
    whose keywords it names most often, the first on a tie, then the overrides;
    ``generic`` when none matches)."""
    best, hits = "generic", 0
    for topic, compiled in _compiled():
        found = len(compiled.findall(question))
        if found > hits:
            best, hits = topic, found
    for topic, pattern, instead in ACME.topic_overrides:
        if best == topic and re.search(pattern, question, re.IGNORECASE):
            best = instead
    return best


def retrieve(product: str, question: str, k: int, rng: random.Random) -> list[Article]:
    """``k`` articles for a question, as a vector search would rank them: the article about
    the product and the question's topic first (ranked second 1 time in 8, and left out 1
    time in 20: retrieval is not perfect), then other articles about the product, then
    about other products."""
    topic = topic_of(question)
    same = [a for a in ARTICLES if a.product == product]
    best = next(a for a in same if a.topic == topic)
    rest = [a for a in same if a is not best]
    rng.shuffle(rest)
    others = [a for a in ARTICLES if a.product != product]
    ranked = [best, *rest[:3], *rng.sample(others, 2), *rest[3:]]
    draw = rng.random()
    if draw < 0.05:
        ranked.remove(best)
    elif draw < 0.175:
        ranked[0], ranked[1] = ranked[1], ranked[0]
    return ranked[: max(1, k)]


def context_text(articles: list[Article]) -> str:
    """The retrieved articles as the prompts' ``context``: one after the other."""
    return "\n\n".join(article.text for article in articles)
