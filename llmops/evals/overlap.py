"""Text overlap metrics for ``rouge-n`` and ``bleu`` assertions (the standard definitions).

Both compare words, case-folded: a token is a run of letters and digits or a single
punctuation mark.

- ROUGE-N: the F1 of the clipped n-gram overlap between output and reference (n = 1 by
  default). It answers "how much of the reference's wording does the output share?".
- BLEU: the geometric mean of the clipped n-gram precisions for n = 1..4 against one or
  several references, times the brevity penalty. An order the output is too short to have
  is left out, its weight spread over the others; a zero precision counts as 1e-7 (a
  smoothing so that one missing order does not make the whole score zero).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["bleu", "rouge_n", "tokens"]

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_SMOOTHING = 1e-7


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def rouge_n(output: str, reference: str, n: int = 1) -> float:
    """ROUGE-N F1 in [0, 1]."""
    candidate, wanted = _ngrams(tokens(output), n), _ngrams(tokens(reference), n)
    overlap = sum((candidate & wanted).values())
    if not overlap:
        return 0.0
    precision = overlap / sum(candidate.values())
    recall = overlap / sum(wanted.values())
    return 2 * precision * recall / (precision + recall)


def bleu(output: str, references: Sequence[str], max_n: int = 4) -> float:
    """Sentence BLEU in [0, 1] against ``references``."""
    words = tokens(output)
    refs = [tokens(r) for r in references]
    if not words or not refs:
        return 0.0
    logs: list[float] = []
    for n in range(1, max_n + 1):
        candidate = _ngrams(words, n)
        total = sum(candidate.values())
        if not total:
            continue  # the output is shorter than n words
        clipped = max(sum((candidate & _ngrams(ref, n)).values()) for ref in refs)
        logs.append(math.log(clipped / total if clipped else _SMOOTHING))
    if not logs:
        return 0.0
    closest = min((abs(len(ref) - len(words)), len(ref)) for ref in refs)[1]
    penalty = 1.0 if len(words) > closest else math.exp(1 - closest / len(words))
    return min(1.0, penalty * math.exp(sum(logs) / len(logs)))
