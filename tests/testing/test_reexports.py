"""llmops.testing, the test-helper API, re-exports the objects of llmops.simulate."""

from __future__ import annotations

import llmops.simulate
import llmops.testing


def test_testing_reexports_the_simulate_objects() -> None:
    names = ["FakeLLMServer", "RecordedRequest", "Reply", "SimulatedModel", "simulate"]
    assert sorted(llmops.testing.__all__) == sorted(names)
    for name in names:
        assert getattr(llmops.testing, name) is getattr(llmops.simulate, name)
