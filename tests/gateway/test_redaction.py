"""The redactor against its corpus, its speed on hostile input, and scrub_secrets."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.gateway.redaction import PLACEHOLDERS, redact, scrub_secrets

CORPUS_FILE = Path(__file__).with_name("redaction_corpus.yaml")
CREDENTIAL_KINDS = {
    "API_KEY",
    "AWS_ACCESS_KEY",
    "AWS_SECRET",
    "TOKEN",
    "JWT",
    "PASSWORD",
    "SECRET",
    "PRIVATE_KEY",
}
PERSONAL_KINDS = {"EMAIL", "PHONE", "CARD_NUMBER", "IBAN", "SSN", "IP_ADDRESS"}
KINDS = CREDENTIAL_KINDS | PERSONAL_KINDS


def _load() -> list[dict[str, Any]]:
    samples = yaml.safe_load(CORPUS_FILE.read_text(encoding="utf-8"))["samples"]
    for sample in samples:
        assert set(sample) <= {"text", "expect", "gone", "note"}, sample
        assert set(sample["expect"]) <= KINDS, sample
    return samples


CORPUS = _load()
POSITIVES = [s for s in CORPUS if s["expect"]]
NEGATIVES = [s for s in CORPUS if not s["expect"]]


def _id(sample: dict[str, Any]) -> str:
    return sample["note"][:60]


def test_corpus_shape() -> None:
    assert len(CORPUS) >= 150
    assert len(POSITIVES) >= 90 and len(NEGATIVES) >= 60
    covered = Counter(kind for s in POSITIVES for kind in s["expect"])
    assert set(covered) == KINDS, f"kinds without a sample: {KINDS - set(covered)}"
    assert {f"[{kind}]" for kind in KINDS} == set(PLACEHOLDERS)
    assert all(s.get("gone") for s in POSITIVES), "every positive names what must go"
    assert len({s["text"] for s in CORPUS}) == len(CORPUS), "duplicate samples"


@pytest.mark.parametrize("sample", CORPUS, ids=_id)
def test_corpus_sample(sample: dict[str, Any]) -> None:
    text = sample["text"]
    out = redact(text)
    if not sample["expect"]:
        assert out == text
        assert scrub_secrets(text) == text
        return
    for kind in sample["expect"]:
        assert f"[{kind}]" in out, out
    for secret in sample["gone"]:
        assert str(secret) not in out, out
    assert redact(out) == out  # placeholders are never masked again


@pytest.mark.parametrize("sample", POSITIVES, ids=_id)
def test_scrub_secrets_masks_credentials_only(sample: dict[str, Any]) -> None:
    out = scrub_secrets(sample["text"])
    for kind in sample["expect"]:
        if kind in CREDENTIAL_KINDS:
            assert f"[{kind}]" in out, out
    for kind in PERSONAL_KINDS:
        assert f"[{kind}]" not in out, out
    if set(sample["expect"]) <= PERSONAL_KINDS:
        assert out == sample["text"]


def test_scrub_secrets_leaves_personal_data() -> None:
    text = (
        "Ann <ann@example.com>, +44 20 7946 0958, card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00, from 203.0.113.42 sent key sk-abc123 "
        "and password=hunter2 to https://bot:pw123@example.com"
    )
    assert scrub_secrets(text) == (
        "Ann <ann@example.com>, +44 20 7946 0958, card 4111 1111 1111 1111, "
        "IBAN DE89 3704 0044 0532 0130 00, from 203.0.113.42 sent key [API_KEY] "
        "and password=[PASSWORD] to https://bot:[PASSWORD]@example.com"
    )
    assert redact(text) == (
        "Ann <[EMAIL]>, [PHONE], card [CARD_NUMBER], "
        "IBAN [IBAN], from [IP_ADDRESS] sent key [API_KEY] "
        "and password=[PASSWORD] to https://bot:[PASSWORD]@example.com"
    )


def test_context_is_kept() -> None:
    assert redact("Authorization: Bearer abc123def456") == "Authorization: Bearer [TOKEN]"
    assert redact('{"password": "s3cret"}') == '{"password": "[PASSWORD]"}'
    assert redact("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") == (
        "aws_secret_access_key=[AWS_SECRET]"
    )


def test_unchanged_text_is_the_same_object() -> None:
    text = "Nothing to hide here: order #123456789 shipped on 2026-11-27 for $12.50. " * 30
    assert redact(text) is text
    assert scrub_secrets(text) is text
    assert redact("") == "" and scrub_secrets("") == ""


def test_non_ascii_text() -> None:
    # "İ".lower() is two characters long: keyword positions must not drift.
    text = "İİİ Passwort? password=hunter2 İ и телефон +7 495 123-45-67, ünïcødé@example.com"
    out = redact(text)
    assert "hunter2" not in out and "password=[PASSWORD]" in out
    assert "[PHONE]" in out and "[EMAIL]" in out and out.startswith("İİİ Passwort? ")


# -- hostile input --------------------------------------------------------------------

HOSTILE = {
    "letters": "a" * 10**6,
    "digit-space": "1 " * 500_000,
    "sk-": "sk-" * 300_000,
    "at": "@" * 10**6,
    "a@": "a@" * 500_000,
    "local-part": ("a" * 63 + "@") * 15_000,
    "url": "://a:" * 200_000,
    "pem": "-----BEGIN RSA PRIVATE KEY-----" * 30_000,
    "eyJ": "eyJaaaaa." * 100_000,
    "password=": "password=" * 100_000,
    "pass ": "pass " * 200_000,
    "token=": "token=" * 150_000,
    "Bearer": "Bearer " * 140_000,
    "Basic": "Basic " * 160_000,
    "secret": "secret " * 140_000,
    "digits": "1" * 10**6,
    "1-": "1-" * 500_000,
    "+1": "+1" * 500_000,
    "card groups": "4111 " * 200_000,
    "iban groups": "DE89 " * 200_000,
    "AKIA": "AKIA" * 250_000,
    "dots": "1." * 500_000,
    "brackets": "(" * 10**6,
}


def _seconds(function: Any, text: str, runs: int = 3) -> float:
    """The best of ``runs`` CPU times of this thread: other processes (parallel test
    workers) do not count, so the ratio below measures the algorithm, not the machine."""
    best = float("inf")
    for _ in range(runs):
        start = time.thread_time()
        function(text)
        best = min(best, time.thread_time() - start)
    return best


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_completes(name: str) -> None:
    text = HOSTILE[name]
    # Catastrophic backtracking takes minutes on a megabyte; linear work takes well
    # under a second. The bound is loose so that a busy machine does not fail it.
    assert _seconds(redact, text, runs=1) < 5
    assert _seconds(scrub_secrets, text, runs=1) < 5


@pytest.mark.parametrize("name", ["letters", "digit-space", "sk-", "a@", "password=", "1-"])
def test_hostile_input_is_linear(name: str) -> None:
    text = HOSTILE[name]
    small, large = text[: len(text) // 4], text
    ratio = _seconds(redact, large, runs=5) / max(_seconds(redact, small, runs=5), 1e-3)
    assert ratio < 10, f"4x the input took {ratio:.1f}x the time (linear: 4, quadratic: 16)"


# -- measured figures -----------------------------------------------------------------

CHAT_MESSAGE = (
    "Hi team, I tried the new checkout flow yesterday and it crashed twice when I pressed "
    "the pay button. My order was placed on 2026-11-27 at 10:42 and the total was $129.99 "
    "for 3 items. Could you please look into it? The app version is 4.2.1 and I'm on "
    "Android 14. I also noticed the API returns a 500 error and the token count in the "
    "response looks wrong. Thanks a lot, and sorry for the long message! "
)


def test_recall_and_false_positives() -> None:
    """Recall over (sample, kind) pairs; false positives over the negative samples."""
    found: Counter[str] = Counter()
    expected: Counter[str] = Counter()
    leaks = []
    for sample in POSITIVES:
        out = redact(sample["text"])
        for kind in sample["expect"]:
            expected[kind] += 1
            found[kind] += f"[{kind}]" in out
        leaks += [secret for secret in sample["gone"] if str(secret) in out]
    changed = [s["note"] for s in NEGATIVES if redact(s["text"]) != s["text"]]
    recall = sum(found.values()) / sum(expected.values())
    false_positive_rate = len(changed) / len(NEGATIVES)

    text = (CHAT_MESSAGE * 6)[:2048]
    runs, repeats = 200, 15
    best = min(
        _seconds(lambda t: [redact(t) for _ in range(runs)], text, runs=1) for _ in range(repeats)
    )
    print(
        f"\nredaction corpus: {len(POSITIVES)} positive samples "
        f"({sum(expected.values())} sample/kind pairs), {len(NEGATIVES)} negative samples"
    )
    for kind in sorted(expected):
        print(f"  {kind:<15} {found[kind]}/{expected[kind]}")
    print(f"recall {recall:.1%}, secrets left behind {len(leaks)}")
    print(f"false positives {len(changed)}/{len(NEGATIVES)} = {false_positive_rate:.1%}")
    print(f"redact() on a {len(text)}-character chat message: {best / runs * 1e6:.0f} us")
    assert recall == 1 and not leaks, (found, expected, leaks)
    assert false_positive_rate == 0, changed
