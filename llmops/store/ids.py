"""Ids of calls and feedback: version 7 UUIDs (RFC 9562), in time order.

The first 48 bits are the Unix time in milliseconds, the rest random (74 bits). Ids made
one after another sort after each other, so the primary keys of ``llm_calls`` and
``feedback`` grow at their right edge, as ``created_at`` does: each insert touches the
index's last pages instead of a random one (which, once the index no longer fits in
memory, is a read per call), and its pages fill up instead of splitting to about 70%
(random version 4 ids: the primary key was a third larger; ``benchmarks/README.md``,
"Storage per call"). The id still looks like any UUID (36 characters), and calls stored
with version 4 ids before keep them.

74 random bits cannot be guessed (a feedback request names its call by id): the time
part narrows them no more than the call's own time would.
"""

from __future__ import annotations

import random
import time
import uuid

_RAND_A_BITS = 12
_RAND_B_BITS = 62


def time_ordered_id(unix_ms: int, random_bits: int) -> str:
    """The version 7 UUID of time ``unix_ms`` (milliseconds since 1970) with the 74 low
    bits of ``random_bits``."""
    rand_a = (random_bits >> _RAND_B_BITS) & ((1 << _RAND_A_BITS) - 1)
    rand_b = random_bits & ((1 << _RAND_B_BITS) - 1)
    value = (unix_ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def new_id() -> str:
    """A new version 7 UUID for now. Its random bits come from ``random.getrandbits``,
    which, unlike ``os.urandom`` (``uuid.uuid4``), does not release the GIL: a call's id
    is made on the app's thread, and a release would let the writer thread cut in."""
    return time_ordered_id(time.time_ns() // 1_000_000, random.getrandbits(74))
