"""Call and feedback ids: version 7 UUIDs in time order (llmops.store.ids)."""

from __future__ import annotations

import os
import time
import uuid

from llmops.store.ids import new_id, time_ordered_id


def test_the_rfc_9562_example_is_made_bit_for_bit() -> None:
    """RFC 9562, appendix A.6: time 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F."""
    made = time_ordered_id(0x017F22E279B0, (0xCC3 << 62) | 0x18C4DC0C0C07398F)
    assert made == "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"


def test_an_id_is_a_version_7_uuid_of_its_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = uuid.UUID(new_id())
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after
    assert len(str(made)) == 36


def test_ids_sort_in_the_order_they_were_made() -> None:
    """As text too (as the primary key compares them): a later millisecond sorts later."""
    made = []
    for _ in range(5):
        made.extend(new_id() for _ in range(100))
        time.sleep(0.002)
    by_time = sorted(made, key=lambda i: uuid.UUID(i).int >> 80)
    assert sorted(made) == sorted(by_time)
    milliseconds = [uuid.UUID(i).int >> 80 for i in sorted(made)]
    assert milliseconds == sorted(milliseconds)
    assert len(set(made)) == len(made)


def test_every_one_of_the_74_random_bits_counts() -> None:
    """Ids of one millisecond differ by their random bits: all 74 of them, and no more."""
    ids = {time_ordered_id(1, 1 << bit) for bit in range(74)}
    assert len(ids) == 74 and time_ordered_id(1, 0) not in ids
    assert time_ordered_id(1, 1 << 74) == time_ordered_id(1, 0)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).int >> 80 == 1 for i in ids)


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    """The random bits come from the random module, which reseeds in a forked child (a
    gateway process that forks workers): the same state would make the same ids."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, "".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    mine = {new_id() for _ in range(10)}
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        theirs = pipe.read()
    child = {theirs[i : i + 36] for i in range(0, len(theirs), 36)}
    assert len(child) == 10 and not {i[14:] for i in mine} & {i[14:] for i in child}
